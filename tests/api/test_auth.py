"""API keys (deployments/api/auth.py): the openai SDK with a right and a wrong key, raw requests
without one, the public paths, keys files, and that no key reaches a log, a repr or an error."""

from __future__ import annotations

import contextlib
import hmac
import logging
import re
import shlex
import string
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from api.conftest import CLIP, TEXT, FakeBackend, assert_audio, assert_error, key_digest, make_client, speech
from deployments.api import auth, build_http_app
from deployments.api.app import ROUTES
from deployments.api.auth import API_KEYS_FILE_ENV, ApiKeyAuth, ApiKeys
from deployments.config import AppConfig

KEY = "sk-test-0123456789abcdef"
OTHER_KEY = "sk-second-key-fedcba9876543210"
# visible ASCII, as a header carries a key unchanged
key_text = st.text(st.sampled_from(string.ascii_letters + string.digits + string.punctuation), min_size=16, max_size=64)


def sdk(client: TestClient, api_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{client.base_url}/v1", api_key=api_key, http_client=client, max_retries=0)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_401(response) -> dict:
    error = assert_error(response, 401, "invalid_request_error", None, "invalid_api_key")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["x-should-retry"] == "false"
    return error


def test_the_openai_sdk_with_the_right_key_and_a_wrong_one():
    client = make_client(FakeBackend(), api_keys=[key_digest(KEY), key_digest(OTHER_KEY)])
    for key in (KEY, OTHER_KEY):
        audio = sdk(client, key).audio.speech.create(model="tts-1", voice="alloy", input=TEXT, response_format="wav")
        assert_audio(audio.content, "wav", 0.02 * len(TEXT))
        assert "zonos-v0.1" in [model.id for model in sdk(client, key).models.list()]
    for wrong in (KEY[:-1], KEY + "x", KEY.upper(), "sk-" + "0" * 21):
        with pytest.raises(openai.AuthenticationError) as caught:
            sdk(client, wrong).audio.speech.create(model="tts-1", voice="alloy", input=TEXT)
        assert caught.value.status_code == 401
        assert caught.value.code == "invalid_api_key"
        assert wrong not in str(caught.value)  # the message does not quote the key given


def test_raw_requests_without_a_right_key_get_401():
    client = make_client(FakeBackend(), api_keys=[key_digest(KEY)])
    missing = assert_401(client.post("/v1/audio/speech", json=speech()))
    assert missing["message"].startswith("You didn't provide an API key")
    assert client.post("/v1/audio/speech", json=speech()).headers["www-authenticate"] == "Bearer"
    wrong = client.post("/v1/audio/speech", json=speech(), headers=bearer("sk-wrong"))
    assert assert_401(wrong)["message"].startswith("Incorrect API key provided")
    assert wrong.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    for header in (f"Basic {KEY}", KEY, "Bearer", "Bearer ", f"Token {KEY}"):
        assert_401(client.get("/v1/models", headers={"Authorization": header}))
    repeated = [("authorization", f"Bearer {KEY}"), ("authorization", f"Bearer {KEY}")]
    assert_401(client.get("/v1/models", headers=repeated))
    # RFC 7235: the scheme is case-insensitive; spaces around the key are not part of it
    for header in (f"bearer {KEY}", f"BEARER {KEY}", f"Bearer  {KEY} "):
        assert client.get("/v1/models", headers={"Authorization": header}).status_code == 200


def concrete_path(route: Route) -> str:
    return route.path_format.format(**{name: "x" for name in route.param_convertors})


def test_every_route_but_the_public_ones_needs_a_key():
    """Every method of every route in the table, an unknown path and a wrong method: 401 without a key
    (not 404 or 405: nothing about the API shows); the probes, the docs and the playground open."""
    client = make_client(FakeBackend(), api_keys=[key_digest(KEY)])
    checked = 0
    for route in ROUTES:
        if not isinstance(route, Route):
            continue
        for method in route.methods - {"HEAD"}:
            response = client.request(method, concrete_path(route))
            if auth.is_public(route.path_format):
                assert response.status_code != 401, (method, route.path)
            else:
                assert_401(response)
                checked += 1
    assert checked >= 10
    for path in ("/nowhere", "/v1", "/healthz/x", "/docs/x", "/openapi.json.bak", "/webx"):
        assert_401(client.get(path))
    assert_401(client.put("/v1/voices"))
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs", "/web/"):
        assert client.get(path).status_code == 200, path


def test_a_public_path_with_a_trailing_slash_is_redirected_not_refused():
    """The router redirects /healthz/ to /healthz (Starlette's redirect_slashes): the key check lets it,
    as a probe configured with the slash gets its 200; other routes' slashed paths still need the key."""
    client = make_client(FakeBackend(), api_keys=[key_digest(KEY)])
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs"):
        redirect = client.get(path + "/", follow_redirects=False)
        assert redirect.status_code == 307 and redirect.headers["location"].endswith(path), path
        assert client.get(path + "/").status_code == 200, path
        assert client.get(path + "//").status_code == 200, path
    for path in ("/v1/models/", "/v1/voices/", "/v1/audio/speech/", "/nowhere/", "/"):
        assert_401(client.get(path))


def test_no_keys_means_no_check():
    client = make_client(FakeBackend())
    assert client.get("/v1/models").status_code == 200
    assert client.get("/v1/models", headers=bearer("anything")).status_code == 200


def test_a_401_carries_the_request_id_and_is_logged_once_without_the_key():
    client = make_client(FakeBackend(), api_keys=[key_digest(KEY)])
    with captured_logs() as records:
        response = client.get("/v1/voices", headers={"X-Request-ID": "auth-1", **bearer("sk-not-it")})
    assert response.headers["x-request-id"] == "auth-1"
    lines = [record for record in records if "auth-1" in record.getMessage()]
    assert len(lines) == 1, [record.getMessage() for record in lines]
    assert "401 invalid_api_key" in lines[0].getMessage() and "GET /v1/voices" in lines[0].getMessage()
    assert lines[0].levelno == logging.INFO and lines[0].exc_info is None


def test_the_routes_never_see_the_authorization_header():
    seen: list[list[tuple[bytes, bytes]]] = []

    async def app(scope, receive, send):
        seen.append(list(scope["headers"]))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    client = TestClient(ApiKeyAuth(app, keys=ApiKeys.of_keys([("test", KEY)])))
    assert client.get("/v1/models", headers={**bearer(KEY), "X-Other": "kept"}).status_code == 204
    assert [key for key, _ in seen[0] if key == b"authorization"] == []
    assert (b"x-other", b"kept") in seen[0]


def test_a_websocket_without_a_key_is_closed_before_it_opens():
    client = make_client(FakeBackend(), api_keys=[key_digest(KEY)])
    with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect("/v1/audio/speech"):
        pass
    assert closed.value.code == 1008


def test_every_key_is_compared_whichever_matches(monkeypatch):
    """No early exit: the given key is compared with each key, matched first, last or never."""
    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(auth.hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    keys = ApiKeys.of_keys([(f"k{i}", f"sk-key-number-{i:04d}") for i in range(5)])
    for sent, expected in ((b"sk-key-number-0000", True), (b"sk-key-number-0004", True), (b"sk-nope", False)):
        calls.clear()
        assert keys.check(sent) is expected
        assert len(calls) == 5


def test_keys_files_from_the_config_and_the_environment(tmp_path, monkeypatch):
    config_file = tmp_path / "keys.txt"
    config_file.write_text(f"# operators' keys\n\n  {KEY}  \n#sk-commented-out-key-0000\n")
    env_file = tmp_path / "more-keys"
    env_file.write_text(f"{OTHER_KEY}\n")
    monkeypatch.setenv(API_KEYS_FILE_ENV, str(env_file))
    client = make_client(FakeBackend(), api_keys_file=str(config_file))
    for key in (KEY, OTHER_KEY):
        assert client.get("/v1/models", headers=bearer(key)).status_code == 200
    assert_401(client.get("/v1/models", headers=bearer("sk-commented-out-key-0000")))
    assert_401(client.get("/v1/models", headers=bearer("# operators' keys")))
    # a relative path resolves as voices_db's: under $ZONOS_DATA_DIR
    monkeypatch.setenv("ZONOS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv(API_KEYS_FILE_ENV)
    relative = make_client(FakeBackend(), api_keys_file="keys.txt")
    assert relative.get("/v1/models", headers=bearer(KEY)).status_code == 200
    assert_401(relative.get("/v1/models", headers=bearer(OTHER_KEY)))


def test_a_keys_file_that_cannot_give_keys_stops_the_start(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.write_text("# nothing yet\n\n")
    for path, words in ((tmp_path / "missing", "cannot read"), (empty, "holds no key")):
        with pytest.raises(ValueError, match=words):
            build_http_app(FakeBackend(), AppConfig(api_keys_file=str(path)))
        monkeypatch.setenv(API_KEYS_FILE_ENV, str(path))
        with pytest.raises(ValueError, match=API_KEYS_FILE_ENV):
            build_http_app(FakeBackend(), AppConfig())
        monkeypatch.delenv(API_KEYS_FILE_ENV)


def test_a_digest_in_the_config_lets_its_key_in_and_is_not_a_key_itself():
    """The config holds sha256:<hex> digests (any case, surrounding spaces dropped): the key whose digest it
    is gets in; the digest sent as a key does not."""
    digest = key_digest(KEY)
    for given_digest in (digest, f"  {digest.upper().replace('SHA256:', 'sha256:')} "):
        client = make_client(FakeBackend(), api_keys=given_digest)  # one digest, or a list
        assert client.get("/v1/models", headers=bearer(KEY)).status_code == 200
        assert_401(client.get("/v1/models", headers=bearer(OTHER_KEY)))
        assert_401(client.get("/v1/models", headers=bearer(digest)))
        assert_401(client.get("/v1/models", headers=bearer(digest.removeprefix("sha256:"))))
    config = AppConfig(api_keys=[digest])
    assert digest.removeprefix("sha256:") not in repr(config)  # a weak key's digest can be guessed: not shown


def test_the_command_the_refusal_gives_computes_the_digest():
    """The error for a key given in the config says how to compute its digest; that command's output,
    put in the config, lets the key in."""
    with pytest.raises(ValidationError) as refused:
        AppConfig(api_keys=[KEY])
    message = refused.value.errors()[0]["msg"]
    for words in ("api_keys_file", API_KEYS_FILE_ENV, "sha256:"):
        assert words in message
    command = re.search(r"python3 -c '[^']+' KEY", message).group()
    printed = subprocess.run(
        [sys.executable, "-c", shlex.split(command)[2], KEY], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert printed == key_digest(KEY)
    client = make_client(FakeBackend(), api_keys=[printed])
    assert client.get("/v1/models", headers=bearer(KEY)).status_code == 200


@settings(max_examples=25, deadline=None)
@given(key=key_text)
def test_a_key_given_in_the_config_is_refused_without_being_shown(key):
    """Ray Serve logs an app's args in plain text, so the config takes no key, only digests: a key there
    is a validation error (naming its place) whose text, in every form pydantic gives it, does not hold it;
    nor does an error about another field of a config that holds only digests."""
    given = [
        ([key_digest(OTHER_KEY), key], "api_keys.1"),
        (key, "api_keys.0"),
        ([{"prod": key}], "api_keys.0"),
        ([[key]], "api_keys.0"),
        ({"prod": key}, "api_keys"),
    ]
    for keys, where in given:
        with pytest.raises(ValidationError) as refused:
            AppConfig(api_keys=keys)
        error = refused.value
        for shown in (str(error), repr(error), error.json(), repr(error.errors())):
            assert key not in shown and key.strip() not in shown
        assert [".".join(map(str, e["loc"])) for e in error.errors()] == [where]
    with pytest.raises(ValidationError) as invalid:
        AppConfig(api_keys=[key_digest(key)], max_text_chars=0)  # an error elsewhere in the same config
    assert key_digest(key).removeprefix("sha256:") not in str(invalid.value)


@settings(max_examples=25, deadline=None)
@given(key=key_text.map(lambda key: key[:8] + " " + key[8:]))
def test_a_bad_key_in_a_file_is_refused_without_being_shown(key):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "keys"
        path.write_text(f"sk-fine-key-0000000\n{key}\n")
        with pytest.raises(ValueError) as refused:
            build_http_app(FakeBackend(), AppConfig(api_keys_file=str(path)))
    assert f"{path} line 2" in str(refused.value)
    assert key.strip() not in str(refused.value) and key[:8] not in str(refused.value)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=key_text, wrong=key_text)
def test_no_key_appears_in_the_logs(key, wrong):
    """Whatever the keys, a right key and a wrong one sent on successes, client errors, 401s and
    unknown routes: no log line of any logger, at any level, holds either."""
    client = make_client(FakeBackend(), api_keys=[key_digest(key)])
    with captured_logs() as records:
        for given_key in (key, wrong):
            client.get("/v1/models", headers=bearer(given_key))
            client.post("/v1/audio/speech", json=speech(response_format="pcm"), headers=bearer(given_key))
            client.post("/v1/audio/speech", json=speech(voice="nobody"), headers=bearer(given_key))
            client.post("/v1/voices", files={"file": ("a.wav", CLIP)}, data={"name": ""}, headers=bearer(given_key))
            client.get("/nowhere", headers={"Authorization": f"Basic {given_key}"})
    assert records  # the errors were logged
    for record in records:
        text = record.getMessage() + " " + repr(record.args) + " " + str(record.exc_info)
        assert key not in text and (wrong == key or wrong not in text), text


@contextlib.contextmanager
def captured_logs() -> Iterator[list[logging.LogRecord]]:
    """Every record logged inside the block, by any logger, at any level (Serve's "ray.serve" too,
    which does not propagate to the root)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if not any(record is kept for kept in records):  # once, if "ray.serve" propagates to the root too
                records.append(record)

    handler = Keep(logging.DEBUG)
    loggers = [logging.getLogger(), logging.getLogger("ray.serve")]
    levels = [one.level for one in loggers]
    for one in loggers:
        one.addHandler(handler)
        one.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        for one, level in zip(loggers, levels, strict=True):
            one.removeHandler(handler)
            one.setLevel(level)
