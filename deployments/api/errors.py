"""API errors in OpenAI's shape, and the one mapping from what a backend raises to them.

Every error body is OpenAI's {"error": {"message", "type", "param", "code"}}:

| status | when                                                 | type                  | code                      |
|--------|------------------------------------------------------|-----------------------|---------------------------|
| 400    | body not JSON (NaN/Infinity included) or empty       | invalid_request_error | invalid_json              |
| 400    | JSON that is not an object                           | invalid_request_error | invalid_body              |
| 400    | wrong or missing Content-Type                        | invalid_request_error | invalid_content_type      |
| 400    | malformed multipart (no boundary, broken parts)      | invalid_request_error | invalid_multipart         |
| 400    | OpenAI's routes: every 422 below (`openai_errors`);  | invalid_request_error | the 422's code;           |
|        | an unknown field is "Unrecognized request argument  |                       | unknown_parameter         |
|        | supplied: <field>", param the field                  |                       |                           |
| 404    | unknown model / voice / route                        | invalid_request_error | model_not_found,          |
|        |                                                      |                       | voice_not_found, not_found|
| 405    | method not allowed (Allow header lists the methods)  | invalid_request_error | method_not_allowed        |
| 408    | the body did not arrive within body_timeout_s        | invalid_request_error | request_timeout           |
| 409    | a voice with that name exists                        | invalid_request_error | voice_exists              |
| 413    | text over max_text_chars                             | invalid_request_error | input_too_long            |
| 413    | clip over max_upload_bytes (or the form far over it) | invalid_request_error | upload_too_large          |
| 413    | JSON body over 12 * max_text_chars + 1 MiB           | invalid_request_error | request_too_large         |
| 422    | invalid field: param is its dotted path (input,      | invalid_request_error | pydantic's error type:    |
|        | sampling.top_p, speaker.3), the message names it     |                       | missing, extra_forbidden, |
|        |                                                      |                       | less_than_equal, ...      |
| 422    | fields that exclude each other (voice and speaker,   | invalid_request_error | conflicting_fields        |
|        | a clip and either; speed and speaking_rate, ...)     |                       |                           |
| 422    | form part unknown, repeated, or file-vs-field wrong  | invalid_request_error | extra_forbidden,          |
|        |                                                      |                       | duplicate_field,          |
|        |                                                      |                       | invalid_type, missing     |
| 422    | bad or empty clip (the backend's ValueError message) | invalid_request_error | invalid_audio             |
| 422    | text with nothing to speak once cleaned              | invalid_request_error | nothing_to_speak          |
| 422    | a request the pipeline refuses before any audio      | invalid_request_error | invalid_value,            |
|        | (a backend ValueError; a language whose extra is     |                       | language_unavailable      |
|        | not installed); a voice name against the naming      |                       |                           |
|        | rule (param `name`, the message names the rule)      |                       |                           |
| 503    | backend queues full (Retry-After: seconds, >= 1)     | server_error          | server_busy               |
| 503    | /readyz before the models are loaded                 | server_error          | not_ready                 |
| 504    | backend timed out, or past the request's deadline    | server_error          | timeout                   |
| 500    | a bug: logged with the request id, no details sent   | server_error          | internal_error            |

Retry hints, as the openai SDK reads them (it retries 408, 409, 429 and every status >= 500 twice
unless `x-should-retry` says otherwise, waiting `retry-after-ms`, else `retry-after`): every error
says `x-should-retry: false` except a 503, which is transient: backend_error's 503 says `true`,
with Retry-After (whole seconds, >= 1) and retry-after-ms (the backend's own estimate, in ms). A 504
comes once the request's deadline has passed (the client's own timeout or request_timeout_s), so
the same request would only time out again; a 500 is a bug that a retry repeats; a 4xx is the
request's own fault (a 409 voice_exists is no lock that frees up).

`backend_error` is the only place a backend's exception becomes an API error; every route and
stream goes through it (`backend_errors()` / `call_backend()`), naming the request's own fields.

An error's response (`ApiError.response()`) leaves the ApiError in the request's scope state
(`API_ERROR_STATE`), so that the request middleware (context.py) logs each error response once,
with its code and message: 4xx at INFO, 5xx at WARNING, never a traceback, since these are
answers the app meant to give. Only an unexpected exception (the 500) is logged with one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from pipeline.streaming import StepUnavailable
from pipeline.text import MissingExtraError, NothingToSpeakError, UnsupportedLanguageError
from pipeline.voices import DuplicateVoiceNameError, InvalidVoiceNameError

T = TypeVar("T")

# where a sent error response leaves its ApiError: the key in the request's scope["state"]
API_ERROR_STATE = "api_error"

# the code of a Starlette HTTPException (routing's 404 and 405, the form parser's 400, ...) by status
_STATUS_CODES = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}


class ApiError(Exception):
    """An error response in OpenAI's shape; `type` is server_error from 500 on, else invalid_request_error.
    Its headers say `x-should-retry: false` unless the status is 503 or `headers` say otherwise."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type or ("server_error" if status >= 500 else "invalid_request_error")
        self.headers = ({} if status == 503 else {"x-should-retry": "false"}) | (headers or {})

    def body(self) -> dict:
        """OpenAI's error object: {"message", "type", "param", "code"}."""
        return {"message": self.message, "type": self.type, "param": self.param, "code": self.code}

    def response(self) -> JSONResponse:
        """The JSON response; sending it records this error in the request's scope for the log line."""
        return _ErrorResponse(self)


