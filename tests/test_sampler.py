"""Sampling against the reference's distributions, and the seeded per-row draw."""

import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import DATA
from pipeline.engine import SamplingParams
from pipeline.engine.sampler import SamplingBatch, apply_repetition_penalty, probabilities, sample, uniform_noise

SETTINGS = json.loads((DATA / "sampling.json").read_text())
GOLDEN = load_file(str(DATA / "sampling.safetensors"))


def _batch(params: SamplingParams, rows: int, seed: int = 0) -> SamplingBatch:
    return SamplingBatch.from_params([params] * rows, [seed + i for i in range(rows)], "cpu")


@pytest.mark.parametrize("index", range(len(SETTINGS)))
def test_distribution_before_the_draw_matches_reference(index):
    params = SamplingParams(**SETTINGS[index])
    logits, generated = GOLDEN["logits"], GOLDEN["generated_tokens"]
    recent = generated[..., -params.repetition_penalty_window :]
    penalised = apply_repetition_penalty(logits, recent, torch.ones_like(recent), _batch(params, 3).penalty)
    probs = probabilities(penalised, _batch(params, 3))
    torch.testing.assert_close(probs, GOLDEN[f"probs{index}"], atol=1e-5, rtol=0)


def test_rows_with_different_settings_each_get_their_own_distribution():
    logits, generated = GOLDEN["logits"], GOLDEN["generated_tokens"]
    chosen = [0, 2, 4]  # one settings entry per row
    params = [SamplingParams(**SETTINGS[i]) for i in chosen]
    batch = SamplingBatch.from_params(params, [1, 2, 3], "cpu")
    window = batch.max_window
    recent = generated[..., -window:]
    valid = torch.arange(window) >= window - batch.window[:, None]
    penalised = apply_repetition_penalty(logits, recent, valid[:, None, :].expand_as(recent), batch.penalty)
    probs = probabilities(penalised, batch)
    for row, index in enumerate(chosen):
        torch.testing.assert_close(probs[row], GOLDEN[f"probs{index}"][row], atol=1e-5, rtol=0)


def test_greedy_is_argmax_of_penalised_logits():
    logits = GOLDEN["logits"]
    params = SamplingParams(temperature=0.0, repetition_penalty=1.0)
    tokens = sample(logits, _batch(params, 3), counter=torch.zeros(3, dtype=torch.long))
    assert torch.equal(tokens, logits.argmax(-1))


def test_noise_is_a_pure_function_of_seed_and_counter():
    key = _batch(SamplingParams(), 4, seed=7).seed_key
    counter = torch.tensor([5, 5, 9, 9])
    first = uniform_noise(key, counter, 9)
    assert first.shape == (4, 9) and torch.equal(first, uniform_noise(key, counter, 9))
    # a row's noise does not depend on its neighbours
    assert torch.equal(first[2:], uniform_noise(key[2:], counter[2:], 9))
    assert not torch.equal(first[0], first[1])  # other seed
    assert not torch.equal(uniform_noise(key, counter + 1, 9), first)  # other step
    assert len(set(first[0].tolist())) == 9  # codebooks draw independently
    assert first.min() > 0.0 and first.max() < 1.0


def test_draws_follow_the_distribution():
    """Empirical frequencies over many seeds match p (chi-square bound at a tiny false-alarm rate)."""
    probs_row = torch.tensor([0.5, 0.25, 0.15, 0.1])
    logits = probs_row.log().expand(4000, 1, 4).clone()
    params = SamplingParams(temperature=1.0, min_p=0.0, repetition_penalty=1.0)
    tokens = sample(logits, _batch(params, 4000, seed=11), counter=torch.arange(4000))
    counts = torch.bincount(tokens.view(-1), minlength=4).float()
    expected = probs_row * 4000
    chi_square = ((counts - expected) ** 2 / expected).sum()
    assert chi_square < 25.0  # 3 degrees of freedom: p < 1e-4
