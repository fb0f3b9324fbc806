"""The API described: GET /openapi.json (OpenAPI 3.1) and GET /docs (that document as one HTML page).

The document is generated, not written: its paths and methods are the app's routes (app.ROUTES,
read from the running app, each Route once per method, HEAD left out; a Mount of static files, the
/web playground, as two GET operations: its page, `{mount}/`, and its files, `{mount}/{path}`), its
path parameters the routes' own, and every schema pydantic's JSON Schema of a model (`models_json_schema`): the body
models the routes validate with (openai.SpeechRequest, native.TtsRequest, pipeline.voices.VoiceInfo,
...) and the reply models below, under components/schemas. OPERATIONS is the one place that says,
per (method, path), what a route takes and answers: its body models by media type, its reply model
or that it answers audio, its status. A route missing from OPERATIONS is still described (its
endpoint's docstring as summary), with no schema. The models of the form routes (VoiceForm,
AudioVoiceForm, TtsForm) and of the JSON replies name the parts and fields those routes read and
write; tests/api/test_openapi.py checks real replies against them, so the two cannot drift.

`servers` is the request's root path (Starlette's scope["root_path"]: Serve's route_prefix, e.g.
/tts), or "/": a client generated from the document calls /tts/v1/... under a prefix. The document
is built once per app and the server entry set per request (`document`).

Errors: every operation answers 4XX and 5XX with ErrorResponse (OpenAI's error object, errors.py).
With API keys on (auth.py), components/securitySchemes has `bearer` (HTTP Bearer), required by
every operation but the public ones (`security: []`).

/docs renders the same document on the server: one HTML page, its CSS inline, no script, nothing
fetched from anywhere (no CDN: the page works on an air-gapped cluster; an empty data: favicon, so
the browser asks for no /favicon.ico), links only within the page and to openapi.json (relative, so
a route prefix is kept); each table scrolls sideways in its own box, so the page fits a phone.
"""

from __future__ import annotations

import html
import json
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Json
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from deployments.api import auth
from deployments.api.native import TtsRequest
from deployments.api.openai import SpeechRequest
from deployments.api.timestamps import CAPTION_MEDIA_TYPES, SpeechAudioSegment, TimestampedSpeech
from deployments.api.web import PageConfig
from deployments.backend import ModelCard
from pipeline.audio import MEDIA_TYPES
from pipeline.text import LANGUAGE_DESCRIPTION
from pipeline.voices import VoiceInfo

OPENAPI_VERSION = "3.1.0"
API_VERSION = "0.1.0"
TITLE = "zonos-serve"
_STATE = "openapi_document"  # where an app keeps its document, built on the first request


# --------------------------------------------------------------------------- reply and form models


class ErrorObject(BaseModel):
    """OpenAI's error object."""

    message: str
    type: str = Field(description="invalid_request_error (4xx) or server_error (5xx).")
    param: str | None = Field(description="The request field at fault, as a dotted path, if one is.")
    code: str | None = Field(description="What went wrong, for programs: invalid_api_key, voice_not_found, ...")


class ErrorResponse(BaseModel):
    """Every error's body (deployments/api/errors.py has the table of statuses and codes)."""

    error: ErrorObject


class ModelObject(BaseModel):
    """OpenAI's Model object; zonos-v0.1 carries the backend's model card, each alias its `root`."""

    id: str
    object: Literal["model"]
    created: int = Field(description="Unix seconds: the day Zonos v0.1 was published.")
    owned_by: str
    root: str | None = Field(None, description="The model an alias names (zonos-v0.1).")
    speech: bool | None = Field(None, description=ModelCard.model_fields["speech"].description)
    note: str | None = None


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelObject]


class VoiceList(BaseModel):
    object: Literal["list"]
    data: list[VoiceInfo]


class VoiceDeleted(BaseModel):
    id: str
    object: Literal["voice.deleted"]
    deleted: Literal[True]


class AudioVoice(VoiceInfo):
    """OpenAI's audio.voice: a library voice made through POST /v1/audio/voices."""

    object: Literal["audio.voice"]  # type: ignore[assignment]
    type: Literal["audio_sample"]


class AudioVoiceDeleted(BaseModel):
    id: str
    object: Literal["audio.voice.deleted"]
    deleted: Literal[True]


