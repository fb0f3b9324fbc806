"""Audio responses over the fake backend: failures after the first bytes, empty audio, long chunks, clients gone."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import requests
from starlette.testclient import TestClient

from api.conftest import (
    MAX_TEXT,
    SECONDS_PER_CHAR,
    TEXT,
    SpeechAudioDelta,
    SpeechStreamError,
    assert_audio,
    piece,
    real_server,
    speech,
    speech_events,
    tone,
)
from deployments.api import build_http_app
from deployments.config import AppConfig


def test_failure_mid_stream_is_an_incomplete_body_not_a_short_file(backend):
    """No silent loss: raw audio that cannot be completed ends without the terminating chunk, so
    the client's HTTP library reports an incomplete body (a short, normal-looking file is the bug)."""
    backend.mode = "fail_mid"
    with real_server(build_http_app(backend, AppConfig(request_timeout_s=30))) as url:
        with httpx.stream("POST", f"{url}/v1/audio/speech", json=speech(response_format="pcm")) as response:
            assert response.status_code == 200  # sent with the first chunk
            with pytest.raises(httpx.RemoteProtocolError, match="incomplete"):
                response.read()
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            requests.post(f"{url}/v1/tts", json={"text": TEXT, "response_format": "pcm"}, timeout=10)
        # whole-file responses still get a status
        whole = httpx.post(f"{url}/v1/tts", json={"text": TEXT, "response_format": "wav", "stream": False})
        assert whole.status_code >= 500 and set(whole.json()["error"]) == {"message", "type", "param", "code"}


def test_failure_mid_stream_ends_sse_with_an_error_event(client, backend):
    backend.mode = "fail_mid"
    sse = client.post("/v1/audio/speech", json=speech(response_format="pcm", stream_format="sse"))
    *deltas, error = speech_events(sse.content)  # each event strictly one of the stream's models
    assert deltas and all(isinstance(event, SpeechAudioDelta) for event in deltas)  # no speech.audio.done
    assert isinstance(error, SpeechStreamError)
    assert (error.error.type, error.error.code) == ("server_error", "internal_error")
    assert "GPU" not in sse.text  # no internals
    assert backend.closed == 1


def test_empty_audio(client, backend):
    async def nothing(request, request_id):
        return
        yield

    backend.stream_audio = nothing
    wav = client.post("/v1/audio/speech", json=speech(response_format="wav"))
    assert wav.status_code == 200
    assert wav.content.startswith(b"RIFF") and len(wav.content) == 44  # header only
    pcm = client.post("/v1/tts", json={"text": TEXT, "response_format": "pcm", "stream": False})
    assert pcm.status_code == 200 and pcm.content == b"" and pcm.headers["content-length"] == "0"


def test_long_chunks_are_encoded_whole(client, backend):
    text = "b" * MAX_TEXT  # 4 s of audio in three chunks of 1.3 s: encoded off the event loop
    response = client.post("/v1/audio/speech", json=speech(input=text, response_format="opus"))
    assert response.status_code == 200
    assert_audio(response.content, "opus", SECONDS_PER_CHAR * MAX_TEXT)


def test_client_gone_closes_the_backend_stream(backend):
    """A listener that hangs up after the first audio: the backend's iterator is closed at once."""

    async def endless(request, request_id):
        try:
            while True:
                await asyncio.sleep(0.01)
                yield piece(tone(0.01))
        finally:
            backend.closed += 1

    backend.stream_audio = endless
    app = build_http_app(backend, AppConfig(request_timeout_s=30))
    body = json.dumps(speech(response_format="pcm")).encode()
    sent: list[dict] = []
    first_audio = asyncio.Event()
    body_read = False

    async def receive():
        nonlocal body_read
        if not body_read:
            body_read = True
            return {"type": "http.request", "body": body, "more_body": False}
        await first_audio.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)
        if message["type"] == "http.response.body" and message.get("body"):
            first_audio.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/audio/speech",
        "raw_path": b"/v1/audio/speech",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }

    async def main():
        await asyncio.wait_for(app(scope, receive, send), timeout=5)

    asyncio.run(main())
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert backend.closed == 1


def test_a_body_that_stops_arriving_gets_408(backend):
    """A client that sends headers and part of a body, then nothing: 408 in OpenAI's shape within
    body_timeout_s, not a slot held for minutes (JSON and multipart bodies)."""
    app = build_http_app(backend, AppConfig(body_timeout_s=0.5))
    partial_bodies = {
        "/v1/audio/speech": ("application/json", b'{"model": "tts-1", "in'),
        "/v1/voices": (
            "multipart/form-data; boundary=x",
            b'--x\r\nContent-Disposition: form-data; name="name"\r\n\r\nab',
        ),
    }
    for path, (content_type, partial) in partial_bodies.items():
        messages = asyncio.run(_stalled_request(app, path, content_type, partial))
        assert messages[0]["status"] == 408, path
        body = json.loads(b"".join(m.get("body", b"") for m in messages[1:]))
        assert body["error"]["code"] == "request_timeout" and "did not arrive" in body["error"]["message"]


async def _stalled_request(app, path: str, content_type: str, partial: bytes) -> list[dict]:
    """Call the ASGI app with `partial` as the start of the body and nothing after it; what it sent."""
    sent, messages = [], []

    async def receive():
        if not sent:
            sent.append(partial)
            return {"type": "http.request", "body": partial, "more_body": True}
        await asyncio.sleep(3600)  # the rest never comes

    async def send(message):
        messages.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": [(b"content-type", content_type.encode())],
             "query_string": b"", "http_version": "1.1", "scheme": "http", "server": ("t", 80), "client": ("c", 1),
             "root_path": ""}  # fmt: skip
    started = time.monotonic()
    await asyncio.wait_for(app(scope, receive, send), 10)
    assert time.monotonic() - started < 3
    return messages


def test_the_clients_own_timeout_lowers_the_deadline(backend):
    """A client that will give up after 0.2 s (x-stainless-read-timeout, as the openai SDK sends it)
    gets 504 by then, not after the server's own request_timeout_s; junk values are ignored."""
    client = TestClient(build_http_app(backend, AppConfig(request_timeout_s=30)))
    backend.mode = "sleep"  # 60 s before any audio
    started = time.monotonic()
    body = {"text": TEXT, "response_format": "wav", "stream": False}
    response = client.post("/v1/tts", json=body, headers={"x-stainless-read-timeout": "0.2"})
    assert response.status_code == 504 and time.monotonic() - started < 5
    backend.mode = None
    for junk in ("soon", "-1", "nan", "inf"):
        ok = client.post("/v1/tts", json=body, headers={"x-request-timeout-seconds": junk})
        assert ok.status_code == 200, junk
