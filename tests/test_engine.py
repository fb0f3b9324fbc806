"""The batched engine against the reference, alone and in mixed batches, plus its scheduling promises."""

import random

import pytest
import torch

from benchmarks.golden import reference_mismatch
from conftest import CASES, case_request
from pipeline.engine import EngineConfig, GenerationRequest, SamplingParams, ZonosEngine
from pipeline.engine.cuda_graphs import DecodeGraphs
from pipeline.engine.messages import RequestState
from pipeline.engine.scheduler import Scheduler


def assert_matches_reference(codes: torch.Tensor, golden, index: int) -> None:
    """Tokens exact, except that a divergence may start where the reference itself had a near-tie."""
    mismatch = reference_mismatch(codes, golden, index)
    assert mismatch is None, mismatch


@pytest.mark.parametrize("index", range(len(CASES)))
def test_each_case_alone_matches_reference(engine, golden, index):
    (result,) = engine.generate([case_request(CASES[index])])
    assert_matches_reference(result.codes, golden, index)
    assert result.stop_reason == ("eos" if CASES[index]["eos_emitted"] else "length")


def test_all_six_in_one_batch_match_reference(engine, golden):
    results = engine.generate([case_request(case) for case in CASES])
    for index, result in enumerate(results):
        assert_matches_reference(result.codes, golden, index)


def test_shuffled_batch_keeps_request_order_and_tokens(engine, golden):
    order = list(range(len(CASES)))
    random.Random(3).shuffle(order)
    results = engine.generate([case_request(CASES[i]) for i in order])
    for position, index in enumerate(order):
        assert_matches_reference(results[position].codes, golden, index)


def test_stream_yields_complete_frames_incrementally(engine, golden):
    chunks: dict[int, list] = {i: [] for i in range(len(CASES))}
    for index, chunk in engine.stream([case_request(case) for case in CASES]):
        chunks[index].append(chunk)
    for index, received in chunks.items():
        assert [c.finished for c in received] == [False] * (len(received) - 1) + [True]
        codes = torch.cat([c.frames for c in received], dim=1)
        assert_matches_reference(codes, golden, index)
        assert all(c.frames.shape[1] <= 1 for c in received)  # frames leave as soon as they resolve
        assert len(received) >= codes.shape[1]


def test_a_request_joining_mid_flight_gets_its_solo_tokens(engine, golden):
    collected = {"early": [], "late": []}

    def run_step():
        for chunk in engine.step():
            collected[chunk.request_id].append(chunk.frames)

    engine.add_request(case_request(CASES[0]), "early")  # 64 frames, no EOS
    for _ in range(20):
        run_step()
    engine.add_request(case_request(CASES[2]), "late")  # audio prefix, EOS
    while engine.has_unfinished():
        run_step()
    assert_matches_reference(torch.cat(collected["early"], dim=1), golden, 0)
    assert_matches_reference(torch.cat(collected["late"], dim=1), golden, 2)


def eager_graphs(engine: ZonosEngine, span_bucket: int = 16) -> DecodeGraphs:
    """The CUDA-graph path's static shapes (padded rows and requests, rounded span, every sampler
    stage), run eagerly: no graph, no GPU."""
    runner = engine.runner
    return DecodeGraphs(runner.step, runner.slots, engine.max_rows, runner.cache.max_seq_len, span_bucket, record=False)


@pytest.fixture
def bucketed_engine(engine):
    bucketed = ZonosEngine(engine.model, EngineConfig(max_rows=24, max_seq_len=512))
    bucketed.runner.graphs = eager_graphs(bucketed)
    return bucketed


def test_bucketed_decode_shapes(engine):
    graphs = DecodeGraphs(None, engine.runner.slots, 24, 40, span_bucket=16, record=False)
    assert [graphs.buckets(n, 1)[0] for n in (1, 2, 3, 5, 9, 13, 17, 24)] == [1, 2, 4, 8, 12, 16, 24, 24]
    assert [graphs.buckets(1, span)[1] for span in (1, 16, 17, 33, 40)] == [16, 16, 32, 40, 40]
    assert graphs.batch(5) is graphs.batch(7) and graphs.batch(5).shape == (8, 8)