class VoiceName(BaseModel):
    id: str = Field(description="An OpenAI built-in name (id = name), or a library voice's voice_... id.")
    name: str


class AudioVoiceList(BaseModel):
    """Open WebUI's voice list: OpenAI's built-in names, then the library."""

    voices: list[VoiceName]


class ModelId(BaseModel):
    id: str


class AudioModelList(BaseModel):
    """Open WebUI's model list: the names GET /v1/models lists."""

    models: list[ModelId]


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]


VOICE_LANGUAGE = (
    "The voice's default language, used by requests with this voice that give none; empty or absent: none. "
    + LANGUAGE_DESCRIPTION
)


class VoiceForm(BaseModel):
    """POST /v1/voices, multipart/form-data."""

    model_config = ConfigDict(extra="forbid")

    file: bytes = Field(description="The voice clip: any audio PyAV decodes (wav, mp3, ogg, webm, ...).")
    name: str = Field(description="1 to 64 letters, digits, spaces, '-', '_' or '.' (pipeline.voices.NAME_RULE).")
    language: str | None = Field(None, description=VOICE_LANGUAGE)


class AudioVoiceForm(BaseModel):
    """POST /v1/audio/voices (OpenAI's createVoice), multipart/form-data."""

    model_config = ConfigDict(extra="forbid")

    audio_sample: bytes = Field(description="The voice clip.")
    name: str = Field(description="As on POST /v1/voices.")
    consent: str | None = Field(None, description="Accepted and not stored.")
    type: Literal["audio_sample"] = "audio_sample"
    language: str | None = Field(None, description=f"An extension (OpenAI's voices have none): {VOICE_LANGUAGE}")


class TtsForm(BaseModel):
    """POST /v1/tts with a voice clip, multipart/form-data: the JSON body in part `request`."""

    model_config = ConfigDict(extra="forbid")

    file: bytes | None = Field(None, description="A voice clip to speak with (instead of `voice` or `speaker`).")
    request: Json[TtsRequest]


class SpeechUsage(BaseModel):
    input_tokens: int = Field(description="Phoneme tokens of the text's segments.")
    output_tokens: int = Field(description="Codec frames generated (512 samples each).")
    total_tokens: int


class SpeechAudioDelta(BaseModel):
    """An SSE event: the next bytes of the audio file, base64."""

    type: Literal["speech.audio.delta"]
    audio: str


class SpeechAudioDone(BaseModel):
    """The last SSE event of a stream that succeeded."""

    type: Literal["speech.audio.done"]
    usage: SpeechUsage


class SpeechStreamError(BaseModel):
    """The last SSE event of a stream that failed after it began."""

    type: Literal["error"]
    error: ErrorObject


# SpeechAudioSegment only with the `timestamps` extension (api/timestamps.py)
SSE_EVENTS = (SpeechAudioDelta, SpeechAudioSegment, SpeechAudioDone, SpeechStreamError)


# --------------------------------------------------------------------------- what each route takes and answers


@dataclass(frozen=True)
class Operation:
    """One method of one path: OpenAPI's operationId, summary and tag; its body models by media type;
    its success status and JSON reply model, or `audio` (the encoded audio; `sse`: or SSE events;
    `captions`: or SRT/WebVTT text; `reply` then: the JSON answer with timestamps)."""

    operation_id: str
    summary: str
    tag: str
    body: dict[str, type[BaseModel]] = field(default_factory=dict)
    status: int = 200
    reply: type[BaseModel] | None = None
    audio: bool = False
    sse: bool = False
    captions: bool = False
    html: bool = False
    files: bool = False  # static files: each as its media type


