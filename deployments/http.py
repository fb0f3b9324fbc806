"""The HTTP API as a plain Starlette app over a `SpeechBackend`; no Ray here (the ingress wraps it).

Routes
------
POST   /v1/audio/speech   OpenAI-compatible text to speech (JSON), audio streamed as it is generated
POST   /v1/tts            native: every Zonos control (JSON, or multipart with a voice clip)
POST   /v1/voices         add a voice to the library from a clip (multipart: `file`, `name`) -> 201
GET    /v1/voices         {"object": "list", "data": [voice, ...]}
GET    /v1/voices/{ref}   one voice (by id or name) or 404
DELETE /v1/voices/{ref}   {"id", "object": "voice.deleted", "deleted": true} or 404
GET    /v1/models         zonos-v0.1 (with the backend's model card) and its OpenAI aliases
GET    /healthz           200 {"status": "ok"} while the process serves at all
GET    /readyz            200 {"status": "ready"} once the models are loaded, else 503

/v1/audio/speech, as OpenAI's, with these choices:
- `model`: "zonos-v0.1" or the aliases "tts-1", "tts-1-hd", "gpt-4o-mini-tts" (all the same model);
  anything else is 404 with code "model_not_found", as OpenAI answers for a model it doesn't have.
- `voice`: a library voice's id or name (or OpenAI's {"id": ...} form). OpenAI's built-in names
  (alloy, ash, ballad, coral, echo, fable, nova, onyx, sage, shimmer, verse, marin, cedar) mean
  "no cloned voice": the model's unconditional speaker. A library voice with such a name wins.
  Anything else is 404 "voice_not_found".
- `speed` 0.25..4.0 becomes Zonos's speaking_rate = 15 * speed (phonemes/s), capped at 40.
- `response_format` defaults to the config's default_response_format (mp3 unless changed); pcm
  is raw s16le mono at 44.1 kHz (not OpenAI's 24 kHz): X-Sample-Rate says so.
- `stream_format` "audio" (default) streams the file's bytes with chunked transfer; "sse" sends
  `data: {"type": "speech.audio.delta", "audio": <base64 of the next bytes of the file>}` events and
  then `data: {"type": "speech.audio.done"}` (no token usage: there are no tokens to count).
- `instructions` is accepted and ignored (Zonos has no prompt); other unknown fields are 422.
- `input` is limited to config.max_text_chars characters (code points): longer is 413.

/v1/tts takes SynthesisRequest's fields (text, language, emotion, pitch_std, speaking_rate, fmax,
cfg_scale, sampling{...}, seed, unconditional_keys, max_tokens_per_segment, pause_ms, ...) plus
`voice` (library id or name; built-in OpenAI names are not special here) or `speaker` (128 floats),
not both; `response_format`; and `stream` (default true; false buffers the whole file and sends it
with Content-Length, so any failure still gets its status). Unknown fields are 422. As
multipart/form-data it takes a `file` part (a voice clip, at most config.max_upload_bytes) and a
`request` part holding that same JSON object (not individual form fields, so nested `sampling`
works); the clip's embedding becomes the speaker, so `voice`/`speaker` may not be given as well.

Audio responses carry X-Sample-Rate (the rate the bytes decode to: 48000 for opus, which always
codes at 48 kHz, else 44100), X-Audio-Format, and X-Request-ID (every response has this one: the
client's X-Request-ID when it is 1-128 visible ASCII characters, else a fresh id). The request id
is passed to the backend and named in logs.

Errors all have OpenAI's shape {"error": {"message", "type", "param", "code"}}:

| status | when                                                 | type                  | code                      |
|--------|------------------------------------------------------|-----------------------|---------------------------|
| 400    | body not JSON (NaN/Infinity included) or empty       | invalid_request_error | invalid_json              |
| 400    | JSON that is not an object                           | invalid_request_error | invalid_body              |
| 400    | wrong or missing Content-Type                        | invalid_request_error | invalid_content_type      |
| 400    | malformed multipart (no boundary, broken parts)      | invalid_request_error | invalid_multipart         |
| 404    | unknown model / voice / route                        | invalid_request_error | model_not_found,          |
|        |                                                      |                       | voice_not_found, not_found|
| 405    | method not allowed (Allow header lists the methods)  | invalid_request_error | method_not_allowed        |
| 409    | a voice with that name exists                        | invalid_request_error | voice_exists              |
| 413    | text over max_text_chars                             | invalid_request_error | input_too_long            |
| 413    | clip over max_upload_bytes (or the form far over it) | invalid_request_error | upload_too_large          |
| 413    | JSON body over 12 * max_text_chars + 1 MiB           | invalid_request_error | request_too_large         |
| 422    | invalid field: param is its dotted path (input,      | invalid_request_error | pydantic's error type:    |
|        | sampling.top_p, speaker.3), the message names it     |                       | missing, extra_forbidden, |
|        |                                                      |                       | less_than_equal, ...      |
| 422    | both voice and speaker, or a clip and either         | invalid_request_error | conflicting_fields        |
| 422    | form part unknown, repeated, or file-vs-field wrong  | invalid_request_error | extra_forbidden,          |
|        |                                                      |                       | duplicate_field,          |
|        |                                                      |                       | invalid_type, missing     |
| 422    | bad or empty clip (the backend's ValueError message) | invalid_request_error | invalid_audio             |
| 422    | a request the pipeline refuses before any audio      | invalid_request_error | invalid_value,            |
|        | (a backend ValueError; a language whose extra is     |                       | language_unavailable      |
|        | not installed); bad voice name                       |                       |                           |
| 503    | backend queues full (Retry-After: seconds, >= 1)     | server_error          | server_busy               |
| 503    | /readyz before the models are loaded                 | server_error          | not_ready                 |
| 504    | backend timed out, or past config.request_timeout_s  | server_error          | timeout                   |
| 500    | a bug: logged with the request id, no details sent   | server_error          | internal_error            |

JSON bodies are parsed strictly: NaN and Infinity (which Python's json accepts) are 400, and
numbers too large for a float (1e400) are 422 for their field. config.request_timeout_s bounds
the backend's work for a request, from the body being read to the last audio byte.

Streaming: the first chunk of audio is awaited (and encoded) before the response starts, so
anything that fails early - busy, timeout, a request the model can't take (a ValueError from the
backend, 422) - gets its status. Once bytes are sent the status can't change: a later failure is
logged and ends the stream early (SSE streams get a final `{"type": "error", "error": {...}}`
event instead of speech.audio.done). Use /v1/tts with "stream": false for all-or-nothing. When the
stream ends for any reason (done, failed, client gone), the backend's iterator is closed
(`aclose()`), which is how the backend learns to stop generating.

What the backend raises: BackendBusy (queues full), TimeoutError, ValueError for input it can't
take (pipeline.speaker.InvalidAudioError for a bad clip), pipeline.voices.DuplicateVoiceNameError
from create_voice; VoiceNotFoundError (a KeyError) is taken as "no such voice" like None.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import re
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Literal, Protocol, TypeVar

import anyio
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders, UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deployments.config import AppConfig
from pipeline.audio import MEDIA_TYPES, SAMPLE_RATE, StreamingEncoder, encode_audio
from pipeline.synthesis import SynthesisRequest
from pipeline.text import MissingExtraError, NothingToSpeakError
from pipeline.voices import MAX_NAME_LENGTH, DuplicateVoiceNameError, VoiceInfo, VoiceNotFoundError

__all__ = [
    "MODEL_ALIASES",
    "MODEL_ID",
    "OPENAI_VOICES",
    "ApiError",
    "BackendBusy",
    "SpeechBackend",
    "SpeechRequest",
    "TtsRequest",
    "VoiceInfo",
    "build_http_app",
    "request_id",
]

logger = logging.getLogger(__name__)

MODEL_ID = "zonos-v0.1"
MODEL_ALIASES = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
OPENAI_VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse", "marin", "cedar"}
)
ResponseFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]

_OPUS_RATE = 48_000  # libopus codes at 48 kHz whatever it is fed (pipeline.audio)
_MIB = 1024 * 1024
_READY_TIMEOUT_S = 5.0
_CLOSE_TIMEOUT_S = 5.0
_THREAD_ENCODE_SAMPLES = SAMPLE_RATE  # chunks of a second or more are encoded off the event loop
_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")

T = TypeVar("T")


# --------------------------------------------------------------------------- backend interface


class BackendBusy(Exception):
    """The backend's queues are full: the client should retry after `retry_after_s` (HTTP 503)."""

    def __init__(self, message: str = "the server is busy; retry shortly", retry_after_s: float = 1.0):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SpeechBackend(Protocol):
    """What the HTTP layer needs; the Ray ingress implements it over the deployment handles."""

    async def ready(self) -> bool:
        """Whether the models are loaded."""
        ...

    def model_card(self) -> dict:
        """{"id": "zonos-v0.1", "speech": bool (False with random fallback weights), "note": str}."""
        ...

    def stream_audio(self, request: SynthesisRequest, request_id: str) -> AsyncIterator[np.ndarray]:
        """float32 mono chunks at 44100 Hz, in order; aclose() on it means: stop, nobody listens."""
        ...

    async def embed_clip(self, clip: bytes) -> list[float]:
        """The 128-float embedding of a voice clip; ValueError when the bytes are not usable audio."""
        ...

    async def create_voice(self, name: str, clip: bytes) -> VoiceInfo:
        """Embed and store; DuplicateVoiceNameError when the name is taken, ValueError for a bad clip."""
        ...

    async def list_voices(self) -> list[VoiceInfo]: ...

    async def get_voice(self, id_or_name: str) -> VoiceInfo | None: ...

    async def delete_voice(self, voice_id: str) -> bool:
        """False when no voice has this id."""
        ...

    async def voice_embedding(self, id_or_name: str) -> list[float] | None: ...


