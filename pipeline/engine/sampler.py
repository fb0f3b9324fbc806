"""Batched sampling with per-row settings (spec section 5), no per-row Python loop.

Every row carries its own temperature, top-p, top-k, min-p, unified-sampler and repetition
settings as tensors. The draw uses a counter-based hash keyed by (seed, position, codebook)
instead of a shared generator, so a row's tokens depend only on its own request and
seed: never on which other rows share the batch, or in which order they arrived.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline.engine.request import SamplingParams

_MASK32 = 0xFFFFFFFF


# Per-request settings as the columns of two tables (one row per request): the runner keeps them
# per slot on the device and gathers a batch's rows with one index op per table.
FLOAT_COLUMNS = ("cfg_scale", "temperature", "top_p", "min_p", "linear", "conf", "quad", "repetition_penalty")
INT_COLUMNS = ("top_k", "repetition_penalty_window", "seed_key")
MAX_WINDOW = SamplingParams.model_fields["repetition_penalty_window"].metadata[-1].le


def seed_key(seed: int) -> int:
    """The hashed seed in [0, 2^32) that keys a request's noise (see `uniform_noise`)."""
    lo, hi = torch.tensor([seed & _MASK32]), torch.tensor([(seed >> 32) & _MASK32])
    return int(_mix32(_mix32(lo) ^ hi))


def table_rows(params: SamplingParams, seed: int, cfg_scale: float) -> tuple[list[float], list[int]]:
    """One request's row of the float table (FLOAT_COLUMNS) and of the int table (INT_COLUMNS)."""
    floats = [cfg_scale] + [float(getattr(params, name)) for name in FLOAT_COLUMNS[1:]]
    return floats, [params.top_k, params.repetition_penalty_window, seed_key(seed)]


@dataclass
class SamplingBatch:
    """Sampling settings of n requests as [n] tensors (views into gathered table rows)."""

    cfg_scale: torch.Tensor
    temperature: torch.Tensor
    top_p: torch.Tensor
    min_p: torch.Tensor
    linear: torch.Tensor
    conf: torch.Tensor
    quad: torch.Tensor
    penalty: torch.Tensor
    top_k: torch.Tensor
    window: torch.Tensor
    seed_key: torch.Tensor  # int64 in [0, 2^32): the hashed seed

    @classmethod
    def from_tables(cls, floats: torch.Tensor, ints: torch.Tensor) -> SamplingBatch:
        """Rows [n, len(FLOAT_COLUMNS)] fp32 and [n, len(INT_COLUMNS)] int64 -> the batch (no copy)."""
        return cls(*floats.unbind(1), *ints.unbind(1))

    @classmethod
    def from_params(cls, params: list[SamplingParams], seeds: list[int], device, cfg_scale: float = 1.0):
        rows = [table_rows(p, seed, cfg_scale) for p, seed in zip(params, seeds, strict=True)]
        floats = torch.tensor([f for f, _ in rows], dtype=torch.float32, device=device)
        return cls.from_tables(floats, torch.tensor([i for _, i in rows], dtype=torch.int64, device=device))


@dataclass(frozen=True)
class SamplerFeatures:
    """The sampling stages a batch runs: host-side, fixed while the batch does not change.

    Every stage applies per row (`torch.where` on the row's own setting), so running a stage a
    batch does not use changes no token: `ALL` serves every mix and is what a CUDA graph records
    (one graph per shape, whatever the requests ask); eager CPU steps run `of(params)`, the stages
    in use. `window` is the repetition-penalty lookback gathered per step (>= every row's)."""

    window: int = MAX_WINDOW
    sampled: bool = True
    greedy: bool = True
    unified: bool = True
    top_p: bool = True
    top_k: bool = True
    min_p: bool = True

    @classmethod
    def of(cls, params: list[SamplingParams]) -> SamplerFeatures:
        return cls(
            window=max(p.repetition_penalty_window for p in params),
            sampled=any(p.temperature > 0 for p in params),
            greedy=any(p.temperature == 0 for p in params),
            unified=any(p.linear > 0 for p in params),
            top_p=any(p.top_p > 0 for p in params),
            top_k=any(p.top_k > 0 for p in params),
            min_p=any(p.min_p > 0 for p in params),
        )


