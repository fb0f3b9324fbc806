"""Generator (GPU): the batched Zonos engine behind @serve.batch.

Each flush gathers segments from all concurrent requests and submits them together (the engine
admits them shortest first, so similar lengths prefill together) to the engine's RUNNING batch: a
new flush joins while earlier rows still decode (continuous batching lives in the engine, as in
Ray Serve LLM). Frames stream back per segment as the delay pattern resolves,
pipeline.streaming.CHUNK_FRAMES at a time (FrameChunks, codes int64).
"""

from __future__ import annotations

import collections
import time
from collections.abc import AsyncIterator

from ray import serve
from ray.serve.metrics import Counter, Histogram

from deployments.config import BatchSettings, ModelSources
from deployments.models import load_with_fallback
from deployments.ray_errors import log_client_errors_at_info
from pipeline.engine import EngineConfig, FrameChunk, GenerationRequest, ZonosEngine
from pipeline.engine.async_engine import AsyncEngine
from pipeline.streaming import in_chunks


@serve.deployment
class Generator:
    def __init__(self, sources: ModelSources, engine_config: EngineConfig):
        log_client_errors_at_info()  # Serve logs 4xx-type errors at INFO, no traceback
        self.sources = sources

        def load(source: str) -> ZonosEngine:
            return ZonosEngine.from_pretrained(
                source, device=sources.device, dtype=sources.dtype, **engine_config.model_dump()
            )

        engine, self.real_weights = load_with_fallback(load, sources.model, sources.fallback, "language model")
        self.engine = AsyncEngine(engine)
        self.recent_flushes: collections.deque[int] = collections.deque(maxlen=1000)
        self._last_stats = (0, 0)
        self._flush_segments = Histogram(
            "zonos_generator_flush_segments", "Segments per Generator flush.", boundaries=[1, 2, 4, 8, 16, 32, 64, 128]
        )
        self._padding = Histogram(
            "zonos_generator_prefill_padding_ratio",
            "Share of prefill positions that were padding, per flush.",
            boundaries=[0.05, 0.1, 0.2, 0.3, 0.5, 0.75],
        )
        self._queue_wait = Histogram(
            "zonos_generator_queue_wait_seconds",
            "From a segment's arrival to its first generated frame.",
            boundaries=[0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
        )
        self._frames = Counter("zonos_generator_frames_total", "Codec frames generated (rate = frames per second).")

    def reconfigure(self, user_config: dict) -> None:
        """Batch size and wait time (BatchSettings): `user_config`, set by build_app from
        AppConfig.generator_batch; Serve calls this before the replica serves, and again on a change."""
        settings = BatchSettings.model_validate(user_config)
        self._admit.set_max_batch_size(settings.max_batch_size)
        self._admit.set_batch_wait_timeout_s(settings.batch_wait_timeout_s)

    @serve.batch  # sized by reconfigure
    async def _admit(self, requests: list[GenerationRequest]) -> list[str]:
        self.recent_flushes.append(len(requests))
        self._flush_segments.observe(len(requests))
        return self.engine.submit(requests)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[FrameChunk]:
        """Stream one segment's frames [9, n] (LongTensor), CHUNK_FRAMES at a time (fewer on the last chunk)."""
        arrived = time.perf_counter()
        stream_id = await self._admit(GenerationRequest.model_validate(request))
        async for chunk in in_chunks(self._observed(self.engine.stream(stream_id), arrived)):
            self._frames.inc(chunk.frames.shape[1])
            yield chunk

    async def _observed(self, chunks: AsyncIterator[FrameChunk], arrived: float) -> AsyncIterator[FrameChunk]:
        """`chunks` as they are, the queue wait and prefill padding observed at the first."""
        first = True
        async for chunk in chunks:
            if first:
                self._queue_wait.observe(time.perf_counter() - arrived)
                self._observe_engine()
                first = False
            yield chunk

    def _observe_engine(self) -> None:
        stats = self.engine.stats()
        real, padding = stats.prefill_tokens - self._last_stats[0], stats.prefill_padding - self._last_stats[1]
        if real + padding:
            self._padding.observe(padding / (real + padding))
        self._last_stats = (stats.prefill_tokens, stats.prefill_padding)

    def stats(self) -> dict:
        """For operators and tests: recent flush sizes and the engine's running totals."""
        stats = self.engine.stats()
        return {"flush_sizes": list(self.recent_flushes), "steps": stats.steps, "frames": stats.frames}

    def model_card(self) -> dict:
        return {"real_weights": self.real_weights, "source": self.sources.model}

    def check_health(self) -> None:
        if not self.engine.alive:
            raise RuntimeError("the engine thread has stopped")
