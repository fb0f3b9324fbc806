"""The fake backend the API tests run against, the `backend` and `client` fixtures, and checks of audio and errors."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import json
import socket
import threading
import time
from typing import Annotated, Literal

import av
import numpy as np
import pytest
import uvicorn
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator
from starlette.testclient import TestClient

from deployments.api import build_http_app
from deployments.backend import BackendBusy, ModelCard, VoiceInfo
from deployments.config import AppConfig
from pipeline.audio import encode_audio
from pipeline.language import load_detector
from pipeline.streaming import AudioPiece, SegmentTiming
from pipeline.synthesis import SynthesisRequest
from pipeline.voices import BuiltinVoices, DuplicateVoiceNameError

RATE = 44100
FRAME_SAMPLES = 512  # samples per codec frame
SECONDS_PER_CHAR = 0.02  # the fake backend speaks 50 characters a second
TEXT = "Hello from the fake backend."  # 28 characters: 0.56 s
MAX_TEXT = 200
MAX_UPLOAD = 4096
TIMEOUT_S = 1.0
DEMUXERS = {"wav": "wav", "flac": "flac", "mp3": "mp3", "opus": "ogg", "aac": "aac"}
# Streamed mp3 keeps its encoder delay and padding, ADTS can't carry AAC's priming samples: at most
# this many samples more at any rate (53 ms, 47 ms at 44.1 kHz; more time at lower rates).
EXTRA_SAMPLES = {"mp3": 2337, "aac": 2073, "opus": 96}


def tone(seconds: float) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


CLIP = encode_audio(tone(0.02), RATE, "wav")  # a 1.8 KB voice clip


def segment_pieces(text: str, seed: int = 0, n_segments: int = 3) -> list[AudioPiece]:
    """The fake's audio for `text`: its tone cut into `n_segments` segments of one piece each, each
    piece carrying its segment's timing: a phoneme token per character of its share of the text, a
    codec frame per 512 samples (rounded up)."""
    audio = tone(SECONDS_PER_CHAR * len(text))
    pieces, start = [], 0
    for i, (chunk, chars) in enumerate(
        zip(np.array_split(audio, n_segments), np.array_split(np.arange(len(text)), n_segments), strict=True)
    ):
        n_frames = -(-len(chunk) // FRAME_SAMPLES)
        part = "".join(text[j] for j in chars)
        codes = np.zeros((9, n_frames), np.int64)
        timing = SegmentTiming(
            index=i,
            text=part,
            n_tokens=len(part),
            codes=codes,
            stop_reason="eos",
            done_s=0.0,
            seed=seed + i,
            start_sample=start,
            end_sample=start + len(chunk),
        )
        start += len(chunk)
        pieces.append(
            AudioPiece(
                segment_index=i, n_segments=n_segments, samples=chunk, segment_done=True, timing=timing, seed=seed
            )
        )
    return pieces


def piece(samples: np.ndarray, seed: int = 0) -> AudioPiece:
    """A piece of audio that ends no segment."""
    return AudioPiece(segment_index=0, n_segments=1, samples=samples, segment_done=False, seed=seed)


class FakeBackend:
    """Streams a 440 Hz tone of 20 ms per character as three one-piece segments (`segment_pieces`);
    voices live in a dict.

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
        self.builtins = BuiltinVoices()  # OpenAI's names, as the Voices deployment resolves them
        self.piece_delay_s = 0.0  # a wait before every piece but the first (a long text generating)

    async def ready(self) -> bool:
        if isinstance(self.is_ready, Exception):
            raise self.is_ready
        return self.is_ready

    def model_card(self) -> ModelCard:
        return ModelCard(speech=False, note="random-tiny fallback weights: the output is not speech")

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
            for i, audio_piece in enumerate(segment_pieces(request.text, request.seed or 0)):
                if self.mode == "fail_mid" and i == 1:
                    raise RuntimeError("the GPU fell off the bus")
                if self.mode == "timeout_mid" and i == 1:
                    raise TimeoutError("the vocoder timed out")
                await asyncio.sleep(self.piece_delay_s if i else 0)
                yield audio_piece
        finally:
            self.closed += 1

    async def embed_clip(self, clip: bytes) -> list[float]:
        if not clip.startswith(b"RIFF"):
            raise ValueError("could not decode the audio clip: unknown format")
        return [len(clip) / 10_000] * 128

    async def create_voice(self, name: str, clip: bytes, language: str | None = None) -> VoiceInfo:
        if any(v.name == name for v in self.voices.values()):
            raise DuplicateVoiceNameError(name)
        embedding = await self.embed_clip(clip)
        voice = VoiceInfo(id=f"voice_{len(self.voices):04d}", name=name, created_at=1_700_000_000, language=language)
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

    async def builtin_voice_embedding(self, name: str) -> list[float] | None:
        def library(ref: str) -> list[float] | None:
            voice = self.voices.get(ref) or next((v for v in self.voices.values() if v.name == ref), None)
            return None if voice is None else self.embeddings[voice.id]

        return self.builtins.embedding(name, library)