_JSON = "application/json"
_FORM = "multipart/form-data"
OPERATIONS: dict[tuple[str, str], Operation] = {
    ("POST", "/v1/audio/speech"): Operation(
        "createSpeech",
        "OpenAI's text to speech: the audio, streamed as it is generated",
        "OpenAI",
        body={_JSON: SpeechRequest},
        audio=True,
        sse=True,
    ),
    ("GET", "/v1/models"): Operation("listModels", "The model and its OpenAI names", "OpenAI", reply=ModelList),
    ("GET", "/v1/models/{model_id}"): Operation("retrieveModel", "One model", "OpenAI", reply=ModelObject),
    ("POST", "/v1/tts"): Operation(
        "tts",
        "Native text to speech: every Zonos control (JSON, or multipart with a voice clip)",
        "Native",
        body={_JSON: TtsRequest, _FORM: TtsForm},
        reply=TimestampedSpeech,
        audio=True,
        sse=True,
        captions=True,
    ),
    ("GET", "/v1/voices"): Operation("listVoices", "The voice library", "Voices", reply=VoiceList),
    ("POST", "/v1/voices"): Operation(
        "createVoice", "Add a voice from a clip", "Voices", body={_FORM: VoiceForm}, status=201, reply=VoiceInfo
    ),
    ("GET", "/v1/voices/{voice_id}"): Operation("retrieveVoice", "One voice, by id or name", "Voices", reply=VoiceInfo),
    ("DELETE", "/v1/voices/{voice_id}"): Operation(
        "deleteVoice", "Delete a voice, by id or name", "Voices", reply=VoiceDeleted
    ),
    ("GET", "/v1/audio/voices"): Operation(
        "listAudioVoices", "Built-in voice names, then the library (Open WebUI)", "OpenAI", reply=AudioVoiceList
    ),
    ("POST", "/v1/audio/voices"): Operation(
        "createAudioVoice", "OpenAI's create voice", "OpenAI", body={_FORM: AudioVoiceForm}, reply=AudioVoice
    ),
    ("DELETE", "/v1/audio/voices/{voice_id}"): Operation(
        "deleteAudioVoice", "OpenAI's delete voice", "OpenAI", reply=AudioVoiceDeleted
    ),
    ("GET", "/v1/audio/models"): Operation(
        "listAudioModels", "The model names (Open WebUI)", "OpenAI", reply=AudioModelList
    ),
    ("GET", "/healthz"): Operation("healthz", "Liveness: 200 while the process serves", "Probes", reply=Health),
    ("GET", "/readyz"): Operation(
        "readyz", "Readiness: 200 once the models are loaded, else 503", "Probes", reply=Ready
    ),
    ("GET", "/openapi.json"): Operation("openapi", "This document", "Docs"),
    ("GET", "/docs"): Operation("docs", "This document as a page", "Docs", html=True),
    ("GET", "/web/config.json"): Operation(
        "playgroundConfig",
        "The playground's settings: limits, formats, control ranges, the model card",
        "Playground",
        reply=PageConfig,
    ),
    ("GET", "/web/"): Operation(
        "playground", "The playground: a page that speaks through this API", "Playground", html=True
    ),
    ("GET", "/web/{path}"): Operation(
        "playgroundFile",
        "A file of the playground's page (its scripts and style; 404 for any other)",
        "Playground",
        files=True,
    ),
}

PATH_PARAMETERS = {
    "voice_id": "A library voice's id (voice_...) or name.",
    "model_id": "A name GET /v1/models lists, or a dated snapshot of one (tts-1-2025-12-15).",
    "path": "A file's name (app.js, player.js, style.css).",
}

_AUDIO_HEADERS = {
    "X-Sample-Rate": "The rate the audio decodes to, in Hz.",
    "X-Audio-Format": "mp3, opus, aac, flac, wav or pcm (raw s16le mono at X-Sample-Rate).",
    "X-Seed": "The seed the audio was generated with: sent back as `seed`, it repeats the audio.",
    "Content-Language": "The espeak-ng language the text was read as.",
}


# --------------------------------------------------------------------------- the document


@dataclass(frozen=True)
class _Described:
    """One (path, method) the document describes: its path parameters, the endpoint's own summary and, for
    static files, the media types of the files there are."""

    path: str
    method: str
    name: str
    parameters: tuple[str, ...]
    doc: str
    media_types: tuple[str, ...] = ()