class _ErrorResponse(JSONResponse):
    """An ApiError's response, which leaves the error in scope["state"][API_ERROR_STATE] when sent."""

    def __init__(self, error: ApiError):
        super().__init__({"error": error.body()}, status_code=error.status, headers=error.headers)
        self.error = error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("state", {})[API_ERROR_STATE] = self.error
        await super().__call__(scope, receive, send)


def conflicting_fields(param: str, message: str) -> ApiError:
    """422 conflicting_fields: `param` excludes another field given (on OpenAI's routes a 400)."""
    return ApiError(422, f"{param}: {message}", param=param, code="conflicting_fields")


def validation_error(error: ValidationError) -> ApiError:
    """422 for the first of pydantic's errors, `param` its field's dotted path, `code` pydantic's error type
    (on OpenAI's routes `openai_errors` makes it a 400)."""
    first = error.errors(include_url=False)[0]
    param = ".".join(str(part) for part in first["loc"]) or None
    if first["type"] == "value_error" and "error" in first.get("ctx", {}):
        message = str(first["ctx"]["error"])
    else:
        message = first["msg"]
    return ApiError(422, f"{param}: {message}" if param else message, param=param, code=first["type"])


def openai_errors(route: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """A route of OpenAI's API: its invalid input is 400, as OpenAI answers, not the native API's 422
    (the openai SDK raises BadRequestError for 400, UnprocessableEntityError for 422); an unknown field
    is worded as OpenAI words it, "Unrecognized request argument supplied: <field>", code
    unknown_parameter. The code and param of any other 422 stay, and so does every other status."""

    @functools.wraps(route)
    async def openai_route(request: Request) -> Response:
        try:
            return await route(request)
        except ApiError as exc:
            if exc.status != 422:
                raise
            if exc.code == "extra_forbidden":
                message, code = f"Unrecognized request argument supplied: {exc.param}", "unknown_parameter"
            else:
                message, code = exc.message, exc.code
            raise ApiError(400, message, param=exc.param, code=code, headers=exc.headers) from None

    return openai_route


def http_error(request: Request, error: HTTPException) -> ApiError:
    """A Starlette HTTPException (no route: 404, wrong method: 405 with Allow, ...) in OpenAI's shape."""
    status = error.status_code
    if status == 404:
        message = f"no route for {request.method} {request.url.path}"
    elif status == 405:
        message = f"method {request.method} not allowed for {request.url.path}"
    else:
        message = error.detail
    return ApiError(status, message, code=_STATUS_CODES.get(status), headers=dict(error.headers or {}))


def retry_headers(seconds: float) -> dict[str, str]:
    """A 503's retry hints (the openai SDK honours them): Retry-After in whole seconds (rounded up,
    at least 1), retry-after-ms (rounded up) and x-should-retry: true."""
    return {
        "Retry-After": str(max(1, math.ceil(seconds))),
        "retry-after-ms": str(max(1, math.ceil(1000 * seconds))),
        "x-should-retry": "true",
    }


def backend_error(
    error: BaseException, *, text_param: str | None = None, clip_param: str | None = None
) -> ApiError | None:
    """The API error for what a backend call raised, or None for anything else (a bug: the caller
    re-raises it, and it becomes a logged 500 internal_error, or ends a stream already started).

    | raised                                  | when                  | status | code                 | param      |
    |-----------------------------------------|-----------------------|--------|----------------------|------------|
    | pipeline.streaming.StepUnavailable      | always                | 503    | server_busy          | -          |
    |   (BackendBusy: queues full, a replica  |                       |        |                      |            |
    |   down; retries exhausted; a recovery   |                       |        |                      |            |
    |   that could not be exact)              |                       |        |                      |            |
    | TimeoutError (the backend's, or the     | always                | 504    | timeout              | -          |
    |   request's deadline)                   |                       |        |                      |            |
    | pipeline.voices.DuplicateVoiceNameError | always                | 409    | voice_exists         | name       |
    | pipeline.voices.InvalidVoiceNameError   | always                | 422    | invalid_value        | name       |
    | pipeline.text.UnsupportedLanguageError  | always                | 422    | invalid_value        | language   |
    | ValueError (InvalidAudioError)          | clip_param: a clip    | 422    | invalid_audio        | clip_param |
    | pipeline.text.NothingToSpeakError       | text_param: synthesis | 422    | nothing_to_speak     | text_param |
    | pipeline.text.MissingExtraError         | text_param: synthesis | 422    | language_unavailable | language   |
    | ValueError                              | text_param: synthesis | 422    | invalid_value        | -          |

    503 carries Retry-After (the error's retry_after_s rounded up, at least 1 s), retry-after-ms (the
    error's retry_after_s in ms, rounded up) and x-should-retry: true (the openai SDK's retry hints);
    every other error x-should-retry: false (ApiError; the module docstring says why). text_param is the
    field holding the text (`input` on OpenAI's route, `text` on /v1/tts); clip_param the form part
    holding the clip (`file`). A stream that has started passes neither: its status is sent already,
    and the error only names what went wrong in an SSE error event.
    """
    if isinstance(error, StepUnavailable):  # BackendBusy, a worker that stayed down, a recovery that was not exact
        headers = retry_headers(getattr(error, "retry_after_s", 1.0) or 1.0)
        return ApiError(503, str(error) or "the server is busy", code="server_busy", headers=headers)
    if isinstance(error, TimeoutError):
        return ApiError(504, "the request took too long; try a shorter text or retry later", code="timeout")
    if isinstance(error, DuplicateVoiceNameError):
        return ApiError(409, str(error), param="name", code="voice_exists")
    if isinstance(error, InvalidVoiceNameError):  # a ValueError too: caught before the clip rule below
        return ApiError(422, str(error), param="name", code="invalid_value")
    if isinstance(error, UnsupportedLanguageError):  # likewise
        return ApiError(422, f"language: {error}", param="language", code="invalid_value")
    if clip_param is not None and isinstance(error, ValueError):
        return ApiError(422, f"{clip_param}: {_message(error)}", param=clip_param, code="invalid_audio")
    if text_param is None:
        return None
    if isinstance(error, NothingToSpeakError):
        return ApiError(422, f"{text_param}: {_message(error)}", param=text_param, code="nothing_to_speak")
    if isinstance(error, MissingExtraError):
        return ApiError(422, _message(error), param="language", code="language_unavailable")
    if isinstance(error, ValueError):
        return ApiError(422, _message(error), code="invalid_value")
    return None


@contextlib.contextmanager
def backend_errors(*, text_param: str | None = None, clip_param: str | None = None) -> Iterator[None]:
    """Raise what the backend raises inside the block as `backend_error` says; anything else unchanged."""
    try:
        yield
    except Exception as exc:
        error = backend_error(exc, text_param=text_param, clip_param=clip_param)
        if error is None:
            raise
        raise error from None


async def call_backend(awaitable: Awaitable[T], deadline: float, *, clip_param: str | None = None) -> T:
    """Await a backend call by `deadline` (the event loop's clock), its errors mapped by `backend_error`."""
    with backend_errors(clip_param=clip_param):
        async with asyncio.timeout_at(deadline):
            return await awaitable


def _message(error: BaseException) -> str:
    if isinstance(error, ValidationError):
        return validation_error(error).message
    return str(error) or type(error).__name__
