"""The app as a whole over the fake backend: probes, request ids, routes and methods."""

from __future__ import annotations

import re

from api.conftest import assert_error, speech


def test_healthz(client, backend):
    backend.is_ready = False
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz(client, backend):
    assert client.get("/readyz").json() == {"status": "ready"}
    backend.is_ready = False
    assert_error(client.get("/readyz"), 503, "server_error", None, "not_ready")
    backend.is_ready = RuntimeError("models still loading")
    assert_error(client.get("/readyz"), 503, "server_error", None, "not_ready")


def test_request_id(client):
    echoed = client.post("/v1/audio/speech", json=speech(response_format="pcm"), headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    fresh = client.get("/v1/models")
    other = client.get("/v1/models")
    assert fresh.headers["x-request-id"] != other.headers["x-request-id"]
    for invalid in ["x" * 129, "has space", "semi;colon", 'quote"d']:
        replaced = client.get("/v1/models", headers={"X-Request-ID": invalid})
        assert replaced.status_code == 200  # replaced, never refused
        assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["x-request-id"])
    assert client.get("/nowhere", headers={"X-Request-ID": "err-1"}).headers["x-request-id"] == "err-1"


def test_405_lists_the_allowed_methods(client):
    assert set(client.put("/v1/voices").headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
    assert set(client.post("/v1/voices/x").headers["allow"].split(", ")) == {"GET", "HEAD", "DELETE"}
    assert client.get("/v1/tts").headers["allow"] == "POST"
