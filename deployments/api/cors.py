"""CORS: which browser pages of other origins may call the API (AppConfig.cors_allowed_origins).

None by default: no CORS header is sent, so a browser lets only pages of the server's own origin
(the /web playground) read its answers. With origins configured, Starlette's CORSMiddleware
(the Fetch standard's CORS protocol, https://fetch.spec.whatwg.org/#http-cors-protocol):
- answers a preflight (OPTIONS with Origin and Access-Control-Request-Method) itself, before the
  API key check (auth.py: a browser sends no credentials on a preflight): 200 with
  Access-Control-Allow-Origin (the origin, or '*' when '*' is configured), -Allow-Methods (the
  methods of the API's routes, ALLOWED_METHODS), -Allow-Headers (the headers the page asked for:
  Authorization, Content-Type, X-Request-ID and the openai SDK's x-stainless-* all pass) and
  -Max-Age (600 s); a preflight from an origin that is not allowed, or for another method, gets
  400 invalid_request_error, code cors_not_allowed, in OpenAI's shape, without Allow-Origin;
- adds Access-Control-Allow-Origin to every answer to an allowed origin's request (errors, 401s
  included, so the page can read them), and Access-Control-Expose-Headers: EXPOSED_HEADERS, the
  response headers a page's script may read beyond the CORS-safelisted ones (the request id, the
  audio's rate, format and seed, the language, the retry hints, a new voice's Location).
No cookies are used, so credentials are not allowed (Access-Control-Allow-Credentials is never sent;
an Authorization header set by a script needs none).
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from deployments.api.errors import ApiError
from deployments.config import AppConfig

ALLOWED_METHODS = ("GET", "POST", "DELETE", "HEAD")
EXPOSED_HEADERS = (
    "X-Request-ID",
    "X-Sample-Rate",
    "X-Audio-Format",
    "X-Seed",
    "X-Language-Source",
    "Content-Language",
    "Content-Disposition",
    "Retry-After",
    "retry-after-ms",
    "x-should-retry",
    "Location",
    "WWW-Authenticate",
)
MAX_AGE_S = 600
# Starlette's answer to a refused preflight is text; these headers of it are kept on the JSON error
_PREFLIGHT_HEADERS = ("vary", "access-control-allow-methods", "access-control-max-age", "access-control-allow-headers")


class _Cors(CORSMiddleware):
    """Starlette's CORSMiddleware, with a refused preflight answered in OpenAI's error shape."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")
        error = ApiError(
            400,
            f"CORS preflight refused, not allowed: {refused} (origins: the server's cors_allowed_origins; methods: "
            f"{', '.join(ALLOWED_METHODS)})",
            code="cors_not_allowed",
            headers={key: value for key, value in response.headers.items() if key in _PREFLIGHT_HEADERS},
        )
        return error.response()


def cors_middleware(config: AppConfig) -> list[Middleware]:
    """The CORS middleware for `config` (one), or none when no origin is allowed."""
    if not config.cors_allowed_origins:
        return []
    return [
        Middleware(
            _Cors,
            allow_origins=config.cors_allowed_origins,
            allow_methods=ALLOWED_METHODS,
            allow_headers=["*"],
            expose_headers=EXPOSED_HEADERS,
            max_age=MAX_AGE_S,
        )
    ]
