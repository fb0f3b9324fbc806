"""What every request carries: its id (the request id middleware), the app's backend and config, its deadline.

X-Request-ID is on every response: the client's X-Request-ID when it is 1-128 visible ASCII
characters, else a fresh id. The id is passed to the backend and named in logs.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid

from starlette.datastructures import MutableHeaders
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deployments.api.errors import ApiError
from deployments.backend import SpeechBackend
from deployments.config import AppConfig

logger = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")


def request_id(request: Request) -> str:
    """The id RequestContextMiddleware gave this request (the client's X-Request-ID or a fresh one)."""
    return request.scope.get("state", {}).get("request_id") or "-"


def backend(request: Request) -> SpeechBackend:
    """The backend the app serves (build_http_app puts it in app.state)."""
    return request.app.state.backend


def config(request: Request) -> AppConfig:
    """The app's limits and defaults (build_http_app puts them in app.state)."""
    return request.app.state.config


def deadline(request: Request) -> float:
    """When the backend's work for this request must end, on the event loop's clock: config.request_timeout_s
    from now (routes take it once the body is read, so it bounds everything up to the last audio byte)."""
    return asyncio.get_running_loop().time() + config(request).request_timeout_s


class RequestContextMiddleware:
    """Gives every request an id (echoed in X-Request-ID unless `echo` is False) and turns unexpected
    exceptions into 500 internal_error (logged with the id; the body names only the id)."""

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
