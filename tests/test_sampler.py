"""Sampling against the reference's distributions, and the seeded per-row draw."""

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from conftest import DATA
from pipeline.engine import SamplingParams
from pipeline.engine.sampler import (
    ALL_FEATURES,
    SamplerFeatures,
    SamplingBatch,
    apply_repetition_penalty,
    probabilities,
    sample,
    uniform_noise,
)

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
    window = SamplerFeatures.of(params).window
    recent = generated[..., -window:]
    valid = torch.arange(window) >= window - batch.window[:, None]
    penalised = apply_repetition_penalty(logits, recent, valid[:, None, :].expand_as(recent), batch.penalty)
    probs = probabilities(penalised, batch)
    for row, index in enumerate(chosen):
        torch.testing.assert_close(probs[row], GOLDEN[f"probs{index}"][row], atol=1e-5, rtol=0)


def test_greedy_is_argmax_of_penalised_logits():
    logits = GOLDEN["logits"]
    params = SamplingParams(temperature=0.0, repetition_penalty=1.0)
    tokens = sample(logits, _batch(params, 3), torch.rand(3, 9))
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
    batch = _batch(params, 4000, seed=11)
    tokens = sample(logits, batch, uniform_noise(batch.seed_key, torch.arange(4000), 1))
    counts = torch.bincount(tokens.view(-1), minlength=4).float()
    expected = probs_row * 4000
    chi_square = ((counts - expected) ** 2 / expected).sum()
    assert chi_square < 25.0  # 3 degrees of freedom: p < 1e-4


def _penalised_inputs(params: list[SamplingParams], window: int, seed: int):
    """Random logits [n, 9, 1026] with a -inf MASK column, and recent tokens [n, 9, window] with validity."""
    generator = torch.Generator().manual_seed(seed)
    n = len(params)
    logits = torch.randn(n, 9, 1026, generator=generator) * 3
    logits[..., 1025] = float("-inf")
    recent = torch.randint(0, 1026, (n, 9, window), generator=generator)
    lookback = torch.tensor([p.repetition_penalty_window for p in params])
    valid = (torch.arange(window) >= window - lookback[:, None])[:, None, :].expand_as(recent)
    return logits, recent, valid


settings_strategy = st.builds(
    SamplingParams,
    temperature=st.sampled_from([0.0, 0.5, 1.0, 1.7]),
    top_p=st.sampled_from([0.0, 0.3, 0.9]),
    top_k=st.sampled_from([0, 1, 5, 200]),
    min_p=st.sampled_from([0.0, 0.05, 0.1]),
    linear=st.sampled_from([0.0, 0.5]),
    conf=st.sampled_from([0.0, 0.4]),
    quad=st.sampled_from([0.0, 0.2]),
    repetition_penalty=st.sampled_from([1.0, 3.0]),
    repetition_penalty_window=st.integers(1, 64),
)


@settings(max_examples=40, deadline=None)
@given(params=st.lists(settings_strategy, min_size=1, max_size=5), seed=st.integers(0, 1000))
def test_skipping_unused_stages_changes_no_token(params, seed):
    """CUDA graphs run every sampler stage (ALL_FEATURES, window 64) for any mix of settings; eager
    steps run only the stages in use (`SamplerFeatures.of`). Both must draw the same tokens."""
    batch = SamplingBatch.from_params(params, [seed + i for i in range(len(params))], "cpu")
    used = SamplerFeatures.of(params)
    noise = uniform_noise(batch.seed_key, torch.arange(len(params)) + seed, 9)
    logits, recent, valid = _penalised_inputs(params, ALL_FEATURES.window, seed)
    everything = sample(logits.clone(), batch, noise, recent, valid, ALL_FEATURES)
    tail = slice(ALL_FEATURES.window - used.window, None)  # the eager step gathers only the last `window`
    only_used = sample(logits.clone(), batch, noise, recent[..., tail], valid[..., tail], used)
    assert torch.equal(everything, only_used)
