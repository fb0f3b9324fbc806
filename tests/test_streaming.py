"""The streaming core with fake steps: text order, joining, timings, and stopping every segment on exit."""

import asyncio

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import streaming
from pipeline.audio import TempoStretcher, join_segments, segment_bounds
from pipeline.codec import HOP_LENGTH, SAMPLE_RATE
from pipeline.engine import FrameChunk, GenerationRequest
from pipeline.model import N_CODEBOOKS
from pipeline.segment import Segment
from pipeline.streaming import (
    CHUNK_FRAMES,
    RETRIES,
    RecoveryMismatch,
    StepUnavailable,
    SynthesisRequest,
    collect,
    in_chunks,
    resolve_seed,
    segment_seed,
    speed_controls,
    stream_audio,
)

TEXTS = ["First one.", "Second one.", "Third one."]


class FakeSteps:
    """Segment i makes `lengths[i]` frames of code i, `chunk` frames per chunk, a chunk every `delays[i]` s.

    A frame's "audio" is its code + 1 in each of its 512 samples, so every sample says where it came from."""

    max_seq_len = 1024
    context_frames = 2

    def __init__(self, lengths, delays, chunk=3, fail_decode_at=None, fail_frames_of=None):
        self.lengths, self.delays, self.chunk = lengths, delays, chunk
        self.fail_decode_at, self.fail_frames_of = fail_decode_at, fail_frames_of
        self.requests: list[GenerationRequest] = []
        self.ended: dict[int, str] = {}  # segment -> "finished" or "cancelled"
        self.decodes = 0

    async def split(self, request):
        starts = [request.text.index(t) for t in TEXTS]
        return [
            Segment(index=i, text=t, start=start, end=start + len(t), n_tokens=3, phoneme_ids=[1, 2, 3])
            for i, (t, start) in enumerate(zip(TEXTS, starts, strict=True))
        ]

    async def frames(self, request):
        index = TEXTS.index(request.text)
        self.requests.append(request)
        try:
            if index == self.fail_frames_of:
                raise RuntimeError("generation failed")
            sent = 0
            while True:
                await asyncio.sleep(self.delays[index])
                n = min(self.chunk, self.lengths[index] - sent)
                sent += n
                finished = sent == self.lengths[index]
                frames = torch.full((N_CODEBOOKS, n), index, dtype=torch.long)
                yield FrameChunk(f"s{index}", frames, finished, "eos" if finished else None)
                if finished:
                    self.ended[index] = "finished"
                    return
        except asyncio.CancelledError:
            self.ended[index] = "cancelled"
            raise

    async def decode(self, span):
        self.decodes += 1
        if self.decodes == self.fail_decode_at:
            raise ValueError("decoding failed")
        codes, a, b = span
        return np.repeat(codes[0, a:b].numpy().astype(np.float32) + 1, HOP_LENGTH)


def _pieces(request, steps, stop_after=None):
    async def run():
        pieces = []
        stream = stream_audio(request, steps)
        try:
            async for piece in stream:
                pieces.append(piece)
                if stop_after is not None and len(pieces) == stop_after:
                    break
        finally:
            await stream.aclose()
        await asyncio.sleep(0.05)  # nothing may run on after the stream is closed
        return pieces

    return asyncio.run(run())


def _whole(lengths):
    return [np.full(n * HOP_LENGTH, i + 1, np.float32) for i, n in enumerate(lengths)]


@pytest.mark.parametrize("crossfade_ms", [0.0, 5.0])
def test_pieces_come_in_text_order_and_join_like_whole_segments(crossfade_ms):
    lengths = [7, 10, 4]
    steps = FakeSteps(lengths, delays=[0.02, 0.001, 0.0])  # the last segment finishes first
    request = SynthesisRequest(text=" ".join(TEXTS), seed=5, pause_ms=10, crossfade_ms=crossfade_ms)
    pieces = _pieces(request, steps)
    order = [p.segment_index for p in pieces]
    assert order == sorted(order)
    assert [p.segment_index for p in pieces if p.segment_done] == [0, 1, 2]
    assert all(p.n_segments == 3 and p.sample_rate == SAMPLE_RATE for p in pieces)
    joined = np.concatenate([p.samples for p in pieces])
    np.testing.assert_array_equal(joined, join_segments(_whole(lengths), SAMPLE_RATE, 10, crossfade_ms))
    if not crossfade_ms:  # without a crossfade audio leaves before its segment is done
        assert not pieces[0].segment_done and len(pieces[0].samples)
    assert steps.ended == {0: "finished", 1: "finished", 2: "finished"}


