"""Runs the model for the scheduled rows: prefill of new rows, batched decode of all running rows.

Device state, per request slot: the delayed code layout (UNKNOWN where a sample is still due),
the remaining loop steps and the stopping flag of the reference's EOS rule. A decode step is
vectorised over all running requests and ends with ONE device->host copy: the newly complete
frame, `remaining` and `stopping` of every row.

KV-cache rows are kept contiguous (rows [0, R) are live) so the decode step attends over a
plain slice of the cache: when a request leaves, the last live row moves into its place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from pipeline.engine.cuda_graphs import BucketedDecodeStep
from pipeline.engine.request import DEFAULT_EMOTION, GenerationRequest
from pipeline.engine.sampler import SamplingBatch, sample
from pipeline.engine.scheduler import Sequence
from pipeline.model import EOS_TOKEN, MASK_TOKEN, N_CODEBOOKS, ZonosModel, decode_step, prefill
from pipeline.text import language_id

UNKNOWN = -1  # a delayed entry whose sample is still due
STOP_COUNTDOWN = 9  # loop steps left once codebook 0 samples EOS (the reference's rule)


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


def delayed_layout(request: GenerationRequest) -> torch.Tensor:
    """[9, P + max_new + 9]: codebook k shifted right by k+1, MASK ramp/tail, prefix codes, UNKNOWN elsewhere."""
    n_prefix, n_frames = request.n_prefix_frames, request.n_prefix_frames + request.max_new_tokens
    codes = torch.full((N_CODEBOOKS, n_frames), UNKNOWN, dtype=torch.long)
    if n_prefix:
        codes[:, :n_prefix] = torch.tensor(request.audio_prefix_codes)
    delayed = torch.full((N_CODEBOOKS, n_frames + N_CODEBOOKS), MASK_TOKEN, dtype=torch.long)
    for k in range(N_CODEBOOKS):
        delayed[k, k + 1 : k + 1 + n_frames] = codes[k]
    return delayed


def guide(hidden: torch.Tensor, cond_rows: torch.Tensor, uncond_rows: torch.Tensor, cfg_scale: torch.Tensor):
    """Classifier-free guidance per request, on final hidden states [rows, d] -> fp32 [requests, d].

    The heads are linear without bias, so guiding hidden states then applying the heads equals the
    reference's guidance of logits, at half the head work. A request without guidance points both
    indices at its one row."""
    cond, uncond = hidden[cond_rows].float(), hidden[uncond_rows].float()
    return uncond + (cond - uncond) * cfg_scale[:, None]


@dataclass
class StepReport:
    """What one decode step produced, per running request (same order as `sequences`)."""

    sequences: list[Sequence]
    frames: np.ndarray  # [n, 9] the frame that became complete (codes >= 1024 read as 0)
    remaining: np.ndarray  # [n] loop steps left; the request is done at 1 (the last step writes nothing used)
    stopping: np.ndarray  # [n] codebook 0 has sampled EOS
    frame_index: np.ndarray  # [n] index of that frame among the NEW frames (negative: a prefix frame or none yet)


class _ActiveBatch:
    """Index tensors for the running requests, rebuilt only when a request joins or leaves."""

    def __init__(self, sequences: list[Sequence], row_owner: list[Sequence], device):
        index_of = {id(seq): i for i, seq in enumerate(sequences)}

        def tensor(values, dtype=torch.long):
            return torch.tensor(values, dtype=dtype, device=device)

        self.slots = tensor([seq.slot for seq in sequences])
        self.row_request = tensor([index_of[id(owner)] for owner in row_owner])
        self.cond_rows = tensor([seq.rows[0] for seq in sequences])
        self.uncond_rows = tensor([seq.rows[-1] for seq in sequences])
        self.cfg_scale = tensor([seq.request.cfg_scale for seq in sequences], torch.float32)
        self.offsets = tensor([seq.offset for seq in sequences])
        self.host_offsets = np.array([seq.offset for seq in sequences])
        self.n_prefix_frames = np.array([seq.request.n_prefix_frames for seq in sequences])
        positions = [owner.position for owner in row_owner]
        self.positions = tensor(positions)
        self.span = max(positions) + 1  # cache positions any row attends to, after this step's write
        self.sampling = SamplingBatch.from_params(
            [s.request.sampling for s in sequences], [s.seed for s in sequences], device
        )


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
        self.free_slots = list(range(max_rows - 1, -1, -1))
        self.sequences: list[Sequence] = []  # running requests, in the order decode() reports them
        self.row_owner: list[Sequence] = []  # cache row -> its request
        self._batch: _ActiveBatch | None = None

    @property
    def used_rows(self) -> int:
        return len(self.row_owner)

    # ----------------------------------------------------------------------- joining

    @torch.inference_mode()
    def prefill(self, seqs: list[Sequence]) -> tuple[int, int]:
        """Admit requests: conditioning + prefix frames into fresh cache rows, then the first sample.

        Returns (real tokens, tokens computed with padding) of the padded prefill batch."""
        model, device = self.model, self.device
        inputs = []
        for seq in seqs:
            seq.slot = self.free_slots.pop()
            layout = delayed_layout(seq.request)
            self.delayed[seq.slot].fill_(MASK_TOKEN)
            self.delayed[seq.slot, :, : layout.shape[1]] = layout.to(device)
            n_prefix = seq.request.n_prefix_frames
            frames = model.embed_frames(self.delayed[seq.slot, :, : n_prefix + 1].T)
            ids = torch.tensor(seq.phoneme_ids, device=device)
            for conditional in (True, False)[: seq.n_rows]:
                cond = model.prefix_conditioner(ids, _to(conditioning_values(seq.request, conditional), device))
                inputs.append(torch.cat([cond.to(model.dtype), frames]))
                seq.rows.append(len(self.row_owner))
                self.row_owner.append(seq)
        first_row = seqs[0].rows[0]
        lengths = torch.tensor([len(x) for x in inputs], device=device)
        hidden = prefill(model, self.cache, pad_sequence(inputs, batch_first=True), lengths, first_row)

        def batch_rows(which: int) -> torch.Tensor:  # cache rows -> rows of this prefill batch
            return torch.tensor([seq.rows[which] - first_row for seq in seqs], device=device)

        cfg = torch.tensor([seq.request.cfg_scale for seq in seqs], device=device)
        guided = model.codebook_logits(guide(hidden, batch_rows(0), batch_rows(-1), cfg))
        slots = torch.tensor([seq.slot for seq in seqs], device=device)
        offsets = torch.tensor([seq.request.n_prefix_frames + 1 for seq in seqs], device=device)
        sampling = SamplingBatch.from_params([s.request.sampling for s in seqs], [s.seed for s in seqs], device)
        self._write(slots, offsets, sample(guided, sampling, offsets))
        self.remaining[slots] = torch.tensor([s.request.max_new_tokens + 8 for s in seqs], device=device)
        self.stopping[slots] = False
        for seq in seqs:
            seq.offset = seq.request.n_prefix_frames + 2
        self._sync_offsets()
        self.sequences += seqs
        self._batch = None
        return int(lengths.sum()), len(inputs) * int(lengths.max())

    def _write(self, slots: torch.Tensor, offsets: torch.Tensor, tokens: torch.Tensor) -> None:
        """Write samples [n, 9] at delayed position `offsets`, only into entries still UNKNOWN."""
        index = (slots[:, None], self.codebooks, offsets[:, None])
        current = self.delayed[index]
        self.delayed[index] = torch.where(current == UNKNOWN, tokens, current)

    # ----------------------------------------------------------------------- decoding

    @torch.inference_mode()
    def decode(self) -> StepReport:
        """One step for every running request; reports each one's newly complete frame and stop state."""
        if self._batch is None:
            self._batch = _ActiveBatch(self.sequences, self.row_owner, self.device)
        batch = self._batch
        slots, offsets, k = batch.slots, batch.offsets, self.codebooks

        frames = self.delayed[slots[:, None], k, (offsets - 1)[:, None]]
        if self.graphs is None:
            hidden = decode_step(self.model, self.cache, frames[batch.row_request], batch.positions, batch.span)
        else:
            hidden = self.graphs(frames[batch.row_request], batch.positions, batch.span)
        guided = self.model.codebook_logits(guide(hidden, batch.cond_rows, batch.uncond_rows, batch.cfg_scale))
        guided[:, 1:, EOS_TOKEN] = float("-inf")  # only codebook 0 may end the utterance

        window = batch.sampling.max_window
        recent_pos = offsets[:, None] - window + torch.arange(window, device=self.device)
        valid = (recent_pos >= 0) & (recent_pos >= offsets[:, None] - batch.sampling.window[:, None])
        recent = self.delayed[slots[:, None, None], k[None, :, None], recent_pos.clamp(min=0)[:, None, :]]
        tokens = sample(guided, batch.sampling, offsets, recent, valid[:, None, :].expand_as(recent))

        # The reference's stop rule: EOS on codebook 0 leaves 9 steps; each later step writes MASK
        # below and EOS at codebook (9 - remaining), so every codebook ends on the same frame.
        eos = tokens[:, 0] == EOS_TOKEN
        remaining = torch.where(eos, self.remaining[slots].clamp(max=STOP_COUNTDOWN), self.remaining[slots])
        stopping = self.stopping[slots] | eos
        eos_codebook = (STOP_COUNTDOWN - remaining).clamp(max=N_CODEBOOKS - 1)[:, None]
        tokens = torch.where(stopping[:, None] & (k < eos_codebook), MASK_TOKEN, tokens)
        tokens = torch.where(stopping[:, None] & (k == eos_codebook), EOS_TOKEN, tokens)
        self._write(slots, offsets, tokens)
        remaining = remaining - 1
        self.remaining[slots], self.stopping[slots] = remaining, stopping

        # Frame offset-9 is now complete: codebook k of it sits at delayed position offset-8+k.
        complete = self.delayed[slots[:, None], k, (offsets[:, None] - 8 + k).clamp(min=0)]
        complete = complete.masked_fill(complete >= EOS_TOKEN, 0)
        report = torch.cat([complete, remaining[:, None], stopping[:, None].long()], dim=1).cpu().numpy()
        written = batch.host_offsets.copy()
        batch.offsets += 1
        batch.host_offsets += 1
        batch.positions += 1
        batch.span += 1
        return StepReport(  # the copy above is the step's one host synchronisation
            sequences=list(self.sequences),
            frames=report[:, :N_CODEBOOKS],
            remaining=report[:, N_CODEBOOKS],
            stopping=report[:, N_CODEBOOKS + 1].astype(bool),
            frame_index=written - 9 - batch.n_prefix_frames,
        )

    # ----------------------------------------------------------------------- leaving

    def release(self, seq: Sequence) -> None:
        """Free a request's slot and cache rows; the last live rows move into the gaps."""
        self._sync_offsets()
        self.sequences.remove(seq)
        self.free_slots.append(seq.slot)
        for row in sorted(seq.rows, reverse=True):
            last = len(self.row_owner) - 1
            if row != last:
                owner = self.row_owner[last]
                self.cache.move_row(last, row, owner.max_len)  # the positions it can use, not the whole row
                owner.rows[owner.rows.index(last)] = row
                self.row_owner[row] = owner
            self.row_owner.pop()
        seq.rows.clear()
        self._batch = None

    def _sync_offsets(self) -> None:
        """Bring the host offsets of the running requests up to date before the batch is rebuilt."""
        if self._batch is not None:
            for seq, offset in zip(self.sequences, self._batch.host_offsets.tolist(), strict=True):
                seq.offset = offset


def _to(values: dict[str, torch.Tensor | None], device) -> dict[str, torch.Tensor | None]:
    return {name: None if value is None else value.to(device) for name, value in values.items()}
