"""The HTTP API as a plain Starlette app over a `deployments.backend.SpeechBackend`; no Ray here
(the Ingress mounts it). One module a job:

| module      | job                                                                        |
|-------------|----------------------------------------------------------------------------|
| `app`       | `build_http_app`: the routes table, middleware and error handlers          |
| `errors`    | `ApiError` (OpenAI's error shape), the errors table, `backend_error`: the  |
|             | one mapping from a backend's exceptions to API errors                      |
| `context`   | the request id middleware; a request's id, backend, config and deadline    |
| `bodies`    | JSON and multipart bodies: strict parsing and size limits                  |
| `openai`    | OpenAI's routes: POST /v1/audio/speech, GET /v1/models                     |
| `native`    | POST /v1/tts: every Zonos control                                          |
| `language`  | /v1/audio/speech's language: body's, else voice's, else detected; headers  |
| `voices`    | the voice library routes, /v1/voices...; voice references -> speakers      |
| `streaming` | audio responses: streamed bytes, SSE events, or one whole file             |
| `health`    | GET /healthz, GET /readyz                                                  |
| `auth`      | optional API keys: `Authorization: Bearer KEY`, 401 invalid_api_key        |
| `cors`      | optional CORS for other origins' pages (Starlette's CORSMiddleware)        |
| `openapi`   | GET /openapi.json (generated from the routes and pydantic models), /docs   |
"""

from deployments.api.app import build_http_app

__all__ = ["build_http_app"]
