"""What every request carries: its id (the request id middleware), the app's backend and config, its deadline.

Request ids. A request's id is the client's X-Request-ID when that is 1 to 128 characters of
`A-Z a-z 0-9 . _ : -` (REQUEST_ID_RULE: enough for UUIDs, ULIDs, hex trace ids and prefixed ids
such as "req_01:2"); anything else, or none, is REPLACED by a fresh id (a uuid4's hex), never
refused: the id exists to find a request's log lines, and a client with a bad one still deserves
an answer. The rule keeps ids safe in log lines and headers: no spaces, quotes, control
characters or unbounded lengths. The one id is on the response (X-Request-ID), in every log line
the HTTP layer writes for the request, and passed to the backend (so the Ingress logs it too).

Behind Ray Serve, Serve's proxy, not this app, echoes X-Request-ID (the app runs with echo=False)
and makes the header it received the id of Serve's request context and logs, unvalidated. So that
an invalid id is replaced there too, the proxy must run `RequestIdGuard` before Serve reads the
header: set RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=deployments.request_ids:proxy_middlewares
in the environment Ray starts in (every node that runs a proxy). Then the proxy, Serve's logs and
this app see one valid id. Without it, the app warns once and still logs its own id.

Logs go to Ray Serve's logger, "ray.serve", so that in a replica they land in Serve's replica
log with the request context Serve adds; each line begins "request <id>:". Per request: one INFO
line for a 4xx (its code and message, no traceback: the client's mistake, not the server's), one
WARNING line for a 5xx the app answered on purpose (503 busy / not ready, 504 timeout), and ERROR
with the traceback only for an unexpected exception, answered 500 internal_error with a body that
names only the request id (no traceback, pid or path reaches the client).
"""

from __future__ import annotations

import asyncio
import logging
import math

from starlette.datastructures import MutableHeaders
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deployments.api.errors import API_ERROR_STATE, ApiError
from deployments.backend import SpeechBackend
from deployments.config import AppConfig
from deployments.request_ids import (  # noqa: F401 (REQUEST_ID_RULE, PROXY_CALLBACK, RequestIdGuard: re-exported)
    _HEADER_KEY,
    CLIENT_DEADLINE_HEADER,
    PROXY_CALLBACK,
    REQUEST_ID_HEADER,
    REQUEST_ID_RULE,
    RequestIdGuard,
    _given_request_id,
    new_request_id,
    valid_request_id,
)

logger = logging.getLogger("ray.serve")

# A client's own deadline for the whole response, in seconds (invalid or non-positive values are
# ignored). Serve's proxy would take x-request-timeout-seconds for itself (a plain-text 408 that
# clients retry), so the proxy guard (deployments.request_ids) renames it to CLIENT_DEADLINE_HEADER.
CLIENT_TOTAL_TIMEOUT_HEADERS = (CLIENT_DEADLINE_HEADER, "x-request-timeout-seconds")
# The openai SDK's httpx read timeout (600 s by default): the longest wait for a byte, so it bounds
# the time to the first byte (all of it for a whole-file answer), not a stream that keeps sending.
CLIENT_READ_TIMEOUT_HEADER = "x-stainless-read-timeout"

_warned_unguarded_proxy = False


def request_id(request: Request) -> str:
    """The id RequestContextMiddleware gave this request (the client's X-Request-ID or a fresh one)."""
    return request.scope.get("state", {}).get("request_id") or "-"


def backend(request: Request) -> SpeechBackend:
    """The backend the app serves (build_http_app puts it in app.state)."""
    return request.app.state.backend


def config(request: Request) -> AppConfig:
    """The app's limits and defaults (build_http_app puts them in app.state)."""
    return request.app.state.config


def deadline(request: Request) -> float:
    """When the backend's work for this request must end, on the event loop's clock, until its
    first byte is sent (for a whole-file answer: its last): config.request_timeout_s from the first
    call, lowered by the client's own timeouts (CLIENT_TOTAL_TIMEOUT_HEADERS, and the SDK's read
    timeout CLIENT_READ_TIMEOUT_HEADER), since work past it is for nobody. Routes take it once the
    body is read."""
    return _start(request) + min(_total_limit(request), _header_seconds(request, CLIENT_READ_TIMEOUT_HEADER))


