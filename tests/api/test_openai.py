"""OpenAI's routes over the fake backend: /v1/models and /v1/audio/speech in every format."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import time
from typing import Literal

import numpy as np
import openai
import pytest
import torch
import torchaudio
from pydantic import BaseModel, ConfigDict

from api.conftest import (
    CLIP,
    MAX_TEXT,
    RATE,
    SECONDS_PER_CHAR,
    TEXT,
    FakeBackend,
    SpeechAudioDelta,
    SpeechAudioDone,
    assert_audio,
    assert_error,
    make_client,
    real_server,
    speech,
    speech_events,
    sse_events,
    tone,
)
from deployments.api import build_http_app
from deployments.backend import MODEL_ALIASES, BackendBusy
from deployments.config import AppConfig
from deployments.request_ids import CLIENT_DEADLINE_HEADER, RequestIdGuard
from pipeline.audio import FORMATS
from pipeline.voices import OPENAI_VOICES, synthetic_embedding


class Model(BaseModel):
    """OpenAI's Model object (openai-python types/model.py; `created` is required by the spec)."""

    model_config = ConfigDict(strict=True)  # extra keys allowed: ours add speech/note and root

    id: str
    object: Literal["model"]
    created: int
    owned_by: str


ZONOS_V01_RELEASE = 1_739_145_600  # 2025-02-10 00:00 UTC, Zyphra's "Beta release of Zonos-v0.1"


def test_models(backend):
    client = make_client(backend, model_aliases=("kokoro", "tts-1"))
    body = client.get("/v1/models").json()
    assert body["object"] == "list"
    models = [Model.model_validate(entry) for entry in body["data"]]
    assert [m.id for m in models] == ["zonos-v0.1", *MODEL_ALIASES, "kokoro"]  # each name once
    assert {(m.created, m.owned_by) for m in models} == {(ZONOS_V01_RELEASE, "zyphra")}
    main, *aliases = body["data"]
    assert main["speech"] is False and main["note"] == "random-tiny fallback weights: the output is not speech"
    assert all(a["root"] == "zonos-v0.1" for a in aliases)


@pytest.mark.parametrize(
    "name", ["zonos-v0.1", "tts-1", "tts-1-hd", "gpt-4o-mini-tts", "gpt-4o-mini-tts-2025-12-15", "tts-1-hd-2024-02-29"]
)
def test_model_retrieve_and_speech_accept_every_name_and_dated_snapshot(client, name):
    response = client.get(f"/v1/models/{name}")
    assert response.status_code == 200
    assert Model.model_validate(response.json()).id == name
    assert client.post("/v1/audio/speech", json=speech(model=name, response_format="pcm")).status_code == 200


@pytest.mark.parametrize(
    "name", ["tts-2", "tts-1-2025-13-01", "tts-1-2023-02-30", "tts-1-20251215", "kokoro-2025-01-01", "zonos", "a/b"]
)
def test_unknown_models_are_404_model_not_found(client, name):
    for response in (client.get(f"/v1/models/{name}"), client.post("/v1/audio/speech", json=speech(model=name))):
        error = assert_error(response, 404, "invalid_request_error", "model", "model_not_found")
        assert f"`{name}`" in error["message"]
        assert response.headers["x-should-retry"] == "false"


def test_configured_aliases_are_models(backend):
    client = make_client(backend, model_aliases=("kokoro", "Zyphra/Zonos-v0.1-transformer"))
    for name in ("kokoro", "Zyphra/Zonos-v0.1-transformer"):
        assert client.get(f"/v1/models/{name}").json()["id"] == name
        assert client.post("/v1/audio/speech", json=speech(model=name, response_format="pcm")).status_code == 200
    assert make_client(backend).get("/v1/models/kokoro").status_code == 404


# --------------------------------------------------------------------------- /v1/audio/speech


