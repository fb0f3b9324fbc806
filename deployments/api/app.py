"""The Starlette app: the routes table, the request id middleware and the error handlers.

POST   /v1/audio/speech   OpenAI-compatible text to speech (JSON), audio streamed as it is generated (openai.py)
GET    /v1/models         zonos-v0.1 (with the backend's model card) and its OpenAI aliases (openai.py)
GET    /v1/models/{id}    one model (a listed name or a dated snapshot) or 404 model_not_found (openai.py)
POST   /v1/tts            native: every Zonos control (JSON, or multipart with a voice clip) (native.py)
POST   /v1/voices         add a voice to the library from a clip (multipart: `file`, `name`) -> 201 (voices.py)
GET    /v1/voices         {"object": "list", "data": [voice, ...]} (voices.py)
GET    /v1/voices/{ref}   one voice (by id or name) or 404 (voices.py)
DELETE /v1/voices/{ref}   {"id", "object": "voice.deleted", "deleted": true} or 404 (voices.py)
POST   /v1/audio/voices   OpenAI's create voice (multipart: `audio_sample`, `name`) -> 200 audio.voice (voices.py)
GET    /v1/audio/voices   {"voices": [{"id", "name"}, ...]}: built-in names, then the library (Open WebUI) (voices.py)
DELETE /v1/audio/voices/{ref}  {"id", "object": "audio.voice.deleted", "deleted": true} or 404 (voices.py)
GET    /v1/audio/models   {"models": [{"id"}, ...]}: the names /v1/models lists (Open WebUI) (voices.py)
GET    /healthz           200 {"status": "ok"} while the process serves at all (health.py)
GET    /readyz            200 {"status": "ready"} once the models are loaded, else 503 (health.py)
GET    /openapi.json      the OpenAPI 3.1 document, generated from the routes and their pydantic models (openapi.py)
GET    /docs              that document as one HTML page, nothing loaded from elsewhere (openapi.py)
GET    /web               the playground page, static files of this package; GET /web/config.json its settings (web.py)

Every error, Starlette's own 404 and 405 included, is a JSON body in OpenAI's shape (errors.py).
With API keys configured, every route but the probes, /openapi.json, /docs and /web needs
`Authorization: Bearer KEY` (auth.py); CORS for other origins' pages is off unless configured (cors.py).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from deployments.api import health, native, openai, openapi, voices, web
from deployments.api.auth import ApiKeyAuth, ApiKeys
from deployments.api.context import RequestContextMiddleware
from deployments.api.cors import cors_middleware
from deployments.api.errors import ApiError, http_error
from deployments.backend import SpeechBackend
from deployments.config import AppConfig

ROUTES = [
    Route("/v1/audio/speech", openai.create_speech, methods=["POST"]),
    Route("/v1/models", openai.list_models, methods=["GET"]),
    Route("/v1/models/{model_id:path}", openai.retrieve_model, methods=["GET"]),
    Route("/v1/tts", native.tts, methods=["POST"]),
    # one route per path, so a 405's Allow header lists every method the path has
    Route("/v1/voices", voices.voices, methods=["GET", "POST"]),
    Route("/v1/voices/{voice_id}", voices.voice, methods=["GET", "DELETE"]),
    Route("/v1/audio/voices", voices.audio_voices, methods=["GET", "POST"]),
    Route("/v1/audio/voices/{voice_id}", voices.delete_audio_voice, methods=["DELETE"]),
    Route("/v1/audio/models", voices.list_audio_models, methods=["GET"]),
    Route("/healthz", health.healthz, methods=["GET"]),
    Route("/readyz", health.readyz, methods=["GET"]),
    Route("/openapi.json", openapi.openapi_json, methods=["GET"]),
    Route("/docs", openapi.docs, methods=["GET"]),
    *web.ROUTES,
]


def build_http_app(backend: SpeechBackend, config: AppConfig, echo_request_id: bool = True) -> Starlette:
    """The API over `backend`, limits and defaults from `config`. Behind Serve's proxy, which
    already echoes X-Request-ID, pass echo_request_id=False so the header is not doubled.

    Middleware, outermost first: the request id (context.py: every answer carries the id and is logged
    once), CORS when origins are configured (cors.py: a preflight is answered before the key check),
    the API key check when keys are configured (auth.py: ValueError here for a bad key or keys file).
    """
    keys = ApiKeys.from_config(config)
    middleware = [Middleware(RequestContextMiddleware, echo=echo_request_id), *cors_middleware(config)]
    if keys is not None:
        middleware.append(Middleware(ApiKeyAuth, keys=keys))
    app = Starlette(
        routes=ROUTES,
        middleware=middleware,
        exception_handlers={HTTPException: _on_http_exception, ApiError: _on_api_error},
    )
    app.state.backend = backend
    app.state.config = config
    app.state.api_keys = keys
    return app


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return http_error(request, exc).response()


async def _on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()  # the request middleware (context.py) logs it once, with its level
