"""Where a Zonos LM comes from and in which dtype: checkpoint sources, random models, dtype policy.

A source is one of
- a local directory holding `config.json` and `model.safetensors` in the published layout,
- a Hugging Face repo id (`Zyphra/Zonos-v0.1-transformer`; honours HF_HOME and HF_HUB_OFFLINE, and
  reads only the local cache, at once, when a short probe finds the hub unreachable: `pipeline.hub`),
- `random-tiny` or `zonos-1.6b-random`: seeded random weights at the shapes in `RANDOM_SHAPES`.
  They run offline and output noise, never speech.

`pipeline.model` holds the architecture only; this module turns a source into a `ZonosModel`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from pipeline.hub import resolve_files
from pipeline.model import FourierConditioner, UnsupportedCheckpointError, ZonosConfig, ZonosModel

logger = logging.getLogger(__name__)

RANDOM_TINY = "random-tiny"
RANDOM_1B6 = "zonos-1.6b-random"
PUBLISHED_REPO = "Zyphra/Zonos-v0.1-transformer"
RANDOM_SEED = 1234
CHECKPOINT_FILES = ["config.json", "model.safetensors"]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(
    dtype: str | torch.dtype, device: str | torch.device = "cpu", cuda_default: torch.dtype = torch.bfloat16
) -> torch.dtype:
    """A dtype name (a key of `DTYPES`), a torch.dtype, or "auto": `cuda_default` on CUDA (the fast
    path), float32 elsewhere. Raises ValueError for any other name."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return cuda_default if torch.device(device).type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of auto, {', '.join(DTYPES)}")
    return DTYPES[dtype]


# --------------------------------------------------------------------------- the published layout


@dataclass(frozen=True)
class BackboneShape:
    """The sizes that tell Zonos transformer checkpoints apart; everything else is the published layout."""

    d_model: int
    n_layer: int
    n_head: int
    n_kv_head: int
    d_ff: int


# One row per random source (gpt-fast's `transformer_configs`).
RANDOM_SHAPES = {
    RANDOM_TINY: BackboneShape(d_model=256, n_layer=4, n_head=4, n_kv_head=2, d_ff=512),
    RANDOM_1B6: BackboneShape(d_model=2048, n_layer=26, n_head=16, n_kv_head=4, d_ff=8192),  # PUBLISHED_REPO's
}

_FOURIER = {"type": "FourierConditioner", "uncond_type": "learned"}
PUBLISHED_CONDITIONERS: tuple[dict[str, Any], ...] = (
    {"type": "EspeakPhonemeConditioner", "name": "espeak"},
    {"type": "PassthroughConditioner", "name": "speaker", "cond_dim": 128, "uncond_type": "learned",
     "projection": "linear"},
    {"type": "FourierConditioner", "name": "emotion", "input_dim": 8, "uncond_type": "learned"},
    {**_FOURIER, "name": "fmax", "min_val": 0, "max_val": 24000},
    {**_FOURIER, "name": "pitch_std", "min_val": 0, "max_val": 400},
    {**_FOURIER, "name": "speaking_rate", "min_val": 0, "max_val": 40},
    {"type": "IntegerConditioner", "name": "language_id", "min_val": -1, "max_val": 126, "uncond_type": "learned"},
)  # fmt: skip


def config_json(shape: BackboneShape) -> dict[str, Any]:
    """The `config.json` of a transformer checkpoint in the published layout at these sizes."""
    backbone = {
        "d_model": shape.d_model,
        "d_intermediate": 0,
        "attn_mlp_d_intermediate": shape.d_ff,
        "n_layer": shape.n_layer,
        "ssm_cfg": {},
        "attn_layer_idx": list(range(shape.n_layer)),
        "attn_cfg": {
            "causal": True,
            "num_heads": shape.n_head,
            "num_heads_kv": shape.n_kv_head,
            "rotary_emb_dim": shape.d_model // shape.n_head,
            "rotary_emb_interleaved": True,
            "qkv_proj_bias": False,
            "out_proj_bias": False,
        },
        "rms_norm": False,
        "residual_in_fp32": False,
        "norm_epsilon": 1e-05,
    }
    conditioners = [dict(spec) for spec in PUBLISHED_CONDITIONERS]
    return {
        "backbone": backbone,
        "prefix_conditioner": {"conditioners": conditioners, "projection": "linear"},
        "eos_token_id": 1024,
        "masked_token_id": 1025,
    }


# --------------------------------------------------------------------------- models


def random_model(config: ZonosConfig, seed: int = RANDOM_SEED) -> ZonosModel:
    """Randomly initialised fp32 weights from a fixed seed: runs offline, outputs noise (never speech)."""
    generator = torch.Generator().manual_seed(seed)
    model = ZonosModel(config)
    for name, tensor in model.state_dict().items():
        owner = model.get_submodule(name.rsplit(".", 1)[0])
        if isinstance(owner, nn.LayerNorm):
            tensor.fill_(1.0 if name.endswith("weight") else 0.0)
        elif isinstance(owner, FourierConditioner) and name.endswith(".weight"):
            tensor.normal_(0.0, 1.0, generator=generator)  # frequencies, as the reference initialises them
        else:
            tensor.normal_(0.0, 0.02, generator=generator)
    return model


def _load_checkpoint(source: str, device: str | torch.device) -> ZonosModel:
    files = resolve_files(source, CHECKPOINT_FILES)
    config = ZonosConfig.from_dict(json.loads(files["config.json"].read_text()))
    with torch.device("meta"):
        model = ZonosModel(config)
    state = load_file(str(files["model.safetensors"]), device=str(device))
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise UnsupportedCheckpointError(
            f"{source}: model.safetensors does not match config.json: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    model.load_state_dict(state, assign=True)
    return model


def from_pretrained(source: str, device: str | torch.device = "cpu", dtype: str | torch.dtype = "auto") -> ZonosModel:
    """A ready-to-serve `ZonosModel` (eval, no grad) from any source named in the module docstring.

    dtype: see `resolve_dtype`; the prefix conditioner stays float32 (tiny, run once per request).
    Raises `pipeline.hub.WeightsUnavailableError` when the files cannot be had,
    `UnsupportedCheckpointError` for a hybrid or mismatched checkpoint, ValueError for a bad dtype."""
    dtype = resolve_dtype(dtype, device)
    if source in RANDOM_SHAPES:
        logger.warning(
            "model %r has RANDOM weights: it outputs noise, not speech. Pass %s or a local "
            "checkpoint directory for real speech.",
            source,
            PUBLISHED_REPO,
        )
        model = random_model(ZonosConfig.from_dict(config_json(RANDOM_SHAPES[source])))
    else:
        model = _load_checkpoint(source, device)
    model = model.to(device=device, dtype=dtype)
    model.prefix_conditioner.float()
    return model.eval().requires_grad_(False)
