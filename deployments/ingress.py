"""Ingress: the HTTP API and the Python handle API over the deployment graph.

One request runs pipeline.streaming.stream_audio, its steps over the deployment handles:
TextSplitter -> one Generator stream per segment (all started at once, so they share Generator
flushes with every other request) -> Vocoder spans as frames arrive -> audio in text order, the
first piece as soon as it is decoded.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator

import numpy as np
from ray import serve
from ray.serve.handle import DeploymentHandle
from ray.serve.metrics import Histogram

from deployments.api import build_http_app
from deployments.api.health import with_draining
from deployments.backend import MODEL_ID, BackendBusy, Drain, ModelCard, VoiceInfo
from deployments.config import AppConfig
from deployments.ray_errors import log_client_errors_at_info, raises_causes, replica_errors
from pipeline.codec import SAMPLE_RATE, CodeSpan
from pipeline.engine import FrameChunk, GenerationRequest
from pipeline.language import load_detector
from pipeline.segment import Segment
from pipeline.streaming import AudioPiece, SynthesisRequest, SynthesisResult, collect, stream_audio

logger = logging.getLogger("ray.serve")


@serve.deployment
@serve.ingress()
class Ingress:
    async def __init__(
        self,
        splitter: DeploymentHandle,
        generator: DeploymentHandle,
        vocoder: DeploymentHandle,
        voices: DeploymentHandle,
        config: AppConfig,
    ):
        log_client_errors_at_info()  # Serve logs 4xx-type errors at INFO, no traceback
        self.config = config
        self.generator, self.vocoder, self.voices = generator, vocoder, voices
        self._inflight = 0
        self._segments_in_flight = 0
        self.draining = Drain.following_serve()  # set once Serve starts stopping this replica
        context_frames = await vocoder.context_frames.remote()
        await asyncio.to_thread(load_detector)  # the OpenAI route's language detector, not on a first request
        self._steps = _RemoteSteps(splitter, generator, vocoder, self.config.engine.max_seq_len, context_frames)
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
        return with_draining(build_http_app(self, self.config, echo_request_id=False))

    # ----------------------------------------------------------------------- the graph

    async def _pieces(self, request: SynthesisRequest, request_id: str) -> AsyncIterator[AudioPiece]:
        self.draining.admit()  # handle callers too: 503 BackendDraining once the replica is stopping
        if self._inflight >= self.config.max_queued_requests:
            raise BackendBusy(f"{self._inflight} requests in flight; try again shortly")
        self._inflight += 1
        started = time.perf_counter()
        first_audio, n_samples = None, 0
        steps = _AdmittedSteps(self, request_id)
        try:
            with replica_errors(request_id):
                logger.info("request %s: %d characters", request_id, len(request.text))
                async for piece in stream_audio(request, steps):
                    if first_audio is None and len(piece.samples):
                        first_audio = time.perf_counter() - started
                        self._ttfa.observe(first_audio)
                    n_samples += len(piece.samples)
                    yield piece
        finally:
            self._inflight -= 1
            steps.release()
        wall = time.perf_counter() - started
        self._rtf.observe(wall / max(n_samples / SAMPLE_RATE, 1e-9))
        logger.info("request %s: %.2f s of audio in %.2f s", request_id, n_samples / SAMPLE_RATE, wall)

    # ----------------------------------------------------------------------- handle API

    async def stream(self, request: SynthesisRequest | dict) -> AsyncIterator[AudioPiece]:
        """`handle.options(stream=True).stream.remote(request)`: AudioPieces in text order."""
        with self.draining.track():  # HTTP requests are counted by the DrainingGate
            async for piece in self._pieces(SynthesisRequest.model_validate(request), _request_id()):
                yield piece

    async def synthesize(self, request: SynthesisRequest | dict) -> SynthesisResult:
        """`handle.synthesize.remote(request)`: the whole audio, with per-segment timings."""
        return await collect(self.stream(request))

    # ----------------------------------------------------------------------- HTTP backend

    async def ready(self) -> bool:
        try:
            await self.generator.model_card.remote()
            await self.vocoder.context_frames.remote()
            return True
        except Exception:  # any replica not answering means not ready
            return False

    def model_card(self) -> ModelCard:
        speech = self._real_weights
        note = "" if speech else "random fallback weights are loaded: the output is noise, NOT speech"
        return ModelCard(id=MODEL_ID, speech=speech, note=note)

    def stream_audio(self, request: SynthesisRequest, request_id: str) -> AsyncIterator[AudioPiece]:
        return self._pieces(request, request_id)

    @raises_causes
    async def embed_clip(self, clip: bytes) -> list[float]:
        return await self.voices.embed_clip.remote(clip)

    @raises_causes
    async def create_voice(self, name: str, clip: bytes, language: str | None = None) -> VoiceInfo:
        return VoiceInfo(**await self.voices.create.remote(name, clip, language))

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

    @raises_causes
    async def builtin_voice_embedding(self, name: str) -> list[float] | None:
        return await self.voices.builtin_embedding.remote(name)


class _RemoteSteps:
    """The graph's steps (pipeline.streaming.SynthesisSteps) on the other deployments."""

    def __init__(
        self,
        splitter: DeploymentHandle,
        generator: DeploymentHandle,
        vocoder: DeploymentHandle,
        max_seq_len: int,
        context_frames: int,
    ):
        self.splitter, self.generator, self.vocoder = splitter, generator.options(stream=True), vocoder
        self.max_seq_len, self.context_frames = max_seq_len, context_frames

    # Each call raises as replica_errors says: a replica that died or pushes back -> BackendBusy,
    # a StepUnavailable, which the request graph retries (pipeline.streaming: exact recovery).

    @raises_causes
    async def split(self, request: SynthesisRequest) -> list[Segment]:
        return await self.splitter.split.remote(request)

    async def frames(self, request: GenerationRequest) -> AsyncIterator[FrameChunk]:
        stream = self.generator.generate.remote(request)
        try:
            with replica_errors():
                async for chunk in stream:
                    yield chunk
        finally:  # cancelled, failed or done: a Generator stream still running stops generating
            try:
                stream.cancel()
            except Exception as exc:  # Ray 2.60's cancel() re-raises the stream's own error
                logger.debug("cancelling a Generator stream raised %r", exc)

    @raises_causes
    async def decode(self, span: CodeSpan) -> np.ndarray:
        return await self.vocoder.decode.remote(*span)


