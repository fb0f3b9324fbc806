"""Generator (GPU): the batched Zonos engine behind @serve.batch.

Each flush gathers segments from all concurrent requests, orders them by length (so the
engine's FIFO admission prefills similar lengths together) and submits them to the engine's
RUNNING batch: a new flush joins while earlier rows still decode (continuous batching lives in
the engine, as in Ray Serve LLM). Frames stream back per segment as the delay pattern resolves.
"""

from __future__ import annotations

import collections
import time
from collections.abc import AsyncIterator

import numpy as np
from pydantic import BaseModel, ConfigDict
from ray import serve
from ray.serve.metrics import Counter, Histogram

from deployments.config import AppConfig, BatchSettings
from deployments.models import load_with_fallback
from pipeline.engine import GenerationRequest, ZonosEngine
from pipeline.engine.async_engine import AsyncEngine

STREAM_CHUNK_FRAMES = 16  # frames per message back to the caller: ~186 ms of audio


class GeneratedFrames(BaseModel):
    """New codec frames of one segment (codes 0..1023, [9, n]); the last message says why it ended."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    frames: np.ndarray
    finished: bool
    stop_reason: str | None = None


@serve.deployment(name="Generator", max_ongoing_requests=512, ray_actor_options={"num_cpus": 1})
class Generator:
    def __init__(self, config: dict):
        self.config = AppConfig.model_validate(config)
        sources = self.config.sources

        def load(source: str) -> ZonosEngine:
            return ZonosEngine.from_pretrained(
                source, device=sources.device, dtype=sources.dtype, **self.config.engine.model_dump()
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
        self.reconfigure(self.config.generator_batch.model_dump())

    def reconfigure(self, user_config: dict) -> None:
        """Batch size and wait time, tunable at run time through `user_config`."""
        settings = BatchSettings.model_validate(user_config)
        self._admit.set_max_batch_size(settings.max_batch_size)
        self._admit.set_batch_wait_timeout_s(settings.batch_wait_timeout_s)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.01)
    async def _admit(self, requests: list[GenerationRequest]) -> list[str]:
        self.recent_flushes.append(len(requests))
        self._flush_segments.observe(len(requests))
        return self.engine.submit_shortest_first(requests)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GeneratedFrames]:
        """Stream one segment's frames, STREAM_CHUNK_FRAMES at a time (fewer on the last message)."""
        arrived = time.perf_counter()
        stream_id = await self._admit(GenerationRequest.model_validate(request))
        pending: list[np.ndarray] = []
        first = True
        async for chunk in self.engine.stream(stream_id):
            if first:
                self._queue_wait.observe(time.perf_counter() - arrived)
                self._observe_engine()
                first = False
            pending.append(chunk.frames.numpy().astype(np.int16))
            if chunk.finished or sum(p.shape[1] for p in pending) >= STREAM_CHUNK_FRAMES:
                frames = np.concatenate(pending, axis=1)
                pending = []
                self._frames.inc(frames.shape[1])
                yield GeneratedFrames(frames=frames, finished=chunk.finished, stop_reason=chunk.stop_reason)

    def _observe_engine(self) -> None:
        stats = self.engine.engine.stats
        real, padding = stats.prefill_tokens - self._last_stats[0], stats.prefill_padding - self._last_stats[1]
        if real + padding:
            self._padding.observe(padding / (real + padding))
        self._last_stats = (stats.prefill_tokens, stats.prefill_padding)

    def stats(self) -> dict:
        """For operators and tests: recent flush sizes and the engine's running totals."""
        stats = self.engine.engine.stats
        return {"flush_sizes": list(self.recent_flushes), "steps": stats.steps, "frames": stats.frames}

    def model_card(self) -> dict:
        return {"real_weights": self.real_weights, "source": self.config.sources.model}

    def check_health(self) -> None:
        if not self.engine.alive:
            raise RuntimeError("the engine thread has stopped")
