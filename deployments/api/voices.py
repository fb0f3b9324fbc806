"""The voice library routes, and voice references (id or name) resolved to speaker embeddings.

POST   /v1/voices         add a voice from a clip (multipart: `file`, `name`) -> 201 with Location;
                          409 voice_exists when the name is taken, 422 invalid_audio for a bad clip
GET    /v1/voices         {"object": "list", "data": [voice, ...]}
GET    /v1/voices/{ref}   one voice (by id or name) or 404 voice_not_found
DELETE /v1/voices/{ref}   {"id", "object": "voice.deleted", "deleted": true} or 404 voice_not_found

A voice is {"id", "name", "created_at", "object": "voice"} (pipeline.voices.VoiceInfo). A new
voice's name must follow pipeline.voices.NAME_RULE once stripped (1 to 64 letters, digits, spaces,
'-', '_' or '.'; no '/', so that the name works as {ref} in a URL), else 422 invalid_value, param
`name`, the message naming the rule. Only new names are checked: a voice stored under an older rule
is still listed, and fetched or deleted by its id (or its name, where the name fits in a URL).
"""

from __future__ import annotations

from collections.abc import Awaitable, Collection
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from deployments.api import context
from deployments.api.bodies import form_fields, voice_clip
from deployments.api.errors import ApiError, backend_errors, call_backend
from pipeline.voices import VoiceInfo, VoiceNotFoundError, clean_voice_name

T = TypeVar("T")


async def voices(request: Request) -> Response:
    """/v1/voices: POST creates, GET lists."""
    return await (create_voice(request) if request.method == "POST" else list_voices(request))


async def voice(request: Request) -> Response:
    """/v1/voices/{voice_id}: DELETE deletes, GET retrieves."""
    return await (delete_voice(request) if request.method == "DELETE" else retrieve_voice(request))


async def create_voice(request: Request) -> Response:
    form = await form_fields(request, {"file", "name"})
    name = form.get("name")
    if name is None:
        raise ApiError(422, "name: a name for the voice is required", param="name", code="missing")
    if not isinstance(name, str):
        raise ApiError(422, "name: must be a plain form field, not a file", param="name", code="invalid_type")
    with backend_errors():  # checked here, before the clip travels to the Voices replica, as the store checks it
        name = clean_voice_name(name)
    clip = voice_clip(form.get("file"), context.config(request))
    created = context.backend(request).create_voice(name, clip)
    body = _voice_json(await call_backend(created, context.deadline(request), clip_param="file"))
    return JSONResponse(body, status_code=201, headers={"Location": f"/v1/voices/{body['id']}"})


async def list_voices(request: Request) -> Response:
    found = await call_backend(context.backend(request).list_voices(), context.deadline(request))
    return JSONResponse({"object": "list", "data": [_voice_json(v) for v in found]})


async def retrieve_voice(request: Request) -> Response:
    found = await _find_voice(request, request.path_params["voice_id"], context.deadline(request))
    return JSONResponse(_voice_json(found))


async def delete_voice(request: Request) -> Response:
    ref = request.path_params["voice_id"]
    deadline = context.deadline(request)
    voice_id = _voice_json(await _find_voice(request, ref, deadline))["id"]
    deleted = await _lookup(context.backend(request).delete_voice(voice_id), deadline)
    if not deleted:  # deleted by someone else in between
        raise _voice_not_found(ref)
    return JSONResponse({"id": voice_id, "object": "voice.deleted", "deleted": True})


async def speaker_embedding(
    request: Request, ref: str, deadline: float, builtin_names: Collection[str] = ()
) -> list[float] | None:
    """The embedding of library voice `ref` (id or name). One of `builtin_names` (OpenAI's built-in
    voices) that is not in the library means the model's unconditional speaker: None. Otherwise 404
    voice_not_found, param `voice`."""
    embedding = await _lookup(context.backend(request).voice_embedding(ref), deadline)
    if embedding is not None:
        return list(embedding)
    if ref in builtin_names:
        return None
    hint = " (OpenAI's built-in voice names are accepted too)" if builtin_names else ""
    raise ApiError(404, f"voice {ref!r} not found in the voice library{hint}", param="voice", code="voice_not_found")


async def _find_voice(request: Request, ref: str, deadline: float) -> Any:
    found = await _lookup(context.backend(request).get_voice(ref), deadline)
    if found is None:
        raise _voice_not_found(ref)
    return found


def _voice_not_found(ref: str) -> ApiError:
    return ApiError(404, f"voice {ref!r} not found", param="voice_id", code="voice_not_found")


async def _lookup(awaitable: Awaitable[T], deadline: float) -> T | None:
    """A backend call about one voice; VoiceNotFoundError (a KeyError) counts as no answer, None."""
    try:
        return await call_backend(awaitable, deadline)
    except VoiceNotFoundError:
        return None


def _voice_json(voice: Any) -> dict:
    """A backend's voice (VoiceInfo, a dict, or any object with those attributes) as the API shows it."""
    return VoiceInfo.model_validate(voice, from_attributes=True).model_dump(include=set(VoiceInfo.model_fields))
