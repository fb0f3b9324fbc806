"""Text in, audio out, without Ray: the graph of pipeline.streaming run on one device.

`Synthesizer.stream` yields audio in text order as soon as it is decoded, first segment first;
`Synthesizer.synthesize` is that stream joined, with whole segments decoded at once (no early
audio to wait for, so no chunking). Both give the same samples for the same seed: every segment
gets its own seed derived from the request's, and the engine gives a row the same tokens whatever
else shares its batch.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from pipeline.codec import PUBLISHED_REPO as CODEC_REPO
from pipeline.codec import Codec, CodeSpan
from pipeline.engine import GenerationRequest, ZonosEngine
from pipeline.engine.async_engine import AsyncEngine
from pipeline.engine.request import SPEAKER_DIM, FrameChunk
from pipeline.loading import RANDOM_1B6, RANDOM_TINY
from pipeline.segment import Segment
from pipeline.speaker import PUBLISHED_REPO as SPEAKER_REPO
from pipeline.speaker import SpeakerEncoder
from pipeline.streaming import (
    CHUNK_FRAMES,
    AudioPiece,
    SynthesisRequest,
    SynthesisResult,
    collect,
    in_chunks,
    split_request,
    stream_audio,
)

__all__ = ["LocalSteps", "SynthesisRequest", "SynthesisResult", "Synthesizer", "default_sources", "synthesize"]


def default_sources(model: str) -> tuple[str, str]:
    """(codec, speaker encoder) that go with an LM source: random-tiny for a random LM, else the published ones."""
    if model in (RANDOM_TINY, RANDOM_1B6):
        return RANDOM_TINY, RANDOM_TINY
    return CODEC_REPO, SPEAKER_REPO


class LocalSteps:
    """The graph's steps (pipeline.streaming.SynthesisSteps) in this process: the text is split in a
    worker thread, segments run on one AsyncEngine, and spans decode in one vocoder thread (as one
    Vocoder replica decodes them in turn).

    `chunk_frames`: frames per decoded span while a segment generates; None decodes each segment
    whole once it is done."""

    def __init__(
        self,
        engine: AsyncEngine,
        codec: Codec,
        vocoder_thread: ThreadPoolExecutor,
        chunk_frames: int | None = CHUNK_FRAMES,
    ):
        self.engine, self.codec, self.vocoder_thread, self.chunk_frames = engine, codec, vocoder_thread, chunk_frames
        self.max_seq_len = engine.config.max_seq_len
        self.context_frames = codec.context_frames

    async def split(self, request: SynthesisRequest) -> list[Segment]:
        return await asyncio.to_thread(split_request, request)

    def frames(self, request: GenerationRequest) -> AsyncIterator[FrameChunk]:
        return in_chunks(self.engine.generate(request), self.chunk_frames)

    async def decode(self, span: CodeSpan) -> np.ndarray:
        loop = asyncio.get_running_loop()
        (samples,) = await loop.run_in_executor(self.vocoder_thread, self.codec.decode_spans, [span])
        return samples


class Synthesizer:
    """The whole pipeline on one device: engine (LM), codec (vocoder) and speaker encoder.

    Generation runs on the engine's own loop (an AsyncEngine thread, started on first use): while a
    Synthesizer is in use, drive its engine through it only. `close()` stops its threads."""

    def __init__(self, engine: ZonosEngine, codec: Codec, speaker_encoder: SpeakerEncoder | None = None):
        self.engine = engine
        self.codec = codec
        self.speaker_encoder = speaker_encoder
        self._async_engine: AsyncEngine | None = None
        self._vocoder_thread = ThreadPoolExecutor(1, thread_name_prefix="zonos-vocoder")

    @classmethod
    def from_pretrained(
        cls,
        model: str = "Zyphra/Zonos-v0.1-transformer",
        codec: str | None = None,
        speaker: str | None = None,
        device: str = "cpu",
        dtype: str = "auto",
        codec_dtype: str = "auto",
        **engine_config,
    ) -> Synthesizer:
        """Load all three models; with a random model (`random-tiny`, `zonos-1.6b-random`) the codec and
        speaker default to random-tiny. dtype "auto": bfloat16 LM and float16 codec on CUDA, else float32."""
        default_codec, default_speaker = default_sources(model)
        codec, speaker = codec or default_codec, speaker or default_speaker
        return cls(
            ZonosEngine.from_pretrained(model, device=device, dtype=dtype, **engine_config),
            Codec.from_pretrained(codec, device=device, dtype=codec_dtype),
            SpeakerEncoder.from_pretrained(speaker, device=device),
        )

    def voice_embedding(self, clip) -> list[float]:
        """A voice clip (path, bytes, or (samples, rate)) -> the 128 floats `speaker` takes."""
        if self.speaker_encoder is None:
            raise ValueError("this synthesizer has no speaker encoder: pass a 128-float embedding instead")
        if isinstance(clip, tuple):
            return self.speaker_encoder.embed(*clip).tolist()
        return self.speaker_encoder.embed_file(clip).tolist()

    def steps(self, chunk_frames: int | None = CHUNK_FRAMES) -> LocalSteps:
        """The graph's steps on this synthesizer's models, for `pipeline.streaming.stream_audio` from async code."""
        if self._async_engine is None:
            self._async_engine = AsyncEngine(self.engine)
        return LocalSteps(self._async_engine, self.codec, self._vocoder_thread, chunk_frames)

    def stream(self, request: SynthesisRequest) -> Iterator[AudioPiece]:
        """AudioPieces in text order as they are decoded (`CHUNK_FRAMES` frames at a time); joined, they
        equal `synthesize`'s audio. See SegmentJoiner for when audio leaves with and without a crossfade.
        Stopping early aborts the segments still generating."""
        return _blocking(stream_audio(request, self.steps()))

    def synthesize(
        self, request: SynthesisRequest, progress: Callable[[int, int], None] | None = None
    ) -> SynthesisResult:
        """The whole text as one SynthesisResult; `progress(segments done, segments)` as each segment is done."""

        def on_segment(timing, n_segments: int) -> None:
            if progress:
                progress(timing.index + 1, n_segments)

        return _run(collect(stream_audio(request, self.steps(chunk_frames=None)), on_segment))

    def close(self) -> None:
        if self._async_engine is not None:
            self._async_engine.close()
            self._async_engine = None
        self._vocoder_thread.shutdown()


def _run(coroutine):
    """Run a coroutine to its end on a private event loop (this thread must not be running one)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def _blocking(pieces: AsyncIterator[AudioPiece]) -> Iterator[AudioPiece]:
    """An async iterator read from blocking code, on a private event loop; closing it closes `pieces`."""
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(anext(pieces))
            except StopAsyncIteration:
                return
    finally:
        loop.run_until_complete(pieces.aclose())
        loop.close()


@functools.cache
def _shared_synthesizer(model: str, device: str, dtype: str) -> Synthesizer:
    return Synthesizer.from_pretrained(model, device=device, dtype=dtype)


def synthesize(
    text: str,
    voice=None,
    *,
    model: str = "Zyphra/Zonos-v0.1-transformer",
    device: str = "cpu",
    dtype: str = "auto",
    **options,
) -> SynthesisResult:
    """One call from text to audio. `voice`: None, a 128-float embedding, or a clip (path, bytes,
    or (samples, rate)); `options`: any SynthesisRequest field. Models load once per process."""
    synthesizer = _shared_synthesizer(model, device, dtype)
    is_embedding = isinstance(voice, list | np.ndarray | torch.Tensor) and len(voice) == SPEAKER_DIM
    speaker = None if voice is None else list(map(float, voice)) if is_embedding else synthesizer.voice_embedding(voice)
    return synthesizer.synthesize(SynthesisRequest(text=text, speaker=speaker, **options))
