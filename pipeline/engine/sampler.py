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


@dataclass
class SamplingBatch:
    """Sampling settings of n rows as [n] tensors, plus host-side flags to skip unused steps."""

    temperature: torch.Tensor
    top_p: torch.Tensor
    top_k: torch.Tensor
    min_p: torch.Tensor
    linear: torch.Tensor
    conf: torch.Tensor
    quad: torch.Tensor
    penalty: torch.Tensor
    window: torch.Tensor
    seed_key: torch.Tensor  # int64 in [0, 2^32): the hashed seed
    max_window: int
    max_top_k: int
    any_sampled: bool
    any_greedy: bool
    any_unified: bool
    any_top_p: bool
    any_min_p: bool

    @classmethod
    def from_params(cls, params: list[SamplingParams], seeds: list[int], device) -> SamplingBatch:
        def column(name: str, dtype=torch.float32) -> torch.Tensor:
            return torch.tensor([getattr(p, name) for p in params], dtype=dtype, device=device)

        seed_lo = torch.tensor([s & _MASK32 for s in seeds], dtype=torch.int64, device=device)
        seed_hi = torch.tensor([(s >> 32) & _MASK32 for s in seeds], dtype=torch.int64, device=device)
        return cls(
            temperature=column("temperature"),
            top_p=column("top_p"),
            top_k=column("top_k", torch.int64),
            min_p=column("min_p"),
            linear=column("linear"),
            conf=column("conf"),
            quad=column("quad"),
            penalty=column("repetition_penalty"),
            window=column("repetition_penalty_window", torch.int64),
            seed_key=_mix32(_mix32(seed_lo) ^ seed_hi),
            max_window=max(p.repetition_penalty_window for p in params),
            max_top_k=max(p.top_k for p in params),
            any_sampled=any(p.temperature > 0 for p in params),
            any_greedy=any(p.temperature == 0 for p in params),
            any_unified=any(p.linear > 0 for p in params),
            any_top_p=any(p.top_p > 0 for p in params),
            any_min_p=any(p.min_p > 0 for p in params),
        )


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


def probabilities(logits: torch.Tensor, batch: SamplingBatch) -> torch.Tensor:
    """The distribution just before the draw, for (already penalised) logits [n, 9, V]."""
    temperature = torch.where(batch.temperature > 0, batch.temperature, torch.ones_like(batch.temperature))
    probs = torch.softmax(logits / temperature[:, None, None], dim=-1)

    if batch.any_unified:
        log_p = probs.clamp_min(1e-20).log()
        entropy = -(probs * log_p).sum(dim=-1, keepdim=True)
        linear, conf, quad = (t[:, None, None] for t in (batch.linear, batch.conf, batch.quad))
        unified = torch.softmax(log_p * (linear + entropy * conf) - log_p.square() * quad, dim=-1)
        probs = torch.where(_rows(batch.linear > 0), unified, probs)

    if batch.any_top_p:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        drop = (sorted_p.cumsum(dim=-1) - sorted_p) > batch.top_p[:, None, None]
        kept = _renormalise(torch.zeros_like(probs).scatter(-1, order, sorted_p.masked_fill(drop, 0.0)))
        probs = torch.where(_rows(batch.top_p > 0), kept, probs)

    if batch.max_top_k > 0:
        top = probs.topk(min(batch.max_top_k, probs.shape[-1]), dim=-1).values
        kth = top.gather(-1, (batch.top_k - 1).clamp(min=0)[:, None, None].expand(-1, probs.shape[1], 1))
        kept = _renormalise(probs.masked_fill(probs < kth, 0.0))
        probs = torch.where(_rows(batch.top_k > 0), kept, probs)

    if batch.any_min_p:
        threshold = batch.min_p[:, None, None] * probs.amax(dim=-1, keepdim=True)
        kept = _renormalise(probs.masked_fill(probs < threshold, 0.0))
        probs = torch.where(_rows(batch.min_p > 0), kept, probs)
    return probs


def sample(
    logits: torch.Tensor,
    batch: SamplingBatch,
    counter: torch.Tensor,
    recent: torch.Tensor | None = None,
    recent_valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Tokens [n, 9] from logits [n, 9, V]; `counter` [n] (the delayed position) keys the noise."""
    if recent is not None:
        logits = apply_repetition_penalty(logits, recent, recent_valid, batch.penalty)
    tokens = logits.argmax(dim=-1) if batch.any_greedy else None
    if batch.any_sampled:
        probs = probabilities(logits, batch)
        # Inverse-CDF draw: one uniform per (row, codebook), the first token whose cumulative
        # mass reaches it. Exact, and it hashes 9 numbers per row instead of 9 x 1026.
        cdf = probs.cumsum(dim=-1)
        target = uniform_noise(batch.seed_key, counter, logits.shape[1]) * cdf[..., -1]
        drawn = torch.searchsorted(cdf, target.unsqueeze(-1)).squeeze(-1).clamp(max=logits.shape[-1] - 1)
        tokens = drawn if tokens is None else torch.where((batch.temperature > 0)[:, None], drawn, tokens)
    return tokens
