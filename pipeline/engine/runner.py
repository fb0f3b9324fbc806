"""Runs what the scheduler says: row moves, prefill of admitted requests, one decode step for all.

Device state, per request slot: the delayed code layout (UNKNOWN where a sample is still due),
the loop steps left and the stopping flag of the stop rule (see `delay`). A decode step is
vectorised over all running requests and ends with ONE device->host copy: the newly complete
frame, the loop steps left and the stopping flag of every request.

The runner never decides who runs or where: the scheduler assigns slots and cache rows
(rows [0, R) are live, so the decode step attends over a plain slice of the cache).
"""

from __future__ import annotations

import torch
from torch.nn.utils.rnn import pad_sequence

from pipeline.engine.cuda_graphs import BucketedDecodeStep
from pipeline.engine.delay import (
    UNKNOWN,
    apply_stop_rule,
    completed_positions,
    delayed_layout,
    fed_position,
    first_sampled,
    forbid_late_eos,
    loop_steps,
)
from pipeline.engine.messages import RequestState, RowMove, RunnerOutput, SchedulerOutput
from pipeline.engine.request import DEFAULT_EMOTION, GenerationRequest
from pipeline.engine.sampler import SamplingBatch, sample
from pipeline.model import EOS_TOKEN, MASK_TOKEN, N_CODEBOOKS, ZonosModel, decode_step, prefill
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


def guide(hidden: torch.Tensor, cond_rows: torch.Tensor, uncond_rows: torch.Tensor, cfg_scale: torch.Tensor):
    """Classifier-free guidance per request, on final hidden states [rows, d] -> fp32 [requests, d].

    The heads are linear without bias, so guiding hidden states then applying the heads equals the
    reference's guidance of logits, at half the head work. A request without guidance points both
    indices at its one row."""
    cond, uncond = hidden[cond_rows].float(), hidden[uncond_rows].float()
    return uncond + (cond - uncond) * cfg_scale[:, None]


class _ActiveBatch:
    """Index tensors for the running requests, rebuilt only when a request joins or leaves."""

    def __init__(self, running: list[RequestState], device):
        def tensor(values, dtype=torch.long):
            return torch.tensor(values, dtype=dtype, device=device)

        n_rows = sum(len(state.rows) for state in running)
        row_request, positions = [0] * n_rows, [0] * n_rows
        for index, state in enumerate(running):
            for row in state.rows:
                row_request[row], positions[row] = index, state.position
        self.slots = tensor([state.slot for state in running])
        self.row_request = tensor(row_request)
        self.cond_rows = tensor([state.rows[0] for state in running])
        self.uncond_rows = tensor([state.rows[-1] for state in running])
        self.cfg_scale = tensor([state.request.cfg_scale for state in running], torch.float32)
        self.offsets = tensor([state.offset for state in running])
        self.positions = tensor(positions)
        self.span = max(positions) + 1  # cache positions any row attends to, after this step's write
        self.sampling = SamplingBatch.from_params(
            [state.request.sampling for state in running], [state.seed for state in running], device
        )

    def advance(self) -> None:
        """Every request moves on by one delayed position (no host synchronisation)."""
        self.offsets += 1
        self.positions += 1
        self.span += 1


