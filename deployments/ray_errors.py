"""Errors that cross Ray, as clients should see them: the one place Ray's wrappers are taken off.

An exception raised inside a replica reaches the caller as a `RayTaskError` that also subclasses
the original class ("RayTaskError(ValueError)"); its `str()` is the remote traceback with ANSI
colour codes, the replica's pid and host, and file paths. Clients must get the cause's own
message instead (issue 9), so every call the Ingress makes to another deployment runs under
`replica_errors()`:

- a replica's own exception (`RayTaskError`, nested any depth) -> that exception, unchanged;
- Serve's back-pressure (`BackPressureError`) -> `BackendBusy` (HTTP 503 + Retry-After);
- Ray's own failures (a replica died or is unavailable, a worker crashed, an object was lost:
  every other `RayError` / `RayServeException`) -> `BackendBusy` with a fixed message, since
  they are transient and their text names processes and hosts.

The full Ray error goes to the replica's log with the request id; nothing of it reaches a body.

The other side: Serve logs every exception a replica method raises at ERROR with its traceback
("Request failed."), client errors too (text with nothing to speak, a bad clip, a taken voice
name). `ClientErrorsAtInfo` (installed by each deployment with `log_client_errors_at_info()`) turns
those records into one INFO line without traceback, as the HTTP layer logs its 4xx (issue 12); an
unexpected exception keeps its ERROR and traceback.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import ParamSpec, TypeVar

from ray.exceptions import RayError, RayTaskError
from ray.serve.exceptions import BackPressureError, RayServeException

from deployments.backend import BackendBusy
from pipeline.voices import VoiceNotFoundError

__all__ = [
    "CLIENT_ERRORS",
    "REPLICA_UNAVAILABLE",
    "ClientErrorsAtInfo",
    "cause_of",
    "log_client_errors_at_info",
    "raises_causes",
    "replica_errors",
]

logger = logging.getLogger("ray.serve")

REPLICA_UNAVAILABLE = "a model replica is unavailable (restarting or overloaded); retry shortly"
_RETRY_AFTER_REPLICA_S = 5.0

P = ParamSpec("P")
T = TypeVar("T")


def cause_of(error: RayTaskError) -> BaseException:
    """The exception the replica's code raised, through any depth of RayTaskError wrapping.

    A cause Ray could not deserialize comes back as RuntimeError with a fixed message.
    """
    cause: BaseException | None = error
    while isinstance(cause, RayTaskError):
        cause = cause.cause
    return cause if cause is not None else RuntimeError("a model replica failed")


@contextlib.contextmanager
def replica_errors(request_id: str = "-") -> Iterator[None]:
    """Re-raise what crosses Ray as the caller should see it (see the module docstring)."""
    try:
        yield
    except RayTaskError as exc:
        cause = cause_of(exc)
        logger.info("request %s: a replica raised %s: %s", request_id, type(cause).__name__, cause)
        logger.debug("request %s: full remote error: %s", request_id, exc)
        raise cause from None
    except BackPressureError as exc:
        logger.warning("request %s: back-pressure: %s", request_id, exc)
        raise BackendBusy("the server is at capacity; retry shortly") from None
    except (RayError, RayServeException) as exc:
        logger.warning("request %s: replica unavailable: %r", request_id, exc)
        raise BackendBusy(REPLICA_UNAVAILABLE, retry_after_s=_RETRY_AFTER_REPLICA_S) from None


def raises_causes(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Decorate an async method that calls other deployments so it raises as `replica_errors` says."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with replica_errors():
            return await method(*args, **kwargs)

    return wrapper


# What the HTTP layer answers with a 4xx (deployments.api.errors.backend_error): a ValueError is input
# the pipeline cannot take (NothingToSpeakError, InvalidAudioError, DuplicateVoiceNameError, ...).
CLIENT_ERRORS: tuple[type[BaseException], ...] = (ValueError, VoiceNotFoundError)


class ClientErrorsAtInfo(logging.Filter):
    """A filter for the "ray.serve" logger: a record carrying a client error (CLIENT_ERRORS) becomes
    INFO, its traceback replaced by the error's type and message."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, CLIENT_ERRORS):
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.args = "%s (refused: %s: %s)", (record.getMessage(), type(error).__name__, error)
            record.exc_info, record.exc_text = None, None
        return True


def log_client_errors_at_info() -> None:
    """Install ClientErrorsAtInfo on Serve's logger in this process (once)."""
    serve_logger = logging.getLogger("ray.serve")
    if not any(isinstance(f, ClientErrorsAtInfo) for f in serve_logger.filters):
        serve_logger.addFilter(ClientErrorsAtInfo())
