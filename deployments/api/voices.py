"""The voice library routes, OpenAI's and Open WebUI's voice routes, and voice references resolved to embeddings.

The library (native):
POST   /v1/voices         add a voice from a clip (multipart: `file`, `name`, optional `language`) ->
                          201 with Location; 409 voice_exists when the name is taken, 422 invalid_audio
                          for a bad clip, 422 invalid_value param `language` for an unknown language
GET    /v1/voices         {"object": "list", "data": [voice, ...]}
GET    /v1/voices/{ref}   one voice (by id or name) or 404 voice_not_found
DELETE /v1/voices/{ref}   {"id", "object": "voice.deleted", "deleted": true} or 404 voice_not_found

A voice is {"id", "name", "created_at", "object": "voice", "language"} (pipeline.voices.VoiceInfo).
`language` is the voice's default language, null when it has none: the language a request with this
voice is read in when the request names none (on /v1/audio/speech before detection, X-Language-Source
"voice"; on /v1/tts instead of en-us: voice_language). The form field takes what a request's
`language` takes (pipeline.text.check_language: an espeak-ng code, or an ISO 639-1 / BCP 47 tag that
names one, "fr" -> "fr-fr") and the voice stores the espeak-ng code; an empty field means none. A new
voice's name must follow pipeline.voices.NAME_RULE once stripped (1 to 64 letters, digits, spaces,
'-', '_' or '.'; no '/', so that the name works as {ref} in a URL), else 422 invalid_value, param
`name`, the message naming the rule. Only new names are checked: a voice stored under an older rule
is still listed, and fetched or deleted by its id (or its name, where the name fits in a URL).

The same library through OpenAI's routes (openai-python 3.57 `client.audio.voices`; its
types/audio/voice.py and voice_deleted.py):
POST   /v1/audio/voices        multipart `audio_sample` (the clip), `name`, `consent`, `type`, and
                               `language` (an extension: OpenAI's voices have none; as on /v1/voices) ->
                               200 {"id", "created_at", "name", "object": "audio.voice", "type": "audio_sample",
                               "language"}
                               (200, as OpenAI answers every create). `consent` (OpenAI: the id of a
                               recorded consent, cons_...) is optional, accepted and not stored:
                               zonos-serve has no consent resource, and whoever runs it answers for
                               the consent of the people whose voices are cloned. `type` may only be
                               "audio_sample": voices from a text prompt (`type: "prompt"`, with
                               `prompt`, `model`, `script_hint`) are 400 invalid_value, param `type`.
                               Invalid input is 400 (errors.openai_errors), param the form part;
                               409 voice_exists, 413 upload_too_large as on /v1/voices.
DELETE /v1/audio/voices/{ref}  {"id", "object": "audio.voice.deleted", "deleted": true} or 404

Discovery, as Open WebUI reads it (backend/open_webui/routers/audio.py: get_available_voices keeps
`{voice["id"]: voice["name"]}` of `GET {base}/audio/voices`'s "voices", get_available_models the
"models" of `GET {base}/audio/models`, whose `id`s it offers as the TTS model):
GET    /v1/audio/voices   {"voices": [{"id", "name"}, ...]}: OpenAI's 13 built-in names (id = name),
                          in OPENAI_VOICES' order, then every library voice (id = its voice_... id)
GET    /v1/audio/models   {"models": [{"id": "zonos-v0.1"}, {"id": "tts-1"}, ...]}: /v1/models' names

OpenAI's built-in names (on /v1/audio/speech and /v1/tts alike, `speaker_embedding`) are fixed
voices, resolved by the backend (pipeline.voices.BuiltinVoices): a configured voice_bindings target,
else a library voice of that name, else a synthetic embedding derived from the name alone; a name
bound to a library voice that is missing is 404 voice_not_found naming the binding.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from deployments.api import context
from deployments.api.bodies import form_fields, voice_clip
from deployments.api.errors import ApiError, backend_errors, call_backend, openai_errors
from deployments.backend import model_names
from pipeline.text import check_language
from pipeline.voices import OPENAI_VOICES, VoiceInfo, VoiceNotFoundError, clean_voice_name, is_clip_binding

T = TypeVar("T")


async def voices(request: Request) -> Response:
    """/v1/voices: POST creates, GET lists."""
    return await (create_voice(request) if request.method == "POST" else list_voices(request))


async def voice(request: Request) -> Response:
    """/v1/voices/{voice_id}: DELETE deletes, GET retrieves."""
    return await (delete_voice(request) if request.method == "DELETE" else retrieve_voice(request))


async def create_voice(request: Request) -> Response:
    form = await form_fields(request, {"file", "name", "language"})
    body = await _add_voice(request, form, "file")
    return JSONResponse(body, status_code=201, headers={"Location": f"/v1/voices/{body['id']}"})


async def _add_voice(request: Request, form: dict[str, str | bytes], clip_param: str) -> dict:
    """A new library voice from a parsed form: its `name` field, its optional `language` field (empty:
    none) and its clip in part `clip_param`."""
    name = _plain_field(form, "name")
    if name is None:
        raise ApiError(422, "name: a name for the voice is required", param="name", code="missing")
    language = (_plain_field(form, "language") or "").strip() or None
    with backend_errors():  # checked here, before the clip travels to the Voices replica, as the store checks them
        name = clean_voice_name(name)
        language = None if language is None else check_language(language)
    clip = voice_clip(form.get(clip_param), context.config(request), clip_param)
    created = context.backend(request).create_voice(name, clip, language)
    return _voice_json(await call_backend(created, context.deadline(request), clip_param=clip_param))


def _plain_field(form: dict[str, str | bytes], key: str) -> str | None:
    value = form.get(key)
    if value is not None and not isinstance(value, str):
        raise ApiError(422, f"{key}: must be a plain form field, not a file", param=key, code="invalid_type")
    return value


async def list_voices(request: Request) -> Response:
    found = await call_backend(context.backend(request).list_voices(), context.deadline(request))
    return JSONResponse({"object": "list", "data": [_voice_json(v) for v in found]})


async def retrieve_voice(request: Request) -> Response:
    found = await _find_voice(request, request.path_params["voice_id"], context.deadline(request))
    return JSONResponse(_voice_json(found))


async def delete_voice(request: Request) -> Response:
    return JSONResponse({"id": await _delete(request), "object": "voice.deleted", "deleted": True})


async def _delete(request: Request) -> str:
    """Delete the voice the path's {voice_id} (id or name) names; its id. 404 voice_not_found if none."""
    ref = request.path_params["voice_id"]
    deadline = context.deadline(request)
    voice_id = _voice_json(await _find_voice(request, ref, deadline))["id"]
    deleted = await _lookup(context.backend(request).delete_voice(voice_id), deadline)
    if not deleted:  # deleted by someone else in between
        raise _voice_not_found(ref)
    return voice_id


