"""What every benchmark takes: the model, the device, the dtype and the folder its results go to."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from pipeline.loading import DTYPES, RANDOM_TINY

DTYPE_CHOICES = ["auto", *DTYPES]


def dtype_name(dtype: torch.dtype) -> str:
    """torch.bfloat16 -> "bfloat16", as results.json records it."""
    return str(dtype).removeprefix("torch.")


def benchmark_parser(name: str, doc: str) -> argparse.ArgumentParser:
    """`python -m benchmarks.<name>`'s parser with the shared arguments; results go to out/<name>."""
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}", description=doc.split("\n")[0])
    parser.add_argument("--model", default=RANDOM_TINY, help="random-tiny, zonos-1.6b-random, a repo id or directory")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES, help="the LM's; auto: bfloat16 on CUDA")
    parser.add_argument("--out", type=Path, default=Path("out") / name)
    return parser
