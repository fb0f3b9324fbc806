"""The reference's golden cases (tests/data, from shared/fixtures/zonos-tiny) and how to check against them.

Shared by the tests (tests/conftest.py, test_engine.py, test_model.py) and `benchmarks.gpu_check`,
which runs the same checks on a GPU. Needs no espeak-ng: every case carries the reference's
phonemes, and `case_phoneme_ids` turns them into ids with the vocabulary alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from pipeline.engine import GenerationRequest, SamplingParams
from pipeline.engine.runner import conditioning_values
from pipeline.engine.sampler import apply_repetition_penalty
from pipeline.engine.step import guide
from pipeline.model import CodebookTables, decode_step, prefill
from pipeline.text import tokenize

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
CASES = json.loads((DATA / "generation.json").read_text(encoding="utf-8"))
NEAR_TIE = 1e-4  # a token may differ from the reference's only where the reference's top-2 logits were this close


def load_golden() -> dict[str, torch.Tensor]:
    """The reference's codes, logits and conditioning of every case (CPU tensors)."""
    return load_file(str(DATA / "generation.safetensors"))


def case_request(case: dict, **overrides) -> GenerationRequest:
    """The GenerationRequest that reproduces one case of generation.json."""
    fields = {key: case[key] for key in ("text", "language", "cfg_scale", "max_new_tokens") if key in case}
    fields |= {key: case[key] for key in ("speaker", "emotion", "fmax", "pitch_std", "speaking_rate") if key in case}
    fields["audio_prefix_codes"] = case.get("audio_prefix")
    fields["sampling"] = SamplingParams(**case["sampling"])
    return GenerationRequest(**(fields | overrides))


def case_phoneme_ids(case: dict) -> list[int]:
    """The case's phoneme ids from the reference's phonemes: what text_to_ids gives, without espeak-ng."""
    return tokenize(case["phonemes"])


def new_reference_codes(golden, index: int) -> torch.Tensor:
    """The reference output of case `index` without its audio-prefix frames."""
    n_prefix = len(CASES[index]["audio_prefix"][0]) if "audio_prefix" in CASES[index] else 0
    return golden[f"case{index}.codes"][0, :, n_prefix:]


def reference_delayed(golden, index: int) -> torch.Tensor:
    """The reference's delayed layout [9, frames + 9] as its loop fed it, EOS frame included."""
    codes = golden[f"case{index}.codes"][0]
    if CASES[index]["eos_emitted"]:  # every codebook ends on one EOS frame
        codes = torch.cat([codes, torch.full((9, 1), 1024)], dim=1)
    delayed = torch.full((9, codes.shape[1] + 9), 1025)
    for k in range(9):
        delayed[k, k + 1 : k + 1 + codes.shape[1]] = codes[k]
    return delayed


def reference_margin(golden, index: int, codebook: int, frame: int) -> float:
    """Top-2 gap of the reference's (penalised) logits where it sampled codes[codebook, frame]."""
    case = CASES[index]
    n_prefix = len(case["audio_prefix"][0]) if "audio_prefix" in case else 0
    position = frame + codebook + 1  # delayed position of that entry
    step = position - (n_prefix + 1)  # 0 = the prefill sample
    if step == 0:
        logits = golden[f"case{index}.prefill_logits"][0, codebook]
    else:
        logits = golden[f"case{index}.step_logits"][step - 1, codebook].clone()
        window = case["sampling"]["repetition_penalty_window"]
        recent = reference_delayed(golden, index)[codebook, max(0, position - window) : position]
        penalty = torch.tensor([case["sampling"]["repetition_penalty"]])
        logits = apply_repetition_penalty(
            logits[None, None], recent[None, None], torch.ones(1, 1, len(recent)), penalty
        )
        logits = logits[0, 0]
    top2 = logits.topk(2).values
    return float(top2[0] - top2[1])


def reference_mismatch(codes: torch.Tensor, golden, index: int) -> str | None:
    """None when `codes` are the reference's tokens, exactly, except that a divergence may start where the
    reference itself had a near-tie; otherwise what differs."""
    codes = codes.cpu()
    expected = new_reference_codes(golden, index)
    if codes.shape == expected.shape and torch.equal(codes, expected):
        return None
    n = min(codes.shape[1], expected.shape[1])
    differing = (codes[:, :n] != expected[:, :n]).nonzero().tolist()
    if not differing:
        return f"case {index}: same tokens but {codes.shape[1]} frames instead of {expected.shape[1]}"
    n_prefix = len(CASES[index].get("audio_prefix", [[]])[0])
    codebook, frame = min(differing, key=lambda kt: kt[1] + kt[0])  # first in generation order
    margin = reference_margin(golden, index, codebook, frame + n_prefix)
    if margin < NEAR_TIE:
        return None
    return f"case {index}: token ({codebook}, {frame}) differs with a clear margin {margin}"


def prefix_conditioning(model, case: dict, conditional: bool) -> torch.Tensor:
    """The prefix conditioner's output [C, d] for one branch of a case, on the model's device."""
    values = conditioning_values(case_request(case), conditional)
    values = {name: None if value is None else value.to(model.device) for name, value in values.items()}
    return model.prefix_conditioner(torch.tensor(case_phoneme_ids(case), device=model.device), values)


@torch.inference_mode()
def teacher_forced_logits(model, golden, index: int) -> torch.Tensor:
    """Prefill + decode fed the REFERENCE's delayed codes: the guided fp32 logits [1 + steps, 9, 1026] of
    prefill and every step, on the model's device (CPU tensors out)."""
    case, device = CASES[index], model.device
    request = case_request(case)
    n_prefix = request.n_prefix_frames
    delayed = reference_delayed(golden, index).to(device)
    guided = request.cfg_scale != 1.0
    branches = [prefix_conditioning(model, case, True)]
    branches += [prefix_conditioning(model, case, False)] if guided else []
    tables = CodebookTables(model)
    frames = tables.embed(delayed[:, : n_prefix + 1].T)
    inputs = torch.stack([torch.cat([b.to(model.dtype), frames]) for b in branches])
    cache = model.make_cache(len(branches), 512)
    lengths = torch.full((len(branches),), inputs.shape[1], device=device)
    rows, scale = torch.tensor([0], device=device), torch.tensor([request.cfg_scale], device=device)
    uncond = torch.tensor([1 if guided else 0], device=device)
    logits = [tables.logits(guide(prefill(model, cache, inputs, lengths, 0), rows, uncond, scale))]
    n_steps = golden[f"case{index}.step_logits"].shape[0]
    position = inputs.shape[1]
    for offset in range(n_prefix + 2, n_prefix + 1 + n_steps):
        frame = delayed[:, offset - 1].expand(len(branches), -1)
        positions = torch.full((len(branches),), position, device=device)
        hidden = decode_step(model, cache, tables.embed(frame), positions, position + 1)
        logits.append(tables.logits(guide(hidden, rows, uncond, scale)))
        position += 1
    return torch.cat(logits).cpu()
