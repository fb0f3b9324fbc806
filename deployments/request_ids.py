"""Request ids: the rule, and the guard Serve's HTTP proxy runs so that one valid id is used everywhere.

A small module on purpose: Serve's proxy imports it (RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=
deployments.request_ids:proxy_middlewares), and it imports neither torch nor the app. The rule
and why are in deployments/api/context.py's docstring.
"""

from __future__ import annotations

import re
import uuid

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_RULE = "1 to 128 characters of A-Z a-z 0-9 . _ : -"
PROXY_CALLBACK = "deployments.request_ids:proxy_middlewares"
# Serve's proxy reads x-request-timeout-seconds as its own per-request timeout (answering a plain-text
# 408 a client retries, and overriding the operator's http_options.request_timeout_s); the guard
# renames it so that the app takes it as the client's deadline (deployments.api.context).
SERVE_TIMEOUT_HEADER = b"x-request-timeout-seconds"
CLIENT_DEADLINE_HEADER = "x-zonos-client-timeout-seconds"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_HEADER_KEY = REQUEST_ID_HEADER.lower().encode("latin-1")
_CLIENT_DEADLINE_KEY = CLIENT_DEADLINE_HEADER.encode("latin-1")


def valid_request_id(value: str | None) -> bool:
    """True when `value` follows REQUEST_ID_RULE, so it may be used as the request's id."""
    return value is not None and _REQUEST_ID.fullmatch(value) is not None


def new_request_id() -> str:
    """A fresh id (32 hex digits), for a request without a valid X-Request-ID."""
    return uuid.uuid4().hex


class RequestIdGuard:
    """ASGI middleware for Serve's HTTP proxy (`proxy_middlewares`): leaves exactly one X-Request-ID
    on the request, the client's first one if valid, else a fresh one. The proxy runs it before
    Serve's own request-id middleware, which then echoes and logs that id. It also renames
    x-request-timeout-seconds (SERVE_TIMEOUT_HEADER) to CLIENT_DEADLINE_HEADER, for the app."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            given = _given_request_id(scope)
            rid = given if valid_request_id(given) else new_request_id()
            headers = [
                (_CLIENT_DEADLINE_KEY if key.lower() == SERVE_TIMEOUT_HEADER else key, value)
                for key, value in scope.get("headers") or []
                if key.lower() != _HEADER_KEY
            ]
            scope = {**scope, "headers": [*headers, (_HEADER_KEY, rid.encode("latin-1"))]}
        await self.app(scope, receive, send)


def proxy_middlewares() -> list[Middleware]:
    """The middlewares for Serve's HTTP proxy: RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH names this function."""
    return [Middleware(RequestIdGuard)]


def _given_request_id(scope: Scope) -> str | None:
    """The request's first X-Request-ID header (as Serve's proxy reads it), or None."""
    for key, value in scope.get("headers") or []:
        if key.lower() == _HEADER_KEY:
            return value.decode("latin-1")
    return None
