"""The Zonos v0.1 transformer language model, in the published checkpoint layout.

One file in the spirit of gpt-fast: a config dataclass, plain modules whose parameter names
match `Zyphra/Zonos-v0.1-transformer`'s safetensors exactly, a static KV cache, and two plain
functions, `prefill` and `decode_step`, that the engine drives. Loading (sources, dtypes, random
weights) lives in `pipeline.loading`.

Rows of the KV cache are the batch: rows [0, R) are the rows that decode, and newly admitted
rows are prefilled into the rows right after them. Every row has its own length, so rows of
different prefix lengths share one batch without ever attending to padding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

N_CODEBOOKS = 9
CODEBOOK_SIZE = 1024
EOS_TOKEN = 1024
MASK_TOKEN = 1025
VOCAB_SIZE = 1026  # codes, EOS, MASK: what the embeddings take
HEAD_SIZE = 1025  # the heads never predict MASK
FRAME_RATE = 44100 / 512
MAX_FRAMES = 86 * 30  # the reference's cap: 30 s of audio per call


class UnsupportedCheckpointError(ValueError):
    """A checkpoint this project cannot run (yet)."""


@dataclass(frozen=True)
class ZonosConfig:
    d_model: int
    n_layer: int
    n_head: int
    n_kv_head: int
    d_ff: int
    norm_eps: float
    conditioners: tuple[dict[str, Any], ...]
    raw: dict[str, Any]  # config.json as read, so a saved checkpoint round-trips

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ZonosConfig:
        backbone = raw["backbone"]
        n_layer = backbone["n_layer"]
        if backbone.get("ssm_cfg") or sorted(backbone.get("attn_layer_idx", [])) != list(range(n_layer)):
            raise UnsupportedCheckpointError(
                "hybrid (Mamba2) Zonos checkpoints are not supported yet: only the transformer "
                "variant (Zyphra/Zonos-v0.1-transformer) runs in zonos-serve"
            )
        attn = backbone["attn_cfg"]
        return cls(
            d_model=backbone["d_model"],
            n_layer=n_layer,
            n_head=attn["num_heads"],
            n_kv_head=attn["num_heads_kv"],
            d_ff=backbone["attn_mlp_d_intermediate"],
            norm_eps=backbone["norm_epsilon"],
            conditioners=tuple(raw["prefix_conditioner"]["conditioners"]),
            raw=raw,
        )


# --------------------------------------------------------------------------- prefix conditioning


class PhonemeConditioner(nn.Module):
    """espeak phoneme ids -> one token each."""

    def __init__(self, d_model: int, vocab_size: int = 189):
        super().__init__()
        self.phoneme_embedder = nn.Embedding(vocab_size, d_model)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.phoneme_embedder(ids)


class SpeakerConditioner(nn.Module):
    """A 128-float speaker embedding -> one token (or the learned unconditional token)."""

    def __init__(self, d_model: int, cond_dim: int):
        super().__init__()
        self.uncond_vector = nn.Parameter(torch.zeros(d_model))
        self.project = nn.Linear(cond_dim, d_model)

    def forward(self, x: torch.Tensor | None) -> torch.Tensor:
        return self.uncond_vector[None] if x is None else self.project(x.view(1, -1))


class FourierConditioner(nn.Module):
    """A value in [min, max] -> [cos f, sin f] with f = 2 pi u W^T (W stored in the checkpoint)."""

    def __init__(self, d_model: int, input_dim: int, min_val: float, max_val: float):
        super().__init__()
        self.uncond_vector = nn.Parameter(torch.zeros(d_model))
        self.register_buffer("weight", torch.zeros(d_model // 2, input_dim))
        self.min_val, self.max_val = float(min_val), float(max_val)

    def forward(self, x: torch.Tensor | None) -> torch.Tensor:
        if x is None:
            return self.uncond_vector[None]
        u = (x.view(1, -1).to(self.weight.dtype) - self.min_val) / (self.max_val - self.min_val)
        f = 2 * math.pi * u @ self.weight.T
        return torch.cat([f.cos(), f.sin()], dim=-1)


class IntegerConditioner(nn.Module):
    """An integer in [min, max] -> an embedding row (row = value - min)."""

    def __init__(self, d_model: int, min_val: int, max_val: int):
        super().__init__()
        self.uncond_vector = nn.Parameter(torch.zeros(d_model))
        self.int_embedder = nn.Embedding(max_val - min_val + 1, d_model)
        self.min_val = min_val

    def forward(self, x: torch.Tensor | None) -> torch.Tensor:
        return self.uncond_vector[None] if x is None else self.int_embedder(x.view(1) - self.min_val)


def _build_conditioner(spec: dict[str, Any], d_model: int) -> nn.Module:
    kind = spec["type"]
    if kind == "EspeakPhonemeConditioner":
        return PhonemeConditioner(d_model)
    if kind == "PassthroughConditioner":
        return SpeakerConditioner(d_model, spec["cond_dim"])
    if kind == "FourierConditioner":
        return FourierConditioner(d_model, spec.get("input_dim", 1), spec.get("min_val", 0), spec.get("max_val", 1))
    if kind == "IntegerConditioner":
        return IntegerConditioner(d_model, spec["min_val"], spec["max_val"])
    raise UnsupportedCheckpointError(f"unknown conditioner type {kind!r} in config.json")


class PrefixConditioner(nn.Module):
    """Conditioners in config order, concatenated along the sequence, then project + LayerNorm."""

    def __init__(self, config: ZonosConfig):
        super().__init__()
        self.names = [spec["name"] for spec in config.conditioners]
        self.conditioners = nn.ModuleList(_build_conditioner(spec, config.d_model) for spec in config.conditioners)
        self.project = nn.Linear(config.d_model, config.d_model)
        self.norm = nn.LayerNorm(config.d_model, eps=config.norm_eps)

    def forward(self, phoneme_ids: torch.Tensor, values: dict[str, torch.Tensor | None]) -> torch.Tensor:
        """phoneme_ids [L] + one value (or None = unconditional) per other conditioner -> [L + 6, d]."""
        tokens = [self.conditioners[0](phoneme_ids)]
        tokens += [cond(values.get(name)) for name, cond in zip(self.names[1:], self.conditioners[1:], strict=True)]
        return self.norm(self.project(torch.cat(tokens, dim=0)))


# --------------------------------------------------------------------------- backbone


class KVCache:
    """Static K/V for every layer and row: [n_layer, rows, kv_heads, max_seq_len, head_dim], and the
    rotary table of every position."""

    def __init__(self, config: ZonosConfig, max_rows: int, max_seq_len: int, dtype: torch.dtype, device):
        shape = (config.n_layer, max_rows, config.n_kv_head, max_seq_len, config.head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.max_rows, self.max_seq_len = max_rows, max_seq_len
        self.rope = rotary_table(config.head_dim, max_seq_len, device)
        self.k_layers, self.v_layers = self.k.unbind(0), self.v.unbind(0)  # per-layer views, made once
        self.pair_swap = torch.arange(config.head_dim, device=device).view(-1, 2).flip(-1).flatten()  # 1,0,3,2,...

    def move_row(self, src: int, dst: int, length: int) -> None:
        """Copy a row's first `length` positions of K/V to another row (keeps the live rows contiguous)."""
        self.k[:, dst, :, :length] = self.k[:, src, :, :length]
        self.v[:, dst, :, :length] = self.v[:, src, :, :length]


