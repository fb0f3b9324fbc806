"""Vocoder: codec frames -> audio, batched across requests, scaled apart from the Generator.

Stateless: a caller sends a span (frames with the context they need, and which frames to
keep, as pipeline.codec.StreamingSpans plans it) and gets final samples back, so any replica
can serve any chunk of any stream. Codes arrive as they left the engine (int64 LongTensor).
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import torch
from ray import serve
from ray.serve.metrics import Histogram

from deployments.config import BatchSettings, ModelSources
from deployments.models import load_with_fallback
from deployments.ray_errors import log_client_errors_at_info
from pipeline.codec import Codec, CodeSpan


@serve.deployment
class Vocoder:
    def __init__(self, sources: ModelSources):
        log_client_errors_at_info()  # Serve logs 4xx-type errors at INFO, no traceback
        self.sources = sources

        def load(source: str) -> Codec:
            return Codec.from_pretrained(source, device=sources.device, dtype=sources.codec_dtype)

        self.codec, self.real_weights = load_with_fallback(load, sources.codec, sources.fallback, "codec")
        self._latency = Histogram(
            "zonos_vocoder_chunk_seconds",
            "Time to decode one batch of vocoder chunks.",
            boundaries=[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2],
        )

    def reconfigure(self, user_config: dict) -> None:
        """Batch size and wait time (BatchSettings): `user_config`, set by build_app from
        AppConfig.vocoder_batch; Serve calls this before the replica serves, and again on a change."""
        settings = BatchSettings.model_validate(user_config)
        self._decode.set_max_batch_size(settings.max_batch_size)
        self._decode.set_batch_wait_timeout_s(settings.batch_wait_timeout_s)

    def model_card(self) -> dict:
        return {"real_weights": self.real_weights, "source": self.sources.codec}

    def context_frames(self) -> int:
        """Frames of context a span needs on each side (the decoder's receptive field)."""
        return self.codec.context_frames

    @serve.batch  # sized by reconfigure
    async def _decode(self, spans: list[CodeSpan]) -> list[np.ndarray]:
        started = time.perf_counter()
        audio = await asyncio.to_thread(self.codec.decode_spans, spans)
        self._latency.observe(time.perf_counter() - started)
        return audio

    async def decode(self, codes: torch.Tensor, keep_from: int, keep_to: int) -> np.ndarray:
        """Float32 samples of frames [keep_from, keep_to) of `codes` [9, L] (int64)."""
        return await self._decode((codes, keep_from, keep_to))