ALL_FEATURES = SamplerFeatures()


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """An avalanching 32-bit integer hash on int64 tensors holding values in [0, 2^32)."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x6C8E9CF5) & _MASK32
    return x ^ (x >> 16)


def uniform_noise(seed_key: torch.Tensor, counter: torch.Tensor, n_codebooks: int) -> torch.Tensor:
    """Uniforms in (0, 1), [n, n_codebooks], a pure function of (seed, counter, codebook)."""
    step_key = _mix32(seed_key ^ _mix32(counter & _MASK32))
    codebook = torch.arange(n_codebooks, device=seed_key.device, dtype=torch.int64)
    bits = _mix32(_mix32(step_key[:, None] ^ codebook) + 0x9E3779B9 & _MASK32)
    return ((bits >> 8).float() + 0.5) * (1.0 / (1 << 24))


def apply_repetition_penalty(logits: torch.Tensor, recent: torch.Tensor, valid: torch.Tensor, penalty: torch.Tensor):
    """Each valid occurrence in `recent` [n, 9, W] multiplies that token's factor by `penalty` [n].

    Only the W recent tokens change, so they are gathered, penalised and scattered back: every
    entry counts the valid entries holding the same token, so duplicates write equal values."""
    index = recent.clamp(max=logits.shape[-1] - 1)
    same_token = (index[..., :, None] == index[..., None, :]) & valid[..., None, :].bool()
    factor = penalty[:, None, None] ** same_token.sum(dim=-1).to(logits.dtype)
    values = logits.gather(-1, index)
    return logits.scatter(-1, index, torch.where(values <= 0, values * factor, values / factor))


def _renormalise(probs: torch.Tensor) -> torch.Tensor:
    return probs / probs.sum(dim=-1, keepdim=True)


def _rows(flags: torch.Tensor) -> torch.Tensor:
    return flags[:, None, None]


def probabilities(logits: torch.Tensor, batch: SamplingBatch, features: SamplerFeatures = ALL_FEATURES):
    """The distribution just before the draw, for (already penalised) logits [n, 9, V]."""
    temperature = torch.where(batch.temperature > 0, batch.temperature, torch.ones_like(batch.temperature))
    probs = torch.softmax(logits / temperature[:, None, None], dim=-1)

    if features.unified:
        log_p = probs.clamp_min(1e-20).log()
        entropy = -(probs * log_p).sum(dim=-1, keepdim=True)
        linear, conf, quad = (t[:, None, None] for t in (batch.linear, batch.conf, batch.quad))
        unified = torch.softmax(log_p * (linear + entropy * conf) - log_p.square() * quad, dim=-1)
        probs = torch.where(_rows(batch.linear > 0), unified, probs)

    if features.top_p or features.top_k:
        # One sort serves both: top-p keeps (renormalised) a prefix of this order, which keeps the
        # order, so the k-th largest after top-p is the entry at the k-th index of this order.
        sorted_p, order = probs.sort(dim=-1, descending=True)
    if features.top_p:
        drop = (sorted_p.cumsum(dim=-1) - sorted_p) > batch.top_p[:, None, None]
        kept = _renormalise(torch.zeros_like(probs).scatter(-1, order, sorted_p.masked_fill(drop, 0.0)))
        probs = torch.where(_rows(batch.top_p > 0), kept, probs)

    if features.top_k:
        kth_index = order.gather(-1, (batch.top_k - 1).clamp(min=0)[:, None, None].expand(-1, probs.shape[1], 1))
        kth = probs.gather(-1, kth_index)
        kept = _renormalise(probs.masked_fill(probs < kth, 0.0))
        probs = torch.where(_rows(batch.top_k > 0), kept, probs)

    if features.min_p:
        threshold = batch.min_p[:, None, None] * probs.amax(dim=-1, keepdim=True)
        kept = _renormalise(probs.masked_fill(probs < threshold, 0.0))
        probs = torch.where(_rows(batch.min_p > 0), kept, probs)
    return probs


def sample(
    logits: torch.Tensor,
    batch: SamplingBatch,
    noise: torch.Tensor,
    recent: torch.Tensor | None = None,
    recent_valid: torch.Tensor | None = None,
    features: SamplerFeatures = ALL_FEATURES,
) -> torch.Tensor:
    """Tokens [n, 9] from logits [n, 9, V] and each row's uniforms `noise` [n, 9] (`uniform_noise` at
    the delayed position being sampled). No host synchronisation, static shapes: graph-capturable."""
    if recent is not None:
        logits = apply_repetition_penalty(logits, recent, recent_valid, batch.penalty)
    tokens = logits.argmax(dim=-1) if features.greedy else None
    if features.sampled:
        probs = probabilities(logits, batch, features)
        # Inverse-CDF draw: one uniform per (row, codebook), the first token whose cumulative
        # mass reaches it. Exact, and it hashes 9 numbers per row instead of 9 x 1026.
        cdf = probs.cumsum(dim=-1)
        target = noise * cdf[..., -1]
        drawn = torch.searchsorted(cdf, target.unsqueeze(-1)).squeeze(-1).clamp(max=logits.shape[-1] - 1)
        tokens = drawn if tokens is None else torch.where((batch.temperature > 0)[:, None], drawn, tokens)
    return tokens