# --------------------------------------------------------------------------- request bodies


class SpeechRequest(BaseModel):
    """OpenAI's POST /v1/audio/speech body."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    model: str = Field(min_length=1)
    input: str = Field(min_length=1)
    voice: str = Field(min_length=1, description="Library voice id or name, or an OpenAI built-in voice name.")
    response_format: ResponseFormat | None = None
    speed: float = Field(1.0, ge=0.25, le=4.0)
    stream_format: Literal["audio", "sse"] = "audio"
    instructions: str | None = Field(None, description="Accepted for compatibility and ignored.")

    @field_validator("voice", mode="before")
    @classmethod
    def _voice_object(cls, voice: Any) -> Any:
        """OpenAI also takes {"id": "voice_..."} for custom voices."""
        if isinstance(voice, dict) and set(voice) == {"id"}:
            return voice["id"]
        return voice

    @field_validator("input")
    @classmethod
    def _input_not_blank(cls, text: str) -> str:
        return _not_blank(text)


class TtsRequest(SynthesisRequest):
    """POST /v1/tts: every SynthesisRequest field (and its validation: blank text, unknown language,
    speaker and emotion lengths, repeated unconditional keys) plus the voice and how to send the audio."""

    voice: str | None = Field(None, min_length=1, description="Library voice id or name (instead of `speaker`).")
    response_format: ResponseFormat | None = None
    stream: bool = True

    def synthesis_request(self, speaker: list[float] | None) -> SynthesisRequest:
        fields = {name: getattr(self, name) for name in SynthesisRequest.model_fields}
        return SynthesisRequest(**(fields | {"speaker": speaker}))


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("text is blank: there is nothing to speak")
    return text


# --------------------------------------------------------------------------- errors


class ApiError(Exception):
    """An error response in OpenAI's shape."""

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
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


