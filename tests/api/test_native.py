"""The native route over the fake backend: /v1/tts with every control, JSON or multipart, streamed or not."""

from __future__ import annotations

import json

import pytest

from api.conftest import CLIP, RATE, SECONDS_PER_CHAR, TEXT, assert_audio, assert_error
from pipeline.synthesis import SynthesisRequest


def test_tts_json_every_control(client, backend):
    body = {
        "text": TEXT,
        "language": "de",
        "emotion": [1, 0, 0, 0, 0, 0, 0, 1],
        "pitch_std": 45.0,
        "speaking_rate": 12.5,
        "fmax": 24000,
        "cfg_scale": 3.0,
        "sampling": {"temperature": 0.7, "min_p": 0.05, "top_k": 50, "repetition_penalty": 2.0},
        "seed": 1234,
        "unconditional_keys": ["emotion"],
        "pause_ms": 100,
        "crossfade_ms": 10,
        "max_tokens_per_segment": 200,
        "speaker": [0.25] * 128,
        "response_format": "flac",
    }
    response = client.post("/v1/tts", json=body)
    assert response.status_code == 200
    assert response.headers["x-audio-format"] == "flac" and response.headers["x-sample-rate"] == "44100"
    assert "content-length" not in response.headers
    assert_audio(response.content, "flac", SECONDS_PER_CHAR * len(TEXT))
    request = backend.requests[-1][0]
    assert isinstance(request, SynthesisRequest)
    expected = {k: v for k, v in body.items() if k not in ("sampling", "response_format")}
    assert request.model_dump(include=set(expected)) == expected
    assert request.sampling.temperature == 0.7 and request.sampling.top_k == 50
    assert request.sampling.top_p == 0.0  # defaults kept


def test_tts_not_streamed(client):
    response = client.post("/v1/tts", json={"text": TEXT, "stream": False, "response_format": "mp3"})
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.headers["content-type"] == "audio/mpeg"
    # a whole file gets mp3's gapless tag, so it decodes to the exact length
    assert_audio(response.content, "mp3", SECONDS_PER_CHAR * len(TEXT))


def test_tts_not_streamed_failure_gets_its_status(client, backend):
    backend.mode = "timeout_mid"  # after the first chunk: a stream would have sent its 200 by then
    assert_error(client.post("/v1/tts", json={"text": TEXT, "stream": False}), 504, "server_error", None, "timeout")
    backend.mode = "busy"
    assert_error(client.post("/v1/tts", json={"text": TEXT, "stream": False}), 503, "server_error", None, "server_busy")


def test_tts_voice(client, backend):
    voice = client.post("/v1/voices", files={"file": ("a.wav", CLIP)}, data={"name": "Bob"}).json()
    assert client.post("/v1/tts", json={"text": TEXT, "voice": "Bob", "response_format": "pcm"}).status_code == 200
    assert backend.requests[-1][0].speaker == backend.embeddings[voice["id"]]
    assert client.post("/v1/tts", json={"text": TEXT, "response_format": "pcm"}).status_code == 200
    assert backend.requests[-1][0].speaker is None


def test_tts_multipart(client, backend):
    request = {"text": TEXT, "seed": 7, "response_format": "wav", "sampling": {"temperature": 0.5}}
    files = {"file": ("me.wav", CLIP, "audio/wav")}
    response = client.post("/v1/tts", files=files, data={"request": json.dumps(request)})
    assert response.status_code == 200, response.text
    assert_audio(response.content, "wav", SECONDS_PER_CHAR * len(TEXT))
    synthesis = backend.requests[-1][0]
    assert synthesis.speaker == [len(CLIP) / 10_000] * 128
    assert synthesis.seed == 7 and synthesis.sampling.temperature == 0.5
    # without a clip the multipart form is just the JSON request
    assert client.post("/v1/tts", files={"request": (None, json.dumps(request))}).status_code == 200
    assert backend.requests[-1][0].speaker is None


@pytest.mark.parametrize("stream", [True, False])
def test_tts_sample_rate(client, stream):
    """/v1/tts keeps the model's 44.1 kHz unless `sample_rate` asks for another (opus: always 48 kHz)."""
    pcm = client.post("/v1/tts", json={"text": TEXT, "response_format": "pcm", "stream": stream})
    assert pcm.headers["x-sample-rate"] == "44100"
    assert len(pcm.content) == 2 * round(SECONDS_PER_CHAR * len(TEXT) * RATE)
    for fmt, rate in [("flac", 16000), ("wav", 8000), ("mp3", 22050), ("opus", 16000), ("pcm", 48000)]:
        body = {"text": TEXT, "response_format": fmt, "sample_rate": rate, "stream": stream}
        response = client.post("/v1/tts", json=body)
        assert response.status_code == 200, response.text
        actual = 48_000 if fmt == "opus" else rate
        assert response.headers["x-sample-rate"] == str(actual)
        assert_audio(response.content, fmt, SECONDS_PER_CHAR * len(TEXT), actual)


def test_openai_builtin_names_are_the_same_fixed_voices_on_tts(client, backend):
    """A built-in name (alloy) is one fixed voice on both speech routes: /v1/tts sends the backend
    the very embedding /v1/audio/speech does."""
    assert client.post("/v1/tts", json={"text": "Hello there.", "voice": "alloy", "stream": False}).status_code == 200
    native = backend.requests[-1][0].speaker
    response = client.post("/v1/audio/speech", json={"model": "tts-1", "input": "Hello there.", "voice": "alloy"})
    assert response.status_code == 200
    assert native is not None and backend.requests[-1][0].speaker == native
