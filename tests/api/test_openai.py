"""OpenAI's routes over the fake backend: /v1/models and /v1/audio/speech in every format."""

from __future__ import annotations

import base64

import pytest

from api.conftest import CLIP, RATE, SECONDS_PER_CHAR, TEXT, assert_audio, make_client, speech, sse_events
from deployments.api.openai import OPENAI_VOICES
from deployments.backend import MODEL_ALIASES
from pipeline.audio import FORMATS


def test_models(client):
    body = client.get("/v1/models").json()
    assert body["object"] == "list"
    main, *aliases = body["data"]
    assert main == {
        "id": "zonos-v0.1",
        "object": "model",
        "owned_by": "zyphra",
        "speech": False,
        "note": "random-tiny fallback weights: the output is not speech",
    }
    assert [a["id"] for a in aliases] == list(MODEL_ALIASES)
    assert all(a["root"] == "zonos-v0.1" and a["object"] == "model" for a in aliases)


# --------------------------------------------------------------------------- /v1/audio/speech


@pytest.mark.parametrize("fmt", FORMATS)
def test_speech_every_format(client, backend, fmt):
    response = client.post("/v1/audio/speech", json=speech(response_format=fmt))
    assert response.status_code == 200
    media = {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac"}
    assert response.headers["content-type"] == media.get(fmt, f"audio/{fmt}")
    assert response.headers["x-audio-format"] == fmt
    assert response.headers["x-sample-rate"] == ("48000" if fmt == "opus" else "44100")
    assert "content-length" not in response.headers  # streamed
    assert_audio(response.content, fmt, SECONDS_PER_CHAR * len(TEXT))
    request, request_id = backend.requests[-1]
    assert request.text == TEXT and request.speaker is None and request.speaking_rate == 15.0
    assert request_id == response.headers["x-request-id"]
    assert backend.closed == 1


def test_speech_streams_in_chunks(client):
    with client.stream("POST", "/v1/audio/speech", json=speech(response_format="pcm")) as response:
        chunks = [chunk for chunk in response.iter_raw() if chunk]
    assert len(chunks) >= 3  # one per backend chunk, not one buffered body
    assert len(b"".join(chunks)) == 2 * round(SECONDS_PER_CHAR * len(TEXT) * RATE)


def test_speech_default_format_from_config(backend):
    assert make_client(backend).post("/v1/audio/speech", json=speech()).headers["x-audio-format"] == "mp3"
    wav = make_client(backend, default_response_format="wav").post("/v1/audio/speech", json=speech())
    assert wav.headers["x-audio-format"] == "wav"
    assert_audio(wav.content, "wav", SECONDS_PER_CHAR * len(TEXT))


def test_speech_sse(client):
    response = client.post("/v1/audio/speech", json=speech(response_format="wav", stream_format="sse"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-audio-format"] == "wav"
    events = sse_events(response.content)
    *deltas, done = events
    assert done == {"type": "speech.audio.done"}
    assert len(deltas) >= 3 and all(set(e) == {"type", "audio"} and e["type"] == "speech.audio.delta" for e in deltas)
    audio = b"".join(base64.b64decode(e["audio"]) for e in deltas)
    assert_audio(audio, "wav", SECONDS_PER_CHAR * len(TEXT))


@pytest.mark.parametrize(("speed", "rate"), [(0.25, 3.75), (1, 15.0), (2, 30.0), (2.5, 37.5), (4, 40.0)])
def test_speech_speed(client, backend, speed, rate):
    assert client.post("/v1/audio/speech", json=speech(speed=speed, response_format="pcm")).status_code == 200
    assert backend.requests[-1][0].speaking_rate == rate


@pytest.mark.parametrize("model", ["zonos-v0.1", *MODEL_ALIASES])
def test_speech_models_and_instructions(client, model):
    body = speech(model=model, instructions="Speak like a pirate.", response_format="pcm")
    assert client.post("/v1/audio/speech", json=body).status_code == 200


def test_speech_voices(client, backend):
    for name in sorted(OPENAI_VOICES):
        assert client.post("/v1/audio/speech", json=speech(voice=name, response_format="pcm")).status_code == 200
        assert backend.requests[-1][0].speaker is None
    voice = client.post("/v1/voices", files={"file": ("a.wav", CLIP)}, data={"name": "Alice"}).json()
    for ref in ("Alice", voice["id"], {"id": voice["id"]}):
        assert client.post("/v1/audio/speech", json=speech(voice=ref, response_format="pcm")).status_code == 200
        assert backend.requests[-1][0].speaker == backend.embeddings[voice["id"]]
    # a library voice named like a built-in one wins
    nova = client.post("/v1/voices", files={"file": ("n.wav", CLIP + b"\0")}, data={"name": "nova"}).json()
    assert client.post("/v1/audio/speech", json=speech(voice="nova", response_format="pcm")).status_code == 200
    assert backend.requests[-1][0].speaker == backend.embeddings[nova["id"]]


@pytest.mark.parametrize("escaped", ['"Hello \\ud83d there."', '"\\udc00Hello there."', '"Hello there.\\ud83d"'])
def test_a_lone_surrogate_escape_is_dropped_not_refused(client, backend, escaped):
    """Half an emoji (a client cut a surrogate pair) is no character: the text is spoken without it."""
    body = '{"model": "tts-1", "voice": "alloy", "response_format": "wav", "input": ' + escaped + "}"
    response = client.post("/v1/audio/speech", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    spoken, _ = backend.requests[-1]
    assert spoken.text.replace(" ", "") == "Hellothere."
