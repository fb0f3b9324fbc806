"""TextSplitter (CPU): normalise, split into sentence segments under a token budget, phonemise."""

from __future__ import annotations

import asyncio

from ray import serve

from pipeline.segment import Segment, split_text


@serve.deployment
class TextSplitter:
    async def split(self, text: str, language: str, max_tokens: int, normalize: bool = True) -> list[Segment]:
        # espeak runs in a worker thread so the replica keeps accepting requests meanwhile
        return await asyncio.to_thread(split_text, text, language, max_tokens, normalize=normalize)