class _AdmittedSteps:
    """One request's steps: the Ingress's `_RemoteSteps`, with admission of the request as a unit.

    Once the text is split, all of its segments are reserved against `max_segments_in_flight` (or
    BackendBusy, 503, before the first byte), and released when the request ends: an admitted
    request never meets the app's own limit half way (issue 12)."""

    def __init__(self, ingress: Ingress, request_id: str):
        self.ingress, self.request_id, self.reserved = ingress, request_id, 0
        steps = ingress._steps
        self.max_seq_len, self.context_frames = steps.max_seq_len, steps.context_frames
        self.frames, self.decode = steps.frames, steps.decode

    async def split(self, request: SynthesisRequest) -> list[Segment]:
        segments = await self.ingress._steps.split(request)
        limit, in_flight = self.ingress.config.max_segments_in_flight, self.ingress._segments_in_flight
        if len(segments) > limit:  # never admissible: a client error (422), not "busy, retry"
            raise ValueError(
                f"this text splits into {len(segments)} segments, more than this server takes at once "
                f"(max_segments_in_flight={limit}); send it in parts"
            )
        if in_flight + len(segments) > limit:
            raise BackendBusy(f"{in_flight} segments in flight and this text has {len(segments)}; try again shortly")
        self.ingress._segments_in_flight += len(segments)
        self.reserved = len(segments)
        return segments

    def release(self) -> None:
        self.ingress._segments_in_flight -= self.reserved
        self.reserved = 0


def _request_id() -> str:
    context = serve.context._get_serve_request_context()
    return context.request_id or uuid.uuid4().hex
