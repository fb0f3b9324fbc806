"""The delay pattern: where each code of each frame sits, in the delayed layout and in the KV cache.

Zonos samples the 9 codebooks of a frame on 9 consecutive steps: codebook k of frame t is
sampled at delayed position t + k + 1, so one step (one delayed position) holds codebook 0 of
one frame, codebook 1 of the frame before, and so on. A frame is complete, and can leave the
engine, once its codebook 8 is sampled. In a request's cache row, its C conditioning tokens
(one per phoneme id, one per scalar conditioner) come first, then the delayed positions.

For P audio-prefix frames, N new frames (max_new_tokens) and a step that samples delayed
position o ("the offset"):

| what                                        | where                                | helper               |
|---------------------------------------------|--------------------------------------|----------------------|
| codebook k of frame t                       | delayed position t + k + 1           | `delayed_layout`     |
| delayed position d                          | cache position C + d                 | `cache_position`     |
| cache positions a request can use           | C + P + N + 9                        | `cache_positions`    |
| prefill input                               | delayed positions 0..P (C + P + 1)   | `prefill_length`     |
| the prefill's sample                        | delayed position P + 1               | `first_sampled`      |
| decode step sampling o is fed               | delayed position o - 1               | `fed_position`       |
| complete once o is written                  | frame o - 9 (codebook k at o - 8 + k)| `completed_positions`|
| ... its index among the N new frames        | o - 9 - P (< 0: a prefix frame)      | `new_frame_index`    |
| loop steps after the prefill                | N + 8                                | `loop_steps`         |
| loop steps left once codebook 0 samples EOS | 9                                    | `STOP_COUNTDOWN`     |

The stop rule (the reference's): codebook 0 sampling EOS leaves 9 loop steps; each later step
writes MASK below and EOS at codebook 9 - remaining, so every codebook ends on the same frame.
The reference's last loop step writes nothing that reaches the output, so a request is done
when one step is left (`finished`). `apply_stop_rule` applies it on the device, `finished` on
the host; both live here so the rule is stated once.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.model import EOS_TOKEN, MASK_TOKEN, N_CODEBOOKS

N_SCALAR_CONDITIONERS = 6  # speaker, emotion, fmax, pitch_std, speaking_rate, language_id: one token each
UNKNOWN = -1  # a delayed entry whose sample is still due
STOP_COUNTDOWN = N_CODEBOOKS


def conditioning_length(n_phoneme_ids: int) -> int:
    """C: the conditioning tokens in front of a row's delayed positions."""
    return n_phoneme_ids + N_SCALAR_CONDITIONERS


def cache_position(n_conditioning: int, delayed_position):
    """Where delayed position d (int, array or tensor) of a row sits in its KV-cache row."""
    return n_conditioning + delayed_position


def cache_positions(n_phoneme_ids: int, n_prefix_frames: int, max_new_tokens: int) -> int:
    """KV-cache positions a request can use: conditioning tokens + every delayed position it feeds."""
    return conditioning_length(n_phoneme_ids) + n_prefix_frames + max_new_tokens + N_CODEBOOKS


def first_sampled(n_prefix_frames: int) -> int:
    """The delayed position the prefill samples; decode steps sample the ones after it."""
    return n_prefix_frames + 1


def prefill_length(n_phoneme_ids: int, n_prefix_frames: int) -> int:
    """Prefill tokens of one row: conditioning + delayed positions 0..P."""
    return cache_position(conditioning_length(n_phoneme_ids), first_sampled(n_prefix_frames))


def fed_position(offset):
    """The delayed position a decode step feeds when it samples `offset` (int or tensor)."""
    return offset - 1


def completed_positions(offset: torch.Tensor, codebooks: torch.Tensor) -> torch.Tensor:
    """[n, 9] delayed positions of the frame completed once `offset` [n] is written (may be < 0: none yet)."""
    return offset[:, None] - (N_CODEBOOKS - 1) + codebooks


def new_frame_index(offset: int, n_prefix_frames: int) -> int:
    """Index, among the new frames, of the frame completed once `offset` is written (< 0: none)."""
    return offset - N_CODEBOOKS - n_prefix_frames


def loop_steps(max_new_tokens: int) -> int:
    """The reference's loop steps left after the prefill sample."""
    return max_new_tokens + N_CODEBOOKS - 1


def delayed_layout(prefix_codes: list[list[int]] | None, max_new_tokens: int) -> torch.Tensor:
    """[9, P + N + 9]: codebook k shifted right by k + 1, MASK ramp and tail, prefix codes, UNKNOWN elsewhere."""
    n_prefix = len(prefix_codes[0]) if prefix_codes else 0
    n_frames = n_prefix + max_new_tokens
    codes = torch.full((N_CODEBOOKS, n_frames), UNKNOWN, dtype=torch.long)
    if n_prefix:
        codes[:, :n_prefix] = torch.tensor(prefix_codes)
    delayed = torch.full((N_CODEBOOKS, n_frames + N_CODEBOOKS), MASK_TOKEN, dtype=torch.long)
    for k in range(N_CODEBOOKS):
        delayed[k, k + 1 : k + 1 + n_frames] = codes[k]
    return delayed


# --------------------------------------------------------------------------- the stop rule


def forbid_late_eos(logits: torch.Tensor) -> torch.Tensor:
    """Only codebook 0 may end the utterance: EOS logits of codebooks 1..8 of [n, 9, V] to -inf, in place."""
    logits[:, 1:, EOS_TOKEN] = float("-inf")
    return logits


def apply_stop_rule(
    tokens: torch.Tensor, remaining: torch.Tensor, stopping: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step's samples [n, 9] under the stop rule, given each request's loop steps `remaining` [n]
    and `stopping` [n] (codebook 0 has sampled EOS). Returns the tokens to write, the loop steps
    left after this step, and the new stopping flags. No host synchronisation."""
    codebooks = torch.arange(N_CODEBOOKS, device=tokens.device)
    eos = tokens[:, 0] == EOS_TOKEN
    remaining = torch.where(eos, remaining.clamp(max=STOP_COUNTDOWN), remaining)
    stopping = stopping | eos
    eos_codebook = (STOP_COUNTDOWN - remaining).clamp(max=N_CODEBOOKS - 1)[:, None]
    tokens = torch.where(stopping[:, None] & (codebooks < eos_codebook), MASK_TOKEN, tokens)
    tokens = torch.where(stopping[:, None] & (codebooks == eos_codebook), EOS_TOKEN, tokens)
    return tokens, remaining - 1, stopping


def finished(remaining: np.ndarray) -> np.ndarray:
    """Requests whose last useful step this was, from the loop steps left after it ([n] ints)."""
    return remaining <= 1
