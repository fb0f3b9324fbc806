"""One synthesis request through the graph: split -> engine requests -> frames -> vocoder spans -> joined audio.

`stream_audio` is the graph, written once. Its three steps are injected (`SynthesisSteps`), so the
same code runs in one process (`pipeline.synthesis.LocalSteps`: AsyncEngine and Codec) and across
Ray Serve deployments (`deployments.ingress.Ingress`: TextSplitter, Generator and Vocoder handles):

1. `split`: the text -> `Segment`s in text order;
2. `frames`: one segment's `GenerationRequest` -> its frames as `FrameChunk`s, `CHUNK_FRAMES` at a
   time (`in_chunks`); every segment's stream starts at once, so segments share engine batches;
3. `decode`: a `CodeSpan` that `StreamingSpans` planned -> the final samples of its kept frames.

Segments are read in text order and their audio joined by `SegmentJoiner`, so pieces leave in text
order, the first as soon as it is decoded. When the consumer stops early or a step fails, every
segment stream still running is cancelled (its engine rows are aborted).

Before the join, a request's `tempo` (when not 1) time-stretches each segment's audio as it is
decoded (pipeline.audio.TempoStretcher, one per segment), so pauses, crossfades and the times in
each SegmentTiming (`start_sample`/`end_sample`, pipeline.audio.segment_bounds) are those of the
audio the client gets. A request has one seed: a request without one draws it (`resolve_seed`),
every segment's seed derives from it (`segment_seed`), and every piece carries it.

Recovery: a step that fails transiently raises `StepUnavailable` (a worker died, restarts or is
overloaded). The graph then makes the same call again, up to `RETRIES` times: a segment is
re-submitted whole (its seed is fixed, and sampling is counter-based, so it repeats its tokens),
the frames already passed on are checked against the repeat and skipped, and only new frames go
on; a span's decode is repeated. So a recovered response carries the bytes an undisturbed run
gives, or, when the repeat differs or the retries run out, fails visibly.

Codes are int64 end to end: the engine samples them as int64, the codec's embedding takes int64,
and a chunk of 16 frames is 1.2 KB against the 32 KB of float32 audio it decodes to, so a narrower
type over Ray would save nothing worth two conversions. Inside the graph they are torch LongTensors
(FrameChunk, CodeSpan); what reaches callers (SegmentTiming) is a numpy view of the same int64
memory, like the audio: a handle caller need not import torch (and with Ray 2.60 a replica that
has not imported torch hangs unpickling a torch tensor from a streaming call).
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Protocol

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from pipeline.audio import SegmentJoiner, TempoStretcher
from pipeline.codec import SAMPLE_RATE, CodeSpan, StreamingSpans
from pipeline.engine.delay import cache_positions
from pipeline.engine.request import Controls, FrameChunk, GenerationRequest
from pipeline.model import FRAME_RATE, MAX_FRAMES, N_CODEBOOKS
from pipeline.segment import DEFAULT_MAX_TOKENS, Segment, split_text

# Frames per chunk from the engine to the vocoder: each chunk's span re-decodes its context, so
# single frames would cost ~20x; 16 frames (186 ms of audio) keep the first audio early.
CHUNK_FRAMES = 16
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
    pause_ms: float = Field(
        200.0,
        ge=0.0,
        le=5000.0,
        description="Silence between segments, in ms of the output: not divided by `tempo`.",
    )
    crossfade_ms: float = Field(
        0.0, ge=0.0, le=200.0, description="Equal-power fade at each boundary, in ms of the output (join_segments)."
    )
    tempo: float = Field(
        1.0,
        ge=0.25,
        le=4.0,
        description=(
            "Time-stretch each segment's audio by this factor after generation, pitch kept (FFmpeg's atempo; "
            "pipeline.audio.TempoStretcher): 2 is twice as fast. Pauses and crossfades are laid on the stretched "
            "audio and keep their lengths in ms. 1 leaves the audio untouched."
        ),
    )
    duration_budget: float = Field(
        DEFAULT_DURATION_BUDGET,
        ge=1.0,
        le=10.0,
        description="A segment is cut at this multiple of its expected duration (from speaking_rate) plus 1 s.",
    )


# speaking_rate (phonemes/s) that `speed_controls` conditions the model with: 15 is the reference
# default (speed 1). 30 is the top of the reference web UI's speaking-rate slider (5..30; the
# conditioner itself was trained on 0..40, docs/zonos-v0.1.md section 3). 10 is the slowest rate at
# which a full default segment (DEFAULT_MAX_TOKENS = 300 ids) still ends within the model's 30 s
# per call (pipeline.segment; MAX_FRAMES): slower conditioning would cut long segments.
SPEED_RANGE = (0.25, 4.0)  # OpenAI's `speed`
SPEED_SPEAKING_RATE = 15.0  # the reference's default speaking_rate (phonemes/s): what speed 1 generates


def speed_controls(speed: float) -> tuple[float, float]:
    """OpenAI's `speed` (0.25..4.0, 1 = normal) -> (speaking_rate, tempo) for a SynthesisRequest:
    (15, speed). The text is generated as at speed 1 and its audio time-stretched by `speed`, pitch
    kept (FFmpeg's atempo, TempoStretcher), so with one seed the audio is exactly speed-1's length
    / speed (round(n / tempo) samples per segment): strictly monotonic over the whole range.

    Why not condition the model (speaking_rate = 15 * speed within [10, 30], the rest stretched,
    as tried first): another speaking_rate makes the model sample other tokens, whose length
    follows the model, not the request; measured on a real app (red team, fixture weights, seeds 9
    and 12), speed 1.5 gave 5.3 s where speed 1 gave 0.8 s. A client wanting Zonos's own pacing
    sends the `speaking_rate` extension instead. Raises ValueError for a speed outside 0.25..4.0
    (or not a finite number)."""
    if isinstance(speed, bool) or not (isinstance(speed, int | float) and SPEED_RANGE[0] <= speed <= SPEED_RANGE[1]):
        raise ValueError(f"speed must be a number in {SPEED_RANGE[0]}..{SPEED_RANGE[1]}, got {speed!r}")
    return SPEED_SPEAKING_RATE, float(speed)


def resolve_seed(request: SynthesisRequest) -> SynthesisRequest:
    """The request with a concrete seed: itself when it has one, else a copy with a random 63-bit
    seed (`secrets`). Every segment's seed derives from it (segment_seed), so one seed fixes the
    whole text's audio, the unconditional voice included. stream_audio calls it; call it first to
    know the seed before streaming (e.g. to send it in a header)."""
    if request.seed is not None:
        return request
    return request.model_copy(update={"seed": secrets.randbits(63)})


def frame_budget(n_tokens: int, speaking_rate: float, duration_budget: float = DEFAULT_DURATION_BUDGET) -> int:
    """max_new_tokens for a segment: `duration_budget` times its expected duration plus 1 s, at most 30 s."""
    expected_seconds = n_tokens / max(speaking_rate, MIN_SPEAKING_RATE)
    frames = math.ceil((duration_budget * expected_seconds + 1.0) * FRAME_RATE)
    return min(frames, MAX_FRAMES)


def segment_seed(seed: int | None, index: int) -> int | None:
    """A distinct, reproducible seed per segment (None stays random)."""
    return None if seed is None else (seed + index * _SEED_STRIDE) % 2**63


def split_request(request: SynthesisRequest) -> list[Segment]:
    """The request's text cut into segments with its language, token limit and cleaning choice
    (pipeline.segment.split_text, which names the errors). Blocking: espeak-ng runs here."""
    return split_text(request.text, request.language, request.max_tokens_per_segment, normalize=request.normalize)


def segment_request(request: SynthesisRequest, segment: Segment, max_seq_len: int) -> GenerationRequest:
    """The engine request for one segment: its phonemes, the request's controls, a frame budget
    from its length (at most what its KV-cache row can hold) and its own seed.

    Raises ValueError when the segment's phonemes alone fill a row of `max_seq_len` positions."""
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


# --------------------------------------------------------------------------- what comes out


class SegmentTiming(BaseModel):
    """What became of one segment: its codes, why it stopped, when its last frame arrived, its seed,
    and where its audio lies in the joined output (pipeline.audio.segment_bounds)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: int
    text: str
    n_tokens: int
    codes: np.ndarray = Field(description="int64 [9, n_frames]: the segment's codec frames, codes 0..1023.")
    stop_reason: str
    done_s: float = Field(description="Seconds from the request's start until its last frame arrived.")
    seed: int = Field(description="The segment's own seed: segment_seed(request seed, index).")
    start_sample: int = Field(
        description=(
            "First sample of the segment in the joined output (at sample_rate, after pauses, crossfades and "
            "tempo); where a crossfade overlaps two segments, the overlap's midpoint."
        )
    )
    end_sample: int = Field(
        description="One past its last sample, the pause after it excluded; the last segment's is the audio length."
    )
    sample_rate: int = SAMPLE_RATE

    @property
    def n_frames(self) -> int:
        return self.codes.shape[1]

    @property
    def start_s(self) -> float:
        """start_sample in seconds."""
        return self.start_sample / self.sample_rate

    @property
    def end_s(self) -> float:
        """end_sample in seconds."""
        return self.end_sample / self.sample_rate


class AudioPiece(BaseModel):
    """A piece of the joined audio, in text order; `segment_done` marks a segment's last piece,
    which carries the segment's `timing`."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    segment_index: int
    n_segments: int
    samples: np.ndarray = Field(description="float32 mono samples at sample_rate; may be empty.")
    sample_rate: int = SAMPLE_RATE
    segment_done: bool
    timing: SegmentTiming | None = None
    seed: int = Field(description="The request's seed (resolve_seed): the same on every piece of a stream.")


class SynthesisResult(BaseModel):
    """A whole utterance: the stream's pieces joined, with each segment's timing in text order."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    audio: np.ndarray = Field(description="float32 mono samples at sample_rate.")
    sample_rate: int
    segments: list[SegmentTiming]
    seed: int | None = Field(description="The request's seed (resolve_seed); None only for a stream of no pieces.")
    time_to_first_audio_s: float
    wall_s: float

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate

    @property
    def real_time_factor(self) -> float:
        """Wall time per second of audio: below 1 is faster than real time."""
        return self.wall_s / max(self.duration_s, 1e-9)


# --------------------------------------------------------------------------- the steps

RETRIES = 3  # further attempts of one segment's generation or one span's decode after StepUnavailable
RETRY_BACKOFF_S = (0.2, 1.0, 3.0)  # wait before each further attempt


class StepUnavailable(RuntimeError):
    """A step's worker failed transiently (died, restarting, overloaded): the same call may
    succeed if made again. `retry_after_s`: when a client should retry if the graph gives up."""

    def __init__(self, message: str = "a model worker is unavailable; retry shortly", retry_after_s: float = 1.0):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RecoveryMismatch(StepUnavailable):
    """A re-submitted segment did not repeat the frames already sent: the response cannot be exact.
    Not retried within the request; a client's retry runs the text afresh."""


class SynthesisSteps(Protocol):
    """Where the graph's work runs: in this process or in other deployments."""

    max_seq_len: int  # the engine's KV-cache row length: bounds each segment's frame budget
    context_frames: int  # frames of context the vocoder needs on each side of a span

    async def split(self, request: SynthesisRequest) -> list[Segment]:
        """The request's text as segments in text order; raises for text with nothing to speak."""

    def frames(self, request: GenerationRequest) -> AsyncIterator[FrameChunk]:
        """One segment's frames, in chunks (`in_chunks`), the last with `finished` set. The request
        starts when the iterator is first awaited and must stop when the iteration is cancelled."""

    async def decode(self, span: CodeSpan) -> np.ndarray:
        """float32 samples (512 per frame) of the span's kept frames (see Codec.decode_spans)."""


async def in_chunks(chunks: AsyncIterable[FrameChunk], size: int | None = CHUNK_FRAMES) -> AsyncIterator[FrameChunk]:
    """Engine chunks (a frame or so each) regrouped into chunks of at least `size` frames (the
    last may have fewer); size None: one chunk holding all frames, when the request finishes."""
    pending: list[torch.Tensor] = []
    n_pending = 0
    async for chunk in chunks:
        pending.append(chunk.frames)
        n_pending += chunk.frames.shape[1]
        if chunk.finished or (size is not None and n_pending >= size):
            yield FrameChunk(chunk.request_id, torch.cat(pending, dim=1), chunk.finished, chunk.stop_reason)
            pending, n_pending = [], 0


# --------------------------------------------------------------------------- the graph


async def stream_audio(request: SynthesisRequest, steps: SynthesisSteps) -> AsyncIterator[AudioPiece]:
    """The request's audio in text order as it is decoded; the pieces joined equal `join_segments`
    of every segment's whole decode (each stretched by `request.tempo` first, when it is not 1).
    A request without a seed gets one (resolve_seed) that every piece carries. Raises what a step
    raises (after cancelling every segment)."""
    started = time.perf_counter()
    request = resolve_seed(request)
    segments = await steps.split(request)
    queues: list[asyncio.Queue] = [asyncio.Queue() for _ in segments]
    pumps = [
        asyncio.create_task(_pump(steps, segment_request(request, segment, steps.max_seq_len), queue))
        for segment, queue in zip(segments, queues, strict=True)
    ]
    joiner = SegmentJoiner(len(segments), SAMPLE_RATE, request.pause_ms, request.crossfade_ms)
    finished_segments: dict[int, dict] = {}  # a crossfade releases a segment only once its successor is done
    try:
        for segment, queue in zip(segments, queues, strict=True):
            spans = StreamingSpans(steps.context_frames, N_CODEBOOKS)
            stretcher = None if request.tempo == 1 else TempoStretcher(request.tempo, SAMPLE_RATE)
            codes: list[torch.Tensor] = []
            finished = False
            while not finished:
                chunk = await _next_chunk(queue)
                finished = chunk.finished
                codes.append(chunk.frames)
                span = spans.push(chunk.frames, last=finished)
                samples = _SILENCE if span is None else await _decode(steps, span)
                if stretcher is not None:
                    samples = stretcher.push(samples)
                    if finished:
                        samples = np.concatenate([samples, stretcher.flush()])
                if finished:
                    finished_segments[segment.index] = dict(
                        index=segment.index,
                        text=segment.text,
                        n_tokens=segment.n_tokens,
                        codes=torch.cat(codes, dim=1).numpy(),
                        stop_reason=chunk.stop_reason,
                        done_s=time.perf_counter() - started,
                        seed=segment_seed(request.seed, segment.index),
                    )
                for index, piece, done in joiner.add(segment.index, samples, finished):
                    timing = None
                    if done:
                        start, end = joiner.bounds(index)
                        timing = SegmentTiming(**finished_segments.pop(index), start_sample=start, end_sample=end)
                    yield AudioPiece(
                        segment_index=index,
                        n_segments=len(segments),
                        samples=piece,
                        segment_done=done,
                        timing=timing,
                        seed=request.seed,
                    )
    finally:  # a consumer gone or a step failed: stop generating what nobody will hear
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)


