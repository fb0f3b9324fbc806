"""TextSplitter (CPU): normalise, split into sentence segments under a token budget, phonemise."""

from __future__ import annotations

import asyncio

from ray import serve

from deployments.ray_errors import log_client_errors_at_info
from pipeline.segment import Segment
from pipeline.streaming import SynthesisRequest, split_request


@serve.deployment
class TextSplitter:
    def __init__(self):
        log_client_errors_at_info()  # Serve logs 4xx-type errors at INFO, no traceback

    async def split(self, request: SynthesisRequest) -> list[Segment]:
        # espeak runs in a worker thread so the replica keeps accepting requests meanwhile
        return await asyncio.to_thread(split_request, request)
