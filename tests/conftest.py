"""Shared fixtures: the reference's golden data (copied from shared/fixtures/zonos-tiny) and engines."""

import json
import shutil
from pathlib import Path

import huggingface_hub
import pytest
import torch
from safetensors.torch import load_file

from pipeline.engine import GenerationRequest, SamplingParams, ZonosEngine

DATA = Path(__file__).parent / "data"
CASES = json.loads((DATA / "generation.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def golden():
    return load_file(str(DATA / "generation.safetensors"))


@pytest.fixture(scope="session")
def engine():
    """The fixture checkpoint (published layout, tiny) in fp32, as the reference ran it."""
    return ZonosEngine.from_pretrained(str(DATA), device="cpu", dtype="float32", max_rows=24, max_seq_len=512)


def case_request(case: dict, **overrides) -> GenerationRequest:
    """The GenerationRequest that reproduces one case of generation.json."""
    fields = {key: case[key] for key in ("text", "language", "cfg_scale", "max_new_tokens") if key in case}
    fields |= {key: case[key] for key in ("speaker", "emotion", "fmax", "pitch_std", "speaking_rate") if key in case}
    fields["audio_prefix_codes"] = case.get("audio_prefix")
    fields["sampling"] = SamplingParams(**case["sampling"])
    return GenerationRequest(**(fields | overrides))


def new_reference_codes(golden, index: int):
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


@pytest.fixture
def offline_hub(monkeypatch, tmp_path):
    """HF_HUB_OFFLINE=1 with an empty HF_HOME cache (huggingface_hub reads both at import time)."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


def warm_hub_cache(hub: Path, repo: str, files: Path) -> None:
    """Lay `files` out in the hub cache as huggingface_hub leaves a downloaded repo."""
    repo_dir = hub / f"models--{repo.replace('/', '--')}"
    shutil.copytree(files, repo_dir / "snapshots" / "0123abcd")
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text("0123abcd")