# --------------------------------------------------------------------------- OpenAI's voice routes

# OpenAI's create-voice form: the prompt-voice fields are known, so that a prompt voice is refused for what it is
_AUDIO_VOICE_FIELDS = {"audio_sample", "name", "consent", "type", "language", "prompt", "model", "script_hint"}
_PROMPT_VOICE_FIELDS = ("prompt", "model", "script_hint")


async def audio_voices(request: Request) -> Response:
    """/v1/audio/voices: GET lists for Open WebUI, POST creates as OpenAI does."""
    return await (create_audio_voice(request) if request.method == "POST" else list_audio_voices(request))


async def list_audio_voices(request: Request) -> Response:
    """GET /v1/audio/voices: {"voices": [{"id", "name"}]}, the built-in names, then the library's voices."""
    found = await call_backend(context.backend(request).list_voices(), context.deadline(request))
    builtins = [{"id": name, "name": name} for name in OPENAI_VOICES]
    library = [{"id": voice["id"], "name": voice["name"]} for voice in map(_voice_json, found)]
    return JSONResponse({"voices": builtins + library})


@openai_errors
async def create_audio_voice(request: Request) -> Response:
    """POST /v1/audio/voices (OpenAI's createVoice): a library voice from `audio_sample`."""
    form = await form_fields(request, _AUDIO_VOICE_FIELDS, clip_param="audio_sample")
    kind = _plain_field(form, "type")
    if kind is not None and kind != "audio_sample":
        raise ApiError(
            422,
            f"type: only 'audio_sample' is supported, got {kind!r}: Zonos clones a voice from a clip, it makes no "
            "voice from a text prompt",
            param="type",
            code="invalid_value",
        )
    for key in _PROMPT_VOICE_FIELDS:
        if key in form:
            raise ApiError(
                422,
                f"{key}: belongs to voices from a text prompt, which are not supported",
                param=key,
                code="invalid_value",
            )
    _plain_field(form, "consent")  # accepted, not stored (the module docstring says why)
    voice = await _add_voice(request, form, "audio_sample")
    return JSONResponse(voice | {"object": "audio.voice", "type": "audio_sample"})


