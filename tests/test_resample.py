"""pipeline.resample: a stream cut anywhere resamples to what torchaudio gives the whole signal."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchaudio
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.resample import StreamingResampler, resample

RATES = [8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000]


def whole(signal: np.ndarray, orig: int, new: int) -> np.ndarray:
    """The reference: torchaudio's resample of the whole signal at once (its defaults; it cannot take
    an empty signal, whose resampling is empty)."""
    if not len(signal):
        return signal
    return torchaudio.functional.resample(torch.from_numpy(signal), orig, new).numpy()


def streamed(signal: np.ndarray, cuts: list[int], orig: int, new: int) -> np.ndarray:
    resampler = StreamingResampler(orig, new)
    chunks = [resampler.push(chunk) for chunk in np.split(signal, sorted(cuts))]
    return np.concatenate([*chunks, resampler.flush()])


@st.composite
def chunked_signals(draw):
    n = draw(st.integers(0, 3000))
    seed = draw(st.integers(0, 2**32 - 1))
    signal = (0.5 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)
    cuts = draw(st.lists(st.integers(0, n), max_size=12))
    return signal, cuts


@settings(max_examples=40, deadline=None)
@given(chunked_signals(), st.sampled_from(RATES))
def test_any_chunking_equals_torchaudio_on_the_whole_signal(chunked, new):
    signal, cuts = chunked
    out = streamed(signal, cuts, 44100, new)
    assert out.dtype == np.float32
    assert len(out) == math.ceil(len(signal) * new / 44100)  # torchaudio's length
    np.testing.assert_allclose(out, whole(signal, 44100, new), rtol=0, atol=1e-6)


@settings(max_examples=15, deadline=None)
@given(chunked_signals(), st.sampled_from([(24000, 44100), (16000, 48000), (48000, 8000)]))
def test_other_rate_pairs_too(chunked, rates):
    signal, cuts = chunked
    np.testing.assert_allclose(streamed(signal, cuts, *rates), whole(signal, *rates), rtol=0, atol=1e-6)


def test_a_long_stream_in_small_chunks_and_its_length():
    """44.1 -> 24 kHz is 147:80; one second of audio is 24000 samples whatever the chunking."""
    signal = np.sin(2 * np.pi * 440 * np.arange(44100) / 44100).astype(np.float32)
    out = streamed(signal, list(range(0, 44100, 1000)), 44100, 24000)
    assert len(out) == 24000
    np.testing.assert_allclose(out, whole(signal, 44100, 24000), rtol=0, atol=1e-6)
    np.testing.assert_allclose(resample(signal, 44100, 24000), whole(signal, 44100, 24000), rtol=0, atol=1e-6)


def test_output_leaves_as_input_arrives():
    """Streaming stays streaming: only the filter's lookahead (under 200 input samples) is held back."""
    resampler = StreamingResampler(44100, 24000)
    out = resampler.push(np.zeros(4410, np.float32))
    assert 4410 * 80 / 147 - len(out) < 200 * 80 / 147


def test_the_same_rate_passes_through():
    signal = np.arange(10, dtype=np.float32)
    resampler = StreamingResampler(44100, 44100)
    assert np.array_equal(np.concatenate([resampler.push(signal), resampler.flush()]), signal)


@pytest.mark.parametrize(("orig", "new"), [(0, 24000), (44100, -1), (44100.0, 24000), (True, 24000)])
def test_bad_rates(orig, new):
    with pytest.raises(ValueError, match="positive integer"):
        StreamingResampler(orig, new)


def test_bad_use():
    resampler = StreamingResampler(44100, 24000)
    with pytest.raises(ValueError, match="1-D"):
        resampler.push(np.zeros((2, 5), np.float32))
    resampler.flush()
    with pytest.raises(ValueError, match="after flush"):
        resampler.push(np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="after flush"):
        resampler.flush()