def stream_deadline(request: Request) -> float:
    """The deadline of a response whose bytes are flowing: `deadline` without the client's read
    timeout (a stream that keeps sending never trips it), from the same start."""
    return _start(request) + _total_limit(request)


def _start(request: Request) -> float:
    state = request.scope.setdefault("state", {})
    if "deadline_from" not in state:
        state["deadline_from"] = asyncio.get_running_loop().time()
    return state["deadline_from"]


def _total_limit(request: Request) -> float:
    limits = [_header_seconds(request, header) for header in CLIENT_TOTAL_TIMEOUT_HEADERS]
    return min([config(request).request_timeout_s, *limits])


def _header_seconds(request: Request, header: str) -> float:
    """A positive, finite number of seconds from `header`, else infinity."""
    try:
        given = float(request.headers.get(header, "nan"))
    except ValueError:
        return math.inf
    return given if math.isfinite(given) and given > 0 else math.inf


class RequestContextMiddleware:
    """Gives every request its id (module docstring: the client's valid X-Request-ID or a fresh one),
    echoed in X-Request-ID unless `echo` is False (behind Serve's proxy, which echoes it); logs each
    error response once; turns an unexpected exception into 500 internal_error, logged with its
    traceback, the body naming only the id."""

    def __init__(self, app: ASGIApp, echo: bool = True):
        self.app = app
        self.echo = echo

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _given_request_id(scope)
        rid = given if valid_request_id(given) else new_request_id()
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        if given is not None and given != rid:
            self._log_replaced(rid, given)
        status: int | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if self.echo:
                    MutableHeaders(scope=message)[REQUEST_ID_HEADER] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            logger.info("request %s: %s: client disconnected", rid, _target(scope))
            return
        except Exception:
            logger.exception("request %s: %s failed", rid, _target(scope))
            if status is not None:  # the response has begun: the server ends it
                raise
            error = ApiError(500, f"internal server error (request id {rid})", code="internal_error")
            await error.response()(scope, receive, send_with_id)
            return
        if status is not None and status >= 400:
            _log_error_response(rid, scope, status, state.get(API_ERROR_STATE))

    def _log_replaced(self, rid: str, given: str) -> None:
        logger.info(
            "request %s: replaced the client's X-Request-ID %s (an id is %s)", rid, _shown(given), REQUEST_ID_RULE
        )
        global _warned_unguarded_proxy
        if not self.echo and not _warned_unguarded_proxy:
            _warned_unguarded_proxy = True
            logger.warning(
                "request %s: an invalid X-Request-ID reached the app, so Serve's proxy echoes the client's value "
                "while these logs use %s; set RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=%s where Ray starts, so the "
                "proxy replaces invalid ids too (logged once)",
                rid,
                rid,
                PROXY_CALLBACK,
            )


def _log_error_response(rid: str, scope: Scope, status: int, error: ApiError | None) -> None:
    """One line per error response: 4xx at INFO (the client's to fix), 5xx at WARNING; no traceback."""
    level = logging.INFO if status < 500 else logging.WARNING
    if error is None:
        logger.log(level, "request %s: %s -> %d", rid, _target(scope), status)
    else:
        logger.log(level, "request %s: %s -> %d %s: %s", rid, _target(scope), status, error.code, error.message)


def _target(scope: Scope) -> str:
    """'METHOD /path' as the client sent it: the raw, still percent-encoded path, any byte outside
    ASCII escaped, so a path cannot put control characters in a log line."""
    raw = scope.get("raw_path")
    path = raw.decode("ascii", "backslashreplace") if isinstance(raw, bytes) else repr(scope.get("path"))
    return f"{scope.get('method')} {path}"


def _shown(value: str) -> str:
    """A client's string for a log line: repr (control characters escaped), cut to 64 characters."""
    return repr(value[:64]) + ("..." if len(value) > 64 else "")