_STATUS_CODES = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
}


def _validation_error(error: ValidationError, status: int = 422) -> ApiError:
    """The first of pydantic's errors, named by the field's dotted path."""
    first = error.errors(include_url=False)[0]
    param = ".".join(str(part) for part in first["loc"]) or None
    if first["type"] == "value_error" and "error" in first.get("ctx", {}):
        message = str(first["ctx"]["error"])
    else:
        message = first["msg"]
    return ApiError(status, f"{param}: {message}" if param else message, param=param, code=first["type"])


def _busy(error: BackendBusy) -> ApiError:
    retry = max(1, math.ceil(getattr(error, "retry_after_s", 1.0) or 1.0))
    return ApiError(503, str(error) or "the server is busy", code="server_busy", headers={"Retry-After": str(retry)})


def _timeout() -> ApiError:
    return ApiError(504, "the request took too long; try a shorter text or retry later", code="timeout")


def _message(error: BaseException) -> str:
    if isinstance(error, ValidationError):
        return _validation_error(error).message
    return str(error) or type(error).__name__


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    if status == 404:
        message = f"no route for {request.method} {request.url.path}"
    elif status == 405:
        message = f"method {request.method} not allowed for {request.url.path}"
    else:
        message = exc.detail
    error = ApiError(status, message, code=_STATUS_CODES.get(status), headers=dict(exc.headers or {}))
    return error.response()


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    if exc.status >= 500:
        logger.warning("request %s: %d %s", request_id(request), exc.status, exc.message)
    return exc.response()


