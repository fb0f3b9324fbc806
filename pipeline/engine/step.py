"""THE decode step: one static-shape function over persistent device tensors.

Everything a steady-state step does on the device is `decode_step` below: gather each row's fed
frame, the transformer, guidance, the heads, the late-EOS ban, the repetition window, the seeded
draw, the stop rule, the writes into the delayed layout, and the report. It reads and writes only

- `SlotState`: per-request state kept in device tensors by slot (the delayed layout, loop steps
  left, the stopping flag, the next offset, and the request's settings as two table rows), written
  when a request is admitted, advanced by the step itself;
- `StepBatch`: which slots and cache rows take part, as static index tensors, rewritten only when
  a request joins or leaves.

So its shapes depend only on (rows, span) and its values only on device tensors: on CUDA it is
recorded once per (rows, span) bucket and replayed as ONE graph (`pipeline/engine/cuda_graphs.py`);
on CPU it runs eagerly. Either way it runs inside `torch.profiler.record_function(STEP_REGION)`,
so what a step costs outside it can be counted. The host then makes one device->host copy of the
report.
"""

from __future__ import annotations

import torch

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
from pipeline.engine.messages import RequestState
from pipeline.engine.sampler import (
    FLOAT_COLUMNS,
    INT_COLUMNS,
    SamplerFeatures,
    SamplingBatch,
    sample,
    table_rows,
    uniform_noise,
)
from pipeline.model import EOS_TOKEN, MASK_TOKEN, N_CODEBOOKS, CodebookTables, KVCache, ZonosModel
from pipeline.model import decode_step as transformer_step

STEP_REGION = "zonos.decode_step"
# Batch invariance on CPU (EngineConfig.deterministic). Two things made a row's result depend on
# its batch, both measured on this project's CPU (tests/test_determinism.py):
# - MKL's sgemm: a row's result depends on the row count M (M = 1 takes a matrix-vector path, small
#   M and some remainders other kernels); for M a multiple of 8 it depends only on the row. So the
#   decode batch's rows and requests are padded to a multiple of ROW_TILE.
# - Attention's reductions over the span (softmax sums, the probabilities x V product): a row's
#   keys past its position are masked to exact zeros, but the vector loops treat a span's tail
#   differently, so a span that ends elsewhere (the batch's longest row) changes the rounding.
#   For spans that are multiples of SPAN_TILE the result is the same whatever the span, so spans
#   (and prefill lengths) are rounded up to it.
# Norms, embeddings, guidance and sampling are per row already.
ROW_TILE = 8
SPAN_TILE = 16


