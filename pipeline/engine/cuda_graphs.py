"""The decode step at bucketed static shapes, replayed from CUDA graphs.

A 1.6B decode step launches hundreds of small kernels (the transformer, guidance, heads, sampling,
the stop rule, the delayed-layout writes); at small batch their launch cost, not the GPU, sets
the step time. A CUDA graph records one whole step (`step.decode_step`) once and replays it with a
single launch. Graphs need static shapes, so the batch is padded up to a row bucket and the
attended span up to a multiple of `span_bucket`: attention still covers only the live part of
the cache, rounded up. One graph is recorded per (rows, span) bucket, on first use, with every
sampler stage on (`SamplerFeatures()`), so one graph serves every mix of settings.

Padding is safe because the live rows are always cache rows [0, R): the padded rows are free
rows, they decode at position 0 through the scratch slot, and their outputs are dropped. A free
row's cache is overwritten by the prefill that admits a request into it.

`record=False` runs the same bucketed shapes eagerly (any device): the padding path, testable on CPU.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pipeline.engine.step import STEP_REGION, SlotState, StepBatch

ROW_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
WARMUP_STEPS = 2  # eager runs before recording: lazy library initialisation must not be recorded


class DecodeGraphs:
    """`step(batch, span)` at (rows, span) buckets, each replayed from a CUDA graph recorded on first use."""

    def __init__(
        self,
        step: Callable[[StepBatch, int], torch.Tensor],
        slots: SlotState,
        max_rows: int,
        max_seq_len: int,
        span_bucket: int = 256,
        record: bool = True,
    ):
        self.step, self.slots = step, slots
        self.max_seq_len, self.span_bucket, self.record = max_seq_len, span_bucket, record
        self.row_buckets = [b for b in ROW_BUCKETS if b < max_rows] + [max_rows]
        self.batches: dict[int, StepBatch] = {}  # rows bucket -> its static index tensors
        self.graphs: dict[tuple[int, int], tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self.pool = None  # one memory pool for all graphs, made at the first recording

    def buckets(self, n_rows: int, span: int) -> tuple[int, int]:
        rows = next(b for b in self.row_buckets if b >= n_rows)
        return rows, min(-(-span // self.span_bucket) * self.span_bucket, self.max_seq_len)

    def batch(self, n_rows: int) -> StepBatch:
        """The static batch of `n_rows`'s bucket (as many request entries as rows), made once."""
        rows, _ = self.buckets(n_rows, 1)
        if rows not in self.batches:
            self.batches[rows] = StepBatch(rows, rows, self.slots.scratch, self.slots.offset.device)
        return self.batches[rows]

    def run(self, batch: StepBatch, span: int) -> torch.Tensor:
        """The step's report [rows bucket, 11], from the (rows, span) bucket's graph."""
        rows, span = self.buckets(batch.shape[1], span)
        if not self.record:
            return self.step(batch, span)
        key = rows, span
        if key not in self.graphs:
            self.graphs[key] = self._record(batch, span)
        graph, report = self.graphs[key]
        with torch.profiler.record_function(STEP_REGION):  # the replay is the step, as seen by a profiler
            graph.replay()
        return report

    def warm_up(self, batch: StepBatch, span: int) -> None:
        """Run the step `WARMUP_STEPS` times and put the slot state back each time (a step advances
        it), so lazy initialisation happens outside the recording and nothing is stepped twice.
        The K/V these runs write are the ones the real step writes anyway. Any device."""
        saved = [tensor.clone() for tensor in self.slots.mutable()]
        for _ in range(WARMUP_STEPS):
            self.step(batch, span)
            for tensor, value in zip(self.slots.mutable(), saved, strict=True):
                tensor.copy_(value)

    def _record(self, batch: StepBatch, span: int):
        """Warm up on a side stream, then record; recording runs nothing, so the first replay is
        this step's real run."""
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            self.warm_up(batch, span)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: another thread of the process (a vocoder, say) may use CUDA during the recording
        with torch.cuda.graph(graph, pool=self.pool, capture_error_mode="thread_local"):
            report = self.step(batch, span)
        return graph, report