# --------------------------------------------------------------------------- request context


def request_id(request: Request) -> str:
    """The id _RequestContext gave this request (the client's X-Request-ID or a fresh one)."""
    return request.scope.get("state", {}).get("request_id") or "-"


class _RequestContext:
    """Gives every request an id (echoed in X-Request-ID) and turns unexpected exceptions into 500s."""

    def __init__(self, app: ASGIApp, echo: bool = True):
        self.app = app
        self.echo = echo

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if self.echo:
                    MutableHeaders(scope=message)["X-Request-ID"] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            logger.info("request %s: client disconnected", rid)
        except Exception:
            logger.exception("request %s: %s %s failed", rid, scope.get("method"), scope.get("path"))
            if started:
                raise
            error = ApiError(500, f"internal server error (request id {rid})", code="internal_error")
            await error.response()(scope, receive, send_with_id)


# --------------------------------------------------------------------------- body parsing


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _check_declared_length(request: Request, limit: int, error: ApiError) -> None:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise error


async def _read_body(request: Request, limit: int) -> bytes:
    too_large = ApiError(413, f"request body over {limit} bytes", code="request_too_large")
    _check_declared_length(request, limit, too_large)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_json_object(data: bytes | str, param: str | None = None) -> dict:
    where = f"`{param}` part" if param else "body"
    if not data or (isinstance(data, str | bytes) and not data.strip()):
        raise ApiError(400, f"the request {where} is empty; expected a JSON object", param=param, code="invalid_json")
    try:
        value = json.loads(data, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, f"the request {where} is not valid JSON: {exc}", param=param, code="invalid_json") from None
    if not isinstance(value, dict):
        raise ApiError(
            400,
            f"the request {where} must be a JSON object, got {type(value).__name__}",
            param=param,
            code="invalid_body",
        )
    return value


def _wrong_content_type(request: Request, expected: str) -> ApiError:
    got = request.headers.get("content-type") or "none"
    return ApiError(400, f"Content-Type must be {expected}, got {got}", code="invalid_content_type")


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


# --------------------------------------------------------------------------- the app


