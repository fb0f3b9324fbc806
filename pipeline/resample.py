"""Sample-rate conversion of a stream: chunks in, chunks out, equal to resampling the whole signal.

`StreamingResampler(orig_freq, new_freq)` gives, for ANY cutting of a signal into chunks, the
samples `torchaudio.functional.resample(whole, orig_freq, new_freq)` gives (its default
windowed-sinc filter: Hann window, lowpass_filter_width 6, rolloff 0.99), up to float32 rounding
(the same kernel, `torchaudio.transforms.Resample(..., dtype=float32).kernel`, applied by the same
strided convolution, only to shorter stretches): `ceil(n * new_freq / orig_freq)` samples for n in.

How: torchaudio reduces the rates by their gcd (44100 -> 24000 is 147 -> 80), pads the signal
with `width` zeros on the left and `width + 147` on the right, and computes 80 output samples per
147 input samples, block k from padded input [147 k, 147 k + 147 + 2 width) (width = 12 for
147:80: 6 zero crossings of the lowpass sinc). So a stream starts with the same `width` zeros as
left context, emits every block whose input has all arrived, keeps the input the next block needs
(its left context and the filter's lookahead), and at `flush` appends the right padding, emits
the rest and cuts the output to ceil(n * 80 / 147), as torchaudio does. The held-back lookahead
delays the output by about `width + 147` input samples (3.6 ms at 44.1 kHz -> 24 kHz).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torchaudio


class StreamingResampler:
    """float32 mono samples at `orig_freq` in, at `new_freq` out, chunk by chunk (module docstring).

    `push(samples)` returns the output samples now final (maybe none); `flush()` the rest, once.
    Raises ValueError for rates that are not positive integers, samples that are not 1-D, and
    a push or flush after flush.
    """

    def __init__(self, orig_freq: int, new_freq: int):
        for name, rate in (("orig_freq", orig_freq), ("new_freq", new_freq)):
            if isinstance(rate, bool) or not isinstance(rate, int | np.integer) or rate <= 0:
                raise ValueError(f"{name} must be a positive integer (Hz), got {rate!r}")
        self.orig_freq, self.new_freq = int(orig_freq), int(new_freq)
        gcd = math.gcd(self.orig_freq, self.new_freq)
        self._step, self._block = self.orig_freq // gcd, self.new_freq // gcd  # 147 in -> 80 out
        self._n_in = self._n_out = 0
        self._closed = False
        if self.orig_freq == self.new_freq:
            self._kernel, self._width = None, 0
            self._pending = torch.zeros(0)
            return
        self._kernel, self._width = _kernel(self.orig_freq, self.new_freq)  # [block, 1, 2 width + step]
        self._pending = torch.zeros(self._width)  # the left padding torchaudio puts before the signal

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Take the next chunk (any length); returns the float32 samples now final."""
        chunk = self._check(samples)
        self._n_in += len(chunk)
        if self._kernel is None:
            return chunk.copy()
        self._pending = torch.cat([self._pending, torch.from_numpy(chunk)])
        return self._emit()

    def flush(self) -> np.ndarray:
        """The end of the signal: returns the last output samples (torchaudio's right padding)."""
        if self._closed:
            raise ValueError("flush() after flush(): this stream is finished")
        self._closed = True
        if self._kernel is None:
            return np.zeros(0, np.float32)
        self._pending = torch.cat([self._pending, torch.zeros(self._width + self._step)])
        return self._emit()

    @property
    def total_out(self) -> int:
        """How many samples the whole signal pushed so far resamples to: resampled_length."""
        return resampled_length(self._n_in, self.orig_freq, self.new_freq)

    def _emit(self) -> np.ndarray:
        """Every block whose input has all arrived (before flush: none reaches past the signal's end, so
        none needs the right padding), cut to `total_out` samples in all; the next block's input kept."""
        size = self._kernel.shape[-1]  # a block's input: 2 width + step, from its own start
        n_blocks = 0 if len(self._pending) < size else (len(self._pending) - size) // self._step + 1
        if n_blocks == 0:
            return np.zeros(0, np.float32)
        used = self._pending[: (n_blocks - 1) * self._step + size]
        out = torch.nn.functional.conv1d(used[None, None], self._kernel, stride=self._step)  # [1, block, n_blocks]
        out = out[0].transpose(0, 1).reshape(-1)[: max(0, self.total_out - self._n_out)]
        self._pending = self._pending[n_blocks * self._step :]
        self._n_out += len(out)
        return out.numpy()

    def _check(self, samples: np.ndarray) -> np.ndarray:
        if self._closed:
            raise ValueError("push() after flush(): this stream is finished")
        array = np.asarray(samples, dtype=np.float32)
        if array.ndim != 1:
            raise ValueError(f"samples must be 1-D (mono), got shape {array.shape}")
        return np.ascontiguousarray(array)


@functools.lru_cache(maxsize=16)
def _kernel(orig_freq: int, new_freq: int) -> tuple[torch.Tensor, int]:
    """torchaudio's resampling kernel (float32, as functional.resample makes it for float32 audio) and width."""
    transform = torchaudio.transforms.Resample(orig_freq, new_freq, dtype=torch.float32)
    return transform.kernel, transform.width


def resampled_length(n: int, orig_freq: int, new_freq: int) -> int:
    """How many samples n samples at `orig_freq` become at `new_freq`: ceil(n * new_freq / orig_freq),
    torchaudio's rule (exact integers). Applied to a position p (the first p samples), it maps a
    boundary in the input to the matching one in the output: output sample j lies at time
    j / new_freq, before input time p / orig_freq exactly when j < resampled_length(p, ...)."""
    return -(-n * new_freq // orig_freq)


def resample(samples: np.ndarray, orig_freq: int, new_freq: int) -> np.ndarray:
    """A whole float32 mono signal at `new_freq`: what StreamingResampler gives it in one chunk."""
    resampler = StreamingResampler(orig_freq, new_freq)
    return np.concatenate([resampler.push(samples), resampler.flush()])
