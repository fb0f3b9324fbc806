"""Request ids and the HTTP layer's logs: the one id in the response, the logs and the backend;
invalid ids replaced, never refused; through Serve's proxy too; 4xx at INFO, 500 at ERROR."""

from __future__ import annotations

import contextlib
import logging
import string
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.middleware import Middleware
from starlette.testclient import TestClient

from api.conftest import CLIP, FakeBackend, assert_error, make_client, speech
from deployments.api import build_http_app
from deployments.api.context import PROXY_CALLBACK, RequestIdGuard, valid_request_id
from deployments.config import AppConfig

# The rule, written out independently of deployments.api.context.
ID_ALPHABET = string.ascii_letters + string.digits + "._:-"
FRESH_ID = r"[0-9a-f]{32}"


def follows_the_rule(value: str) -> bool:
    return 1 <= len(value) <= 128 and all(char in ID_ALPHABET for char in value)


valid_ids = st.text(st.sampled_from(ID_ALPHABET), min_size=1, max_size=128)
# what a client can put in a header (visible ASCII, space, Latin-1), that breaks the rule
invalid_ids = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), min_size=1, max_size=200),
    st.text(st.sampled_from(ID_ALPHABET), min_size=129, max_size=300),
).filter(lambda value: not follows_the_rule(value) and value.strip() == value and value)


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def about(self, rid: str) -> list[logging.LogRecord]:
        return [record for record in self.records if logged_id(record) == rid]


def logged_id(record: logging.LogRecord) -> str:
    """The id of a line "request <id>: ..." (an id has no spaces, and may itself hold ':')."""
    head, rid = record.getMessage().split(" ", 2)[:2]
    assert head == "request", record.getMessage()
    return rid.removesuffix(":")


@contextlib.contextmanager
def serve_logs() -> Iterator[Records]:
    """What is logged to Ray Serve's logger ("ray.serve") inside the block, from INFO up."""
    serve_logger = logging.getLogger("ray.serve")
    handler, level = Records(), serve_logger.level
    serve_logger.addHandler(handler)
    serve_logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        serve_logger.removeHandler(handler)
        serve_logger.setLevel(level)


def request_ids_in(records: Records) -> set[str]:
    return {logged_id(record) for record in records.records}


@pytest.fixture
def logs() -> Iterator[Records]:
    with serve_logs() as records:
        yield records


# --------------------------------------------------------------------------- the rule


@given(value=valid_ids)
def test_ids_that_follow_the_rule_are_valid(value):
    assert valid_request_id(value)


@given(value=st.text(max_size=300))
def test_validity_is_exactly_the_rule(value):
    assert valid_request_id(value) == follows_the_rule(value)


@pytest.mark.parametrize("value", ["", " ", "a b", "a\tb", "x" * 129, "id/1", "id=1", "ïd", "a\nb", None])
def test_invalid_ids(value):
    assert not valid_request_id(value)


@pytest.mark.parametrize("value", ["a", "x" * 128, "550e8400-e29b-41d4-a716-446655440000", "req_01:2.b-C"])
def test_valid_ids(value):
    assert valid_request_id(value)


# --------------------------------------------------------------------------- the app on its own (it echoes)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=valid_ids)
def test_a_valid_id_is_the_requests_id_everywhere(value, logs):
    logs.records.clear()
    backend = FakeBackend()
    response = make_client(backend).post(
        "/v1/audio/speech", json=speech(voice="nobody"), headers={"X-Request-ID": value}
    )
    assert response.status_code == 404
    assert response.headers.get_list("x-request-id") == [value]
    assert request_ids_in(logs) == {value}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=invalid_ids)
def test_an_invalid_id_is_replaced_everywhere(value, logs):
    logs.records.clear()
    backend = FakeBackend()
    client = make_client(backend)
    response = client.post(
        "/v1/audio/speech", json=speech(response_format="pcm"), headers={"X-Request-ID": value.encode("latin-1")}
    )
    assert response.status_code == 200  # replaced, not refused
    (rid,) = response.headers.get_list("x-request-id")
    assert rid != value and follows_the_rule(rid)
    assert [request_id for _, request_id in backend.requests] == [rid]
    assert request_ids_in(logs) == {rid}  # the line saying it was replaced is under the new id too
    (replaced,) = logs.records
    assert replaced.levelno == logging.INFO and "replaced" in replaced.getMessage()
    assert "\n" not in replaced.getMessage()


def test_a_missing_id_gets_a_fresh_one(client, backend, logs):
    first = client.post("/v1/audio/speech", json=speech(response_format="pcm"))
    second = client.get("/v1/voices/nobody")
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert all(follows_the_rule(rid) for rid in ids) and ids[0] != ids[1]
    assert backend.requests[0][1] == ids[0]
    assert request_ids_in(logs) == {ids[1]}  # the 404's line; a success logs nothing here