class _Api:
    def __init__(self, backend: SpeechBackend, config: AppConfig):
        self.backend = backend
        self.config = config
        # Room for any text within max_text_chars even if every character is a JSON-escaped
        # surrogate pair (12 bytes), plus the other fields.
        self.json_limit = 12 * config.max_text_chars + _MIB
        self.form_limit = config.max_upload_bytes + self.json_limit + 64 * 1024

    # ------------------------------------------------------------------ helpers

    def _deadline(self) -> float:
        return asyncio.get_running_loop().time() + self.config.request_timeout_s

    async def _call(self, awaitable: Awaitable[T], deadline: float, clip_param: str | None = None) -> T:
        """Await a backend call, mapping busy/timeout (and, for clips, ValueError) to API errors."""
        try:
            async with asyncio.timeout_at(deadline):
                return await awaitable
        except BackendBusy as exc:
            raise _busy(exc) from None
        except TimeoutError:
            raise _timeout() from None
        except DuplicateVoiceNameError as exc:
            raise ApiError(409, str(exc), param="name", code="voice_exists") from None
        except ValueError as exc:
            if clip_param is None:
                raise
            raise ApiError(422, f"{clip_param}: {_message(exc)}", param=clip_param, code="invalid_audio") from None

    async def _json_body(self, request: Request, text_field: str) -> dict:
        if not _is_json(_media_type(request)):
            raise _wrong_content_type(request, "application/json")
        body = _parse_json_object(await _read_body(request, self.json_limit))
        self._check_text_length(body, text_field)
        return body

    def _check_text_length(self, body: dict, text_field: str) -> None:
        text = body.get(text_field)
        if isinstance(text, str) and len(text) > self.config.max_text_chars:
            raise ApiError(
                413,
                f"{text_field} is {len(text)} characters; the limit is {self.config.max_text_chars}",
                param=text_field,
                code="input_too_long",
            )

    async def _form(self, request: Request, allowed: set[str]) -> dict[str, str | bytes]:
        """A multipart body, size-limited while it is read: plain fields as str, file parts as
        bytes; each part at most once, none unknown."""
        if _media_type(request) != "multipart/form-data":
            raise _wrong_content_type(request, "multipart/form-data")
        too_large = ApiError(
            413, f"upload over {self.config.max_upload_bytes} bytes", param="file", code="upload_too_large"
        )
        _check_declared_length(request, self.form_limit, too_large)
        received = 0

        async def receive() -> Message:
            nonlocal received
            message = await request.receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.form_limit:
                    raise too_large
            return message

        try:
            form = await Request(request.scope, receive).form(max_files=4, max_fields=16, max_part_size=self.form_limit)
        except HTTPException as exc:
            raise ApiError(400, f"malformed multipart body: {exc.detail}", code="invalid_multipart") from None
        try:
            fields: dict[str, str | bytes] = {}
            for key, value in form.multi_items():
                if key not in allowed:
                    expected = ", ".join(sorted(allowed))
                    raise ApiError(
                        422, f"{key}: unknown form field (expected {expected})", param=key, code="extra_forbidden"
                    )
                if key in fields:
                    raise ApiError(422, f"{key}: given more than once", param=key, code="duplicate_field")
                fields[key] = await value.read() if isinstance(value, UploadFile) else value
            return fields
        finally:
            await form.close()

    def _clip(self, value: str | bytes | None) -> bytes:
        if value is None:
            raise ApiError(422, "file: a voice clip is required", param="file", code="missing")
        if not isinstance(value, bytes):
            raise ApiError(
                422, "file: must be a file upload (a form part with a filename)", param="file", code="invalid_type"
            )
        if len(value) > self.config.max_upload_bytes:
            raise ApiError(
                413,
                f"file is {len(value)} bytes; the upload limit is {self.config.max_upload_bytes}",
                param="file",
                code="upload_too_large",
            )
        if not value:
            raise ApiError(422, "file: the clip is empty", param="file", code="invalid_audio")
        return value

    async def _speaker(self, ref: str, deadline: float, builtin_ok: bool) -> list[float] | None:
        try:
            embedding = await self._call(self.backend.voice_embedding(ref), deadline)
        except VoiceNotFoundError:
            embedding = None
        if embedding is not None:
            return list(embedding)
        if builtin_ok and ref in OPENAI_VOICES:
            return None
        hint = " (OpenAI's built-in voice names are accepted too)" if builtin_ok else ""
        raise ApiError(
            404, f"voice {ref!r} not found in the voice library{hint}", param="voice", code="voice_not_found"
        )

    # ------------------------------------------------------------------ audio responses

    def _audio_headers(self, fmt: str) -> dict[str, str]:
        rate = _OPUS_RATE if fmt == "opus" else SAMPLE_RATE
        return {"X-Sample-Rate": str(rate), "X-Audio-Format": fmt, "Cache-Control": "no-store"}

    async def _first_chunk(self, request: Request, synthesis: SynthesisRequest, deadline: float, text_param: str):
        """Start the backend's stream and wait for its first chunk (None: it ended at once); errors
        before it become API errors, those about the text naming `text_param`."""
        rid = request_id(request)
        iterator: AsyncIterator[np.ndarray] | None = None
        try:
            async with asyncio.timeout_at(deadline):
                iterator = self.backend.stream_audio(synthesis, rid)
                try:
                    return iterator, await anext(iterator)
                except StopAsyncIteration:
                    return iterator, None
        except BaseException as exc:
            if iterator is not None:
                await _close(iterator)
            if isinstance(exc, BackendBusy):
                raise _busy(exc) from None
            if isinstance(exc, TimeoutError):
                raise _timeout() from None
            _raise_unusable(exc, text_param)
            raise

    async def _audio_response(
        self,
        request: Request,
        synthesis: SynthesisRequest,
        fmt: str,
        deadline: float,
        text_param: str,
        sse: bool = False,
    ) -> Response:
        iterator, first = await self._first_chunk(request, synthesis, deadline, text_param)
        try:
            encoder = StreamingEncoder(fmt, SAMPLE_RATE)
            head = b"" if first is None else await _encode(encoder, first)
        except BaseException:
            await _close(iterator)
            raise
        body = _stream_body(iterator, encoder, head, first is None, deadline, request_id(request), sse)
        headers = self._audio_headers(fmt)
        if sse:
            return StreamingResponse(
                body, media_type="text/event-stream", headers=headers | {"Cache-Control": "no-cache"}
            )
        return StreamingResponse(body, media_type=MEDIA_TYPES[fmt], headers=headers)

    async def _whole_file(
        self, request: Request, synthesis: SynthesisRequest, fmt: str, deadline: float, text_param: str
    ) -> Response:
        iterator, first = await self._first_chunk(request, synthesis, deadline, text_param)
        chunks = [] if first is None else [np.asarray(first, np.float32)]
        try:
            async with asyncio.timeout_at(deadline):
                async for chunk in iterator:
                    chunks.append(np.asarray(chunk, np.float32))
        except BackendBusy as exc:
            raise _busy(exc) from None
        except TimeoutError:
            raise _timeout() from None
        except (ValueError, MissingExtraError) as exc:
            _raise_unusable(exc, text_param)
            raise
        finally:
            await _close(iterator)
        samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        data = await anyio.to_thread.run_sync(encode_audio, samples, SAMPLE_RATE, fmt)
        return Response(data, media_type=MEDIA_TYPES[fmt], headers=self._audio_headers(fmt))

    # ------------------------------------------------------------------ routes

    async def speech(self, request: Request) -> Response:
        body = await self._json_body(request, "input")
        try:
            speech = SpeechRequest.model_validate(body)
        except ValidationError as exc:
            raise _validation_error(exc) from None
        if speech.model != MODEL_ID and speech.model not in MODEL_ALIASES:
            raise ApiError(
                404,
                f"model {speech.model!r} does not exist; use {MODEL_ID} or one of {', '.join(MODEL_ALIASES)}",
                param="model",
                code="model_not_found",
            )
        deadline = self._deadline()
        speaker = await self._speaker(speech.voice, deadline, builtin_ok=True)
        try:
            synthesis = SynthesisRequest(
                text=speech.input, speaker=speaker, speaking_rate=min(40.0, 15.0 * speech.speed)
            )
        except ValidationError as exc:
            raise _validation_error(exc) from None
        fmt = speech.response_format or self.config.default_response_format
        return await self._audio_response(request, synthesis, fmt, deadline, "input", sse=speech.stream_format == "sse")

    async def tts(self, request: Request) -> Response:
        clip = None
        if _media_type(request) == "multipart/form-data":
            form = await self._form(request, {"file", "request"})
            raw = form.get("request")
            if raw is None:
                raise ApiError(
                    422, "request: a form part holding the JSON request is required", param="request", code="missing"
                )
            if len(raw) > self.json_limit:
                raise ApiError(
                    413, f"the request part is over {self.json_limit} bytes", param="request", code="request_too_large"
                )
            body = _parse_json_object(raw, "request")
            self._check_text_length(body, "text")
            if "file" in form:
                clip = self._clip(form["file"])
        else:
            body = await self._json_body(request, "text")
        try:
            tts = TtsRequest.model_validate(body)
        except ValidationError as exc:
            raise _validation_error(exc) from None
        if tts.voice is not None and tts.speaker is not None:
            raise ApiError(
                422, "speaker: give either `voice` or `speaker`, not both", param="speaker", code="conflicting_fields"
            )
        if clip is not None and (tts.voice is not None or tts.speaker is not None):
            param = "voice" if tts.voice is not None else "speaker"
            raise ApiError(
                422, f"{param}: give a clip (`file`) or `{param}`, not both", param=param, code="conflicting_fields"
            )
        deadline = self._deadline()
        speaker = tts.speaker
        if clip is not None:
            speaker = await self._call(self.backend.embed_clip(clip), deadline, clip_param="file")
        elif tts.voice is not None:
            speaker = await self._speaker(tts.voice, deadline, builtin_ok=False)
        try:
            synthesis = tts.synthesis_request(None if speaker is None else list(speaker))
        except ValidationError as exc:
            raise _validation_error(exc) from None
        fmt = tts.response_format or self.config.default_response_format
        if tts.stream:
            return await self._audio_response(request, synthesis, fmt, deadline, "text")
        return await self._whole_file(request, synthesis, fmt, deadline, "text")

    async def voices(self, request: Request) -> Response:
        return await (self.create_voice(request) if request.method == "POST" else self.list_voices(request))

    async def voice(self, request: Request) -> Response:
        return await (self.delete_voice(request) if request.method == "DELETE" else self.get_voice(request))

    async def create_voice(self, request: Request) -> Response:
        form = await self._form(request, {"file", "name"})
        name = form.get("name")
        if name is None:
            raise ApiError(422, "name: a name for the voice is required", param="name", code="missing")
        if not isinstance(name, str):
            raise ApiError(422, "name: must be a plain form field, not a file", param="name", code="invalid_type")
        name = name.strip()
        if not 1 <= len(name) <= MAX_NAME_LENGTH or not name.isprintable():
            raise ApiError(
                422,
                f"name: must be 1 to {MAX_NAME_LENGTH} printable characters after stripping",
                param="name",
                code="invalid_value",
            )
        clip = self._clip(form.get("file"))
        voice = await self._call(self.backend.create_voice(name, clip), self._deadline(), clip_param="file")
        body = _voice_json(voice)
        return JSONResponse(body, status_code=201, headers={"Location": f"/v1/voices/{body['id']}"})

    async def list_voices(self, request: Request) -> Response:
        voices = await self._call(self.backend.list_voices(), self._deadline())
        return JSONResponse({"object": "list", "data": [_voice_json(v) for v in voices]})

    async def _find_voice(self, ref: str, deadline: float) -> Any:
        try:
            voice = await self._call(self.backend.get_voice(ref), deadline)
        except VoiceNotFoundError:
            voice = None
        if voice is None:
            raise ApiError(404, f"voice {ref!r} not found", param="voice_id", code="voice_not_found")
        return voice

    async def get_voice(self, request: Request) -> Response:
        voice = await self._find_voice(request.path_params["voice_id"], self._deadline())
        return JSONResponse(_voice_json(voice))

    async def delete_voice(self, request: Request) -> Response:
        ref = request.path_params["voice_id"]
        deadline = self._deadline()
        voice_id = _voice_json(await self._find_voice(ref, deadline))["id"]
        try:
            deleted = await self._call(self.backend.delete_voice(voice_id), deadline)
        except VoiceNotFoundError:
            deleted = False
        if not deleted:  # deleted by someone else in between
            raise ApiError(404, f"voice {ref!r} not found", param="voice_id", code="voice_not_found")
        return JSONResponse({"id": voice_id, "object": "voice.deleted", "deleted": True})

    async def models(self, request: Request) -> Response:
        card = {k: v for k, v in dict(self.backend.model_card()).items() if k not in ("id", "object")}
        main = {"id": MODEL_ID, "object": "model", "owned_by": "zyphra"} | card
        aliases = [{"id": alias, "object": "model", "owned_by": "zyphra", "root": MODEL_ID} for alias in MODEL_ALIASES]
        return JSONResponse({"object": "list", "data": [main, *aliases]})

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        try:
            with anyio.fail_after(min(_READY_TIMEOUT_S, self.config.request_timeout_s)):
                ready = bool(await self.backend.ready())
        except Exception as exc:
            logger.warning("request %s: readiness check failed: %r", request_id(request), exc)
            ready = False
        if not ready:
            raise ApiError(503, "the models are not loaded yet", code="not_ready", headers={"Retry-After": "5"})
        return JSONResponse({"status": "ready"})


