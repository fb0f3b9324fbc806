"""Runs what the scheduler says: row moves, prefill of admitted requests, one decode step for all.

Per-request device state lives in `SlotState` (pipeline/engine/step.py), by slot: written when a
request is admitted (prefill), advanced by the decode step itself. The decode step is ONE function
(`step.decode_step`) over that state and a `StepBatch` of static index tensors that is rewritten
only when a request joins or leaves; on CUDA it replays from a graph per (rows, span) bucket. Per
steady-state step the host does: run (or replay) it, one device->host copy of its report.

The runner never decides who runs or where: the scheduler assigns slots and cache rows
(rows [0, R) are live, so the decode step attends over a plain slice of the cache).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence

from pipeline.engine.cuda_graphs import DecodeGraphs
from pipeline.engine.delay import first_sampled
from pipeline.engine.messages import RequestState, RowMove, RunnerOutput, SchedulerOutput
from pipeline.engine.request import DEFAULT_EMOTION, GenerationRequest
from pipeline.engine.sampler import SamplerFeatures, sample
from pipeline.engine.step import SPAN_TILE, SlotState, StepBatch, decode_step, guide, round_up
from pipeline.model import N_CODEBOOKS, CodebookTables, ZonosModel, prefill
from pipeline.text import language_id


def conditioning_values(request: GenerationRequest, conditional: bool) -> dict[str, torch.Tensor | None]:
    """The conditioner inputs of one branch; None means "use the learned unconditional token"."""
    if not conditional:
        return {}
    emotion = torch.tensor(request.emotion or DEFAULT_EMOTION, dtype=torch.float32)
    values: dict[str, torch.Tensor | None] = {
        "speaker": None if request.speaker is None else torch.tensor(request.speaker, dtype=torch.float32),
        "emotion": emotion / emotion.sum(),
        "fmax": torch.tensor([request.fmax]),
        "pitch_std": torch.tensor([request.pitch_std]),
        "speaking_rate": torch.tensor([request.speaking_rate]),
        "language_id": torch.tensor([language_id(request.language)]),
    }
    for key in request.unconditional_keys:
        values[key] = None
    return values


class ModelRunner:
    def __init__(
        self,
        model: ZonosModel,
        max_rows: int,
        max_seq_len: int,
        cuda_graphs: bool,
        graph_span_bucket: int,
        row_tile: int = 1,
    ):
        """`row_tile` > 1: batch-invariant steps (see step.py): matrix products run on multiples of
        `row_tile` rows and attention over multiples of SPAN_TILE positions; the cache then has up to
        row_tile - 1 rows beyond max_rows and SPAN_TILE - 1 positions beyond max_seq_len, as padding."""
        self.model = model
        self.device = model.device
        self.row_tile = row_tile
        self.span_tile = SPAN_TILE if row_tile > 1 else 1  # spans and prefill lengths (see step.py)
        self.tables = CodebookTables(model, row_tile)
        self.cache = model.make_cache(round_up(max_rows, row_tile), round_up(max_seq_len, self.span_tile))
        self.slots = SlotState(max_rows, max_seq_len, self.device)
        self.step = functools.partial(decode_step, model, self.tables, self.cache, self.slots)
        # On CUDA, decode steps replay recorded graphs at bucketed shapes; elsewhere they run eagerly.
        use_graphs = cuda_graphs and self.device.type == "cuda"
        self.graphs = (
            DecodeGraphs(self.step, self.slots, max_rows, max_seq_len, graph_span_bucket) if use_graphs else None
        )
        self._batch: StepBatch | None = None
        self._span = 0  # cache positions the next step attends to

    def execute(self, scheduled: SchedulerOutput) -> RunnerOutput:
        """Run one scheduled step: move rows, prefill the admitted requests, decode every running one."""
        self._move_rows(scheduled.row_moves)
        if scheduled.prefill:
            self.prefill(scheduled.prefill)
        if scheduled.batch_changed or self._batch is None:
            self._batch = self._make_batch(scheduled.running)
            self._span = max(state.position for state in scheduled.running) + 1
        return self.decode()

    def _move_rows(self, moves: list[RowMove]) -> None:
        for move in moves:
            self.cache.move_row(move.src, move.dst, move.length)

    def _make_batch(self, running: list[RequestState]) -> StepBatch:
        """The static index tensors for `running`: a graph bucket's (reused, all sampler stages) on
        CUDA, an exact-size one with only the stages in use elsewhere."""
        n_rows = sum(len(state.rows) for state in running)
        if self.graphs is not None:
            batch, features = self.graphs.batch(n_rows), SamplerFeatures()
        else:
            tile = self.row_tile
            # rows padded for the transformer's matrix products; the heads pad their own (CodebookTables)
            batch = StepBatch(len(running), round_up(n_rows, tile), self.slots.scratch, self.device)
            features = SamplerFeatures.of([state.request.sampling for state in running])
        batch.fill(running, features)
        return batch

    # ----------------------------------------------------------------------- prefill

    @torch.inference_mode()
    def prefill(self, states: list[RequestState]) -> None:
        """Conditioning + prefix frames into the requests' fresh cache rows, then their first sample."""
        for state in states:
            self.slots.place(state)
        inputs = [row for state in states for row in self._prefill_inputs(state)]  # in cache-row order
        first_row = states[0].rows[0]
        lengths = torch.tensor([len(x) for x in inputs], device=self.device)
        padded = pad_sequence(inputs, batch_first=True)
        tile = max(self.row_tile, self.span_tile)  # R x T rows a multiple of row_tile, T of span_tile
        padded = F.pad(padded, (0, 0, 0, round_up(padded.shape[1], tile) - padded.shape[1]))
        hidden = prefill(self.model, self.cache, padded, lengths, first_row)

        def batch_rows(which: int) -> torch.Tensor:  # cache rows -> rows of this prefill batch
            return torch.tensor([state.rows[which] - first_row for state in states], device=self.device)

        slots = torch.tensor([state.slot for state in states], device=self.device)
        sampling = self.slots.sampling(slots)
        logits = self.tables.logits(guide(hidden, batch_rows(0), batch_rows(-1), sampling.cfg_scale))
        offsets = torch.tensor([first_sampled(s.request.n_prefix_frames) for s in states], device=self.device)
        features = SamplerFeatures.of([state.request.sampling for state in states])
        noise = self.slots.noise[slots, offsets]
        self.slots.write(slots, offsets, sample(logits, sampling, noise, features=features))

    def _prefill_inputs(self, state: RequestState) -> list[torch.Tensor]:
        """One [C + P + 1, d] input per cache row: conditioning, then delayed positions 0..P embedded."""
        model = self.model
        n_fed = first_sampled(state.request.n_prefix_frames)
        frames = self.tables.embed(self.slots.delayed[state.slot, :, :n_fed].T)
        ids = torch.tensor(state.phoneme_ids, device=self.device)
        inputs = []
        for conditional in (True, False)[: state.n_rows]:
            values = _to(conditioning_values(state.request, conditional), self.device)
            inputs.append(torch.cat([model.prefix_conditioner(ids, values).to(model.dtype), frames]))
        return inputs

    # ----------------------------------------------------------------------- decode

    @torch.inference_mode()
    def decode(self) -> RunnerOutput:
        """One step for every request of the current batch; the step's one host synchronisation."""
        batch, span = self._batch, round_up(self._span, self.span_tile)
        report = self.step(batch, span) if self.graphs is None else self.graphs.run(batch, span)
        self._span += 1
        report = report.cpu().numpy()[: batch.n_requests]
        return RunnerOutput(
            frames=report[:, :N_CODEBOOKS],
            remaining=report[:, N_CODEBOOKS],
            stopping=report[:, N_CODEBOOKS + 1].astype(bool),
        )


def _to(values: dict[str, torch.Tensor | None], device) -> dict[str, torch.Tensor | None]:
    return {name: None if value is None else value.to(device) for name, value in values.items()}