def described(routes: list[Any]) -> list[_Described]:
    """What `routes` (an app's routes) serve: each Route once per method (HEAD left out, those with
    include_in_schema=False skipped), and a Mount of StaticFiles as GET of its page and of its files."""
    found = []
    for route in routes:
        if isinstance(route, Route) and route.include_in_schema:
            doc = (route.endpoint.__doc__ or route.name or "").strip()
            for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
                found.append(_Described(route.path_format, method, route.name, tuple(route.param_convertors), doc))
        elif isinstance(route, Mount) and isinstance(route.app, StaticFiles):
            files = Path(route.app.directory).iterdir() if route.app.directory else ()
            media = tuple(sorted({mimetypes.guess_type(file.name)[0] or _BYTES for file in files if file.is_file()}))
            found.append(_Described(route.path + "/", "GET", f"{route.name}_page", (), f"The page of {route.path}/"))
            found.append(
                _Described(
                    route.path_format, "GET", f"{route.name}_file", tuple(route.param_convertors), "A file", media
                )
            )
    return found


def openapi_document(routes: list[Any], secured: bool = False) -> dict:
    """The OpenAPI 3.1 document of `routes` (an app's routes, as `described`); `secured`: API keys are on
    (auth.py), required but on public paths. Its `servers` is "/" (`document` sets the request's)."""
    operations = [(one, OPERATIONS.get((one.method, one.path))) for one in described(routes)]
    models = _models(op for _, op in operations if op is not None)
    refs, defs = models_json_schema(
        [(model, "validation") for model in models], ref_template="#/components/schemas/{model}"
    )
    paths: dict[str, dict] = {}
    for one, op in operations:
        entry = _operation(one, op, lambda model: refs[(model, "validation")])
        if secured:
            entry["security"] = [] if auth.is_public(one.path) else [{"bearer": []}]
        paths.setdefault(one.path, {})[one.method.lower()] = entry
    components: dict[str, Any] = {
        "schemas": defs.get("$defs", {}),
        "headers": {"X-Request-ID": {"description": "The request's id, in every log line about it.", "schema": _STR}},
    }
    if secured:
        components["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "One of the server's API keys."}
        }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": TITLE,
            "version": API_VERSION,
            "description": "Zonos v0.1 text to speech: OpenAI's speech API, a native API with every Zonos control, "
            "and a voice library.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": components,
    }


