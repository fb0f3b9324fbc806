"""Text in, audio out, without Ray: split -> bucket -> batched engine -> vocoder -> join.

`Synthesizer.synthesize` returns the whole utterance; `Synthesizer.stream` yields audio in text
order as soon as it is decoded, first segment first. Both give the same samples for the same
seed: every segment gets its own seed derived from the request's, and the engine gives a row
the same tokens whatever else shares its batch.
"""

from __future__ import annotations

import functools
import itertools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from pydantic import Field

from pipeline.audio import SegmentJoiner, join_segments
from pipeline.codec import PUBLISHED_REPO as CODEC_REPO
from pipeline.codec import SAMPLE_RATE, Codec
from pipeline.engine import GenerationRequest, ZonosEngine
from pipeline.engine.request import SPEAKER_DIM, Controls
from pipeline.engine.scheduler import cache_positions
from pipeline.model import FRAME_RATE, MAX_FRAMES, RANDOM_1B6, RANDOM_TINY
from pipeline.segment import DEFAULT_MAX_TOKENS, Segment, bucket_segments, split_text
from pipeline.speaker import PUBLISHED_REPO as SPEAKER_REPO
from pipeline.speaker import SpeakerEncoder

# A segment may run to this multiple of its expected duration (plus a second) before it is cut:
# generous for slow speech, yet a runaway segment cannot run to the model's 30 s cap.
DEFAULT_DURATION_BUDGET = 2.5
MIN_SPEAKING_RATE = 5.0  # phonemes per second assumed when a request asks for less
_SEED_STRIDE = 0x9E3779B97F4A7C15
_SILENCE = np.zeros(0, np.float32)


class SynthesisRequest(Controls):
    """A whole text to speak, with every Zonos control; long texts are split into segments."""

    normalize: bool = Field(
        True,
        description=(
            "Clean the text before phonemising it (pipeline.text): read numbers, money and dates as words and "
            "leave markdown and emoji unspoken. False reads the text literally (numbers by espeak-ng itself); "
            "Unicode normalisation, invisible and layout characters and unreadable scripts are handled either way."
        ),
    )
    max_tokens_per_segment: int = Field(DEFAULT_MAX_TOKENS, ge=16, le=1000)
    max_bucket_size: int = Field(16, ge=1, le=256)
    pause_ms: float = Field(200.0, ge=0.0, le=5000.0)
    crossfade_ms: float = Field(0.0, ge=0.0, le=200.0)
    duration_budget: float = Field(
        DEFAULT_DURATION_BUDGET,
        ge=1.0,
        le=10.0,
        description="A segment is cut at this multiple of its expected duration (from speaking_rate) plus 1 s.",
    )


@dataclass
class SegmentResult:
    index: int
    text: str
    n_tokens: int
    codes: torch.Tensor  # [9, T] codec frames
    stop_reason: str


@dataclass
class SynthesisResult:
    audio: np.ndarray  # float32 mono
    sample_rate: int
    segments: list[SegmentResult]
    wall_seconds: float

    @property
    def duration_seconds(self) -> float:
        return len(self.audio) / self.sample_rate

    @property
    def real_time_factor(self) -> float:
        """Wall time per second of audio: below 1 is faster than real time."""
        return self.wall_seconds / max(self.duration_seconds, 1e-9)


@dataclass
class AudioChunk:
    """Audio of one segment, in text order; `last` marks the segment's final chunk."""

    segment_index: int
    samples: np.ndarray
    last: bool
    segment: SegmentResult | None = field(default=None)  # set on the last chunk


def default_sources(model: str) -> tuple[str, str]:
    """(codec, speaker encoder) that go with an LM source: random-tiny for a random LM, else the published ones."""
    if model in (RANDOM_TINY, RANDOM_1B6):
        return RANDOM_TINY, RANDOM_TINY
    return CODEC_REPO, SPEAKER_REPO


def frame_budget(n_tokens: int, speaking_rate: float, duration_budget: float = DEFAULT_DURATION_BUDGET) -> int:
    """max_new_tokens for a segment: `duration_budget` times its expected duration plus 1 s, at most 30 s."""
    expected_seconds = n_tokens / max(speaking_rate, MIN_SPEAKING_RATE)
    frames = math.ceil((duration_budget * expected_seconds + 1.0) * FRAME_RATE)
    return min(frames, MAX_FRAMES)


def segment_seed(seed: int | None, index: int) -> int | None:
    """A distinct, reproducible seed per segment (None stays random)."""
    return None if seed is None else (seed + index * _SEED_STRIDE) % 2**63


def segment_request(request: SynthesisRequest, segment: Segment, max_seq_len: int) -> GenerationRequest:
    """The engine request for one segment: its phonemes, the request's controls, a frame budget
    from its length (at most what its KV-cache row can hold) and its own seed."""
    room = max_seq_len - cache_positions(segment.n_tokens, n_prefix_frames=0, max_new_tokens=0)
    if room < 1:
        raise ValueError(
            f"segment {segment.index} has {segment.n_tokens} phoneme tokens, more than the engine's "
            f"max_seq_len={max_seq_len} leaves room for; lower max_tokens_per_segment"
        )
    controls = request.model_dump(include=set(Controls.model_fields), exclude={"text", "seed"})
    return GenerationRequest(
        **controls,
        text=segment.text,
        phoneme_ids=segment.phoneme_ids,
        max_new_tokens=min(frame_budget(segment.n_tokens, request.speaking_rate, request.duration_budget), room),
        priority=0 if segment.index == 0 else 1,  # a text's first audio before other texts' later segments
        seed=segment_seed(request.seed, segment.index),
    )


