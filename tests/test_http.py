"""The HTTP layer over a fake backend: every route, every format decoded back, and bad input of every kind."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from fractions import Fraction

import av
import numpy as np
import pytest
from starlette.testclient import TestClient

from deployments.config import AppConfig
from deployments.http import MODEL_ALIASES, OPENAI_VOICES, BackendBusy, VoiceInfo, build_http_app
from pipeline.audio import FORMATS, encode_audio
from pipeline.speaker import SpeakerEncoder
from pipeline.synthesis import SynthesisRequest
from pipeline.voices import DuplicateVoiceNameError

RATE = 44100
SECONDS_PER_CHAR = 0.02  # the fake backend speaks 50 characters a second
TEXT = "Hello from the fake backend."  # 28 characters: 0.56 s
MAX_TEXT = 200
MAX_UPLOAD = 4096
TIMEOUT_S = 1.0
DEMUXERS = {"wav": "wav", "flac": "flac", "mp3": "mp3", "opus": "ogg", "aac": "aac"}
# Streamed mp3 keeps its encoder delay and padding, ADTS can't carry AAC's priming samples.
EXTRA_S = {"mp3": 0.053, "aac": 0.047, "opus": 0.002}


def tone(seconds: float) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


CLIP = encode_audio(tone(0.02), RATE, "wav")  # a 1.8 KB voice clip


class FakeBackend:
    """Streams a 440 Hz tone of 20 ms per character in three chunks; voices live in a dict.

    `mode` makes the next streams misbehave: busy, sleep (past the request timeout), timeout,
    value (a request the model refuses), fail_mid and timeout_mid (an error after the first chunk).
    """

    def __init__(self) -> None:
        self.mode: str | None = None
        self.is_ready: bool | Exception = True
        self.voices: dict[str, VoiceInfo] = {}
        self.embeddings: dict[str, list[float]] = {}
        self.requests: list[tuple[SynthesisRequest, str]] = []
        self.closed = 0

    async def ready(self) -> bool:
        if isinstance(self.is_ready, Exception):
            raise self.is_ready
        return self.is_ready

    def model_card(self) -> dict:
        return {"id": "zonos-v0.1", "speech": False, "note": "random-tiny fallback weights: the output is not speech"}

    async def stream_audio(self, request: SynthesisRequest, request_id: str):
        self.requests.append((request, request_id))
        try:
            if self.mode == "busy":
                raise BackendBusy("generator queue is full", retry_after_s=2.5)
            if self.mode == "sleep":
                await asyncio.sleep(60)
            if self.mode == "timeout":
                raise TimeoutError("the engine timed out")
            if self.mode == "value":
                raise ValueError("segment 0 has 900 phoneme tokens, more than the engine leaves room for")
            audio = tone(SECONDS_PER_CHAR * len(request.text))
            for i, chunk in enumerate(np.array_split(audio, 3)):
                if self.mode == "fail_mid" and i == 1:
                    raise RuntimeError("the GPU fell off the bus")
                if self.mode == "timeout_mid" and i == 1:
                    raise TimeoutError("the vocoder timed out")
                await asyncio.sleep(0)
                yield chunk
        finally:
            self.closed += 1

    async def embed_clip(self, clip: bytes) -> list[float]:
        if not clip.startswith(b"RIFF"):
            raise ValueError("could not decode the audio clip: unknown format")
        return [len(clip) / 10_000] * 128

    async def create_voice(self, name: str, clip: bytes) -> VoiceInfo:
        if any(v.name == name for v in self.voices.values()):
            raise DuplicateVoiceNameError(name)
        embedding = await self.embed_clip(clip)
        voice = VoiceInfo(id=f"voice_{len(self.voices):04d}", name=name, created_at=1_700_000_000)
        self.voices[voice.id] = voice
        self.embeddings[voice.id] = embedding
        return voice

    async def list_voices(self) -> list[VoiceInfo]:
        return list(self.voices.values())

    async def get_voice(self, id_or_name: str) -> VoiceInfo | None:
        if id_or_name in self.voices:
            return self.voices[id_or_name]
        return next((v for v in self.voices.values() if v.name == id_or_name), None)

    async def delete_voice(self, voice_id: str) -> bool:
        self.embeddings.pop(voice_id, None)
        return self.voices.pop(voice_id, None) is not None

    async def voice_embedding(self, id_or_name: str) -> list[float] | None:
        voice = await self.get_voice(id_or_name)
        return None if voice is None else self.embeddings[voice.id]


def make_client(backend: FakeBackend, **config) -> TestClient:
    settings = {"max_text_chars": MAX_TEXT, "max_upload_bytes": MAX_UPLOAD, "request_timeout_s": TIMEOUT_S} | config
    return TestClient(build_http_app(backend, AppConfig(**settings)))


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def client(backend) -> TestClient:
    return make_client(backend)


def speech(**fields) -> dict:
    return {"model": "tts-1", "input": TEXT, "voice": "alloy"} | fields


def decode(data: bytes, fmt: str) -> tuple[np.ndarray, int, int]:
    """(samples, rate, channels) as a client would read them; raw pcm is s16le mono at 44.1 kHz."""
    if fmt == "pcm":
        return np.frombuffer(data, "<i2"), RATE, 1
    with av.open(io.BytesIO(data), format=DEMUXERS[fmt]) as container:
        frames = list(container.decode(audio=0))
    samples = np.concatenate([frame.to_ndarray().reshape(-1) for frame in frames])
    return samples, frames[0].sample_rate, frames[0].layout.nb_channels


def assert_audio(data: bytes, fmt: str, seconds: float) -> None:
    samples, rate, channels = decode(data, fmt)
    assert channels == 1
    assert rate == (48_000 if fmt == "opus" else RATE)
    duration = len(samples) / rate
    assert seconds - 0.002 <= duration <= seconds + EXTRA_S.get(fmt, 0) + 0.002, (fmt, duration, seconds)


def sse_events(body: bytes) -> list[dict]:
    blocks = body.decode().split("\n\n")
    assert blocks[-1] == ""  # every event ends with a blank line
    events = []
    for block in blocks[:-1]:
        assert block.startswith("data: ") and "\n" not in block
        events.append(json.loads(block.removeprefix("data: ")))
    return events


def assert_error(response, status: int, type_: str, param: str | None, code: str | None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"]
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert (error["type"], error["param"], error["code"]) == (type_, param, code), error
    assert "Traceback" not in response.text
    return error


# --------------------------------------------------------------------------- probes and models


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


def test_request_id(client):
    echoed = client.post("/v1/audio/speech", json=speech(response_format="pcm"), headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    fresh = client.get("/v1/models")
    other = client.get("/v1/models")
    assert fresh.headers["x-request-id"] != other.headers["x-request-id"]
    replaced = client.get("/v1/models", headers={"X-Request-ID": "x" * 500})
    assert replaced.headers["x-request-id"] != "x" * 500
    assert client.get("/nowhere", headers={"X-Request-ID": "err-1"}).headers["x-request-id"] == "err-1"


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


# --------------------------------------------------------------------------- /v1/tts


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


# --------------------------------------------------------------------------- /v1/voices


def test_voices_crud(client):
    assert client.get("/v1/voices").json() == {"object": "list", "data": []}
    created = client.post("/v1/voices", files={"file": ("a.wav", CLIP, "audio/wav")}, data={"name": "  Carol "})
    assert created.status_code == 201
    voice = created.json()
    assert voice == {"id": voice["id"], "name": "Carol", "created_at": 1_700_000_000, "object": "voice"}
    assert created.headers["location"] == f"/v1/voices/{voice['id']}"
    assert client.get("/v1/voices").json() == {"object": "list", "data": [voice]}
    assert client.get(f"/v1/voices/{voice['id']}").json() == voice
    assert client.get("/v1/voices/Carol").json() == voice
    deleted = client.delete("/v1/voices/Carol")
    assert deleted.status_code == 200
    assert deleted.json() == {"id": voice["id"], "object": "voice.deleted", "deleted": True}
    assert_error(client.get(f"/v1/voices/{voice['id']}"), 404, "invalid_request_error", "voice_id", "voice_not_found")
    assert client.get("/v1/voices").json()["data"] == []


# --------------------------------------------------------------------------- bad input

JSON = {"content-type": "application/json"}
MULTIPART = {"content-type": "multipart/form-data"}  # without its boundary
FAR_TOO_LONG = "a" * (MAX_TEXT + 1)


def clip_form(name: str | None = "Dave", clip: bytes = CLIP, **extra) -> dict:
    data = ({} if name is None else {"name": name}) | extra
    return {"files": {"file": ("clip.wav", clip, "audio/wav")}, "data": data}


def tts_form(request, clip: bytes = CLIP) -> dict:
    part = request if isinstance(request, str) else json.dumps(request)
    return {"files": {"file": ("clip.wav", clip, "audio/wav")}, "data": {"request": part}}


SPEECH, TTS, VOICES = "/v1/audio/speech", "/v1/tts", "/v1/voices"


def case(name, status, code, param=None, *, method="POST", path=SPEECH, mode=None, **request):
    """One bad request: what it sends (`request`: TestClient.request's keyword arguments) and the
    error it must get; `mode` makes the fake backend misbehave for it."""
    return pytest.param(method, path, request, mode, status, param, code, id=name)


MATRIX = [
    # malformed bodies: 400
    case("invalid-json", 400, "invalid_json", content=b'{"model": ', headers=JSON),
    case("nan", 400, "invalid_json", content=json.dumps(speech(speed=float("nan"))), headers=JSON),
    case("infinity", 400, "invalid_json", path=TTS, content=b'{"text":"hi","speaker":[Infinity]}', headers=JSON),
    case("empty-body", 400, "invalid_json", content=b"", headers=JSON),
    case("json-array", 400, "invalid_body", json=[speech()]),
    case("json-string", 400, "invalid_body", path=TTS, json="hello"),
    case("deep-nesting", 400, "invalid_json", path=TTS, content=b"[" * 200_000, headers=JSON),
    case("not-utf8", 400, "invalid_json", path=TTS, content=b'{"text": "\xff\xfe"}', headers=JSON),
    case("text-plain", 400, "invalid_content_type", content=json.dumps(speech()),
         headers={"content-type": "text/plain"}),
    case("no-content-type", 400, "invalid_content_type", content=json.dumps(speech()).encode()),
    case("form-urlencoded", 400, "invalid_content_type", path=TTS, data={"text": "hi"}),
    case("voices-json", 400, "invalid_content_type", path=VOICES, json={"name": "x"}),
    case("no-boundary", 400, "invalid_multipart", path=VOICES, content=b"--x\r\n", headers=MULTIPART),
    case("request-part-not-json", 400, "invalid_json", "request", path=TTS, **tts_form("{text: hi}")),
    # invalid fields: 422
    case("missing-model", 422, "missing", "model", json={"input": "hi", "voice": "alloy"}),
    case("missing-input", 422, "missing", "input", json={"model": "tts-1", "voice": "alloy"}),
    case("missing-voice", 422, "missing", "voice", json={"model": "tts-1", "input": "hi"}),
    case("empty-input", 422, "string_too_short", "input", json=speech(input="")),
    case("blank-input", 422, "value_error", "input", json=speech(input="  \n ")),
    case("input-number", 422, "string_type", "input", json=speech(input=42)),
    case("speed-low", 422, "greater_than_equal", "speed", json=speech(speed=0.1)),
    case("speed-high", 422, "less_than_equal", "speed", json=speech(speed=4.5)),
    case("speed-word", 422, "float_parsing", "speed", json=speech(speed="fast")),
    case("speed-overflow", 422, "finite_number", "speed", content=json.dumps(speech(speed=0)).replace("0}", "1e400}"),
         headers=JSON),
    case("bad-format", 422, "literal_error", "response_format", json=speech(response_format="ogg")),
    case("bad-stream-format", 422, "literal_error", "stream_format", json=speech(stream_format="websocket")),
    case("speech-unknown-field", 422, "extra_forbidden", "temperature", json=speech(temperature=0.5)),
    case("tts-missing-text", 422, "missing", "text", path=TTS, json={"seed": 1}),
    case("tts-unknown-field", 422, "extra_forbidden", "speed", path=TTS, json={"text": "hi", "speed": 1.0}),
    case("tts-unknown-sampling-field", 422, "extra_forbidden", "sampling.temp", path=TTS,
         json={"text": "hi", "sampling": {"temp": 1}}),
    case("tts-voice-and-speaker", 422, "conflicting_fields", "speaker", path=TTS,
         json={"text": "hi", "voice": "taken", "speaker": [0.0] * 128}),
    case("tts-speaker-length", 422, "value_error", "speaker", path=TTS, json={"text": "hi", "speaker": [0.0] * 127}),
    case("tts-speaker-text", 422, "list_type", "speaker", path=TTS, json={"text": "hi", "speaker": "Alice"}),
    case("tts-speaker-overflow", 422, "finite_number", "speaker.0", path=TTS,
         content=b'{"text": "hi", "speaker": [1e400]}', headers=JSON),
    case("tts-temperature", 422, "less_than_equal", "sampling.temperature", path=TTS,
         json={"text": "hi", "sampling": {"temperature": 50}}),
    case("tts-cfg-scale", 422, "greater_than_equal", "cfg_scale", path=TTS, json={"text": "hi", "cfg_scale": 0.5}),
    case("tts-language", 422, "value_error", "language", path=TTS, json={"text": "hi", "language": "klingon"}),
    case("tts-emotion", 422, "value_error", "emotion", path=TTS, json={"text": "hi", "emotion": [1, 2, 3]}),
    case("tts-unconditional-key", 422, "literal_error", "unconditional_keys.0", path=TTS,
         json={"text": "hi", "unconditional_keys": ["voice"]}),
    case("tts-seed", 422, "greater_than_equal", "seed", path=TTS, json={"text": "hi", "seed": -1}),
    case("tts-stream", 422, "bool_parsing", "stream", path=TTS, json={"text": "hi", "stream": "maybe"}),
    case("tts-format", 422, "literal_error", "response_format", path=TTS,
         json={"text": "hi", "response_format": "m4a"}),
    case("tts-blank-text", 422, "value_error", "text", path=TTS, json={"text": " "}),
    case("tts-clip-and-voice", 422, "conflicting_fields", "voice", path=TTS,
         **tts_form({"text": "hi", "voice": "taken"})),
    case("tts-bad-clip", 422, "invalid_audio", "file", path=TTS, **tts_form({"text": "hi"}, clip=b"OggS not a wav")),
    case("tts-unknown-part", 422, "extra_forbidden", "x", path=TTS,
         files={"file": ("c.wav", CLIP)}, data={"request": "{}", "x": "1"}),
    case("tts-missing-request-part", 422, "missing", "request", path=TTS, files={"file": ("c.wav", CLIP)}),
    case("voices-bad-clip", 422, "invalid_audio", "file", path=VOICES, **clip_form(clip=b"garbage")),
    case("voices-empty-clip", 422, "invalid_audio", "file", path=VOICES, **clip_form(clip=b"")),
    case("voices-missing-name", 422, "missing", "name", path=VOICES, **clip_form(name=None)),
    case("voices-blank-name", 422, "invalid_value", "name", path=VOICES, **clip_form(name="   ")),
    case("voices-long-name", 422, "invalid_value", "name", path=VOICES, **clip_form(name="x" * 101)),
    case("voices-missing-file", 422, "missing", "file", path=VOICES, files={"name": (None, "Eve")}),
    case("voices-file-as-field", 422, "invalid_type", "file", path=VOICES,
         files={"name": (None, "Eve"), "file": (None, "RIFF")}),
    case("backend-refuses", 422, "invalid_value", mode="value", json=speech()),
    # not found: 404
    case("unknown-model", 404, "model_not_found", "model", json=speech(model="tts-2")),
    case("unknown-voice", 404, "voice_not_found", "voice", json=speech(voice="nobody")),
    case("tts-builtin-voice", 404, "voice_not_found", "voice", path=TTS, json={"text": "hi", "voice": "alloy"}),
    case("get-unknown-voice", 404, "voice_not_found", "voice_id", method="GET", path="/v1/voices/voice_ffff"),
    case("delete-unknown-voice", 404, "voice_not_found", "voice_id", method="DELETE", path="/v1/voices/nobody"),
    case("unknown-route", 404, "not_found", method="GET", path="/v1/audio/transcriptions"),
    case("unknown-route-post", 404, "not_found", path="/v2/tts", json={}),
    # method not allowed: 405
    case("get-speech", 405, "method_not_allowed", method="GET"),
    case("delete-models", 405, "method_not_allowed", method="DELETE", path="/v1/models"),
    case("put-voices", 405, "method_not_allowed", method="PUT", path=VOICES, json={}),
    case("post-healthz", 405, "method_not_allowed", path="/healthz"),
    # conflict: 409
    case("duplicate-voice", 409, "voice_exists", "name", path=VOICES, **clip_form(name="taken")),
    # too large: 413
    case("input-too-long", 413, "input_too_long", "input", json=speech(input=FAR_TOO_LONG)),
    case("text-too-long", 413, "input_too_long", "text", path=TTS, json={"text": FAR_TOO_LONG}),
    case("multipart-text-too-long", 413, "input_too_long", "text", path=TTS, **tts_form({"text": FAR_TOO_LONG})),
    case("json-body-too-large", 413, "request_too_large", path=TTS, content=b" " * (2 * 1024 * 1024), headers=JSON),
    case("clip-too-big", 413, "upload_too_large", "file", path=VOICES, **clip_form(clip=CLIP + bytes(MAX_UPLOAD))),
    case("upload-huge", 413, "upload_too_large", "file", path=VOICES, **clip_form(clip=b"RIFF" + bytes(3 * 2**20))),
    case("tts-clip-too-big", 413, "upload_too_large", "file", path=TTS,
         **tts_form({"text": "hi"}, clip=CLIP + bytes(MAX_UPLOAD))),
    # backend trouble: 503, 504
    case("busy", 503, "server_busy", mode="busy", json=speech()),
    case("busy-tts", 503, "server_busy", mode="busy", path=TTS, json={"text": "hi", "stream": False}),
    case("timeout", 504, "timeout", mode="sleep", json=speech()),
    case("backend-timeout", 504, "timeout", mode="timeout", path=TTS, json={"text": "hi"}),
]  # fmt: skip


@pytest.fixture(scope="module")
def shared():
    """One app for the whole matrix, so the last test can check it still serves afterwards."""
    backend = FakeBackend()
    client = make_client(backend)
    assert client.post("/v1/voices", **clip_form(name="taken")).status_code == 201
    return backend, client


@pytest.mark.parametrize(("method", "path", "kwargs", "mode", "status", "param", "code"), MATRIX)
def test_bad_input(shared, method, path, kwargs, mode, status, param, code):
    backend, client = shared
    backend.mode = mode
    try:
        response = client.request(method, path, **kwargs)
    finally:
        backend.mode = None
    assert_error(response, status, "server_error" if status >= 500 else "invalid_request_error", param, code)
    if status == 405:
        assert method not in response.headers["allow"].split(", ")
    if status == 503:
        assert response.headers["retry-after"] == "3"  # 2.5 s, rounded up


def test_matrix_is_big_enough():
    assert len(MATRIX) >= 30
    assert len({case.id for case in MATRIX}) == len(MATRIX)


def test_still_serves_after_the_matrix(shared):
    backend, client = shared
    response = client.post("/v1/audio/speech", json=speech(response_format="wav", voice="taken"))
    assert response.status_code == 200
    assert_audio(response.content, "wav", SECONDS_PER_CHAR * len(TEXT))
    assert [v["name"] for v in client.get("/v1/voices").json()["data"]] == ["taken"]
    # every stream the matrix started was closed again
    assert backend.closed == len(backend.requests)


def test_405_lists_the_allowed_methods(client):
    assert set(client.put("/v1/voices").headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
    assert set(client.post("/v1/voices/x").headers["allow"].split(", ")) == {"GET", "HEAD", "DELETE"}
    assert client.get("/v1/tts").headers["allow"] == "POST"


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


# --------------------------------------------------------------------------- recorded clips, real speaker encoder


class EncodingBackend(FakeBackend):
    """The fake backend with the Voices deployment's embed_clip: the speaker encoder, in a worker thread."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = SpeakerEncoder.from_pretrained("random-tiny")

    async def embed_clip(self, clip: bytes) -> list[float]:
        return (await asyncio.to_thread(self.encoder.embed_file, clip)).tolist()


def recorded(muxer: str, codec: str) -> bytes:
    """2 s of mono tone at 48 kHz as a browser's MediaRecorder (webm/Opus) or a phone (m4a/AAC) saves it."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=muxer) as container:
        stream = container.add_stream(codec, rate=48000, layout="mono")
        stream.format = "fltp" if codec == "aac" else "flt"
        frame = av.AudioFrame.from_ndarray(tone(2.0)[np.newaxis], format=stream.format.name, layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = RATE, 0, Fraction(1, RATE)
        container.mux(stream.encode(frame))  # PyAV resamples 44.1 -> 48 kHz and cuts codec frames
        container.mux(stream.encode(None))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("filename", "media_type", "muxer", "codec"),
    [("memo.m4a", "audio/mp4", "ipod", "aac"), ("recording.webm", "audio/webm;codecs=opus", "webm", "libopus")],
)
def test_voices_accept_recorded_clips(filename, media_type, muxer, codec):
    backend = EncodingBackend()
    client = make_client(backend, max_upload_bytes=256 * 1024)
    clip = recorded(muxer, codec)
    response = client.post("/v1/voices", files={"file": (filename, clip, media_type)}, data={"name": "Mallory"})
    assert response.status_code == 201, response.text
    embedding = backend.embeddings[response.json()["id"]]
    assert len(embedding) == 128 and all(np.isfinite(embedding))


@pytest.mark.parametrize(
    ("clip", "says"),
    [
        (b"GIF89a\x10\x00\x10\x00\x80\x00\x00" + bytes(64), "no audio stream"),
        (b"Hello, this is my voice. " * 20, "not audio in any format ffmpeg reads"),
    ],
)
def test_voices_refuse_what_is_not_audio(clip, says):
    client = make_client(EncodingBackend())
    response = client.post("/v1/voices", files={"file": ("voice.m4a", clip, "audio/mp4")}, data={"name": "Trudy"})
    error = assert_error(response, 422, "invalid_request_error", "file", "invalid_audio")
    assert says in error["message"] and f"read {len(clip)} bytes starting '" in error["message"]