def test_bucketed_decode_padding_changes_no_tokens(bucketed_engine, golden):
    """Padded rows and a rounded-up span: every case still gets the reference's tokens, also when a
    request joins mid-flight (rows 2 -> 6 cross buckets) and spans cross 16-position buckets."""
    results = bucketed_engine.generate([case_request(case) for case in CASES[:3]])
    for index, result in enumerate(results):
        assert_matches_reference(result.codes, golden, index)
    collected = {"early": [], "late": []}
    bucketed_engine.add_request(case_request(CASES[0]), "early")
    for step in range(100):
        if step == 20:
            bucketed_engine.add_request(case_request(CASES[2]), "late")
            bucketed_engine.add_request(case_request(CASES[1]), "late2")
        for chunk in bucketed_engine.step():
            collected.setdefault(chunk.request_id, []).append(chunk.frames)
        if not bucketed_engine.has_unfinished():
            break
    for name, index in (("early", 0), ("late", 2), ("late2", 1)):
        assert_matches_reference(torch.cat(collected[name], dim=1), golden, index)


def test_finished_rows_leave_the_decode_batch(engine, monkeypatch):
    rows_per_step = []
    real_step = engine.runner.step

    def recording_step(batch, span):
        rows_per_step.append(int((batch.row_slot != batch.scratch).sum()))  # live rows (the rest is padding)
        return real_step(batch, span)

    monkeypatch.setattr(engine.runner, "step", recording_step)
    short = case_request(CASES[0], max_new_tokens=4)
    long = case_request(CASES[0], max_new_tokens=30)
    engine.generate([short, long])
    assert rows_per_step[0] == 4  # two guided requests: 2 rows each
    assert rows_per_step[-1] == 2  # the short one left
    assert len(rows_per_step) == 30 + 7  # the long one's steps; the short one's ended early
    assert engine.stats().used_rows == 0


def test_cfg_scale_one_runs_without_unconditional_rows(engine):
    engine.add_request(case_request(CASES[0], cfg_scale=1.0, max_new_tokens=3), "unguided")
    engine.add_request(case_request(CASES[0], cfg_scale=2.0, max_new_tokens=3), "guided")
    engine.step()
    assert engine.stats().used_rows == 3
    while engine.has_unfinished():
        engine.step()


def test_cfg_scale_one_matches_the_guided_path_at_the_limit(engine):
    """One row at scale 1 gives what two rows give at scale 1 + 1e-6 (uncond + (cond - uncond) * s)."""
    one_row, two_rows = engine.generate(
        [case_request(CASES[3], cfg_scale=1.0), case_request(CASES[3], cfg_scale=1.000001)]
    )
    assert torch.equal(one_row.codes, two_rows.codes)


SAMPLED = SamplingParams(temperature=1.0, min_p=0.05, top_k=50, repetition_penalty=2.0, repetition_penalty_window=4)


def test_seeded_sampling_repeats_and_ignores_batch_company(engine):
    request = case_request(CASES[1], sampling=SAMPLED, seed=42, max_new_tokens=40)
    (alone,) = engine.generate([request])
    (again,) = engine.generate([request])
    assert torch.equal(alone.codes, again.codes)
    company = [case_request(case, seed=i) for i, case in enumerate(CASES)]
    mixed = engine.generate([*company[:3], request, *company[3:]])
    assert torch.equal(mixed[3].codes, alone.codes)
    (other_seed,) = engine.generate([request.model_copy(update={"seed": 43})])
    assert not torch.equal(other_seed.codes, alone.codes)


def test_unseeded_requests_differ(engine):
    request = case_request(CASES[1], sampling=SAMPLED, max_new_tokens=20)
    first, second = engine.generate([request, request])
    assert not torch.equal(first.codes, second.codes)


def test_one_host_synchronisation_per_decode_step(engine, monkeypatch):
    """Every device->host read in a decode step is counted; there must be exactly one."""
    engine.add_request(case_request(CASES[0], max_new_tokens=5))
    engine.add_request(case_request(CASES[3], max_new_tokens=5))
    engine.step()  # admission (prefill) happens here
    reads = []
    for name in ("cpu", "item", "tolist", "numpy", "__bool__", "__int__", "__float__", "__index__"):
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, _name=name, **kwargs):
            reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    engine.runner.decode()
    monkeypatch.undo()
    assert [r for r in reads if r != "numpy"] == ["cpu"]
    while engine.has_unfinished():
        engine.step()


