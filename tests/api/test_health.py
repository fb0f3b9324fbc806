"""The probes and admission while draining, through the HTTP layer over the fake backend."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest
from starlette.testclient import TestClient

from api.conftest import (
    MAX_TEXT,
    MAX_UPLOAD,
    SECONDS_PER_CHAR,
    TEXT,
    TIMEOUT_S,
    FakeBackend,
    assert_audio,
    assert_error,
    piece,
    real_server,
    speech,
    tone,
)
from deployments.api import build_http_app
from deployments.api.health import DrainingGate, with_draining
from deployments.backend import Drain
from deployments.config import AppConfig

CONFIG = AppConfig(max_text_chars=MAX_TEXT, max_upload_bytes=MAX_UPLOAD, request_timeout_s=TIMEOUT_S)


def gated_client(backend) -> TestClient:
    return TestClient(with_draining(build_http_app(backend, CONFIG)))


def test_readyz_is_503_while_draining_and_healthz_stays_200(backend, client):
    assert client.get("/readyz").status_code == 200
    backend.draining = Drain(retry_after_s=2.5)
    backend.draining.begin("test")
    response = client.get("/readyz")
    error = assert_error(response, 503, "server_error", None, "not_ready")
    assert "draining" in error["message"]
    assert response.headers["retry-after"] == "3"
    assert client.get("/healthz").json() == {"status": "ok"}
    backend.draining = False  # any flag will do
    assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/audio/speech", speech()),
        ("POST", "/v1/tts", {"text": TEXT}),
        ("GET", "/v1/voices", None),
        ("GET", "/v1/models", None),
    ],
)
def test_new_requests_get_503_with_retry_after_while_draining(backend, method, path, body):
    client = gated_client(backend)
    backend.draining = True
    response = client.request(method, path, json=body)
    error = assert_error(response, 503, "server_error", None, "server_busy")
    assert "shutting down" in error["message"]
    assert response.headers["retry-after"] == "2" and response.headers["retry-after-ms"] == "2000"
    assert response.headers["x-should-retry"] == "true"  # the openai SDK's hints, as on every 503
    assert backend.requests == [], "nothing reached the backend"
    assert client.get("/healthz").status_code == 200


def test_the_gate_passes_everything_while_not_draining(backend):
    client = gated_client(backend)
    response = client.post("/v1/tts", json={"text": TEXT, "response_format": "wav"})
    assert response.status_code == 200
    assert_audio(response.content, "wav", SECONDS_PER_CHAR * len(TEXT))


def test_the_gate_is_added_once_inside_the_request_id_middleware(backend):
    app = with_draining(with_draining(build_http_app(backend, CONFIG)))
    names = [m.cls.__name__ for m in app.user_middleware]
    assert names == ["RequestContextMiddleware", "DrainingGate"]
    assert any(m.cls is DrainingGate for m in app.user_middleware)


def test_a_backend_that_admits_through_its_drain_is_refused_the_same_way(backend, client):
    """The Ingress's handle path calls Drain.admit(); over HTTP its BackendDraining is a 503 too."""
    drain = Drain()
    original = backend.stream_audio

    async def admitting(request, request_id):
        drain.admit()
        async for chunk in original(request, request_id):
            yield chunk

    backend.stream_audio = admitting
    drain.begin("test")
    response = client.post("/v1/tts", json={"text": TEXT})
    assert_error(response, 503, "server_error", None, "server_busy")
    assert response.headers["retry-after"] == "2"


class HeldBackend(FakeBackend):
    """Streams the first chunk, then holds the rest until `release` is set (from any thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.draining = Drain()
        self.first_chunk_sent = threading.Event()
        self.release = threading.Event()

    async def stream_audio(self, request, request_id):
        self.requests.append((request, request_id))
        audio = tone(SECONDS_PER_CHAR * len(request.text))
        half = len(audio) // 2
        yield piece(audio[:half])
        self.first_chunk_sent.set()
        while not self.release.is_set():
            await asyncio.sleep(0.01)
        yield piece(audio[half:])


def test_in_flight_requests_finish_while_new_ones_are_refused():
    backend = HeldBackend()
    app = with_draining(build_http_app(backend, AppConfig(request_timeout_s=30)))
    result: dict = {}

    def in_flight(url: str) -> None:
        with httpx.stream("POST", f"{url}/v1/audio/speech", json=speech(response_format="pcm"), timeout=30) as r:
            result["status"] = r.status_code
            result["body"] = r.read()

    with real_server(app) as url:
        client = threading.Thread(target=in_flight, args=(url,))
        client.start()
        assert backend.first_chunk_sent.wait(10)
        backend.draining.begin("test")

        refused = httpx.post(f"{url}/v1/tts", json={"text": TEXT}, timeout=10)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "2"
        assert refused.json()["error"]["code"] == "server_busy"
        assert httpx.get(f"{url}/readyz", timeout=10).status_code == 503
        assert len(backend.requests) == 1, "only the request admitted before draining"

        backend.release.set()
        client.join(10)
    assert result["status"] == 200
    assert len(result["body"]) == 2 * round(SECONDS_PER_CHAR * len(TEXT) * 24_000), "the whole audio, as 24 kHz pcm"
