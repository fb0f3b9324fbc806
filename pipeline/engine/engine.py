"""ZonosEngine: continuous batching of Zonos generation over a static KV cache.

Three roles, as in vLLM's v1 engine, and two messages between them. Each `step`:

    scheduled = scheduler.schedule()            # SchedulerOutput: who is admitted, who decodes, row moves
    output = runner.execute(scheduled)          # RunnerOutput: each request's complete frame, stop state
    chunks = scheduler.update(scheduled, output)  # FrameChunks; finished requests leave

`add_request` queues work and `abort` drops it; requests join and leave between steps. `drive`
is THE loop that steps the engine for a consumer; `stream` and `generate` (and AsyncEngine's
thread) run on it.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import secrets
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Annotated, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from pipeline.engine import capacity
from pipeline.engine.messages import RequestState
from pipeline.engine.request import FrameChunk, GenerationRequest, GenerationResult
from pipeline.engine.runner import ModelRunner
from pipeline.engine.scheduler import Scheduler
from pipeline.engine.step import ROW_TILE
from pipeline.loading import from_pretrained
from pipeline.model import ZonosModel
from pipeline.text import text_to_ids

logger = logging.getLogger(__name__)


class EngineConfig(BaseModel):
    """Capacity of the static KV cache and how much prefill one step may take on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_rows: Annotated[int, Field(ge=2)] | Literal["auto"] | None = Field(
        None,
        description="KV-cache rows, not requests (a guided request takes 2, an unguided one 1), or 'auto': as many "
        "as fit in memory_fraction of the device's free memory once the weights are loaded, at most 1024 "
        "(pipeline/engine/capacity.py has the formula). None (default): 'auto' on CUDA, 32 elsewhere.",
    )
    memory_fraction: float = Field(
        capacity.DEFAULT_MEMORY_FRACTION,
        gt=0,
        le=1,
        description="With max_rows='auto': the share of the free device memory (RAM on CPU) that the KV cache, "
        "per-row state and prefill activations may take.",
    )
    max_seq_len: int = Field(
        default_factory=capacity.longest_segment_positions,
        ge=64,
        description="Cache positions per row: conditioning + prefix + frames + 9. Default: what the longest "
        "segment the splitter emits needs (300 phoneme ids and the 30 s frame cap: 2895).",
    )
    max_prefill_tokens: int = Field(
        8192, ge=64, description="Prefill tokens admitted per step (one request always fits)."
    )
    cuda_graphs: bool = Field(True, description="On CUDA, replay decode steps from CUDA graphs (ignored elsewhere).")
    graph_span_bucket: int = Field(
        256, ge=16, description="CUDA graphs attend over the live span rounded up to a multiple of this."
    )
    deterministic: bool = Field(
        True,
        description="Batch-invariant steps on CPU: a request's tokens do not depend on what shares its batch "
        "(matrix products run on row counts padded to multiples of 8, where MKL's result for a row depends "
        "only on the row; see pipeline/engine/step.py). Off: no padding, ~10-20% faster at small batches. "
        "Not implemented on CUDA (cuBLAS picks kernels by batch size).",
    )


@dataclass
class EngineStats:
    """Running totals, for metrics (a reader takes differences between two looks), and the rows in use now."""

    steps: int = 0  # decode steps
    frames: int = 0  # complete frames handed out
    prefill_tokens: int = 0  # real conditioning + prefix tokens prefilled
    prefill_padding: int = 0  # padding positions computed alongside them
    used_rows: int = 0  # KV-cache rows held by running requests, now
    max_rows: int = 0  # KV-cache rows in all (resolved when EngineConfig.max_rows is "auto")