@pytest.mark.parametrize("fmt", FORMATS)
def test_speech_every_format(client, backend, fmt):
    response = client.post("/v1/audio/speech", json=speech(response_format=fmt))
    assert response.status_code == 200
    media = {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac"}
    assert response.headers["content-type"] == media.get(fmt, f"audio/{fmt}")
    assert response.headers["x-audio-format"] == fmt
    # pcm is OpenAI's 24 kHz; the formats whose header states the rate keep the model's 44.1 kHz
    rate = {"opus": 48_000, "pcm": 24_000}.get(fmt, RATE)
    assert response.headers["x-sample-rate"] == str(rate)
    assert "content-length" not in response.headers  # streamed
    assert_audio(response.content, fmt, SECONDS_PER_CHAR * len(TEXT), rate)
    request, request_id = backend.requests[-1]
    assert request.text == TEXT and request.speaker == synthetic_embedding("alloy") and request.speaking_rate == 15.0
    assert request_id == response.headers["x-request-id"]
    assert backend.closed == 1


def test_speech_streams_in_chunks(client):
    with client.stream("POST", "/v1/audio/speech", json=speech(response_format="pcm")) as response:
        chunks = [chunk for chunk in response.iter_raw() if chunk]
    assert len(chunks) >= 3  # one per backend chunk, not one buffered body
    assert len(b"".join(chunks)) == 2 * round(SECONDS_PER_CHAR * len(TEXT) * 24_000)  # 0.56 s at 24 kHz, s16le


def test_speech_default_format_from_config(backend):
    assert make_client(backend).post("/v1/audio/speech", json=speech()).headers["x-audio-format"] == "mp3"
    wav = make_client(backend, default_response_format="wav").post("/v1/audio/speech", json=speech())
    assert wav.headers["x-audio-format"] == "wav"
    assert_audio(wav.content, "wav", SECONDS_PER_CHAR * len(TEXT))


@pytest.mark.parametrize("fmt", ["wav", "pcm"])
def test_speech_sse(client, fmt):
    """OpenAI's events, strictly: deltas of base64 audio, then done with usage = the phoneme tokens
    and codec frames of all segments (the fake: a token per character, a frame per 512 samples)."""
    response = client.post("/v1/audio/speech", json=speech(response_format=fmt, stream_format="sse"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-audio-format"] == fmt
    *deltas, done = speech_events(response.content)
    assert len(deltas) >= 3 and all(isinstance(event, SpeechAudioDelta) for event in deltas)
    audio = b"".join(base64.b64decode(event.audio) for event in deltas)
    assert_audio(audio, fmt, SECONDS_PER_CHAR * len(TEXT), int(response.headers["x-sample-rate"]))
    assert isinstance(done, SpeechAudioDone)
    segments = np.array_split(np.arange(round(SECONDS_PER_CHAR * len(TEXT) * RATE)), 3)
    frames = sum(math.ceil(len(segment) / 512) for segment in segments)
    assert (done.usage.input_tokens, done.usage.output_tokens) == (len(TEXT), frames)
    assert done.usage.total_tokens == len(TEXT) + frames


def test_sse_of_no_audio_still_ends_with_usage(client, backend):
    async def nothing(request, request_id):
        return
        yield

    backend.stream_audio = nothing
    response = client.post("/v1/audio/speech", json=speech(response_format="pcm", stream_format="sse"))
    (done,) = speech_events(response.content)  # pcm of no audio is no bytes: no delta
    assert done == SpeechAudioDone(
        type="speech.audio.done", usage={"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    )


@pytest.mark.parametrize("speed", [0.25, 0.5, 2 / 3, 1, 1.5, 2, 2.5, 3, 4])
def test_speech_speed(client, backend, speed):
    """OpenAI's playback speed: generated as at speed 1 (15 phonemes/s), time-stretched by `speed`."""
    assert client.post("/v1/audio/speech", json=speech(speed=speed, response_format="pcm")).status_code == 200
    request = backend.requests[-1][0]
    assert request.speaking_rate == 15.0 and request.tempo == pytest.approx(speed)


@pytest.mark.parametrize("model", ["zonos-v0.1", *MODEL_ALIASES])
def test_speech_models_and_instructions(client, model):
    body = speech(model=model, instructions="Speak like a pirate.", response_format="pcm")
    assert client.post("/v1/audio/speech", json=body).status_code == 200


def test_speech_voices(client, backend):
    for name in sorted(OPENAI_VOICES):
        assert client.post("/v1/audio/speech", json=speech(voice=name, response_format="pcm")).status_code == 200
        assert backend.requests[-1][0].speaker == synthetic_embedding(name)  # a fixed voice per name
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


# --------------------------------------------------------------------------- rates: OpenAI's 24 kHz pcm


def expected_pcm(rate: int) -> np.ndarray:
    """The fake's whole tone resampled by torchaudio (independently of pipeline.resample), as s16le."""
    audio = torch.from_numpy(tone(SECONDS_PER_CHAR * len(TEXT)))
    resampled = torchaudio.functional.resample(audio, RATE, rate).numpy()
    return np.rint(np.clip(resampled, -1, 1) * 32767).astype(np.int16)


@pytest.mark.parametrize("stream", [True, False])
def test_pcm_is_24khz_and_equals_torchaudio_on_the_whole_signal(client, stream):
    response = client.post("/v1/audio/speech", json=speech(response_format="pcm", stream=stream))
    assert response.status_code == 200 and response.headers["x-sample-rate"] == "24000"
    assert ("content-length" in response.headers) is not stream
    pcm = np.frombuffer(response.content, "<i2")
    assert len(response.content) == 2 * round(SECONDS_PER_CHAR * len(TEXT) * 24_000)  # duration x 24000 x 2 bytes
    assert np.abs(pcm.astype(np.int32) - expected_pcm(24_000)).max() <= 1  # float rounding at most


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("rate", [8000, 16000, 48000])
def test_sample_rate_extension(client, fmt, rate):
    response = client.post("/v1/audio/speech", json=speech(response_format=fmt, sample_rate=rate))
    assert response.status_code == 200
    actual = 48_000 if fmt == "opus" else rate  # opus is always 48 kHz
    assert response.headers["x-sample-rate"] == str(actual)
    assert_audio(response.content, fmt, SECONDS_PER_CHAR * len(TEXT), actual)
    if fmt == "pcm":
        assert np.abs(np.frombuffer(response.content, "<i2") - expected_pcm(rate).astype(np.int32)).max() <= 1


# --------------------------------------------------------------------------- extensions and seeds


def test_extensions_reach_the_synthesis_request(client, backend):
    extensions = {
        "language": "fr-fr",
        "seed": 5,
        "emotion": [1, 0, 0, 0, 0, 0, 0, 1],
        "pitch_std": 45.0,
        "cfg_scale": 3.0,
        "speaking_rate": 12.5,
        "normalize": False,
    }
    response = client.post("/v1/audio/speech", json=speech(response_format="wav", **extensions))
    assert response.status_code == 200, response.text
    request = backend.requests[-1][0]
    assert request.model_dump(include=set(extensions)) == extensions
    assert request.tempo == 1  # speaking_rate is Zonos's own control: no time-stretch
    assert response.headers["x-seed"] == "5"


def test_not_streamed_is_one_file_with_content_length(client):
    response = client.post("/v1/audio/speech", json=speech(response_format="mp3", stream=False))
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)
    assert_audio(response.content, "mp3", SECONDS_PER_CHAR * len(TEXT))  # a whole file: gapless, exact length


@pytest.mark.parametrize("path", ["/v1/audio/speech", "/v1/tts"])
def test_x_seed_repeats_the_request(client, backend, path):
    """A request without a seed gets one before it streams; X-Seed sent back asks for the same audio."""
    body = speech(response_format="pcm") if path == "/v1/audio/speech" else {"text": TEXT, "response_format": "pcm"}
    first = client.post(path, json=body)
    seed = int(first.headers["x-seed"])
    assert backend.requests[-1][0].seed == seed and 0 <= seed < 2**63
    assert int(client.post(path, json=body).headers["x-seed"]) != seed  # random each time
    again = client.post(path, json=body | {"seed": seed})
    assert again.headers["x-seed"] == str(seed) and backend.requests[-1][0].seed == seed


def test_unknown_field_is_worded_as_openai_words_it(client):
    response = client.post("/v1/audio/speech", json=speech(bogus=1))
    error = assert_error(response, 400, "invalid_request_error", "bogus", "unknown_parameter")
    assert error["message"] == "Unrecognized request argument supplied: bogus"


# --------------------------------------------------------------------------- the client's deadline


@pytest.mark.parametrize("header", ["x-stainless-read-timeout", "x-request-timeout-seconds"])
def test_the_clients_timeout_lowers_the_deadline(backend, header):
    """The openai SDK sends its read timeout; past it nobody listens, so the server gives up then (504)."""
    backend.mode = "sleep"  # would take 60 s
    client = make_client(backend, request_timeout_s=30)
    started = time.monotonic()
    response = client.post("/v1/audio/speech", json=speech(), headers={header: "0.3"})
    assert_error(response, 504, "server_error", None, "timeout")
    assert 0.3 <= time.monotonic() - started < 5
    assert response.headers["x-should-retry"] == "false"
    assert backend.closed == 1  # the backend's stream was stopped


def test_the_sdks_read_timeout_bounds_the_first_byte_not_a_stream_that_keeps_sending(backend):
    """x-stainless-read-timeout is httpx's read timeout, the longest wait for a byte: three pieces
    0.25 s apart (0.5 s in all) pass a 0.4 s read timeout, while a 0.4 s x-request-timeout-seconds
    (the whole response) cuts the same stream visibly: an SSE error event, no done event."""
    backend.piece_delay_s = 0.25
    client = make_client(backend, request_timeout_s=30)
    body = speech(response_format="pcm", stream_format="sse")
    read = client.post("/v1/audio/speech", json=body, headers={"x-stainless-read-timeout": "0.4"})
    assert [e["type"] for e in sse_events(read.content)][-1] == "speech.audio.done"
    total = client.post("/v1/audio/speech", json=body, headers={"x-request-timeout-seconds": "0.4"})
    last = sse_events(total.content)[-1]
    assert last["type"] == "error" and last["error"]["code"] == "timeout"


def test_serves_proxy_hands_the_request_timeout_header_to_the_app():
    """Serve's proxy would answer x-request-timeout-seconds itself (a plain-text 408 the SDK retries);
    the proxy guard renames it, and the app reads the new name as the client's deadline."""
    seen = {}

    async def app(scope, receive, send):
        seen.update(dict(scope["headers"]))

    guard = RequestIdGuard(app)
    scope = {"type": "http", "headers": [(b"x-request-timeout-seconds", b"0.3"), (b"accept", b"*/*")]}
    asyncio.run(guard(scope, None, None))
    assert b"x-request-timeout-seconds" not in seen and seen[CLIENT_DEADLINE_HEADER.encode()] == b"0.3"
    backend = FakeBackend()
    backend.mode = "sleep"
    client = make_client(backend, request_timeout_s=30)
    response = client.post("/v1/audio/speech", json=speech(), headers={CLIENT_DEADLINE_HEADER: "0.3"})
    assert_error(response, 504, "server_error", None, "timeout")


# --------------------------------------------------------------------------- the openai SDK, over real HTTP


class Counted:
    """ASGI middleware that notes when each request arrived, to count a client's retries."""

    def __init__(self, app):
        self.app, self.arrivals = app, []

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            self.arrivals.append(time.monotonic())
        await self.app(scope, receive, send)


@contextlib.contextmanager
def sdk(backend, **config):
    """An openai SDK client on a real server over the fake backend, and the server's arrival log."""
    settings = {"max_text_chars": MAX_TEXT, "request_timeout_s": 30} | config
    app = Counted(build_http_app(backend, AppConfig(**settings)))
    with real_server(app) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="unused"), app.arrivals


def test_sdk_models_list_and_retrieve(backend):
    with sdk(backend, model_aliases=("kokoro",)) as (client, _):
        models = client.models.list().data
        assert [m.id for m in models] == ["zonos-v0.1", *MODEL_ALIASES, "kokoro"]
        assert all(m.created == ZONOS_V01_RELEASE and m.object == "model" for m in models)
        assert client.models.retrieve("gpt-4o-mini-tts-2025-12-15").id == "gpt-4o-mini-tts-2025-12-15"
        with pytest.raises(openai.NotFoundError) as raised:
            client.models.retrieve("tts-2")
        assert raised.value.code == "model_not_found"


def test_sdk_extensions_and_bad_input(backend):
    with sdk(backend) as (client, arrivals):
        audio = client.audio.speech.create(
            model="tts-1", voice="alloy", input=TEXT, response_format="pcm", extra_body={"seed": 5, "language": "fr-fr"}
        )
        assert len(audio.content) == 2 * round(SECONDS_PER_CHAR * len(TEXT) * 24_000)
        request = backend.requests[-1][0]
        assert (request.seed, request.language) == (5, "fr-fr")
        for extra, param in [({"bogus": 1}, "bogus"), ({"seed": -1}, "seed"), ({"sample_rate": 1}, "sample_rate")]:
            with pytest.raises(openai.BadRequestError) as raised:
                client.audio.speech.create(model="tts-1", voice="alloy", input=TEXT, extra_body=extra)
            assert raised.value.param == param
        assert len(arrivals) == 4


@pytest.mark.parametrize(
    ("mode", "error"), [("sleep", openai.InternalServerError), ("crash", openai.InternalServerError)]
)
def test_sdk_does_not_retry_a_504_or_a_500(backend, mode, error):
    """The SDK retries every status >= 500 twice unless x-should-retry says false: after the deadline
    (504) or a bug (500) the same request fails the same way, so it must not run three times."""
    if mode == "crash":

        async def crash(request, request_id):
            raise RuntimeError("a bug")
            yield

        backend.stream_audio = crash
    else:
        backend.mode = mode
    with sdk(backend, request_timeout_s=0.3) as (client, arrivals):
        with pytest.raises(error) as raised:
            client.audio.speech.create(model="tts-1", voice="alloy", input=TEXT)
        assert raised.value.status_code == (504 if mode == "sleep" else 500)
        assert len(arrivals) == 1


def test_sdk_does_not_retry_a_409(backend):
    """The SDK retries 409 (a lock timeout, to OpenAI) unless told not to; voice_exists will not go away."""
    with sdk(backend) as (client, arrivals):
        form = {"body": {"name": "Taken"}, "files": [("file", ("c.wav", CLIP, "audio/wav"))]}
        options = {"headers": {"Content-Type": "multipart/form-data"}}
        client.post("/voices", cast_to=object, options=options, **form)
        with pytest.raises(openai.ConflictError):
            client.post("/voices", cast_to=object, options=options, **form)
        assert len(arrivals) == 2


def test_sdk_retries_a_503_after_retry_after_ms(backend):
    """Busy once: the SDK waits what retry-after-ms says (1.3 s; Retry-After says 2, the SDK's own
    backoff would be under 0.5 s) and its retry gets the audio."""
    calls = []
    original = backend.stream_audio

    async def busy_once(request, request_id):
        calls.append(request_id)
        if len(calls) == 1:
            raise BackendBusy("queue full", retry_after_s=1.3)
        async for audio_piece in original(request, request_id):
            yield audio_piece

    backend.stream_audio = busy_once
    with sdk(backend) as (client, arrivals):
        audio = client.audio.speech.create(model="tts-1", voice="alloy", input=TEXT, response_format="pcm")
        assert len(audio.content) == 2 * round(SECONDS_PER_CHAR * len(TEXT) * 24_000)
        assert len(arrivals) == 2
        assert 1.3 <= arrivals[1] - arrivals[0] < 2.0