def rotary_table(head_dim: int, max_seq_len: int, device) -> torch.Tensor:
    """fp32 [max_seq_len, 2, head_dim]: per position, cos and signed sin laid out for interleaved pairs.

    Pair (x0, x1) at angle a rotates to (x0 cos a - x1 sin a, x1 cos a + x0 sin a) (the reference's
    interleaved rotary embedding, base 10000): entry 0 holds (cos a, cos a), entry 1 (-sin a, sin a)."""
    half = head_dim // 2
    inv_freq = 10000.0 ** (-torch.arange(half, dtype=torch.float64, device=device) * 2 / head_dim)
    angles = torch.arange(max_seq_len, dtype=torch.float64, device=device)[:, None] * inv_freq
    cos, sin = angles.cos().float(), angles.sin().float()
    return torch.stack([torch.stack([cos, cos], -1), torch.stack([-sin, sin], -1)], 1).flatten(-2)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, pair_swap: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs of x [R, T, H, hd] by per-position `cos`, `sin` [R, T, 1, hd] (the two
    halves of `rotary_table` rows); `pair_swap` is the index 1, 0, 3, 2, ... (`KVCache.pair_swap`).

    x * cos + swap(x) * signed_sin, where swap exchanges each pair: the same products and sums as
    (x0 cos - x1 sin, x1 cos + x0 sin), in four ops for q and k together; in fp32."""
    xf = x if x.dtype == torch.float32 else x.float()
    rotated = xf * cos + xf[..., pair_swap] * sin
    return rotated if x.dtype == torch.float32 else rotated.type_as(x)


def attention_mask(allowed: torch.Tensor, groups: int) -> torch.Tensor:
    """[R, T, S] bool (query t may attend to cache position s) -> [R, 1, T * groups, S], the layout of
    `Attention`'s grouped queries; built once per forward, shared by every layer."""
    return allowed[:, None, :, None].expand(-1, -1, -1, groups, -1).flatten(2, 3)


