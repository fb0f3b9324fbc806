"""Shared fixtures: the reference's golden data (copied from shared/fixtures/zonos-tiny) and engines."""

import os
import shutil
import socket
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """Ray and the zonos-tts app, once per test session (test_serve.py, test_web.py): the fixture LM
    (it emits EOS) + tiny codec/speaker; its base URL."""
    import ray  # here: a test session without this fixture does not pay for Ray's import
    from ray import serve

    from deployments.app import APP_NAME, build_app
    from deployments.request_ids import PROXY_CALLBACK

    port = _free_port()
    os.environ["RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"] = PROXY_CALLBACK  # the proxy validates X-Request-ID
    ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    args = {
        "sources": {"model": str(DATA), "codec": "random-tiny", "speaker": "random-tiny"},
        "engine": {"max_rows": 32, "max_seq_len": 1024},
        "voices_db": str(tmp_path_factory.mktemp("voices") / "voices.sqlite3"),
        "max_text_chars": 2000,
    }
    serve.run(build_app(args), name=APP_NAME, route_prefix="/")
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()
    ray.shutdown()
