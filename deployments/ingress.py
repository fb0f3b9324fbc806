"""Ingress: the HTTP API (deployments.http) and the Python handle API over the deployment graph.

One request: TextSplitter -> one Generator stream per segment (all started at once, so they
share Generator flushes with every other request) -> Vocoder spans as frames arrive ->
SegmentJoiner -> audio in text order, the first chunk as soon as it is decoded.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from ray import serve
from ray.serve.handle import DeploymentHandle
from ray.serve.metrics import Histogram

from deployments.config import AppConfig
from deployments.http import MODEL_ID, BackendBusy, VoiceInfo, build_http_app
from deployments.ray_errors import raises_causes, replica_errors
from pipeline.audio import SegmentJoiner
from pipeline.codec import SAMPLE_RATE, StreamingSpans
from pipeline.model import N_CODEBOOKS
from pipeline.synthesis import SynthesisRequest, segment_request

logger = logging.getLogger("ray.serve")


class SegmentTiming(BaseModel):
    index: int
    text: str
    n_frames: int
    stop_reason: str
    done_s: float = Field(description="Seconds from the request's start until its last frame arrived.")


class AudioPiece(BaseModel):
    """A piece of the joined audio, in order; `segment_done` marks a segment's last piece."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    segment_index: int
    samples: np.ndarray  # float32 mono
    sample_rate: int = SAMPLE_RATE
    segment_done: bool
    timing: SegmentTiming | None = None