def test_each_segment_is_its_own_engine_request_all_started_at_once():
    steps = FakeSteps([4, 4, 4], delays=[0.0, 0.0, 0.0])
    _pieces(SynthesisRequest(text=" ".join(TEXTS), seed=9, cfg_scale=1.5), steps, stop_after=1)
    assert len(steps.requests) == 3  # all started though the consumer took one piece
    by_text = {r.text: r for r in steps.requests}
    for i, text in enumerate(TEXTS):
        assert by_text[text].seed == segment_seed(9, i) and by_text[text].cfg_scale == 1.5
        assert by_text[text].priority == (0 if i == 0 else 1)


def test_the_last_piece_of_a_segment_carries_its_timing():
    lengths = [5, 8, 3]
    steps = FakeSteps(lengths, delays=[0.01, 0.0, 0.0])
    pieces = _pieces(SynthesisRequest(text=" ".join(TEXTS)), steps)
    timings = [p.timing for p in pieces if p.segment_done]
    assert all(p.timing is None for p in pieces if not p.segment_done)
    assert [t.index for t in timings] == [0, 1, 2] and [t.text for t in timings] == TEXTS
    assert [t.n_frames for t in timings] == lengths and all(t.stop_reason == "eos" for t in timings)
    for i, timing in enumerate(timings):
        assert timing.codes.dtype == np.int64 and np.array_equal(timing.codes, np.full((9, lengths[i]), i))
    assert 0 < timings[0].done_s <= timings[1].done_s <= timings[2].done_s


def test_a_consumer_that_stops_early_cancels_every_running_segment():
    steps = FakeSteps([30, 30, 30], delays=[0.005, 0.005, 0.005])
    pieces = _pieces(SynthesisRequest(text=" ".join(TEXTS)), steps, stop_after=1)
    assert len(pieces) == 1
    assert steps.ended == {0: "cancelled", 1: "cancelled", 2: "cancelled"}


@pytest.mark.parametrize(
    ("failure", "error"), [({"fail_decode_at": 2}, ValueError), ({"fail_frames_of": 1}, RuntimeError)]
)
def test_a_failing_step_is_raised_and_cancels_the_other_segments(failure, error):
    steps = FakeSteps([9, 30, 30], delays=[0.001, 0.005, 0.005], **failure)
    with pytest.raises(error, match="failed"):
        _pieces(SynthesisRequest(text=" ".join(TEXTS)), steps)
    assert steps.ended.get(1) != "finished" and steps.ended[2] == "cancelled"


def test_collect_joins_the_stream_with_first_audio_and_timings():
    lengths = [6, 2, 5]
    steps = FakeSteps(lengths, delays=[0.0, 0.0, 0.0])
    seen = []
    result = asyncio.run(
        collect(
            stream_audio(SynthesisRequest(text=" ".join(TEXTS), pause_ms=0), steps),
            lambda timing, n: seen.append((timing.index, n)),
        )
    )
    np.testing.assert_array_equal(result.audio, np.concatenate(_whole(lengths)))
    assert [s.index for s in result.segments] == [0, 1, 2] and seen == [(0, 3), (1, 3), (2, 3)]
    assert 0 < result.time_to_first_audio_s <= result.wall_s
    assert result.duration_s == sum(lengths) * HOP_LENGTH / SAMPLE_RATE


def _chunks(sizes, finished_last=True):
    async def source():
        for i, n in enumerate(sizes):
            last = finished_last and i == len(sizes) - 1
            yield FrameChunk("r", torch.zeros((9, n), dtype=torch.long), last, "length" if last else None)

    return source()


async def _sizes(chunks):
    return [(c.frames.shape[1], c.finished) async for c in chunks]


def test_in_chunks_regroups_frames_and_ends_with_the_rest():
    assert asyncio.run(_sizes(in_chunks(_chunks([1] * 40)))) == [(16, False), (16, False), (8, True)]
    assert asyncio.run(_sizes(in_chunks(_chunks([0])))) == [(0, True)]  # ended at once: an empty last chunk
    assert asyncio.run(_sizes(in_chunks(_chunks([20, 1, 1]), size=CHUNK_FRAMES))) == [(20, False), (2, True)]
    assert asyncio.run(_sizes(in_chunks(_chunks([1] * 40), size=None))) == [(40, True)]