class ZonosEngine:
    def __init__(self, model: ZonosModel, config: EngineConfig | None = None):
        self.model = model
        self.config = config = config or EngineConfig()
        self.capacity = capacity.plan_capacity(
            model.config,
            model.dtype,
            model.device,
            config.max_rows,
            config.max_seq_len,
            config.max_prefill_tokens,
            config.memory_fraction,
        )
        logger.info("KV cache: %s", self.capacity.describe())
        rows = self.capacity.rows
        row_tile = ROW_TILE if config.deterministic and model.device.type == "cpu" else 1
        self.runner = ModelRunner(
            model, rows, config.max_seq_len, config.cuda_graphs, config.graph_span_bucket, row_tile
        )
        self.scheduler = Scheduler(rows, config.max_prefill_tokens)
        self._ids = itertools.count()
        self._stats = EngineStats(max_rows=rows)

    @classmethod
    def from_pretrained(cls, source: str, device: str = "cpu", dtype: str = "auto", **config) -> ZonosEngine:
        """Load the model (see `pipeline.loading.from_pretrained`); `config` holds EngineConfig fields."""
        return cls(from_pretrained(source, device=device, dtype=dtype), EngineConfig(**config))

    @property
    def max_rows(self) -> int:
        """KV-cache rows in all: `config.max_rows`, or what "auto" resolved to."""
        return self.capacity.rows

    def stats(self) -> EngineStats:
        """A snapshot of the running totals (a copy: safe to read from another thread)."""
        return dataclasses.replace(self._stats, used_rows=self.scheduler.rows.used)

    # ----------------------------------------------------------------------- continuous batching

    def add_request(self, request: GenerationRequest, request_id: str | None = None) -> str:
        """Queue a request (phonemised here); it joins the running batch at a later `step`; its id.

        Raises ValueError when it cannot fit in a cache row (max_seq_len), naming the numbers."""
        phoneme_ids = request.phoneme_ids or text_to_ids(request.text, request.language)
        seed = request.seed if request.seed is not None else secrets.randbits(63)
        state = RequestState(request_id or f"req-{next(self._ids)}", request, phoneme_ids, seed)
        if state.max_len > self.config.max_seq_len:
            raise ValueError(
                f"max_new_tokens={request.max_new_tokens} does not fit: this request needs {state.max_len} cache "
                f"positions (conditioning {state.n_conditioning} + prefix {request.n_prefix_frames} + frames + 9) "
                f"and the engine has {self.config.max_seq_len}; lower max_new_tokens or shorten the text"
            )
        self.scheduler.add(state)
        return state.request_id

    def abort(self, request_id: str) -> bool:
        """Drop a waiting or running request; True if it was found."""
        return self.scheduler.abort(request_id)

    def has_unfinished(self) -> bool:
        return self.scheduler.has_unfinished()

    def step(self) -> list[FrameChunk]:
        """Admit what fits, decode one frame for every running request; the chunks of complete frames."""
        scheduled = self.scheduler.schedule()
        if not scheduled.running:
            return []
        output = self.runner.execute(scheduled)
        chunks = self.scheduler.update(scheduled, output)
        self._stats.steps += 1
        self._stats.frames += sum(chunk.frames.shape[1] for chunk in chunks)
        self._stats.prefill_tokens += scheduled.prefill_tokens
        self._stats.prefill_padding += scheduled.prefill_padding
        return chunks

    # ----------------------------------------------------------------------- the drive loop

    def drive(
        self, request_ids: Collection[str] | None = None, between_steps: Callable[[], bool] | None = None
    ) -> Iterator[FrameChunk]:
        """THE loop that steps the engine for a consumer: yields FrameChunks as frames complete.

        request_ids: the requests this consumer owns, already added. Only their chunks are yielded
            (others' are dropped: drive the engine from one place), and the loop ends once each has
            yielded its finished chunk. None: every request's chunks, until nothing is unfinished.
        between_steps: called before every step, e.g. to add or abort requests; returning False
            ends the loop.

        Leaving early (the consumer closes the generator or stops iterating it, `between_steps`
        returns False, or a step raises) aborts the owned requests that have not finished, so their
        rows stop decoding at once; with request_ids=None that is every unfinished request. A step's
        exception propagates to the consumer after that clean-up.
        """
        pending = None if request_ids is None else set(request_ids)
        try:
            while self.has_unfinished() and (pending is None or pending):
                if between_steps is not None and not between_steps():
                    return
                for chunk in self.step():
                    if pending is not None:
                        if chunk.request_id not in pending:
                            continue
                        if chunk.finished:
                            pending.discard(chunk.request_id)
                    yield chunk
        finally:
            for request_id in self.scheduler.unfinished_ids() if pending is None else pending:
                self.abort(request_id)

    def stream(self, requests: list[GenerationRequest]) -> Iterator[tuple[int, FrameChunk]]:
        """Run `requests` to completion, yielding (index in `requests`, chunk) as frames complete.

        Closing the iterator early aborts the requests still running. Raises ValueError (and
        queues none of them) when one does not fit."""
        ids: list[str] = []
        try:
            for request in requests:
                ids.append(self.add_request(request))
        except ValueError:
            for request_id in ids:
                self.abort(request_id)
            raise
        index = {request_id: i for i, request_id in enumerate(ids)}
        for chunk in self.drive(ids):
            yield index[chunk.request_id], chunk

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Generate all `requests` in one batch; results in the same order."""
        frames: list[list[torch.Tensor]] = [[] for _ in requests]
        results: list[GenerationResult | None] = [None] * len(requests)
        for i, chunk in self.stream(requests):
            frames[i].append(chunk.frames)
            if chunk.finished:
                results[i] = GenerationResult(chunk.request_id, torch.cat(frames[i], dim=1), chunk.stop_reason)
        return results
