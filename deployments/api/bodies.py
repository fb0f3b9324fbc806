"""Request bodies: JSON objects and multipart forms, parsed strictly and size-limited while they are read.

- JSON: Content-Type application/json (or application/*+json), else 400 invalid_content_type.
  Parsed strictly: empty, not JSON, NaN and Infinity (which Python's json accepts) are 400
  invalid_json, JSON that is not an object 400 invalid_body; numbers too large for a float (1e400)
  are 422 for their field when the body is validated.
- Limits, all from the app's config: a JSON body (or a form's JSON `request` part) at most
  12 * max_text_chars + 1 MiB (room for any text within the limit even if every character is a
  JSON-escaped surrogate pair, 12 bytes, plus the other fields), else 413 request_too_large; the
  text field at most max_text_chars characters (code points), else 413 input_too_long; a clip at
  most max_upload_bytes, and a whole form at most that plus the JSON limit plus 64 KiB, else 413
  upload_too_large. A declared Content-Length over the limit is refused before reading.
- Forms: multipart/form-data; each part at most once (422 duplicate_field), none unknown (422
  extra_forbidden); a malformed body is 400 invalid_multipart.
- Time: a body (JSON or form) must arrive within config.body_timeout_s, else 408 request_timeout,
  so a client that starts a body and stops does not hold a slot (issue 12).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable
from typing import Any, TypeVar

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import Message

from deployments.api import context
from deployments.api.errors import ApiError
from deployments.config import AppConfig

T = TypeVar("T")

_MIB = 1024 * 1024


def json_limit(config: AppConfig) -> int:
    """The most bytes a JSON body (or a form's JSON part) may have."""
    return 12 * config.max_text_chars + _MIB


def media_type(request: Request) -> str:
    """The Content-Type without its parameters, lower case ("" when there is none)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def json_body(request: Request, text_field: str) -> dict:
    """The body as a JSON object, its `text_field` within max_text_chars."""
    if not _is_json(media_type(request)):
        raise _wrong_content_type(request, "application/json")
    config = context.config(request)
    body = parse_json_object(await _within_body_timeout(_read_body(request, json_limit(config)), config))
    check_text_length(body, text_field, config)
    return body


def json_part(form: dict[str, str | bytes], name: str, text_field: str, config: AppConfig) -> dict:
    """Form part `name` holding a JSON object (so nested fields work in a form), its `text_field` within
    max_text_chars."""
    raw = form.get(name)
    if raw is None:
        raise ApiError(422, f"{name}: a form part holding the JSON request is required", param=name, code="missing")
    limit = json_limit(config)
    if len(raw) > limit:
        raise ApiError(413, f"the {name} part is over {limit} bytes", param=name, code="request_too_large")
    body = parse_json_object(raw, name)
    check_text_length(body, text_field, config)
    return body


def check_text_length(body: dict, text_field: str, config: AppConfig) -> None:
    text = body.get(text_field)
    if isinstance(text, str) and len(text) > config.max_text_chars:
        raise ApiError(
            413,
            f"{text_field} is {len(text)} characters; the limit is {config.max_text_chars}",
            param=text_field,
            code="input_too_long",
        )


def parse_json_object(data: bytes | str, param: str | None = None) -> dict:
    """A JSON object, strictly; `param` names the form part it came from (None: the body)."""
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
    return _without_lone_surrogates(value)


# JSON may escape half a UTF-16 surrogate pair ("\ud83d" from a client that cut an emoji in two):
# it is no character, so every string loses such halves (RFC 8259 section 8.2 leaves it undefined).
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("", value)
    if isinstance(value, dict):
        return {_without_lone_surrogates(key): _without_lone_surrogates(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_lone_surrogates(item) for item in value]
    return value


async def form_fields(request: Request, allowed: set[str], clip_param: str = "file") -> dict[str, str | bytes]:
    """A multipart body, size-limited while it is read: plain fields as str, file parts as bytes;
    each part at most once, none unknown. A form over the size limit is a 413 naming `clip_param`."""
    if media_type(request) != "multipart/form-data":
        raise _wrong_content_type(request, "multipart/form-data")
    config = context.config(request)
    limit = config.max_upload_bytes + json_limit(config) + 64 * 1024
    too_large = ApiError(413, f"upload over {config.max_upload_bytes} bytes", param=clip_param, code="upload_too_large")
    _check_declared_length(request, limit, too_large)
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise too_large
        return message

    try:
        form = await _within_body_timeout(
            Request(request.scope, receive).form(max_files=4, max_fields=16, max_part_size=limit), config
        )
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


def voice_clip(value: str | bytes | None, config: AppConfig, param: str = "file") -> bytes:
    """The clip part (`param`: `file`, OpenAI's `audio_sample`): a non-empty file upload of at most max_upload_bytes."""
    if value is None:
        raise ApiError(422, f"{param}: a voice clip is required", param=param, code="missing")
    if not isinstance(value, bytes):
        raise ApiError(
            422, f"{param}: must be a file upload (a form part with a filename)", param=param, code="invalid_type"
        )
    if len(value) > config.max_upload_bytes:
        raise ApiError(
            413,
            f"{param} is {len(value)} bytes; the upload limit is {config.max_upload_bytes}",
            param=param,
            code="upload_too_large",
        )
    if not value:
        raise ApiError(422, f"{param}: the clip is empty", param=param, code="invalid_audio")
    return value


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


async def _within_body_timeout(reading: Awaitable[T], config: AppConfig) -> T:
    """`reading` (the body, as it arrives), or 408 request_timeout once config.body_timeout_s have passed."""
    try:
        async with asyncio.timeout(config.body_timeout_s):
            return await reading
    except TimeoutError:
        raise ApiError(
            408, f"the request body did not arrive within {config.body_timeout_s:g} s", code="request_timeout"
        ) from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _wrong_content_type(request: Request, expected: str) -> ApiError:
    got = request.headers.get("content-type") or "none"
    return ApiError(400, f"Content-Type must be {expected}, got {got}", code="invalid_content_type")


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))