@dataclass
class Positions:
    """Where a forward's tokens sit, computed once and shared by every layer."""

    rows: slice  # the cache rows written
    positions: torch.Tensor  # [R, T] cache positions
    row_index: torch.Tensor  # [R, 1]: 0..R-1, to index rows with positions
    cos: torch.Tensor  # [R, T, 1, hd] fp32 rotary halves (`rotary_table`)
    sin: torch.Tensor
    mask: torch.Tensor  # `attention_mask`: bool [R, 1, T * groups, S], or on CPU additive [R * kv_heads, T * groups, S]

    @classmethod
    def of(cls, cache: KVCache, rows: slice, positions: torch.Tensor, allowed: torch.Tensor, attention: Attention):
        rope = cache.rope[positions][:, :, None]
        row_index = torch.arange(positions.shape[0], device=positions.device)[:, None]
        mask = attention_mask(allowed, attention.n_head // attention.n_kv_head)
        if mask.device.type == "cpu":
            additive = torch.where(mask, 0.0, -math.inf).to(cache.k.dtype)
            mask = additive.expand(-1, attention.n_kv_head, -1, -1).flatten(0, 1)
        return cls(rows, positions, row_index, rope[..., 0, :], rope[..., 1, :], mask)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Attention of q [R, H_kv, Q, hd] over k, v [R, H_kv, S, hd] -> [R, H_kv, Q, hd], scale 1/sqrt(hd).

    On CUDA the fused kernel (bool mask). On CPU two batched matrix products around a softmax with
    an additive mask: ~20% faster than the CPU flash kernel at decode shapes (64 rows over 500
    positions: 0.91 vs 1.15 ms a layer on the project's 2 cores), where attention is bound by
    reading K/V."""
    if mask.dtype == torch.bool:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    n_rows, kv_heads, queries, head_dim = q.shape
    scores = torch.baddbmm(mask, q.flatten(0, 1), k.flatten(0, 1).transpose(1, 2), alpha=head_dim**-0.5)
    return torch.bmm(scores.softmax(-1), v.flatten(0, 1)).view(n_rows, kv_heads, queries, head_dim)


class Attention(nn.Module):
    def __init__(self, config: ZonosConfig):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.n_kv_head, config.head_dim
        qkv_dim = (config.n_head + 2 * config.n_kv_head) * config.head_dim
        self.in_proj = nn.Linear(config.d_model, qkv_dim, bias=False)
        self.out_proj = nn.Linear(config.d_model, config.d_model, bias=False)

    def forward(self, x, layer: int, cache: KVCache, at: Positions) -> torch.Tensor:
        """x [R, T, d] at `at` (positions, rotary rows, mask: built once per forward, see `Positions`);
        K/V written to the cache rows `at.rows`."""
        n_rows, seq, _ = x.shape
        positions, row_index, mask = at.positions, at.row_index, at.mask
        qkv = self.in_proj(x).view(n_rows, seq, self.n_head + 2 * self.n_kv_head, self.head_dim)
        qk = apply_rope(qkv[:, :, : self.n_head + self.n_kv_head], at.cos, at.sin, cache.pair_swap)
        q, k, v = qk[:, :, : self.n_head], qk[:, :, self.n_head :], qkv[:, :, self.n_head + self.n_kv_head :]
        k_rows, v_rows = cache.k_layers[layer][at.rows], cache.v_layers[layer][at.rows]
        k_rows[row_index, :, positions] = k
        v_rows[row_index, :, positions] = v
        span, groups = mask.shape[-1], self.n_head // self.n_kv_head
        # Query heads that share a K/V head are folded into the query length: one plain attention
        # per K/V head, no K/V repeated (faster than enable_gqa for decode on CPU).
        q = q.reshape(n_rows, seq, self.n_kv_head, groups, self.head_dim).transpose(1, 2).flatten(2, 3)
        out = attend(q, k_rows[:, :, :span], v_rows[:, :, :span], mask)
        out = out.unflatten(2, (seq, groups)).transpose(1, 2)
        return self.out_proj(out.reshape(n_rows, seq, -1))


class MLP(nn.Module):
    def __init__(self, config: ZonosConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.d_model, 2 * config.d_ff, bias=False)
        self.fc2 = nn.Linear(config.d_ff, config.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.fc1(x).chunk(2, dim=-1)
        return self.fc2(value * F.silu(gate))


class Block(nn.Module):
    def __init__(self, config: ZonosConfig):
        super().__init__()
        self.norm = nn.LayerNorm(config.d_model, eps=config.norm_eps)
        self.mixer = Attention(config)
        self.norm2 = nn.LayerNorm(config.d_model, eps=config.norm_eps)
        self.mlp = MLP(config)

    def forward(self, x, layer, cache, at):
        x = x + self.mixer(self.norm(x), layer, cache, at)
        return x + self.mlp(self.norm2(x))


class Backbone(nn.Module):
    def __init__(self, config: ZonosConfig):
        super().__init__()
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm_f = nn.LayerNorm(config.d_model, eps=config.norm_eps)

    def forward(self, x, cache, rows, positions, allowed):
        """x [R, T, d] at `positions` [R, T] into cache `rows`; `allowed` [R, T, S] as in `attention_mask`."""
        at = Positions.of(cache, rows, positions, allowed, self.layers[0].mixer)
        for index, block in enumerate(self.layers):
            x = block(x, index, cache, at)
        return self.norm_f(x)


class ZonosModel(nn.Module):
    def __init__(self, config: ZonosConfig):
        super().__init__()
        self.config = config
        self.prefix_conditioner = PrefixConditioner(config)
        self.backbone = Backbone(config)
        self.embeddings = nn.ModuleList(nn.Embedding(VOCAB_SIZE, config.d_model) for _ in range(N_CODEBOOKS))
        self.heads = nn.ModuleList(nn.Linear(config.d_model, HEAD_SIZE, bias=False) for _ in range(N_CODEBOOKS))

    @property
    def dtype(self) -> torch.dtype:
        return self.embeddings[0].weight.dtype

    @property
    def device(self) -> torch.device:
        return self.embeddings[0].weight.device

    def make_cache(self, max_rows: int, max_seq_len: int) -> KVCache:
        return KVCache(self.config, max_rows, max_seq_len, self.dtype, self.device)


class CodebookTables:
    """The 9 codebook embeddings and the 9 heads, each stacked into one tensor, so a step embeds a
    frame and scores all codebooks with one op each instead of nine (a copy of those weights: 2 x 9 x
    1026 x d elements, 76 MB for the published model in bf16; `pipeline.engine.capacity` counts it)."""

    def __init__(self, model: ZonosModel, row_tile: int = 1):
        """`row_tile` > 1: `logits` runs the heads on a multiple of it rows (batch invariance)."""
        self.row_tile = row_tile
        with torch.no_grad():
            self.embedding = torch.cat([emb.weight for emb in model.embeddings])  # [9 * 1026, d]
            self.heads = torch.stack([head.weight for head in model.heads]).transpose(1, 2).contiguous()  # [9, d, 1025]
        self.offsets = torch.arange(N_CODEBOOKS, device=model.device) * VOCAB_SIZE
        self.dtype = model.dtype

    def embed(self, frames: torch.Tensor) -> torch.Tensor:
        """Delayed frames [..., 9] -> the sum of their 9 codebook embeddings [..., d]."""
        return F.embedding(frames + self.offsets, self.embedding).sum(-2)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Final hidden states [R, d] (any float dtype) -> fp32 logits [R, 9, 1026], MASK (1025) at -inf."""
        n_rows = len(hidden)
        pad = -n_rows % self.row_tile
        if pad:
            hidden = F.pad(hidden, (0, 0, 0, pad))
        logits = torch.matmul(hidden.to(self.dtype), self.heads).transpose(0, 1)[:n_rows].float()
        return F.pad(logits, (0, VOCAB_SIZE - HEAD_SIZE), value=float("-inf"))


@torch.inference_mode()
def prefill(model: ZonosModel, cache: KVCache, inputs: torch.Tensor, lengths: torch.Tensor, first_row: int):
    """Run right-padded sequences [R, T, d] of true `lengths` into cache rows from `first_row`.

    Returns each row's last hidden state [R, d]; `CodebookTables.logits` turns it into logits."""
    n_rows, seq, _ = inputs.shape
    device = inputs.device
    positions = torch.arange(seq, device=device).expand(n_rows, seq)
    causal = torch.ones(seq, seq, dtype=torch.bool, device=device).tril()
    mask = causal[None] & (positions[:, None, :] < lengths[:, None, None])
    hidden = model.backbone(inputs, cache, slice(first_row, first_row + n_rows), positions, mask)
    return hidden[torch.arange(n_rows, device=device), lengths - 1]


def decode_step(model: ZonosModel, cache: KVCache, x: torch.Tensor, positions: torch.Tensor, span: int):
    """One embedded delayed frame x [R, d] (`CodebookTables.embed`) per cache row 0..R-1 at `positions`
    [R]; attends over the first `span` cache positions. Static shapes for given (R, span); no host sync.

    Returns the final hidden states [R, d]: the heads are linear, so the engine applies guidance
    to hidden states and runs the 9 heads once per request instead of once per row."""
    n_rows = x.shape[0]
    allowed = torch.arange(span, device=x.device) <= positions[:, None]
    hidden = model.backbone(x[:, None], cache, slice(0, n_rows), positions[:, None], allowed[:, None])
    return hidden[:, 0]
