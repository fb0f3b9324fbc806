"""The named messages between the engine's roles (vLLM v1's scheduler/runner outputs).

`RequestState` is the scheduler's host-side record of one request; each step the scheduler
sends the runner a `SchedulerOutput` (with the `RowMove`s its capacity bookkeeping produced),
and the runner answers with a `RunnerOutput`. Keeping them here lets the scheduler, the cache
rows and the runner depend on the messages, not on each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.engine import delay
from pipeline.engine.request import GenerationRequest


@dataclass(frozen=True)
class RowMove:
    """Copy the first `length` positions of K/V from cache row `src` to row `dst`."""

    src: int
    dst: int
    length: int


@dataclass(eq=False)
class RequestState:
    """The host-side state of one request from arrival to its last frame."""

    request_id: str
    request: GenerationRequest
    phoneme_ids: list[int]
    seed: int
    slot: int = -1  # row of the runner's per-request device state
    rows: list[int] = field(default_factory=list)  # KV-cache rows: conditional, then unconditional if guided
    offset: int = 0  # delayed position the next decode step samples

    @property
    def n_rows(self) -> int:
        return 2 if self.request.uses_guidance else 1

    @property
    def n_conditioning(self) -> int:
        return delay.conditioning_length(len(self.phoneme_ids))

    @property
    def prefill_len(self) -> int:
        return delay.prefill_length(len(self.phoneme_ids), self.request.n_prefix_frames)

    @property
    def max_len(self) -> int:
        """The most cache positions the row can use."""
        return delay.cache_positions(len(self.phoneme_ids), self.request.n_prefix_frames, self.request.max_new_tokens)

    @property
    def position(self) -> int:
        """Cache position of the frame fed at the next decode step."""
        return delay.cache_position(self.n_conditioning, delay.fed_position(self.offset))


@dataclass
class SchedulerOutput:
    """What to run in one step. The runner applies `row_moves`, prefills `prefill`, then decodes `running`."""

    prefill: list[RequestState]  # admitted now, slots and rows assigned (consecutive rows, in this order)
    running: list[RequestState]  # every request to decode, prefilled ones included; RunnerOutput's order
    row_moves: list[RowMove]  # K/V copies left by requests that finished or were aborted, in order
    batch_changed: bool  # `running` differs from the last step's: the runner rebuilds its batch

    @property
    def prefill_tokens(self) -> int:
        """Real tokens of the padded prefill."""
        return sum(state.prefill_len * state.n_rows for state in self.prefill)

    @property
    def prefill_padding(self) -> int:
        """Padding positions computed alongside them (every row is padded to the longest)."""
        rows = sum(state.n_rows for state in self.prefill)
        return rows * max((state.prefill_len for state in self.prefill), default=0) - self.prefill_tokens


@dataclass
class RunnerOutput:
    """What one decode step produced, per request of `SchedulerOutput.running` (same order)."""

    frames: np.ndarray  # [n, 9] int64: the frame completed this step (codes >= 1024 read as 0; junk if none yet)
    remaining: np.ndarray  # [n] int64: loop steps left after this step
    stopping: np.ndarray  # [n] bool: codebook 0 has sampled EOS