async def delete_audio_voice(request: Request) -> Response:
    """DELETE /v1/audio/voices/{voice_id}: OpenAI's deleteVoice over the library."""
    deleted = await _delete(request)
    return JSONResponse({"id": deleted, "object": "audio.voice.deleted", "deleted": True})


async def list_audio_models(request: Request) -> Response:
    """GET /v1/audio/models: {"models": [{"id"}]}, the names /v1/models lists, as Open WebUI reads them."""

    return JSONResponse({"models": [{"id": name} for name in model_names(context.config(request).model_aliases)]})


# --------------------------------------------------------------------------- voices to embeddings


async def speaker_embedding(request: Request, ref: str, deadline: float) -> list[float]:
    """The embedding of library voice `ref` (id or name), or, for one of OPENAI_VOICES (OpenAI's
    built-in voices, on every route), the fixed voice the backend gives that name (BuiltinVoices:
    configured binding, else a library voice of that name, else the name's synthetic embedding).
    404 voice_not_found, param `voice`, for an unknown voice or a name bound to a missing library voice."""
    backend = context.backend(request)
    if ref in OPENAI_VOICES:
        embedding = await _lookup(backend.builtin_voice_embedding(ref), deadline)
        if embedding is None:
            target = context.config(request).voice_bindings.get(ref, ref)
            raise ApiError(
                404,
                f"voice {ref!r} is bound to library voice {target!r} (the server's voice_bindings), which is not in "
                "the voice library",
                param="voice",
                code="voice_not_found",
            )
        return list(embedding)
    embedding = await _lookup(backend.voice_embedding(ref), deadline)
    if embedding is not None:
        return list(embedding)
    raise ApiError(
        404,
        f"voice {ref!r} not found in the voice library (OpenAI's built-in voice names are accepted too)",
        param="voice",
        code="voice_not_found",
    )


async def voice_language(request: Request, ref: str, deadline: float) -> str | None:
    """The default language of the library voice that voice `ref` stands for; None when it has none.

    `ref` is a library voice's id or name, or one of OPENAI_VOICES, which stands for a library voice
    when voice_bindings binds it to one, or, unbound, when a library voice has that name
    (BuiltinVoices' rules 2 and 3); a name bound to a clip, or synthetic, has no language. A voice that
    is not found has none either: speaker_embedding, awaited with this, answers its 404."""
    if ref in OPENAI_VOICES:
        ref = context.config(request).voice_bindings.get(ref, ref)
        if is_clip_binding(ref):
            return None
    found = await _lookup(context.backend(request).get_voice(ref), deadline)
    return None if found is None else _voice_info(found).language


async def speaker_and_language(
    request: Request, ref: str, deadline: float, *, language: bool
) -> tuple[list[float], str | None]:
    """speaker_embedding(ref) and, when `language` asks for it, voice_language(ref) (else None),
    looked up at the same time."""
    if not language:
        return await speaker_embedding(request, ref, deadline), None
    # gather, not a TaskGroup: speaker_embedding's ApiError (404) must reach the route as it is
    speaker, default = await asyncio.gather(
        speaker_embedding(request, ref, deadline), voice_language(request, ref, deadline)
    )
    return speaker, default


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


def _voice_info(voice: Any) -> VoiceInfo:
    """A backend's voice (VoiceInfo, a dict, or any object with those attributes) as a VoiceInfo."""
    return VoiceInfo.model_validate(voice, from_attributes=True)


def _voice_json(voice: Any) -> dict:
    """A backend's voice as the API shows it."""
    return _voice_info(voice).model_dump(include=set(VoiceInfo.model_fields))