def make_client(backend: FakeBackend, **config) -> TestClient:
    settings = {"max_text_chars": MAX_TEXT, "max_upload_bytes": MAX_UPLOAD, "request_timeout_s": TIMEOUT_S} | config
    return TestClient(build_http_app(backend, AppConfig(**settings)))


@pytest.fixture(scope="session", autouse=True)
def _language_detector_loaded():
    """The Ingress loads the OpenAI route's language detector at start (deployments.ingress); so do
    these tests, so that no request's TIMEOUT_S deadline pays for its one-time ~0.5 s load."""
    load_detector()


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def client(backend) -> TestClient:
    return make_client(backend)


def speech(**fields) -> dict:
    return {"model": "tts-1", "input": TEXT, "voice": "alloy"} | fields


def key_digest(key: str) -> str:
    """An API key as a config's api_keys holds it: its SHA-256 digest, computed as README's one-liner does."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def decode(data: bytes, fmt: str, rate: int = RATE) -> tuple[np.ndarray, int, int]:
    """(samples, rate, channels) as a client would read them; raw pcm is s16le mono at `rate`."""
    if fmt == "pcm":
        return np.frombuffer(data, "<i2"), rate, 1
    with av.open(io.BytesIO(data), format=DEMUXERS[fmt]) as container:
        frames = list(container.decode(audio=0))
    samples = np.concatenate([frame.to_ndarray().reshape(-1) for frame in frames])
    return samples, frames[0].sample_rate, frames[0].layout.nb_channels


def assert_audio(data: bytes, fmt: str, seconds: float, rate: int = RATE) -> None:
    """`data` decodes to `seconds` of mono audio at `rate` (opus: 48 kHz, always)."""
    samples, decoded_rate, channels = decode(data, fmt, rate)
    assert channels == 1
    rate = 48_000 if fmt == "opus" else rate
    assert decoded_rate == rate
    duration = len(samples) / rate
    extra = EXTRA_SAMPLES.get(fmt, 0) / rate
    assert seconds - 0.002 <= duration <= seconds + extra + 0.002, (fmt, rate, duration, seconds)


class _Strict(BaseModel):
    """OpenAI's schemas, strictly: every field of its type (no coercion), no key it does not list."""

    model_config = ConfigDict(extra="forbid", strict=True)


class SpeechUsage(_Strict):
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    total_tokens: int = Field(ge=0)


class SpeechAudioDelta(_Strict):
    """OpenAI's SpeechAudioDeltaEvent: the next bytes of the audio file, base64."""

    type: Literal["speech.audio.delta"]
    audio: str

    @field_validator("audio")
    @classmethod
    def _base64(cls, audio: str) -> str:
        base64.b64decode(audio, validate=True)
        return audio


class SpeechAudioDone(_Strict):
    """OpenAI's SpeechAudioDoneEvent: `usage` and its three counts are required."""

    type: Literal["speech.audio.done"]
    usage: SpeechUsage


class ErrorObject(_Strict):
    message: str
    type: str
    param: str | None
    code: str | None


class SpeechStreamError(_Strict):
    """zonos-serve's error event (OpenAI's speech stream specifies none): the Realtime API's shape."""

    type: Literal["error"]
    error: ErrorObject


SPEECH_EVENT = TypeAdapter(
    Annotated[SpeechAudioDelta | SpeechAudioDone | SpeechStreamError, Field(discriminator="type")]
)


def speech_events(body: bytes) -> list[SpeechAudioDelta | SpeechAudioDone | SpeechStreamError]:
    """Every SSE event of a speech stream, each parsed strictly as one of the event models above."""
    return [SPEECH_EVENT.validate_python(event) for event in sse_events(body)]


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


@contextlib.contextmanager
def real_server(app):
    """`app` under a real uvicorn server (HTTP/1.1 chunked transfer) on a free port; its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)
