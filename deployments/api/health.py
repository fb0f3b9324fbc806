"""Probes: GET /healthz (liveness) and GET /readyz (readiness), for Kubernetes and load balancers,
and admission while the backend drains.

GET /healthz   200 {"status": "ok"} while the process serves at all (draining too: it is alive)
GET /readyz    200 {"status": "ready"} once the backend says its models are loaded, else 503 not_ready
               (Retry-After: 5); a backend that fails or takes over 5 s to answer is not ready; a
               draining backend is not ready (503 not_ready, "draining", Retry-After)

Draining (the backend's optional `draining` attribute is truthy, deployments.backend.Drain):
`DrainingGate`, inside the request id middleware, answers every new request but the two probes
with 503 server_busy and Retry-After in OpenAI's error shape, without calling the backend;
requests admitted before keep streaming to their end. `with_draining(app)` adds the gate to an
app from `build_http_app`.
"""

from __future__ import annotations

import logging

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from deployments.api import context
from deployments.api.errors import ApiError, retry_headers
from deployments.backend import DRAIN_RETRY_AFTER_S

logger = logging.getLogger(__name__)

_READY_TIMEOUT_S = 5.0
PROBES = frozenset({"/healthz", "/readyz"})


def draining(backend: object) -> bool:
    """Whether `backend` is shutting down (its optional `draining` attribute)."""
    return bool(getattr(backend, "draining", False))


def drain_retry_headers(backend: object) -> dict[str, str]:
    """The retry hints while `backend` drains (errors.retry_headers): its Drain's retry_after_s."""
    return retry_headers(getattr(getattr(backend, "draining", None), "retry_after_s", DRAIN_RETRY_AFTER_S))


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    backend = context.backend(request)
    if draining(backend):
        raise ApiError(
            503,
            "draining: the server is shutting down and finishing its in-flight requests",
            code="not_ready",
            headers=drain_retry_headers(backend),
        )
    try:
        with anyio.fail_after(min(_READY_TIMEOUT_S, context.config(request).request_timeout_s)):
            ready = bool(await backend.ready())
    except Exception as exc:
        logger.warning("request %s: readiness check failed: %r", context.request_id(request), exc)
        ready = False
    if not ready:
        raise ApiError(503, "the models are not loaded yet", code="not_ready", headers=retry_headers(5))
    return JSONResponse({"status": "ready"})


class DrainingGate:
    """ASGI middleware: while the app's backend drains, new HTTP requests (all but the probes) get
    503 server_busy with Retry-After; nothing reaches the backend. In-flight requests are untouched,
    and counted (`Drain.track`) when the backend's `draining` is a Drain."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in PROBES:
            backend = scope["app"].state.backend
            if draining(backend):
                rid = scope.get("state", {}).get("request_id", "-")
                logger.info("request %s: refused, draining", rid)
                error = ApiError(
                    503,
                    "the server is shutting down; retry, another replica will take the request",
                    code="server_busy",
                    headers=drain_retry_headers(backend),
                )
                await error.response()(scope, receive, send)
                return
            track = getattr(getattr(backend, "draining", None), "track", None)
            if track is not None:  # a Drain: a graceful stop of the app waits for this request
                with track():
                    await self.app(scope, receive, send)
                return
        await self.app(scope, receive, send)


def with_draining(app: Starlette) -> Starlette:
    """`app` (from build_http_app, not yet serving) with the DrainingGate inside its request id
    middleware, so refusals carry X-Request-ID and land in the log with it."""
    if not any(m.cls is DrainingGate for m in app.user_middleware):
        app.user_middleware.append(Middleware(DrainingGate))
        app.middleware_stack = None  # built on the first request, from user_middleware
    return app
