"""Shared fixtures: the reference's golden data (copied from shared/fixtures/zonos-tiny) and engines."""

import shutil
from pathlib import Path

import huggingface_hub
import pytest

# The golden cases and their helpers live in benchmarks.golden (benchmarks.gpu_check runs them on a GPU);
# the tests import them from here.
from benchmarks.golden import CASES, DATA, case_request, load_golden, new_reference_codes, reference_delayed
from pipeline.engine import ZonosEngine

__all__ = ["CASES", "DATA", "case_request", "new_reference_codes", "reference_delayed", "warm_hub_cache"]


@pytest.fixture(scope="session")
def golden():
    return load_golden()


@pytest.fixture(scope="session")
def engine():
    """The fixture checkpoint (published layout, tiny) in fp32, as the reference ran it."""
    return ZonosEngine.from_pretrained(str(DATA), device="cpu", dtype="float32", max_rows=24, max_seq_len=512)


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