def _raise_unusable(exc: BaseException, text_param: str) -> None:
    """A request the pipeline refuses (a ValueError, or a language whose extra isn't installed) is 422;
    text with nothing to speak after cleaning (pipeline.text.NothingToSpeakError) names the text field."""
    if isinstance(exc, NothingToSpeakError):
        raise ApiError(422, f"{text_param}: {_message(exc)}", param=text_param, code="nothing_to_speak") from None
    if isinstance(exc, MissingExtraError):
        raise ApiError(422, _message(exc), param="language", code="language_unavailable") from None
    if isinstance(exc, ValueError):
        raise ApiError(422, _message(exc), code="invalid_value") from None


def _voice_json(voice: Any) -> dict:
    """A backend's voice (VoiceInfo, a dict, or any object with those attributes) as the API shows it."""
    return VoiceInfo.model_validate(voice, from_attributes=True).model_dump(include=set(VoiceInfo.model_fields))


async def _encode(encoder: StreamingEncoder, chunk: np.ndarray) -> bytes:
    if len(chunk) >= _THREAD_ENCODE_SAMPLES:
        return await anyio.to_thread.run_sync(encoder.write, chunk)
    return encoder.write(chunk)


async def _close(iterator: Any) -> None:
    """Close the backend's iterator (so it stops generating), even while being cancelled."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is None:
        return
    with anyio.move_on_after(_CLOSE_TIMEOUT_S, shield=True):
        try:
            await aclose()
        except Exception as exc:
            logger.warning("closing a backend stream failed: %r", exc)


def _sse(event: dict) -> bytes:
    return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"


async def _stream_body(
    iterator: AsyncIterator[np.ndarray],
    encoder: StreamingEncoder,
    head: bytes,
    ended: bool,
    deadline: float,
    rid: str,
    sse: bool,
) -> AsyncIterator[bytes]:
    def frame(data: bytes) -> bytes:
        return _sse({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()}) if sse else data

    try:
        if head:
            yield frame(head)
        while not ended:
            try:
                async with asyncio.timeout_at(deadline):
                    chunk = await anext(iterator)
            except StopAsyncIteration:
                break
            data = await _encode(encoder, chunk)
            if data:
                yield frame(data)
        tail = encoder.close()
        if tail:
            yield frame(tail)
        if sse:
            yield _sse({"type": "speech.audio.done"})
    except Exception as exc:
        if isinstance(exc, BackendBusy):
            error = _busy(exc)
        elif isinstance(exc, TimeoutError):
            error = _timeout()
        else:
            error = ApiError(500, "audio generation failed part way", code="internal_error")
        logger.error("request %s: stream ended early after the response started: %r", rid, exc)
        if sse:
            body = {"message": error.message, "type": error.type, "param": None, "code": error.code}
            yield _sse({"type": "error", "error": body})
    finally:
        await _close(iterator)


def build_http_app(backend: SpeechBackend, config: AppConfig, echo_request_id: bool = True) -> Starlette:
    """The API over `backend`, limits and defaults from `config`. Behind Serve's proxy, which
    already echoes X-Request-ID, pass echo_request_id=False so the header is not doubled."""
    api = _Api(backend, config)
    routes = [
        Route("/v1/audio/speech", api.speech, methods=["POST"]),
        Route("/v1/tts", api.tts, methods=["POST"]),
        # one route per path, so a 405's Allow header lists every method the path has
        Route("/v1/voices", api.voices, methods=["GET", "POST"]),
        Route("/v1/voices/{voice_id}", api.voice, methods=["GET", "DELETE"]),
        Route("/v1/models", api.models, methods=["GET"]),
        Route("/healthz", api.healthz, methods=["GET"]),
        Route("/readyz", api.readyz, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(_RequestContext, echo=echo_request_id)],
        exception_handlers={HTTPException: _http_exception, ApiError: _api_error},
    )
    app.state.backend = backend
    app.state.config = config
    return app