def test_abort_frees_rows(engine):
    engine.add_request(case_request(CASES[0]), "doomed")
    engine.add_request(case_request(CASES[0]), "waiting")
    engine.step()
    assert engine.abort("doomed") and engine.abort("waiting")
    assert not engine.abort("unknown")
    assert engine.stats().used_rows == 0 and not engine.has_unfinished()


def test_request_over_cache_capacity_is_refused_with_reason(engine):
    with pytest.raises(ValueError, match="max_new_tokens=5000 does not fit"):
        engine.add_request(case_request(CASES[0], max_new_tokens=5000))


def test_more_requests_than_rows_queue_and_all_finish(engine, golden):
    requests = [case_request(CASES[1])] * 15  # 30 rows wanted, 24 in the cache
    results = engine.generate(requests)
    for result in results:
        assert_matches_reference(result.codes, golden, 1)


def test_phoneme_ids_skip_the_front_end(engine, golden):
    from pipeline.text import tokenize

    request = case_request(CASES[5], text="ignored", phoneme_ids=tokenize(CASES[5]["phonemes"]))
    (result,) = engine.generate([request])
    assert_matches_reference(result.codes, golden, 5)


def test_generation_request_defaults_are_the_reference_s():
    request = GenerationRequest(text="hi")
    assert (request.language, request.cfg_scale, request.max_new_tokens) == ("en-us", 2.0, 86 * 30)
    assert (request.fmax, request.pitch_std, request.speaking_rate) == (22050.0, 20.0, 15.0)
    assert request.sampling == SamplingParams(
        temperature=1.0, top_p=0, top_k=0, min_p=0.1, linear=0, conf=0, quad=0,
        repetition_penalty=3.0, repetition_penalty_window=2,
    )  # fmt: skip


def _state(name: str, n_phonemes: int = 2, priority: int = 0) -> RequestState:
    ids = [0] * n_phonemes
    return RequestState(name, GenerationRequest(text="-", phoneme_ids=ids, priority=priority), ids, seed=0)


def _admitted(scheduler: Scheduler) -> list[str]:
    return [state.request_id for state in scheduler.schedule().prefill]


def test_lower_priority_is_admitted_first_and_equal_ones_in_arrival_order():
    scheduler = Scheduler(max_rows=4, max_prefill_tokens=10_000)
    for name, priority in (("a", 1), ("b", 1), ("c", 0), ("d", 0)):
        scheduler.add(_state(name, priority=priority))
    assert scheduler.abort("d")
    assert _admitted(scheduler) == ["c", "a"]  # guided: two rows each, four rows free
    assert _admitted(scheduler) == []
    assert scheduler.abort("c")  # its rows come free
    assert _admitted(scheduler) == ["b"]


def test_requests_arriving_together_prefill_shortest_first_and_never_overtake_earlier_ones():
    scheduler = Scheduler(max_rows=2, max_prefill_tokens=10_000)  # room for one guided request
    scheduler.add(_state("first", n_phonemes=50))
    assert _admitted(scheduler) == ["first"]
    for name, n_phonemes in (("long", 40), ("short", 5), ("middle", 20)):
        scheduler.add(_state(name, n_phonemes))
    assert _admitted(scheduler) == []  # a step passes: "tiny" arrives after it
    scheduler.add(_state("tiny", n_phonemes=2))
    order = []
    while scheduler.has_unfinished():
        scheduler.abort(scheduler.running[0].request_id)
        order += _admitted(scheduler)
    assert order == ["short", "middle", "long", "tiny"]


def test_closing_a_stream_aborts_its_requests(engine):
    stream = engine.stream([case_request(CASES[0]), case_request(CASES[1])])
    next(stream)
    stream.close()
    assert not engine.has_unfinished() and engine.stats().used_rows == 0


def test_drive_yields_every_request_and_stops_when_told(engine):
    engine.add_request(case_request(CASES[0], max_new_tokens=3), "a")
    engine.add_request(case_request(CASES[1], max_new_tokens=3), "b")
    finished = [chunk.request_id for chunk in engine.drive() if chunk.finished]
    assert sorted(finished) == ["a", "b"]
    engine.add_request(case_request(CASES[0]), "c")
    steps, before = iter([True, True, False]), engine.stats().steps
    assert list(engine.drive(between_steps=lambda: next(steps))) == []  # no frame completes in two steps
    assert engine.stats().steps == before + 2
    assert not engine.has_unfinished()  # "c" was aborted
