"""Probes: GET /healthz (liveness) and GET /readyz (readiness), for Kubernetes and load balancers.

GET /healthz   200 {"status": "ok"} while the process serves at all
GET /readyz    200 {"status": "ready"} once the backend says its models are loaded, else 503 not_ready
               (Retry-After: 5); a backend that fails or takes over 5 s to answer is not ready
"""

from __future__ import annotations

import logging

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from deployments.api import context
from deployments.api.errors import ApiError

logger = logging.getLogger(__name__)

_READY_TIMEOUT_S = 5.0


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    try:
        with anyio.fail_after(min(_READY_TIMEOUT_S, context.config(request).request_timeout_s)):
            ready = bool(await context.backend(request).ready())
    except Exception as exc:
        logger.warning("request %s: readiness check failed: %r", context.request_id(request), exc)
        ready = False
    if not ready:
        raise ApiError(503, "the models are not loaded yet", code="not_ready", headers={"Retry-After": "5"})
    return JSONResponse({"status": "ready"})