class FlakySteps(FakeSteps):
    """FakeSteps whose workers fail transiently: segment i's first attempts raise StepUnavailable
    after `cut[i]` chunks (`failing[i]` attempts in a row); decode call numbers in `decode_cuts`
    raise it once. `repeat_code` makes a re-submitted segment come back with other codes."""

    def __init__(self, lengths, chunk, cut, failing, decode_cuts=(), repeat_code=None):
        super().__init__(lengths, delays=[0.0] * len(lengths), chunk=chunk)
        self.cut, self.failing, self.decode_cuts, self.repeat_code = cut, failing, set(decode_cuts), repeat_code
        self.attempts = [0] * len(lengths)

    async def frames(self, request):
        index = TEXTS.index(request.text)
        attempt = self.attempts[index]
        self.attempts[index] += 1
        n_chunks = 0
        async for chunk in super().frames(request):
            if attempt < self.failing[index] and n_chunks == self.cut[index]:
                raise StepUnavailable("the generator replica died")
            if attempt > 0 and self.repeat_code is not None:
                other = torch.full_like(chunk.frames, self.repeat_code)
                chunk = FrameChunk(chunk.request_id, other, chunk.finished, chunk.stop_reason)
            n_chunks += 1
            yield chunk

    async def decode(self, span):
        self.decodes += 1
        if self.decodes in self.decode_cuts:
            raise StepUnavailable("the vocoder replica died")
        codes, a, b = span
        return np.repeat(codes[0, a:b].numpy().astype(np.float32) + 1, HOP_LENGTH)


@pytest.fixture
def no_backoff(monkeypatch):
    monkeypatch.setattr(streaming, "RETRY_BACKOFF_S", (0.0,) * RETRIES)


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 25), min_size=3, max_size=3),
    chunk=st.integers(1, 6),
    cut=st.lists(st.integers(0, 6), min_size=3, max_size=3),
    failing=st.lists(st.integers(0, RETRIES), min_size=3, max_size=3),
    decode_cuts=st.sets(st.integers(1, 12), max_size=3),
)
def test_transient_failures_are_recovered_to_the_exact_undisturbed_audio(lengths, chunk, cut, failing, decode_cuts):
    """Any segment may lose its worker after any chunk, up to RETRIES attempts in a row, and any
    decode may fail once: the audio equals the undisturbed run's, sample for sample."""
    streaming.RETRY_BACKOFF_S, saved = (0.0,) * RETRIES, streaming.RETRY_BACKOFF_S
    try:
        request = SynthesisRequest(text=" ".join(TEXTS), seed=3, pause_ms=10)
        calm = _pieces(request, FakeSteps(lengths, delays=[0.0] * 3, chunk=chunk))
        flaky = FlakySteps(lengths, chunk, cut, failing, decode_cuts)
        pieces = _pieces(request, flaky)
    finally:
        streaming.RETRY_BACKOFF_S = saved
    assert np.array_equal(np.concatenate([p.samples for p in pieces]), np.concatenate([p.samples for p in calm]))
    assert [p.timing.n_frames for p in pieces if p.segment_done] == lengths


def test_a_worker_that_stays_down_fails_the_stream_visibly(no_backoff):
    steps = FlakySteps([20, 20, 20], chunk=2, cut=[1, 0, 0], failing=[RETRIES + 1, 0, 0])
    with pytest.raises(StepUnavailable, match="replica died"):
        _pieces(SynthesisRequest(text=" ".join(TEXTS)), steps)
    assert steps.attempts[0] == RETRIES + 1
    assert all(steps.ended.get(i) != "finished" or i != 0 for i in range(3))


def test_a_repeat_that_differs_is_not_spliced_in(no_backoff):
    steps = FlakySteps([20, 4, 4], chunk=2, cut=[3, 0, 0], failing=[1, 0, 0], repeat_code=7)
    with pytest.raises(RecoveryMismatch, match="did not repeat"):
        _pieces(SynthesisRequest(text=" ".join(TEXTS)), steps)


# --- timestamps, tempo, seeds, speed ---------------------------------------------------------


def _stretched(segment: np.ndarray, tempo: float) -> np.ndarray:
    """One segment's whole audio stretched in one call (chunking does not matter: test_audio)."""
    if tempo == 1:
        return segment
    stretcher = TempoStretcher(tempo, SAMPLE_RATE)
    return np.concatenate([stretcher.push(segment), stretcher.flush()])