_STR = {"type": "string"}
_BYTES = "application/octet-stream"
_ERRORS = {
    status: {
        "description": "An error in OpenAI's shape.",
        "headers": {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}},
        "content": {_JSON: {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }
    for status in ("4XX", "5XX")
}


def _models(operations: Any) -> list[type[BaseModel]]:
    """Every model the operations name, ErrorResponse and the SSE events first; each once."""
    models: dict[type[BaseModel], None] = dict.fromkeys([ErrorResponse, *SSE_EVENTS])
    for op in operations:
        models.update(dict.fromkeys(op.body.values()))
        if op.reply is not None:
            models[op.reply] = None
    return list(models)


def _operation(one: _Described, op: Operation | None, ref: Any) -> dict:
    """One operation object: summary, parameters, requestBody, responses."""
    parameters = [
        {"name": name, "in": "path", "required": True, "description": PATH_PARAMETERS.get(name, ""), "schema": _STR}
        for name in one.parameters
    ]
    if op is None:  # a route without an entry in OPERATIONS: what its endpoint says of itself
        doc = one.doc.splitlines()
        entry: dict[str, Any] = {"operationId": one.name, "summary": doc[0] if doc else one.path}
        success: dict[str, Any] = {"description": "OK"}
    else:
        entry = {"operationId": op.operation_id, "summary": op.summary, "tags": [op.tag]}
        success = {"description": op.summary}
        if op.body:
            entry["requestBody"] = {
                "required": True,
                "content": {media: {"schema": ref(model)} for media, model in op.body.items()},
            }
        success["content"] = _reply_content(op, ref, one.media_types)
        if op.audio:
            success["headers"] = {name: {"description": text, "schema": _STR} for name, text in _AUDIO_HEADERS.items()}
    success.setdefault("headers", {})["X-Request-ID"] = {"$ref": "#/components/headers/X-Request-ID"}
    if parameters:
        entry["parameters"] = parameters
    entry["responses"] = {str(op.status if op else 200): success, **_ERRORS}
    return entry


def _reply_content(op: Operation, ref: Any, file_types: tuple[str, ...]) -> dict:
    if op.html:
        return {"text/html": {"schema": _STR}}
    if op.files:
        return {media: {"schema": _STR} for media in file_types or (_BYTES,)}
    if op.audio:
        content = {media: {"schema": {"type": "string", "contentMediaType": media}} for media in MEDIA_TYPES.values()}
        if op.sse:  # each `data:` line is one of the events (OpenAPI 3.1 has no schema for a stream's items)
            events = {"oneOf": [ref(model) for model in SSE_EVENTS]}
            content["text/event-stream"] = {"schema": _STR, "x-event-schema": events}
        if op.captions:
            content |= {media.split(";")[0]: {"schema": _STR} for media in CAPTION_MEDIA_TYPES.values()}
        if op.reply is not None:  # "timestamps": true
            content[_JSON] = {"schema": ref(op.reply)}
        return content
    if op.reply is None:
        return {_JSON: {"schema": {"type": "object"}}}
    return {_JSON: {"schema": ref(op.reply)}}


def document(request: Request) -> dict:
    """The document of the app serving `request` (built on its first call), its `servers` the request's root
    path: Serve's route_prefix (Starlette's scope["root_path"]), or "/"."""
    state = request.app.state
    if not hasattr(state, _STATE):
        setattr(state, _STATE, openapi_document(request.app.routes, secured=auth.api_keys(request) is not None))
    return getattr(state, _STATE) | {"servers": [{"url": request.scope.get("root_path") or "/"}]}


async def openapi_json(request: Request) -> Response:
    """GET /openapi.json: the OpenAPI 3.1 document of this API."""
    return JSONResponse(document(request))


async def docs(request: Request) -> Response:
    """GET /docs: the OpenAPI document as one self-contained HTML page."""
    return HTMLResponse(docs_page(document(request)))


# --------------------------------------------------------------------------- the page

_CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 62rem; padding: 1rem; color: #222; }
code, pre { font: 13px ui-monospace, monospace; }
h2 { border-top: 1px solid #ccc; padding-top: 1rem; margin-top: 2rem; }
.method { display: inline-block; min-width: 4.5em; font-weight: bold; }
.scroll { overflow-x: auto; margin: .4rem 0; }
table { border-collapse: collapse; width: 100%; }
h2 code, nav a { overflow-wrap: anywhere; }
th, td { text-align: left; vertical-align: top; border-bottom: 1px solid #eee; padding: .25rem .5rem; }
.req { color: #b00; }
nav li { list-style: none; }
"""
# Every table in a box that scrolls sideways: a wide table does not widen the page (a phone's 375 px)
_TABLE = "<div class=scroll><table>"
_END_TABLE = "</table></div>"


def docs_page(spec: dict) -> str:
    """`spec` (an OpenAPI document from openapi_document) as an HTML page: every operation, then every schema."""
    e = html.escape
    info = spec["info"]
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{e(info['title'])} API</title>",
        '<meta name=viewport content="width=device-width, initial-scale=1">',
        '<link rel=icon href="data:,">',  # no /favicon.ico request
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{e(info['title'])} API <small>{e(info['version'])}</small></h1><p>{e(info.get('description', ''))}</p>",
        f'<p>The same, machine-readable: <a href="openapi.json">openapi.json</a> (OpenAPI {e(spec["openapi"])}).</p>',
    ]
    server = spec.get("servers", [{"url": "/"}])[0]["url"]
    if server != "/":
        parts.append(f"<p>Every path below is under <code>{e(server)}</code>.</p>")
    if "securitySchemes" in spec.get("components", {}):
        parts.append(
            "<p><b>API keys are on</b>: send <code>Authorization: Bearer YOUR_KEY</code> (the openai SDK's "
            "<code>api_key</code>) on every operation not marked public.</p>"
        )
    nav, body = [], []
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            anchor = f"op-{op['operationId']}"
            nav.append(
                f'<li><a href="#{e(anchor)}"><span class=method>{method.upper()}</span> {e(path)}</a> '
                f"{e(op['summary'])}</li>"
            )
            body.append(_operation_html(path, method, op, anchor, spec.get("components", {}).get("schemas", {})))
    parts += ["<nav><ul>", *nav, "</ul></nav>", *body, "<h2>Schemas</h2>"]
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        parts.append(f'<h3 id="schema-{e(name)}">{e(name)}</h3>{_schema_html(schema)}')
    parts.append("</body></html>")
    return "\n".join(parts)


def _operation_html(path: str, method: str, op: dict, anchor: str, schemas: dict) -> str:
    """One operation: summary, parameters, each request body's fields in a table, the responses."""
    e = html.escape
    out = [f'<h2 id="{e(anchor)}"><span class=method>{method.upper()}</span> <code>{e(path)}</code></h2>']
    out.append(f"<p>{e(op['summary'])}</p>")
    if op.get("security") == []:
        out.append("<p><i>Public: no API key needed.</i></p>")
    if op.get("parameters"):
        rows = "".join(
            f"<tr><td><code>{e(p['name'])}</code></td><td>{e(p['in'])}</td><td>{e(p.get('description', ''))}</td></tr>"
            for p in op["parameters"]
        )
        out.append(f"<h4>Parameters</h4>{_TABLE}{rows}{_END_TABLE}")
    for media, content in op.get("requestBody", {}).get("content", {}).items():
        schema = content["schema"]
        name = schema.get("$ref", "").rsplit("/", 1)[-1]
        fields = _schema_html(schemas[name]) if name in schemas else ""
        out.append(f"<h4>Request body <code>{e(media)}</code>: {_type_html(schema)}</h4>{fields}")
    out.append(f"<h4>Responses</h4>{_TABLE}")
    for status, response in op["responses"].items():
        kinds = ", ".join(
            f"<code>{e(media)}</code> {_type_html(content['schema'])}"
            for media, content in response.get("content", {}).items()
        )
        out.append(f"<tr><td>{e(status)}</td><td>{e(response['description'])}</td><td>{kinds}</td></tr>")
    out.append(_END_TABLE)
    return "\n".join(out)


def _schema_html(schema: dict) -> str:
    """A component schema: its description, then a table of its properties (or its type)."""
    e = html.escape
    out = [f"<p>{e(schema['description'])}</p>"] if schema.get("description") else []
    properties = schema.get("properties")
    if not properties:
        return "".join([*out, f"<p>{_type_html(schema)}</p>"])
    required = set(schema.get("required", ()))
    out.append(f"{_TABLE}<tr><th>field</th><th>type</th><th>default</th><th>description</th></tr>")
    for name, prop in properties.items():
        mark = " <span class=req>required</span>" if name in required else ""
        default = f"<code>{e(json.dumps(prop['default']))}</code>" if "default" in prop else ""
        out.append(
            f"<tr><td><code>{e(name)}</code>{mark}</td><td>{_type_html(prop)}</td><td>{default}</td>"
            f"<td>{e(prop.get('description', ''))}</td></tr>"
        )
    out.append(_END_TABLE)
    if schema.get("additionalProperties") is False:
        out.append("<p>No other field is accepted.</p>")
    return "".join(out)


_BOUNDS = {
    "minimum": ">=",
    "exclusiveMinimum": ">",
    "maximum": "<=",
    "exclusiveMaximum": "<",
    "minLength": "length >=",
    "maxLength": "length <=",
    "minItems": "items >=",
    "maxItems": "items <=",
}


def _type_html(schema: dict) -> str:
    """A JSON schema in a few words: a link for a $ref, a | b for a union, the values of an enum, bounds."""
    e = html.escape
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f'<a href="#schema-{e(name)}">{e(name)}</a>'
    for union in ("anyOf", "oneOf"):
        if union in schema:
            return " | ".join(_type_html(option) for option in schema[union])
    if "const" in schema:
        return f"<code>{e(json.dumps(schema['const']))}</code>"
    if "enum" in schema:
        return " | ".join(f"<code>{e(json.dumps(value))}</code>" for value in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        text = "array of " + _type_html(schema.get("items", {}))
    elif "contentSchema" in schema:
        text = f"{e(schema.get('contentMediaType', kind))} text of " + _type_html(schema["contentSchema"])
    else:
        text = e(str(kind)) + (f" ({e(schema['format'])})" if "format" in schema else "")
        if "contentMediaType" in schema:
            text = "bytes"
    bounds = [f"{word} {e(json.dumps(schema[key]))}" for key, word in _BOUNDS.items() if key in schema]
    return text + (f" <small>{', '.join(bounds)}</small>" if bounds else "")
