"""Which requests run: a priority queue (FIFO within a priority) admitted into free KV-cache rows between steps."""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

from pipeline.engine.request import GenerationRequest

N_SCALAR_CONDITIONERS = 6  # speaker, emotion, fmax, pitch_std, speaking_rate, language_id: one token each


def cache_positions(n_phoneme_ids: int, n_prefix_frames: int, max_new_tokens: int) -> int:
    """KV-cache positions a request can use: conditioning tokens + every delayed position it feeds."""
    return n_phoneme_ids + N_SCALAR_CONDITIONERS + n_prefix_frames + max_new_tokens + 9


@dataclass(eq=False)
class Sequence:
    """The host-side state of one request from admission to its last frame."""

    request_id: str
    request: GenerationRequest
    phoneme_ids: list[int]
    seed: int
    slot: int = -1  # row of the runner's per-request device state
    rows: list[int] = field(default_factory=list)  # KV-cache rows: conditional, then unconditional if guided
    offset: int = 0  # delayed position the next sample is written to
    stopping: bool = False

    @property
    def n_rows(self) -> int:
        return 2 if self.request.uses_guidance else 1

    @property
    def prefix_len(self) -> int:
        """Conditioning tokens: one per phoneme id, one per other conditioner."""
        return len(self.phoneme_ids) + N_SCALAR_CONDITIONERS

    @property
    def prefill_len(self) -> int:
        """Conditioning tokens + delayed positions 0..P."""
        return self.prefix_len + self.request.n_prefix_frames + 1

    @property
    def max_len(self) -> int:
        """The most cache positions the row can use: conditioning + every delayed position."""
        return cache_positions(len(self.phoneme_ids), self.request.n_prefix_frames, self.request.max_new_tokens)

    @property
    def position(self) -> int:
        """Cache position of the frame fed at the next decode step (the one before `offset`)."""
        return self.prefix_len + self.offset - 1


class Scheduler:
    """Admission by (priority, arrival): the head enters when its rows fit; prefill work per step is bounded.

    The Serve graph gives each text's first segment priority 0 and the rest 1, so under load a new
    request's first audio does not wait behind the later segments of requests already playing."""

    def __init__(self, max_rows: int, max_prefill_tokens: int):
        self.max_rows = max_rows
        self.max_prefill_tokens = max_prefill_tokens
        self.waiting: list[tuple[int, int, Sequence]] = []  # a heap of (priority, arrival, sequence)
        self._arrivals = itertools.count()

    def add(self, seq: Sequence) -> None:
        heapq.heappush(self.waiting, (seq.request.priority, next(self._arrivals), seq))

    def remove_waiting(self, request_id: str) -> Sequence | None:
        for index, (_, _, seq) in enumerate(self.waiting):
            if seq.request_id == request_id:
                self.waiting.pop(index)
                heapq.heapify(self.waiting)
                return seq
        return None

    def admit(self, used_rows: int) -> list[Sequence]:
        """Pop waiting requests, in order, while rows are free and the prefill budget lasts (one always fits)."""
        admitted: list[Sequence] = []
        tokens = 0
        while self.waiting:
            seq = self.waiting[0][-1]
            over_budget = admitted and tokens + seq.prefill_len * seq.n_rows > self.max_prefill_tokens
            if used_rows + seq.n_rows > self.max_rows or over_budget:
                break
            heapq.heappop(self.waiting)
            admitted.append(seq)
            used_rows += seq.n_rows
            tokens += seq.prefill_len * seq.n_rows
        return admitted