@settings(max_examples=30, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 12), min_size=3, max_size=3),
    chunk=st.integers(1, 6),
    pause_ms=st.sampled_from([0.0, 3.0, 10.0]),
    crossfade_ms=st.sampled_from([0.0, 2.0, 5.0]),
    tempo=st.sampled_from([1.0, 0.3, 0.8, 1.7, 4.0]),
)
def test_segment_times_say_where_each_segment_lies_in_the_output(lengths, chunk, pause_ms, crossfade_ms, tempo):
    """Each segment stretched whole, then joined, is the streamed audio; each timing's
    [start_sample, end_sample) is its span there (segment_bounds of the stretched lengths): without a
    crossfade its own samples, with exact silence (the pause) between segments; collect's audio ends
    at the last end."""
    request = SynthesisRequest(text=" ".join(TEXTS), seed=2, pause_ms=pause_ms, crossfade_ms=crossfade_ms, tempo=tempo)
    pieces = _pieces(request, FakeSteps(lengths, delays=[0.0] * 3, chunk=chunk))
    stretched = [_stretched(segment, tempo) for segment in _whole(lengths)]
    assert [len(s) for s in stretched] == [round(n * HOP_LENGTH / tempo) for n in lengths]
    joined = np.concatenate([p.samples for p in pieces])
    np.testing.assert_array_equal(joined, join_segments(stretched, SAMPLE_RATE, pause_ms, crossfade_ms))
    timings = [p.timing for p in pieces if p.segment_done]
    bounds = [(t.start_sample, t.end_sample) for t in timings]
    assert bounds == segment_bounds([len(s) for s in stretched], SAMPLE_RATE, pause_ms, crossfade_ms)
    assert bounds[-1][1] == len(joined)
    assert all(t.start_s == t.start_sample / SAMPLE_RATE and t.end_s == t.end_sample / SAMPLE_RATE for t in timings)
    if not crossfade_ms:
        for i, ((start, end), segment) in enumerate(zip(bounds, stretched, strict=True)):
            np.testing.assert_array_equal(joined[start:end], segment)
            if i + 1 < len(bounds):
                gap = joined[end : bounds[i + 1][0]]
                assert len(gap) == round(pause_ms * SAMPLE_RATE / 1000) and not gap.any()
    result = asyncio.run(collect(stream_audio(request, FakeSteps(lengths, delays=[0.0] * 3, chunk=chunk))))
    assert len(result.audio) == result.segments[-1].end_sample == bounds[-1][1]


def test_tempo_one_is_the_audio_without_tempo():
    lengths = [5, 9, 2]
    request = SynthesisRequest(text=" ".join(TEXTS), seed=1, pause_ms=10)
    plain = np.concatenate([p.samples for p in _pieces(request, FakeSteps(lengths, delays=[0.0] * 3))])
    np.testing.assert_array_equal(plain, join_segments(_whole(lengths), SAMPLE_RATE, 10))
    faster = _pieces(request.model_copy(update={"tempo": 2.0}), FakeSteps(lengths, delays=[0.0] * 3))
    assert len(np.concatenate([p.samples for p in faster])) == sum(round(n * HOP_LENGTH / 2) for n in lengths) + 2 * 441


def test_a_request_without_a_seed_gets_one_that_every_segment_derives_from():
    runs = []
    for _ in range(2):
        steps = FakeSteps([4, 4, 4], delays=[0.0] * 3)
        pieces = _pieces(SynthesisRequest(text=" ".join(TEXTS)), steps)
        (seed,) = {p.seed for p in pieces}  # one seed, on every piece
        assert 0 <= seed < 2**63
        assert {r.text: r.seed for r in steps.requests} == {t: segment_seed(seed, i) for i, t in enumerate(TEXTS)}
        assert [p.timing.seed for p in pieces if p.segment_done] == [segment_seed(seed, i) for i in range(3)]
        runs.append(seed)
    assert runs[0] != runs[1]  # random per request (a clash has probability 2**-63)
    result = asyncio.run(collect(stream_audio(SynthesisRequest(text=" ".join(TEXTS), seed=77), steps)))
    assert result.seed == 77


def test_resolve_seed_fixes_a_seed_before_streaming():
    request = SynthesisRequest(text=" ".join(TEXTS), pause_ms=5)
    resolved = resolve_seed(request)
    assert request.seed is None and isinstance(resolved.seed, int) and 0 <= resolved.seed < 2**63
    assert resolved.model_dump(exclude={"seed"}) == request.model_dump(exclude={"seed"})
    assert resolve_seed(resolved) is resolved
    steps = FakeSteps([3, 3, 3], delays=[0.0] * 3)
    assert {p.seed for p in _pieces(resolved, steps)} == {resolved.seed}
    assert sorted(r.seed for r in steps.requests) == sorted(segment_seed(resolved.seed, i) for i in range(3))


@given(speed=st.floats(0.25, 4.0), faster=st.floats(0.25, 4.0))
def test_speed_controls_generate_as_at_normal_speed_and_stretch_by_the_speed(speed, faster):
    rate, tempo = speed_controls(speed)
    assert rate == 15.0 and tempo == speed  # one generation for every speed: only the stretch differs
    SynthesisRequest(text="x", speaking_rate=rate, tempo=tempo)  # within the request's bounds
    if faster > speed:
        assert speed_controls(faster)[1] > tempo


def test_speed_controls_at_the_ends_and_at_normal_speed():
    assert speed_controls(1.0) == (15.0, 1.0)
    assert speed_controls(0.25) == (15.0, 0.25)
    assert speed_controls(4.0) == (15.0, 4.0)


@pytest.mark.parametrize("speed", [0.24, 4.01, float("nan"), float("inf"), True, "2"])
def test_speed_controls_refuse_a_speed_outside_openais_range(speed):
    with pytest.raises(ValueError, match=r"speed must be a number in 0.25..4.0"):
        speed_controls(speed)
