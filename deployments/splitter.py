"""TextSplitter (CPU): normalise, split into sentence segments under a token budget, phonemise."""

from __future__ import annotations

import asyncio

from ray import serve

from pipeline.segment import Segment
from pipeline.streaming import SynthesisRequest, split_request


@serve.deployment
class TextSplitter:
    async def split(self, request: SynthesisRequest) -> list[Segment]:
        # espeak runs in a worker thread so the replica keeps accepting requests meanwhile
        return await asyncio.to_thread(split_request, request)
