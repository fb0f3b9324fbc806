"""Decode steps at bucketed static shapes, replayed from CUDA graphs.

A 1.6B decode step launches hundreds of small kernels; at small batch their launch cost, not
the GPU, sets the step time. A CUDA graph records one step's kernels once and replays them with
a single launch. Graphs need static shapes, so the rows are padded up to a bucket size and the
attended span up to a multiple of `span_bucket`: attention still covers only the live part of
the cache, rounded up. One graph is recorded per (rows, span) bucket, on first use.

Padding is safe because the live rows are always cache rows [0, R): the padded rows are free
rows, they decode token 0 at position 0, and their outputs are dropped. A free row's cache is
overwritten by the prefill that admits a request into it.
"""

from __future__ import annotations

import torch

from pipeline.model import N_CODEBOOKS, KVCache, ZonosModel, decode_step

ROW_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
WARMUP_STEPS = 2  # eager runs before recording: lazy library initialisation must not be recorded


class BucketedDecodeStep:
    """`decode_step` at (rows, span) buckets, each replayed from a CUDA graph recorded on first use."""

    def __init__(self, model: ZonosModel, cache: KVCache, span_bucket: int = 256):
        self.model, self.cache = model, cache
        self.span_bucket = span_bucket
        self.row_buckets = [b for b in ROW_BUCKETS if b < cache.max_rows] + [cache.max_rows]
        self.inputs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # rows -> static frames, positions
        self.graphs: dict[tuple[int, int], tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self.pool = None  # one memory pool for all graphs, made at the first recording

    def buckets(self, n_rows: int, span: int) -> tuple[int, int]:
        rows = next(b for b in self.row_buckets if b >= n_rows)
        return rows, min(-(-span // self.span_bucket) * self.span_bucket, self.cache.max_seq_len)

    def __call__(self, frames: torch.Tensor, positions: torch.Tensor, span: int) -> torch.Tensor:
        """Same contract as `decode_step` for rows 0..R-1: their final hidden states [R, d]."""
        n_rows = frames.shape[0]
        rows, span = self.buckets(n_rows, span)
        if rows not in self.inputs:
            device = frames.device
            self.inputs[rows] = (
                torch.zeros(rows, N_CODEBOOKS, dtype=torch.long, device=device),
                torch.zeros(rows, dtype=torch.long, device=device),
            )
        static_frames, static_positions = self.inputs[rows]
        static_frames[:n_rows] = frames
        static_frames[n_rows:] = 0
        static_positions[:n_rows] = positions
        static_positions[n_rows:] = 0
        return self._replay(static_frames, static_positions, span)[:n_rows]

    def _replay(self, frames: torch.Tensor, positions: torch.Tensor, span: int) -> torch.Tensor:
        """Run the (rows, span) bucket's graph on its static inputs; its static hidden states [rows, d]."""
        key = frames.shape[0], span
        if key not in self.graphs:
            self.graphs[key] = self._record(frames, positions, span)
        graph, hidden = self.graphs[key]
        graph.replay()
        return hidden

    def _record(self, frames: torch.Tensor, positions: torch.Tensor, span: int):
        """Warm up on a side stream, then record. The warm-up runs take this step's own inputs, so
        the K/V they write are the ones the replay writes anyway."""
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                decode_step(self.model, self.cache, frames, positions, span)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: another thread of the process (a vocoder, say) may use CUDA during the recording
        with torch.cuda.graph(graph, pool=self.pool, capture_error_mode="thread_local"):
            hidden = decode_step(self.model, self.cache, frames, positions, span)
        return graph, hidden