async def _pump(steps: SynthesisSteps, request: GenerationRequest, queue: asyncio.Queue) -> None:
    """Move one segment's chunks into its queue as they come; a failure goes in as the exception.

    On StepUnavailable the segment is generated again from the start (up to RETRIES times): the
    frames already queued must come back identical (else RecoveryMismatch) and are skipped."""
    sent = torch.zeros((N_CODEBOOKS, 0), dtype=torch.long)  # frames already queued
    for attempt in range(RETRIES + 1):
        try:
            seen, finished = 0, False  # frames of this attempt so far; its last chunk came
            async for chunk in steps.frames(request):
                overlap = min(max(sent.shape[1] - seen, 0), chunk.frames.shape[1])
                if not torch.equal(chunk.frames[:, :overlap], sent[:, seen : seen + overlap]):
                    raise RecoveryMismatch(
                        "a segment generated again after a worker failure did not repeat its first "
                        f"{sent.shape[1]} frames; the response cannot continue exactly"
                    )
                seen += chunk.frames.shape[1]
                new = chunk.frames[:, overlap:]
                if new.shape[1] or chunk.finished:
                    sent = torch.cat([sent, new], dim=1)
                    queue.put_nowait(FrameChunk(chunk.request_id, new, chunk.finished, chunk.stop_reason))
                finished = chunk.finished
            if finished:
                return
            raise RuntimeError("a segment's frame stream ended before its last chunk")
        except RecoveryMismatch as exc:
            queue.put_nowait(exc)
            return
        except StepUnavailable as exc:
            if attempt == RETRIES:
                queue.put_nowait(exc)
                return
            await asyncio.sleep(RETRY_BACKOFF_S[attempt])
        except Exception as exc:
            queue.put_nowait(exc)
            return