class ModelRunner:
    def __init__(self, model: ZonosModel, max_rows: int, max_seq_len: int, cuda_graphs: bool, graph_span_bucket: int):
        self.model = model
        self.device = model.device
        self.cache = model.make_cache(max_rows, max_seq_len)
        # On CUDA, decode steps replay recorded graphs (see cuda_graphs.py); elsewhere they run eagerly.
        use_graphs = cuda_graphs and self.device.type == "cuda"
        self.graphs = BucketedDecodeStep(model, self.cache, graph_span_bucket) if use_graphs else None
        self.delayed = torch.full(
            (max_rows, N_CODEBOOKS, max_seq_len), MASK_TOKEN, dtype=torch.long, device=self.device
        )
        self.remaining = torch.zeros(max_rows, dtype=torch.long, device=self.device)
        self.stopping = torch.zeros(max_rows, dtype=torch.bool, device=self.device)
        self.codebooks = torch.arange(N_CODEBOOKS, device=self.device)
        self._batch: _ActiveBatch | None = None

    def execute(self, scheduled: SchedulerOutput) -> RunnerOutput:
        """Run one scheduled step: move rows, prefill the admitted requests, decode every running one."""
        self._move_rows(scheduled.row_moves)
        if scheduled.prefill:
            self.prefill(scheduled.prefill)
        if scheduled.batch_changed or self._batch is None:
            self._batch = _ActiveBatch(scheduled.running, self.device)
        return self.decode()

    def _move_rows(self, moves: list[RowMove]) -> None:
        for move in moves:
            self.cache.move_row(move.src, move.dst, move.length)

    # ----------------------------------------------------------------------- prefill

    @torch.inference_mode()
    def prefill(self, states: list[RequestState]) -> None:
        """Conditioning + prefix frames into the requests' fresh cache rows, then their first sample."""
        for state in states:
            self._place(state)
        inputs = [row for state in states for row in self._prefill_inputs(state)]  # in cache-row order
        first_row = states[0].rows[0]
        lengths = torch.tensor([len(x) for x in inputs], device=self.device)
        hidden = prefill(self.model, self.cache, pad_sequence(inputs, batch_first=True), lengths, first_row)

        def batch_rows(which: int) -> torch.Tensor:  # cache rows -> rows of this prefill batch
            return torch.tensor([state.rows[which] - first_row for state in states], device=self.device)

        cfg = torch.tensor([state.request.cfg_scale for state in states], device=self.device)
        logits = self.model.codebook_logits(guide(hidden, batch_rows(0), batch_rows(-1), cfg))
        self._first_sample(states, logits)

    def _place(self, state: RequestState) -> None:
        """The request's delayed layout into its slot; its stop state reset."""
        layout = delayed_layout(state.request.audio_prefix_codes, state.request.max_new_tokens)
        self.delayed[state.slot].fill_(MASK_TOKEN)
        self.delayed[state.slot, :, : layout.shape[1]] = layout.to(self.device)
        self.remaining[state.slot] = loop_steps(state.request.max_new_tokens)
        self.stopping[state.slot] = False

    def _prefill_inputs(self, state: RequestState) -> list[torch.Tensor]:
        """One [C + P + 1, d] input per cache row: conditioning, then delayed positions 0..P embedded."""
        model = self.model
        n_fed = first_sampled(state.request.n_prefix_frames)
        frames = model.embed_frames(self.delayed[state.slot, :, :n_fed].T)
        ids = torch.tensor(state.phoneme_ids, device=self.device)
        inputs = []
        for conditional in (True, False)[: state.n_rows]:
            values = _to(conditioning_values(state.request, conditional), self.device)
            inputs.append(torch.cat([model.prefix_conditioner(ids, values).to(model.dtype), frames]))
        return inputs

    def _first_sample(self, states: list[RequestState], logits: torch.Tensor) -> None:
        slots = torch.tensor([state.slot for state in states], device=self.device)
        offsets = torch.tensor([first_sampled(state.request.n_prefix_frames) for state in states], device=self.device)
        params, seeds = [state.request.sampling for state in states], [state.seed for state in states]
        self._write(slots, offsets, sample(logits, SamplingBatch.from_params(params, seeds, self.device), offsets))

    def _write(self, slots: torch.Tensor, offsets: torch.Tensor, tokens: torch.Tensor) -> None:
        """Write samples [n, 9] at delayed position `offsets`, only into entries still UNKNOWN."""
        index = (slots[:, None], self.codebooks, offsets[:, None])
        current = self.delayed[index]
        self.delayed[index] = torch.where(current == UNKNOWN, tokens, current)

    # ----------------------------------------------------------------------- decode

    @torch.inference_mode()
    def decode(self) -> RunnerOutput:
        """One step for every request of the current batch: sample, apply the stop rule, report."""
        batch = self._batch
        fed = self.delayed[batch.slots[:, None], self.codebooks, fed_position(batch.offsets)[:, None]]
        hidden = self._forward(fed[batch.row_request], batch)
        guided = guide(hidden, batch.cond_rows, batch.uncond_rows, batch.cfg_scale)
        logits = forbid_late_eos(self.model.codebook_logits(guided))
        tokens = self._sample(logits, batch)
        tokens, remaining, stopping = apply_stop_rule(tokens, self.remaining[batch.slots], self.stopping[batch.slots])
        self._write(batch.slots, batch.offsets, tokens)
        self.remaining[batch.slots], self.stopping[batch.slots] = remaining, stopping
        completed = self._completed_frames(batch)
        batch.advance()
        # The step's one host synchronisation.
        report = torch.cat([completed, remaining[:, None], stopping[:, None].long()], dim=1).cpu().numpy()
        return RunnerOutput(
            frames=report[:, :N_CODEBOOKS],
            remaining=report[:, N_CODEBOOKS],
            stopping=report[:, N_CODEBOOKS + 1].astype(bool),
        )

    def _forward(self, frames: torch.Tensor, batch: _ActiveBatch) -> torch.Tensor:
        """Delayed frames [rows, 9] -> final hidden states [rows, d], from a CUDA graph where recorded."""
        if self.graphs is None:
            return decode_step(self.model, self.cache, frames, batch.positions, batch.span)
        return self.graphs(frames, batch.positions, batch.span)

    def _sample(self, logits: torch.Tensor, batch: _ActiveBatch) -> torch.Tensor:
        """Tokens [n, 9], with the repetition penalty over each request's recent delayed positions."""
        offsets, window = batch.offsets, batch.sampling.max_window
        recent_pos = offsets[:, None] - window + torch.arange(window, device=self.device)
        valid = (recent_pos >= 0) & (recent_pos >= offsets[:, None] - batch.sampling.window[:, None])
        recent = self.delayed[
            batch.slots[:, None, None], self.codebooks[None, :, None], recent_pos.clamp(min=0)[:, None, :]
        ]
        return sample(logits, batch.sampling, offsets, recent, valid[:, None, :].expand_as(recent))

    def _completed_frames(self, batch: _ActiveBatch) -> torch.Tensor:
        """[n, 9] the frame each request completed this step, codes >= 1024 (EOS, MASK) read as 0."""
        positions = completed_positions(batch.offsets, self.codebooks).clamp(min=0)
        complete = self.delayed[batch.slots[:, None], self.codebooks, positions]
        return complete.masked_fill(complete >= EOS_TOKEN, 0)


def _to(values: dict[str, torch.Tensor | None], device) -> dict[str, torch.Tensor | None]:
    return {name: None if value is None else value.to(device) for name, value in values.items()}
