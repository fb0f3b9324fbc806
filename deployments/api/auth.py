"""API keys (optional): `Authorization: Bearer KEY` on every route but the public ones.

Keys come from three places, all optional, all added together (`ApiKeys.from_config`):
- AppConfig.api_keys: the keys' SHA-256 digests, `sha256:<64 hex digits>`, never keys: Ray Serve
  writes an app's args to its logs in plain text ("Importing application ... with arguments"),
  before any code of ours runs, so a key there would be in the logs. A key given there is refused
  when the config is validated, by an error that does not show it (deployments.config._key_digest,
  which says how to compute a digest: KEY_DIGEST_COMMAND);
- AppConfig.api_keys_file: a file of keys, one a line;
- $ZONOS_API_KEYS_FILE (API_KEYS_FILE_ENV): a file of keys too, read on the Ingress replica (so a
  Kubernetes Secret mounted as a file never passes through the Serve config).
In a file, surrounding whitespace is dropped and blank lines and lines starting with '#' are
skipped; a relative path is resolved as voices_db's is (deployments.config.data_path). A file that
is named but missing, unreadable or holds no key fails the app's start, as does a key that is empty
or not 1 to 4096 visible ASCII characters (KEY_RULE: what an HTTP header carries unchanged; the
error names the key's place, never the key). The files are read once, when the app is built: new
keys need a restart (a rolling update of the Ingress).

With no key configured, nothing is checked. With keys, every request but the public ones
(`is_public`: /healthz and /readyz, which probes call without keys; /openapi.json and /docs,
which describe the API and hold no data; /web and its static files, the playground, whose own API
calls send the key typed into its key box; each with a trailing slash too, which the router
redirects to the path) must carry `Authorization: Bearer KEY` with one of
the keys: the openai SDK sends exactly that from its `api_key`. Otherwise 401, OpenAI's shape:

| request                                 | code            | message starts                         |
|-----------------------------------------|-----------------|----------------------------------------|
| no Authorization header, or empty key   | invalid_api_key | "You didn't provide an API key."       |
| another scheme (Basic ...), or repeated | invalid_api_key | "The Authorization header must be ..." |
| a key that is not one of the keys       | invalid_api_key | "Incorrect API key provided."          |

type invalid_request_error (OpenAI's own answer to a bad key), `WWW-Authenticate: Bearer` (RFC 6750
section 3; `error="invalid_token"` added for a wrong key), x-should-retry: false. A message never
quotes the key given (OpenAI's shows part of it; a near-miss key is still a secret).

The check is constant-time in the key: the given key's SHA-256 is compared with every key's
(`hmac.compare_digest`, no early exit; only the digests are kept), so neither which key nor how
much of one matched shows in the timing. Keys never reach a log: the 401 is logged once by the request id middleware
(context.py: method, path, status, code, message; no header), and the Authorization header is
taken off the request before the routes see it.

`ApiKeyAuth` runs inside the request id middleware (so a 401 carries X-Request-ID and is logged
once, with the request's id) and inside the CORS middleware (cors.py: a browser's preflight
carries no key, and a 401 carries the CORS headers that let a page read it).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from starlette._utils import get_route_path  # the router's own path (root_path off), so both agree
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from deployments.api.errors import ApiError
from deployments.config import API_KEYS_FILE_ENV, KEY_DIGEST_PREFIX, AppConfig, data_path

KEY_RULE = "1 to 4096 visible ASCII characters (no spaces)"
_KEY = re.compile(r"[\x21-\x7e]{1,4096}")
_AUTHORIZATION = b"authorization"

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json", "/docs", "/web"})
PUBLIC_PREFIXES = ("/web/",)


def api_keys(request: Request) -> ApiKeys | None:
    """The keys the app serving `request` checks (build_http_app keeps them in app.state), None when off."""
    return getattr(request.app.state, "api_keys", None)


def is_public(path: str) -> bool:
    """Whether a request for `path` (the route's path, without the app's root_path) needs no key. Trailing
    slashes are dropped first, as the router does before it redirects (Starlette's redirect_slashes), so
    `/healthz/` is as public as the `/healthz` it is redirected to."""
    return (path.rstrip("/") or "/") in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


class ApiKeys:
    """The keys the server accepts, held only as their SHA-256 digests (32 bytes each; repr shows how many,
    nothing else)."""

    def __init__(self, digests: Iterable[bytes]):
        self._digests = tuple(dict.fromkeys(digests))

    @classmethod
    def of_keys(cls, keys: Iterable[tuple[str, str]]) -> ApiKeys:
        """The keys given as (where, key) pairs. ValueError for a key against KEY_RULE; the message names
        `where`, never the key."""
        return cls(key_digest(where, key) for where, key in keys)

    def __len__(self) -> int:
        return len(self._digests)

    def __repr__(self) -> str:
        return f"ApiKeys({len(self)} keys)"

    def check(self, key: bytes) -> bool:
        """Whether `key` (the bytes after "Bearer ") is one of the keys, in time independent of which."""
        given = hashlib.sha256(key).digest()
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(given, digest)
        return matched

    @classmethod
    def from_config(cls, config: AppConfig, environ: Mapping[str, str] = os.environ) -> ApiKeys | None:
        """The keys of `config` (api_keys, api_keys_file) and of the file $ZONOS_API_KEYS_FILE names, or
        None when none is configured. ValueError for a named file that is missing, unreadable or empty,
        or a key against KEY_RULE (module docstring)."""
        digests = [
            bytes.fromhex(digest.get_secret_value().removeprefix(KEY_DIGEST_PREFIX)) for digest in config.api_keys
        ]
        files = [("api_keys_file", config.api_keys_file), (API_KEYS_FILE_ENV, environ.get(API_KEYS_FILE_ENV))]
        for name, path in files:
            if path:
                digests += [key_digest(where, key) for where, key in _read_keys(name, path)]
        return cls(digests) if digests else None


def key_digest(where: str, key: str) -> bytes:
    """The SHA-256 digest of `key` (found at `where`); ValueError naming `where`, never the key, for a key
    against KEY_RULE."""
    if not _KEY.fullmatch(key):
        raise ValueError(f"{where}: an API key is {KEY_RULE} (the key is not shown)")
    return hashlib.sha256(key.encode("ascii")).digest()


def _read_keys(name: str, path: str) -> list[tuple[str, str]]:
    """(`file line N`, key) for each key line of the file `name` gives; ValueError if it has none."""
    file = Path(data_path(path))
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{name}: cannot read the API keys file {file}: {type(exc).__name__}") from None
    keys = [
        (f"{file} line {n}", line.strip())
        for n, line in enumerate(lines, 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not keys:
        raise ValueError(f"{name}: the API keys file {file} holds no key (one a line; '#' starts a comment)")
    return keys


class ApiKeyAuth:
    """ASGI middleware: HTTP and websocket requests for a path that is not public (`is_public`) pass
    only with `Authorization: Bearer KEY`, KEY one of `keys`; others get 401 (module docstring), a
    websocket is closed with 1008 (policy violation) before it is accepted. The header is removed
    from the request that the app behind sees."""

    def __init__(self, app: ASGIApp, keys: ApiKeys):
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or is_public(get_route_path(scope)):
            await self.app(scope, receive, send)
            return
        given = [value for key, value in scope.get("headers") or [] if key.lower() == _AUTHORIZATION]
        error = self._refusal(given)
        if error is None:
            headers = [(key, value) for key, value in scope["headers"] if key.lower() != _AUTHORIZATION]
            await self.app({**scope, "headers": headers}, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": error.code or ""})
        else:
            await error.response()(scope, receive, send)

    def _refusal(self, given: list[bytes]) -> ApiError | None:
        """None when `given` (the request's Authorization values) is one Bearer header with a key; else the 401."""
        if not given:
            return _unauthorized(
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
        scheme, _, key = given[0].strip().partition(b" ")
        if len(given) > 1 or scheme.lower() != b"bearer":
            return _unauthorized(
                "The Authorization header must be `Bearer YOUR_KEY`, given once (the scheme given is not Bearer, "
                "or the header is repeated)."
            )
        key = key.strip()
        if not key:
            return _unauthorized("You didn't provide an API key: the Authorization header is `Bearer` alone.")
        if not self.keys.check(key):
            return _unauthorized(
                "Incorrect API key provided. Send one of this server's keys as `Authorization: Bearer YOUR_KEY`.",
                invalid_token=True,
            )
        return None


def _unauthorized(message: str, invalid_token: bool = False) -> ApiError:
    challenge = 'Bearer error="invalid_token"' if invalid_token else "Bearer"
    return ApiError(401, message, code="invalid_api_key", headers={"WWW-Authenticate": challenge})