async def _decode(steps: SynthesisSteps, span: CodeSpan) -> np.ndarray:
    """`steps.decode(span)`, made again (up to RETRIES times) after StepUnavailable."""
    for attempt in range(RETRIES):
        try:
            return await steps.decode(span)
        except StepUnavailable:
            await asyncio.sleep(RETRY_BACKOFF_S[attempt])
    return await steps.decode(span)


async def _next_chunk(queue: asyncio.Queue) -> FrameChunk:
    item = await queue.get()
    if isinstance(item, BaseException):
        raise item
    return item


async def collect(
    pieces: AsyncIterable[AudioPiece], on_segment: Callable[[SegmentTiming, int], None] | None = None
) -> SynthesisResult:
    """A stream's pieces joined into one SynthesisResult; `on_segment(timing, n_segments)` as each segment is done."""
    started = time.perf_counter()
    samples: list[np.ndarray] = []
    timings: list[SegmentTiming] = []
    first = seed = None
    async for piece in pieces:
        seed = piece.seed
        if first is None and len(piece.samples):
            first = time.perf_counter() - started
        samples.append(piece.samples)
        if piece.timing is not None:
            timings.append(piece.timing)
            if on_segment:
                on_segment(piece.timing, piece.n_segments)
    wall = time.perf_counter() - started
    audio = np.concatenate(samples) if samples else _SILENCE
    return SynthesisResult(
        audio=audio,
        sample_rate=SAMPLE_RATE,
        segments=timings,
        seed=seed,
        time_to_first_audio_s=first or wall,
        wall_s=wall,
    )
