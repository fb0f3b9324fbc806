"""ZonosEngine: continuous batching of Zonos generation over a static KV cache.

`add_request` queues work, `step` admits waiting requests into free cache rows (prefill) and
advances every running request by one frame (decode), returning the frames that became
complete. Requests join and leave between steps. `generate` and `stream` are simple fronts
that drive the engine for one list of requests.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from pipeline.engine.request import FrameChunk, GenerationRequest, GenerationResult
from pipeline.engine.runner import ModelRunner
from pipeline.engine.scheduler import Scheduler, Sequence
from pipeline.model import N_CODEBOOKS, ZonosModel, from_pretrained
from pipeline.text import text_to_ids


class EngineConfig(BaseModel):
    """Capacity of the static KV cache and how much prefill one step may take on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_rows: int = Field(32, ge=2, description="KV-cache rows; a guided request takes 2, an unguided one 1.")
    max_seq_len: int = Field(3072, ge=64, description="Cache positions per row: conditioning + prefix + frames + 9.")
    max_prefill_tokens: int = Field(
        8192, ge=64, description="Prefill tokens admitted per step (one request always fits)."
    )
    cuda_graphs: bool = Field(True, description="On CUDA, replay decode steps from CUDA graphs (ignored elsewhere).")
    graph_span_bucket: int = Field(
        256, ge=16, description="CUDA graphs attend over the live span rounded up to a multiple of this."
    )


@dataclass
class EngineStats:
    """Running totals, for metrics: a reader takes differences between two looks."""

    steps: int = 0
    frames: int = 0
    prefill_tokens: int = 0  # real conditioning + prefix tokens prefilled
    prefill_padding: int = 0  # padding positions computed alongside them


class ZonosEngine:
    def __init__(self, model: ZonosModel, config: EngineConfig | None = None):
        self.model = model
        self.config = config = config or EngineConfig()
        self.runner = ModelRunner(
            model, config.max_rows, config.max_seq_len, config.cuda_graphs, config.graph_span_bucket
        )
        self.scheduler = Scheduler(config.max_rows, config.max_prefill_tokens)
        self._ids = itertools.count()
        self.stats = EngineStats()

    @classmethod
    def from_pretrained(cls, source: str, device: str = "cpu", dtype: str = "auto", **config) -> ZonosEngine:
        """Load the model (see `pipeline.model.from_pretrained`); `config` holds EngineConfig fields."""
        return cls(from_pretrained(source, device=device, dtype=dtype), EngineConfig(**config))

    # ----------------------------------------------------------------------- continuous batching

    def add_request(self, request: GenerationRequest, request_id: str | None = None) -> str:
        """Queue a request (phonemised here); it joins the running batch at a later `step`."""
        phoneme_ids = request.phoneme_ids or text_to_ids(request.text, request.language)
        seed = request.seed if request.seed is not None else secrets.randbits(63)
        seq = Sequence(request_id or f"req-{next(self._ids)}", request, phoneme_ids, seed)
        if seq.max_len > self.config.max_seq_len:
            raise ValueError(
                f"max_new_tokens={request.max_new_tokens} does not fit: this request needs {seq.max_len} cache "
                f"positions (conditioning {seq.prefix_len} + prefix {request.n_prefix_frames} + frames + 9) and the "
                f"engine has {self.config.max_seq_len}; lower max_new_tokens or shorten the text"
            )
        self.scheduler.add(seq)
        return seq.request_id

    def abort(self, request_id: str) -> bool:
        """Drop a waiting or running request; True if it was found."""
        if self.scheduler.remove_waiting(request_id):
            return True
        for seq in self.runner.sequences:
            if seq.request_id == request_id:
                self.runner.release(seq)
                return True
        return False

    def has_unfinished(self) -> bool:
        return bool(self.scheduler.waiting or self.runner.sequences)

    def step(self) -> list[FrameChunk]:
        """Admit what fits, decode one frame for every running request; the complete frames per request."""
        admitted = self.scheduler.admit(self.runner.used_rows)
        if admitted:
            real, padded = self.runner.prefill(admitted)
            self.stats.prefill_tokens += real
            self.stats.prefill_padding += padded - real
        if not self.runner.sequences:
            return []
        report = self.runner.decode()
        emits = (report.remaining > 0) & (report.frame_index >= 0)
        self.stats.steps += 1
        self.stats.frames += int(emits.sum())
        done = report.remaining <= 1
        chunks = []
        for i in np.flatnonzero(emits | done):
            seq = report.sequences[i]
            frames = torch.from_numpy(report.frames[i : i + 1].T.copy() if emits[i] else _NO_FRAMES)
            reason = ("eos" if report.stopping[i] else "length") if done[i] else None
            chunks.append(FrameChunk(seq.request_id, frames, bool(done[i]), reason))
            if done[i]:
                self.runner.release(seq)
        return chunks

    # ----------------------------------------------------------------------- simple fronts

    def stream(self, requests: list[GenerationRequest]) -> Iterator[tuple[int, FrameChunk]]:
        """Run `requests` to completion, yielding (index in `requests`, chunk) as frames complete."""
        index = {self.add_request(request): i for i, request in enumerate(requests)}
        while self.has_unfinished():
            for chunk in self.step():
                if chunk.request_id in index:
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


_NO_FRAMES = np.zeros((N_CODEBOOKS, 0), dtype=np.int64)
