"""Audio responses over the fake backend: failures after the first bytes, empty audio, long chunks, clients gone."""

from __future__ import annotations

import asyncio
import json

from api.conftest import MAX_TEXT, RATE, SECONDS_PER_CHAR, TEXT, assert_audio, speech, sse_events, tone
from deployments.api import build_http_app
from deployments.config import AppConfig


def test_failure_mid_stream_ends_the_stream(client, backend):
    backend.mode = "fail_mid"
    response = client.post("/v1/audio/speech", json=speech(response_format="pcm"))
    assert response.status_code == 200  # sent with the first chunk
    assert 0 < len(response.content) < 2 * round(SECONDS_PER_CHAR * len(TEXT) * RATE)
    sse = client.post("/v1/audio/speech", json=speech(response_format="pcm", stream_format="sse"))
    events = sse_events(sse.content)
    assert events[0]["type"] == "speech.audio.delta"
    assert events[-1]["type"] == "error" and set(events[-1]["error"]) == {"message", "type", "param", "code"}
    assert "GPU" not in sse.text  # no internals
    assert not any(e["type"] == "speech.audio.done" for e in events)
    assert backend.closed == 2


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
                yield tone(0.01)
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