def round_up(n: int, tile: int) -> int:
    return -(-n // tile) * tile


def guide(hidden: torch.Tensor, cond_rows: torch.Tensor, uncond_rows: torch.Tensor, cfg_scale: torch.Tensor):
    """Classifier-free guidance per request, on final hidden states [rows, d] -> fp32 [requests, d].

    The heads are linear without bias, so guiding hidden states then applying the heads equals the
    reference's guidance of logits, at half the head work. A request without guidance points both
    indices at its one row."""
    cond, uncond = hidden[cond_rows].float(), hidden[uncond_rows].float()
    return uncond + (cond - uncond) * cfg_scale[:, None]


class SlotState:
    """Per-request device state, by slot: `max_slots` slots for requests plus one scratch slot that
    padded batch entries point at (their writes land there and are never read)."""

    def __init__(self, max_slots: int, max_seq_len: int, device):
        slots = max_slots + 1
        self.scratch = max_slots
        self.delayed = torch.full((slots, N_CODEBOOKS, max_seq_len), MASK_TOKEN, dtype=torch.long, device=device)
        self.remaining = torch.zeros(slots, dtype=torch.long, device=device)
        self.stopping = torch.zeros(slots, dtype=torch.bool, device=device)
        self.offset = torch.ones(slots, dtype=torch.long, device=device)  # next delayed position to sample
        # The request's uniforms for every delayed position (a pure function of seed and position,
        # see sampler.uniform_noise), drawn once at admission: a step gathers one row of it.
        self.noise = torch.zeros(slots, max_seq_len, N_CODEBOOKS, dtype=torch.float32, device=device)
        self.floats = torch.zeros(slots, len(FLOAT_COLUMNS), dtype=torch.float32, device=device)
        self.ints = torch.zeros(slots, len(INT_COLUMNS), dtype=torch.long, device=device)
        self.floats[:, FLOAT_COLUMNS.index("cfg_scale")] = 1.0
        self.ints[:, INT_COLUMNS.index("repetition_penalty_window")] = 1

    def place(self, state: RequestState) -> None:
        """A newly admitted request: its delayed layout, loop steps, offset and settings into its slot."""
        request, slot = state.request, state.slot
        layout = delayed_layout(request.audio_prefix_codes, request.max_new_tokens)
        self.delayed[slot].fill_(MASK_TOKEN)
        self.delayed[slot, :, : layout.shape[1]] = layout.to(self.delayed.device)
        self.remaining[slot] = loop_steps(request.max_new_tokens)
        self.stopping[slot] = False
        self.offset[slot] = first_sampled(request.n_prefix_frames) + 1  # after the prefill's sample
        floats, ints = table_rows(request.sampling, state.seed, request.cfg_scale)
        self.floats[slot] = torch.tensor(floats)
        self.ints[slot] = torch.tensor(ints)
        positions = torch.arange(self.noise.shape[1], device=self.noise.device)
        self.noise[slot] = uniform_noise(
            self.ints[slot, INT_COLUMNS.index("seed_key")].expand_as(positions), positions, N_CODEBOOKS
        )

    def sampling(self, slots: torch.Tensor) -> SamplingBatch:
        return SamplingBatch.from_tables(self.floats[slots], self.ints[slots])

    def mutable(self) -> tuple[torch.Tensor, ...]:
        """The tensors a decode step changes (besides the K/V cache)."""
        return self.delayed, self.remaining, self.stopping, self.offset

    def write(self, slots: torch.Tensor, offsets: torch.Tensor, tokens: torch.Tensor) -> None:
        """Write samples [n, 9] at delayed position `offsets`, only into entries still UNKNOWN."""
        codebooks = torch.arange(N_CODEBOOKS, device=tokens.device)
        index = (slots[:, None], codebooks, offsets[:, None])
        current = self.delayed[index]
        self.delayed[index] = torch.where(current == UNKNOWN, tokens, current)


class StepBatch:
    """Who takes part in a decode step, as static index tensors: `requests` entries (slot, cond row,
    uncond row, live) and `rows` cache-row entries (slot, conditioning length). Entries past the
    live requests and rows are padding: they point at the scratch slot, whose offset stays 1, so
    padded rows decode at cache position 0 of free rows and their outputs are dropped."""

    def __init__(self, requests: int, rows: int, scratch: int, device):
        self.scratch = scratch
        self.request_index = torch.zeros(4, requests, dtype=torch.long, device=device)
        self.row_index = torch.zeros(2, rows, dtype=torch.long, device=device)
        self.slots, self.cond_rows, self.uncond_rows, self.live = self.request_index.unbind(0)
        self.row_slot, self.row_cond = self.row_index.unbind(0)
        self.n_requests = 0
        self.features = SamplerFeatures()

    @property
    def shape(self) -> tuple[int, int]:
        """(request entries, cache rows): what a recorded graph is specific to."""
        return self.request_index.shape[1], self.row_index.shape[1]

    def fill(self, running: list[RequestState], features: SamplerFeatures) -> None:
        """Point the static tensors at `running` (in place: two host->device copies)."""
        requests, rows = self.shape
        pad = requests - len(running)
        row_slot, row_cond = [self.scratch] * rows, [0] * rows
        for state in running:
            for row in state.rows:
                row_slot[row], row_cond[row] = state.slot, state.n_conditioning
        per_request = [
            [state.slot for state in running] + [self.scratch] * pad,
            [state.rows[0] for state in running] + [0] * pad,
            [state.rows[-1] for state in running] + [0] * pad,
            [1] * len(running) + [0] * pad,
        ]
        self.request_index.copy_(torch.tensor(per_request, dtype=torch.long))
        self.row_index.copy_(torch.tensor([row_slot, row_cond], dtype=torch.long))
        self.n_requests, self.features = len(running), features


def decode_step(
    model: ZonosModel, tables: CodebookTables, cache: KVCache, slots: SlotState, batch: StepBatch, span: int
) -> torch.Tensor:
    """One step for every entry of `batch`: returns the report [requests, 11] int64 (the frame each
    request completed, codes >= 1024 read as 0; loop steps left; stopping), entries past
    `batch.n_requests` being padding. Static shapes for given (batch.shape, span), no host sync."""
    with torch.profiler.record_function(STEP_REGION):
        codebooks = torch.arange(N_CODEBOOKS, device=cache.k.device)
        offsets = slots.offset[batch.slots]
        row_fed = fed_position(slots.offset[batch.row_slot])
        fed = slots.delayed[batch.row_slot[:, None], codebooks, row_fed[:, None]]
        positions = batch.row_cond + row_fed
        hidden = transformer_step(model, cache, tables.embed(fed), positions, span)
        sampling = slots.sampling(batch.slots)
        logits = forbid_late_eos(tables.logits(guide(hidden, batch.cond_rows, batch.uncond_rows, sampling.cfg_scale)))
        # The repetition penalty looks at each request's last `window` delayed positions.
        window = batch.features.window
        recent_pos = offsets[:, None] - window + torch.arange(window, device=offsets.device)
        valid = (recent_pos >= 0) & (recent_pos >= offsets[:, None] - sampling.window[:, None])
        recent = slots.delayed[batch.slots[:, None, None], codebooks[:, None], recent_pos.clamp(min=0)[:, None, :]]
        noise = slots.noise[batch.slots, offsets]
        tokens = sample(logits, sampling, noise, recent, valid[:, None, :].expand_as(recent), batch.features)
        tokens, remaining, stopping = apply_stop_rule(tokens, slots.remaining[batch.slots], slots.stopping[batch.slots])
        slots.write(batch.slots, offsets, tokens)
        slots.remaining[batch.slots], slots.stopping[batch.slots] = remaining, stopping
        slots.offset[batch.slots] = offsets + batch.live
        complete = slots.delayed[batch.slots[:, None], codebooks, completed_positions(offsets, codebooks).clamp(min=0)]
        frames = complete.masked_fill(complete >= EOS_TOKEN, 0)
        return torch.cat([frames, remaining[:, None], stopping[:, None].long()], dim=1)