def test_the_first_of_two_ids_counts(client):
    response = client.get("/v1/models", headers=[("X-Request-ID", "first"), ("X-Request-ID", "second")])
    assert response.headers.get_list("x-request-id") == ["first"]


# --------------------------------------------------------------------------- what is logged


def test_client_errors_are_info_without_traceback(client, logs):
    response = client.post("/v1/voices", files={"file": ("a.wav", CLIP, "audio/wav")}, data={"name": "a/b"})
    error = assert_error(response, 422, "invalid_request_error", "name", "invalid_value")
    (record,) = logs.about(response.headers["x-request-id"])
    assert record.levelno == logging.INFO and record.exc_info is None
    message = record.getMessage()
    assert "POST /v1/voices -> 422 invalid_value" in message and error["message"] in message


def test_server_errors_on_purpose_are_warnings_without_traceback(client, backend, logs):
    backend.mode = "busy"
    response = client.post("/v1/audio/speech", json=speech(), headers={"X-Request-ID": "busy-1"})
    assert_error(response, 503, "server_error", None, "server_busy")
    (record,) = logs.about("busy-1")
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert "-> 503 server_busy" in record.getMessage()


def test_a_bug_is_an_error_with_traceback_and_a_500_that_names_only_the_id(backend, logs):
    async def broken(request_id):
        raise RuntimeError("secret detail at /srv/app/internal.py, pid 4242")

    backend.list_voices = broken
    client = TestClient(build_http_app(backend, AppConfig(request_timeout_s=1.0)), raise_server_exceptions=False)
    response = client.get("/v1/voices", headers={"X-Request-ID": "bug-1"})
    error = assert_error(response, 500, "server_error", None, "internal_error")
    assert error["message"] == "internal server error (request id bug-1)"
    assert "secret" not in response.text and "4242" not in response.text and "/srv" not in response.text
    (record,) = logs.about("bug-1")
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert "GET /v1/voices failed" in record.getMessage()


def test_a_path_cannot_break_a_log_line(client, logs):
    response = client.get("/v1/voices/x%0Ainjected%20line", headers={"X-Request-ID": "path-1"})
    assert response.status_code == 404
    (record,) = logs.about("path-1")
    assert "\n" not in record.getMessage() and "/v1/voices/x%0Ainjected%20line" in record.getMessage()


# --------------------------------------------------------------------------- behind Serve's proxy


def serve_proxy(app, middlewares: list[Middleware]):
    """The app as Serve's HTTP proxy wraps it: Serve's own request-id middleware, then the proxy
    callback's middlewares (outside it, so they run first). In Serve the proxy forwards the scope it
    built to the replica; here the replica's app runs in the same process."""
    from ray.serve._private.http_util import _apply_middlewares

    return _apply_middlewares(app, middlewares)


def proxy_callback_middlewares(monkeypatch) -> list[Middleware]:
    """What Serve's proxy loads when RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH names our callback."""
    from ray.serve._private import http_util
    from ray.serve.config import HTTPOptions

    monkeypatch.setattr(http_util, "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH", PROXY_CALLBACK)
    return http_util.configure_http_middlewares(HTTPOptions()).middlewares


def test_the_proxy_callback_loads_the_guard(monkeypatch):
    (middleware,) = proxy_callback_middlewares(monkeypatch)
    assert middleware.cls is RequestIdGuard


@pytest.mark.parametrize("sent", ["bad id with spaces", "x" * 500, "ok-id", None])
def test_behind_serves_proxy_with_the_guard_one_id_everywhere(monkeypatch, logs, sent):
    backend = FakeBackend()
    app = build_http_app(backend, AppConfig(request_timeout_s=1.0), echo_request_id=False)
    client = TestClient(serve_proxy(app, proxy_callback_middlewares(monkeypatch)))
    logs.records.clear()  # Serve's own line about loading the callback
    headers = {} if sent is None else {"X-Request-ID": sent}
    response = client.post("/v1/audio/speech", json=speech(voice="nobody"), headers=headers)
    assert response.status_code == 404
    (rid,) = response.headers.get_list("x-request-id")  # Serve's echo, and only it
    assert follows_the_rule(rid)
    assert (rid == sent) == (sent is not None and follows_the_rule(sent))
    assert request_ids_in(logs) == {rid}


def test_behind_serves_proxy_without_the_guard_the_app_says_how_to_fix_it(logs, monkeypatch):
    """Serve's proxy echoes whatever id it got; the app cannot change that, so it warns (once)."""
    monkeypatch.setattr("deployments.api.context._warned_unguarded_proxy", False)
    app = build_http_app(FakeBackend(), AppConfig(request_timeout_s=1.0), echo_request_id=False)
    client = TestClient(serve_proxy(app, []))
    for _ in range(2):
        response = client.get("/v1/models", headers={"X-Request-ID": "bad id"})
        assert response.headers.get_list("x-request-id") == ["bad id"]
    warnings = [record for record in logs.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and PROXY_CALLBACK in warnings[0].getMessage()
