"""The fake backend the API tests run against, the `backend` and `client` fixtures, and checks of audio and errors."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import socket
import threading
import time

import av
import numpy as np
import pytest
import uvicorn
from starlette.testclient import TestClient

from deployments.api import build_http_app
from deployments.backend import BackendBusy, ModelCard, VoiceInfo
from deployments.config import AppConfig
from pipeline.audio import encode_audio
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
