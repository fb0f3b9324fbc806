"""The decode step as ONE static-shape function: what runs outside it, its static state, its warm-up."""

import pytest
import torch

from benchmarks.engine import ops_outside_step
from benchmarks.golden import reference_mismatch
from conftest import CASES, case_request
from pipeline.engine import EngineConfig, SamplingParams, ZonosEngine
from pipeline.engine.cuda_graphs import DecodeGraphs

MIXED_SETTINGS = [
    SamplingParams(),
    SamplingParams(temperature=0.0, repetition_penalty=1.0),
    SamplingParams(top_k=40, min_p=0.0, repetition_penalty_window=8),
    SamplingParams(top_p=0.8, linear=0.5, conf=0.3, quad=0.1),
]


def _start(engine: ZonosEngine, n: int) -> None:
    """n guided requests of mixed sampling settings, admitted and past their first steps."""
    for i in range(n):
        request = case_request(CASES[i % 2], sampling=MIXED_SETTINGS[i % 4], seed=i, max_new_tokens=200)
        engine.add_request(request, f"r{i}")
    for _ in range(3):
        engine.step()


@pytest.mark.parametrize("bucketed", [False, True], ids=["eager", "eager-bucketed"])
def test_a_steady_state_step_is_one_region_and_at_most_8_ops_outside(engine, bucketed):
    """Issue 11's measure of host work per step: everything on the device runs inside the
    `zonos.decode_step` region; outside it, at most 8 top-level ops (the report's copy to the host).
    Before the step was one function it was ~500 at 8 guided requests."""
    steady = ZonosEngine(engine.model, EngineConfig(max_rows=24, max_seq_len=512))
    if bucketed:
        runner = steady.runner
        runner.graphs = DecodeGraphs(runner.step, runner.slots, 24, 512, 16, record=False)
    _start(steady, 8)
    outside, regions = ops_outside_step(steady)
    assert regions == 1
    assert len(outside) <= 8, outside
    # a join is allowed more (prefill, the new batch's index tensors), and is still one region
    steady.add_request(case_request(CASES[0], max_new_tokens=20), "joiner")
    joined, regions = ops_outside_step(steady)
    assert regions == 1 and len(joined) > len(outside)
    for request_id in steady.scheduler.unfinished_ids():
        steady.abort(request_id)


def test_batch_index_tensors_change_only_when_requests_join_or_leave(engine, monkeypatch):
    steady = ZonosEngine(engine.model, EngineConfig(max_rows=24, max_seq_len=512))
    runner = steady.runner
    runner.graphs = DecodeGraphs(runner.step, runner.slots, 24, 512, 16, record=False)
    fills = []
    original_make_batch = runner._make_batch

    def counting(running):
        fills.append(len(running))
        return original_make_batch(running)

    monkeypatch.setattr(runner, "_make_batch", counting)
    steady.add_request(case_request(CASES[0], max_new_tokens=10), "short")
    steady.add_request(case_request(CASES[0], max_new_tokens=30), "long")
    storage: dict[tuple[int, int], set[int]] = {}
    while steady.has_unfinished():
        steady.step()
        storage.setdefault(runner._batch.shape, set()).add(runner._batch.request_index.data_ptr())
    assert fills == [2, 1]  # both joined; the short one left
    assert sorted(storage) == [(2, 2), (4, 4)]  # two row buckets...
    assert all(len(pointers) == 1 for pointers in storage.values())  # ...each with its static tensors


def test_warm_up_leaves_the_state_as_it_found_it(engine, golden):
    """CUDA graphs warm up by running the step before recording it; the slot state must come back
    bit-identical, so the recorded step is not stepped twice (the tokens still match the reference)."""
    warmed = ZonosEngine(engine.model, EngineConfig(max_rows=24, max_seq_len=512))
    runner = warmed.runner
    graphs = DecodeGraphs(runner.step, runner.slots, 24, 512, 16, record=False)
    runner.graphs = graphs
    real_run = graphs.run

    def warm_then_run(batch, span):
        before = [tensor.clone() for tensor in runner.slots.mutable()]
        graphs.warm_up(batch, *graphs.buckets(batch.shape[1], span)[1:])
        assert all(torch.equal(a, b) for a, b in zip(before, runner.slots.mutable(), strict=True))
        return real_run(batch, span)

    graphs.run = warm_then_run
    results = warmed.generate([case_request(case) for case in CASES[:3]])
    for index, result in enumerate(results):
        assert reference_mismatch(result.codes, golden, index) is None