class Synthesizer:
    """The whole pipeline on one device: engine (LM), codec (vocoder) and speaker encoder."""

    def __init__(
        self,
        engine: ZonosEngine,
        codec: Codec,
        speaker_encoder: SpeakerEncoder | None = None,
        stream_chunk_frames: int = 16,
    ):
        self.engine = engine
        self.codec = codec
        self.speaker_encoder = speaker_encoder
        # Frames handed to a streaming vocoder at once: each push re-decodes its context, so
        # single frames would cost ~20x; 16 frames (186 ms of audio) keep the first audio early.
        self.stream_chunk_frames = stream_chunk_frames
        self._ids = itertools.count()

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

    # ----------------------------------------------------------------------- generation

    def _generate(self, request: SynthesisRequest, segments: list[Segment]) -> Iterator[tuple[int, object]]:
        """Queue `segments` in the given order and drive the engine: (segment index, FrameChunk) events."""
        prefix = f"syn{next(self._ids)}"
        for segment in segments:
            self.engine.add_request(
                segment_request(request, segment, self.engine.config.max_seq_len), f"{prefix}-{segment.index}"
            )
        pending = len(segments)
        try:
            while pending:
                for chunk in self.engine.step():
                    owner, _, index = chunk.request_id.rpartition("-")
                    if owner == prefix:
                        pending -= chunk.finished
                        yield int(index), chunk
        finally:  # a consumer that stops early must not leave rows decoding
            for segment in segments:
                self.engine.abort(f"{prefix}-{segment.index}")

    def synthesize(self, request: SynthesisRequest, progress: Callable[[int, int], None] | None = None):
        """The whole text as one array; segments run bucketed by length, then decode as one batch."""
        started = time.perf_counter()
        segments = split_text(
            request.text, request.language, request.max_tokens_per_segment, normalize=request.normalize
        )
        in_bucket_order = [s for bucket in bucket_segments(segments, request.max_bucket_size) for s in bucket]
        frames: dict[int, list[torch.Tensor]] = {s.index: [] for s in segments}
        results: dict[int, SegmentResult] = {}
        for index, chunk in self._generate(request, in_bucket_order):
            frames[index].append(chunk.frames)
            if chunk.finished:
                results[index] = _segment_result(segments[index], frames.pop(index), chunk.stop_reason)
                if progress:
                    progress(len(results), len(segments))
        ordered = [results[s.index] for s in segments]
        audio = join_segments(
            self._decode([r.codes for r in ordered]), SAMPLE_RATE, request.pause_ms, request.crossfade_ms
        )
        return SynthesisResult(audio, SAMPLE_RATE, ordered, time.perf_counter() - started)

    def _decode(self, codes: list[torch.Tensor]) -> list[np.ndarray]:
        """Batched decode; a segment that ended at once (no frames) is silent."""
        voiced = [c for c in codes if c.shape[1]]
        decoded = iter(self.codec.decode(voiced) if voiced else [])
        return [next(decoded) if c.shape[1] else _SILENCE for c in codes]

    def stream(self, request: SynthesisRequest) -> Iterator[AudioChunk]:
        """Audio in text order as it is decoded; the chunks joined equal `synthesize`'s audio.

        Segments are queued in text order, so the first one is admitted first; each has its own
        streaming vocoder, fed `stream_chunk_frames` at a time. See SegmentJoiner for when
        audio leaves with and without a crossfade.
        """
        segments = split_text(
            request.text, request.language, request.max_tokens_per_segment, normalize=request.normalize
        )
        joiner = SegmentJoiner(len(segments), SAMPLE_RATE, request.pause_ms, request.crossfade_ms)
        decoders = {s.index: self.codec.streaming_decoder() for s in segments}
        frames: dict[int, list[torch.Tensor]] = {s.index: [] for s in segments}
        unpushed: dict[int, list[torch.Tensor]] = {s.index: [] for s in segments}
        done: dict[int, SegmentResult] = {}
        for index, chunk in self._generate(request, segments):
            frames[index].append(chunk.frames)
            unpushed[index].append(chunk.frames)
            samples = []
            if chunk.finished or sum(f.shape[1] for f in unpushed[index]) >= self.stream_chunk_frames:
                samples.append(decoders[index].push(torch.cat(unpushed[index], dim=1)))
                unpushed[index] = []
            if chunk.finished:
                samples.append(decoders.pop(index).flush())
                done[index] = _segment_result(segments[index], frames.pop(index), chunk.stop_reason)
            for segment_index, piece, last in joiner.add(index, np.concatenate(samples or [_SILENCE]), chunk.finished):
                yield AudioChunk(segment_index, piece, last, done.get(segment_index) if last else None)


def _segment_result(segment: Segment, frames: list[torch.Tensor], stop_reason: str) -> SegmentResult:
    return SegmentResult(segment.index, segment.text, segment.n_tokens, torch.cat(frames, dim=1), stop_reason)


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