class SynthesisResult(BaseModel):
    """What `handle.synthesize.remote(request)` returns."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    audio: np.ndarray  # float32 mono
    sample_rate: int
    segments: list[SegmentTiming]
    time_to_first_audio_s: float
    wall_s: float

    @property
    def real_time_factor(self) -> float:
        return self.wall_s / max(len(self.audio) / self.sample_rate, 1e-9)


@serve.deployment(name="Ingress", max_ongoing_requests=256, ray_actor_options={"num_cpus": 0.5})
@serve.ingress()
class Ingress:
    async def __init__(
        self,
        splitter: DeploymentHandle,
        generator: DeploymentHandle,
        vocoder: DeploymentHandle,
        voices: DeploymentHandle,
        config: dict,
    ):
        self.config = AppConfig.model_validate(config)
        self.splitter, self.generator, self.vocoder, self.voices = splitter, generator, vocoder, voices
        self._inflight = 0
        self._context_frames = await vocoder.context_frames.remote()
        self._real_weights = all(
            [(await generator.model_card.remote())["real_weights"], (await vocoder.model_card.remote())["real_weights"]]
        )
        self._ttfa = Histogram(
            "zonos_time_to_first_audio_seconds",
            "From a request's arrival to its first decoded audio.",
            boundaries=[0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10],
        )
        self._rtf = Histogram(
            "zonos_request_real_time_factor",
            "Wall time per second of audio, per request.",
            boundaries=[0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5],
        )

    def __serve_build_asgi_app__(self):
        return build_http_app(self, self.config, echo_request_id=False)

    # ----------------------------------------------------------------------- the graph

    async def _pieces(self, request: SynthesisRequest, request_id: str) -> AsyncIterator[AudioPiece]:
        if self._inflight >= self.config.max_queued_requests:
            raise BackendBusy(f"{self._inflight} requests in flight; try again shortly")
        self._inflight += 1
        started = time.perf_counter()
        first_audio, n_samples = None, 0
        streams = []
        try:
            with replica_errors(request_id):
                segments = await self.splitter.split.remote(
                    request.text, request.language, request.max_tokens_per_segment, request.normalize
                )
                logger.info("request %s: %d segments, %d characters", request_id, len(segments), len(request.text))
                max_seq_len = self.config.engine.max_seq_len
                streams = [
                    self.generator.options(stream=True).generate.remote(segment_request(request, segment, max_seq_len))
                    for segment in segments
                ]
                joiner = SegmentJoiner(len(segments), SAMPLE_RATE, request.pause_ms, request.crossfade_ms)
                timings: dict[int, SegmentTiming] = {}
                for segment, frames_stream in zip(segments, streams, strict=True):
                    spans = StreamingSpans(self._context_frames, N_CODEBOOKS)
                    n_frames = 0
                    async for item in frames_stream:
                        n_frames += item.frames.shape[1]
                        planned = [spans.push(torch.from_numpy(item.frames.astype(np.int64)))]
                        if item.finished:
                            planned.append(spans.flush())
                            timings[segment.index] = SegmentTiming(
                                index=segment.index,
                                text=segment.text,
                                n_frames=n_frames,
                                stop_reason=item.stop_reason,
                                done_s=time.perf_counter() - started,
                            )
                        decoded = [
                            await self.vocoder.decode.remote(frames.numpy().astype(np.int16), a, b)
                            for frames, a, b in (span for span in planned if span is not None)
                        ]
                        samples = np.concatenate(decoded) if decoded else np.zeros(0, np.float32)
                        for index, piece, done in joiner.add(segment.index, samples, item.finished):
                            if first_audio is None and len(piece):
                                first_audio = time.perf_counter() - started
                                self._ttfa.observe(first_audio)
                            n_samples += len(piece)
                            timing = timings.get(index) if done else None
                            yield AudioPiece(segment_index=index, samples=piece, segment_done=done, timing=timing)
        finally:
            self._inflight -= 1
            for frames_stream in streams:  # a client gone or a failure: stop generating for it
                frames_stream.cancel()
        wall = time.perf_counter() - started
        self._rtf.observe(wall / max(n_samples / SAMPLE_RATE, 1e-9))
        logger.info("request %s: %.2f s of audio in %.2f s", request_id, n_samples / SAMPLE_RATE, wall)

    # ----------------------------------------------------------------------- handle API

    async def stream(self, request: SynthesisRequest | dict) -> AsyncIterator[AudioPiece]:
        """`handle.options(stream=True).stream.remote(request)`: AudioPieces in text order."""
        async for piece in self._pieces(SynthesisRequest.model_validate(request), _request_id()):
            yield piece

    async def synthesize(self, request: SynthesisRequest | dict) -> SynthesisResult:
        """`handle.synthesize.remote(request)`: the whole audio, with per-segment timings."""
        started = time.perf_counter()
        pieces, timings, first = [], [], None
        async for piece in self.stream(request):
            if first is None and len(piece.samples):
                first = time.perf_counter() - started
            pieces.append(piece.samples)
            timings += [piece.timing] if piece.timing else []
        audio = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        wall = time.perf_counter() - started
        return SynthesisResult(
            audio=audio, sample_rate=SAMPLE_RATE, segments=timings, time_to_first_audio_s=first or wall, wall_s=wall
        )

    # ----------------------------------------------------------------------- HTTP backend

    async def ready(self) -> bool:
        try:
            await self.generator.model_card.remote()
            await self.vocoder.context_frames.remote()
            return True
        except Exception:  # any replica not answering means not ready
            return False

    def model_card(self) -> dict:
        speech = self._real_weights
        note = "" if speech else "random fallback weights are loaded: the output is noise, NOT speech"
        return {"id": MODEL_ID, "speech": speech, "note": note}

    async def stream_audio(self, request: SynthesisRequest, request_id: str) -> AsyncIterator[np.ndarray]:
        async for piece in self._pieces(request, request_id):
            yield piece.samples

    @raises_causes
    async def embed_clip(self, clip: bytes) -> list[float]:
        return await self.voices.embed_clip.remote(clip)

    @raises_causes
    async def create_voice(self, name: str, clip: bytes) -> VoiceInfo:
        return VoiceInfo(**await self.voices.create.remote(name, clip))

    @raises_causes
    async def list_voices(self) -> list[VoiceInfo]:
        return [VoiceInfo(**voice) for voice in await self.voices.list.remote()]

    @raises_causes
    async def get_voice(self, id_or_name: str) -> VoiceInfo | None:
        voice = await self.voices.get.remote(id_or_name)
        return None if voice is None else VoiceInfo(**voice)

    @raises_causes
    async def delete_voice(self, voice_id: str) -> bool:
        return await self.voices.delete.remote(voice_id)

    @raises_causes
    async def voice_embedding(self, id_or_name: str) -> list[float] | None:
        return await self.voices.embedding.remote(id_or_name)


def _request_id() -> str:
    context = serve.context._get_serve_request_context()
    return context.request_id or uuid.uuid4().hex
