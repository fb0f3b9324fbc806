"""Vocoder: codec frames -> audio, batched across requests, scaled apart from the Generator.

Stateless: a caller sends a span (frames with the context they need, and which frames to
keep, as pipeline.codec.StreamingSpans plans it) and gets final samples back, so any replica
can serve any chunk of any stream.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import torch
from ray import serve
from ray.serve.metrics import Histogram

from deployments.config import AppConfig, BatchSettings
from deployments.models import load_with_fallback
from pipeline.codec import Codec


@serve.deployment(name="Vocoder", max_ongoing_requests=128, ray_actor_options={"num_cpus": 1})
class Vocoder:
    def __init__(self, config: dict):
        self.config = AppConfig.model_validate(config)
        sources = self.config.sources

        def load(source: str) -> Codec:
            return Codec.from_pretrained(source, device=sources.device, dtype=sources.codec_dtype)

        self.codec, self.real_weights = load_with_fallback(load, sources.codec, sources.fallback, "codec")
        self._latency = Histogram(
            "zonos_vocoder_chunk_seconds",
            "Time to decode one batch of vocoder chunks.",
            boundaries=[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2],
        )
        self.reconfigure(self.config.vocoder_batch.model_dump())

    def reconfigure(self, user_config: dict) -> None:
        settings = BatchSettings.model_validate(user_config)
        self._decode.set_max_batch_size(settings.max_batch_size)
        self._decode.set_batch_wait_timeout_s(settings.batch_wait_timeout_s)

    def model_card(self) -> dict:
        return {"real_weights": self.real_weights, "source": self.config.sources.codec}

    def context_frames(self) -> int:
        """Frames of context a span needs on each side (the decoder's receptive field)."""
        return self.codec.context_frames

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def _decode(self, spans: list[tuple[np.ndarray, int, int]]) -> list[np.ndarray]:
        started = time.perf_counter()
        tensors = [(torch.from_numpy(frames.astype(np.int64)), a, b) for frames, a, b in spans]
        audio = await asyncio.to_thread(self.codec.decode_spans, tensors)
        self._latency.observe(time.perf_counter() - started)
        return audio

    async def decode(self, frames: np.ndarray, keep_from: int, keep_to: int) -> np.ndarray:
        """Float32 samples of frames [keep_from, keep_to) of `frames` [9, L]."""
        return await self._decode((frames, keep_from, keep_to))
