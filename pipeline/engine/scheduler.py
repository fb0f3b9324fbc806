"""Who runs: admission into free KV-cache rows, and who finishes after each step.

The scheduler owns the requests' host state (`RequestState`) and the cache capacity
(`CacheRows`). Each step it says what to run (`SchedulerOutput`); after the runner ran it, it
reads the step's results (`RunnerOutput`), advances every request, turns complete frames into
`FrameChunk`s and releases the requests that finished.
"""

from __future__ import annotations

import heapq
import itertools

import numpy as np
import torch

from pipeline.engine import delay
from pipeline.engine.messages import RequestState, RunnerOutput, SchedulerOutput
from pipeline.engine.request import FrameChunk
from pipeline.engine.rows import CacheRows
from pipeline.model import N_CODEBOOKS

_NO_FRAMES = np.zeros((N_CODEBOOKS, 0), dtype=np.int64)


class Scheduler:
    """Admission order: (priority, the step a request arrived before, prefill length, arrival).

    - Priority first: the Serve graph gives each text's first segment priority 0 and the rest 1,
      so under load a new text's first audio does not wait behind other texts' later segments.
    - Then first come, first served by step: requests that arrive between the same two steps
      (a Generator flush, a text's segments) are admitted shortest prefill first, so those
      admitted together have similar lengths and the padded prefill wastes little. A later
      arrival never overtakes an earlier one of the same priority, so nothing starves.

    The head enters when its rows fit; the prefill tokens per step are bounded (one always fits).
    """

    def __init__(self, max_rows: int, max_prefill_tokens: int):
        self.rows = CacheRows(max_rows)
        self.max_prefill_tokens = max_prefill_tokens
        self.waiting: list[tuple] = []  # a heap of (*admission_order, RequestState)
        self.running: list[RequestState] = []
        self._arrivals = itertools.count()
        self._steps = 0
        self._batch_changed = False

    def admission_order(self, state: RequestState) -> tuple[int, ...]:
        return state.request.priority, self._steps, state.prefill_len, next(self._arrivals)

    def add(self, state: RequestState) -> None:
        heapq.heappush(self.waiting, (*self.admission_order(state), state))

    def has_unfinished(self) -> bool:
        return bool(self.waiting or self.running)

    def unfinished_ids(self) -> list[str]:
        return [entry[-1].request_id for entry in self.waiting] + [state.request_id for state in self.running]

    def abort(self, request_id: str) -> bool:
        """Drop a waiting or running request; True if it was found."""
        for index, entry in enumerate(self.waiting):
            if entry[-1].request_id == request_id:
                self.waiting.pop(index)
                heapq.heapify(self.waiting)
                return True
        for state in self.running:
            if state.request_id == request_id:
                self._release(state)
                return True
        return False

    def schedule(self) -> SchedulerOutput:
        """Admit waiting requests, in order, while rows are free and the prefill budget lasts."""
        admitted: list[RequestState] = []
        tokens = 0
        while self.waiting:
            state = self.waiting[0][-1]
            over_budget = admitted and tokens + state.prefill_len * state.n_rows > self.max_prefill_tokens
            if not self.rows.fits(state.n_rows) or over_budget:
                break
            heapq.heappop(self.waiting)
            self.rows.allocate(state)
            state.offset = delay.first_sampled(state.request.n_prefix_frames) + 1
            admitted.append(state)
            tokens += state.prefill_len * state.n_rows
        self.running += admitted
        changed, self._batch_changed = self._batch_changed or bool(admitted), False
        self._steps += 1
        return SchedulerOutput(admitted, list(self.running), self.rows.take_moves(), changed)

    def update(self, scheduled: SchedulerOutput, output: RunnerOutput) -> list[FrameChunk]:
        """Advance every request that ran by one delayed position; the chunks of complete frames,
        and a last chunk (with the stop reason) for each request that finished, which leaves."""
        done = delay.finished(output.remaining)
        chunks = []
        for i, state in enumerate(scheduled.running):
            frame_index = delay.new_frame_index(state.offset, state.request.n_prefix_frames)
            state.offset += 1
            if frame_index < 0 and not done[i]:
                continue
            frames = output.frames[i : i + 1].T.copy() if frame_index >= 0 else _NO_FRAMES
            reason = ("eos" if output.stopping[i] else "length") if done[i] else None
            chunks.append(FrameChunk(state.request_id, torch.from_numpy(frames), bool(done[i]), reason))
            if done[i]:
                self._release(state)
        return chunks

    def _release(self, state: RequestState) -> None:
        self.running.remove(state)
        self.rows.release(state)
        self._batch_changed = True
