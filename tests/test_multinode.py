"""Multi-node: cluster/local-cluster.sh starts two nodes; the Generator scales 1 -> 2 under load and back."""

import concurrent.futures
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import ray
import requests
import yaml
from ray import serve

from conftest import DATA

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "cluster" / "local-cluster.sh"


WORKER_PORTS = 41000  # the two nodes' worker ports: [41000, 43000), see local-cluster.sh


def _free_port() -> int:
    """A free port outside the nodes' worker-port range (Ray refuses a port used twice)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if not WORKER_PORTS <= port < WORKER_PORTS + 2000:
            return port


def _serve_config(http_port: int, voices_db: Path) -> dict:
    """serve_config.yaml with test sources and a Generator that autoscales quickly, one per 'accelerator'."""
    config = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    config["http_options"] = {"host": "127.0.0.1", "port": http_port}
    args = config["applications"][0]["args"]
    args["sources"] = {"model": str(DATA), "codec": "random-tiny", "speaker": "random-tiny"}
    args["engine"] = {"max_rows": 16, "max_seq_len": 1024}
    args["voices_db"] = str(voices_db)
    generator = args["generator"]
    generator["ray_actor_options"] = {"num_cpus": 0.5, "resources": {"accelerator": 1}}
    generator["autoscaling_config"] = {
        "min_replicas": 1,
        "max_replicas": 2,
        "target_ongoing_requests": 2,
        "upscale_delay_s": 1,
        "downscale_delay_s": 4,
        "metrics_interval_s": 0.5,
        "look_back_period_s": 2,
    }
    return config


def _generator_replicas() -> int:
    status = serve.status().applications["zonos-tts"].deployments["Generator"]
    return status.replica_states.get("RUNNING", 0)


def _wait(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


@pytest.fixture
def two_node_cluster(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # the script's loopback cluster runs without tokens
    ports = {name: _free_port() for name in ("PORT", "DASHBOARD_PORT", "CLIENT_PORT", "AGENT_PORT")}
    env = os.environ | {f"RAY_LOCAL_{name}": str(port) for name, port in ports.items()}
    state_dir = tempfile.mkdtemp(prefix="rl-", dir="/tmp")  # Ray's socket paths must stay under 108 bytes
    env |= {"RAY_LOCAL_DIR": state_dir, "RAY_LOCAL_WORKER_PORTS": str(WORKER_PORTS)}
    started = subprocess.run(
        ["bash", str(SCRIPT), "start", "2", "2"], env=env, timeout=180, capture_output=True, text=True
    )
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        ray.init(address=f"127.0.0.1:{ports['PORT']}", log_to_driver=False)
        yield f"http://127.0.0.1:{ports['DASHBOARD_PORT']}"
    finally:
        serve.shutdown()
        ray.shutdown()
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, timeout=180, capture_output=True)
        shutil.rmtree(state_dir, ignore_errors=True)


def test_generator_scales_out_across_nodes_and_back(two_node_cluster, tmp_path):
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    http_port = _free_port()
    config_path = tmp_path / "serve.yaml"
    config_path.write_text(yaml.safe_dump(_serve_config(http_port, tmp_path / "voices.sqlite3")))
    subprocess.run(["serve", "deploy", "-a", two_node_cluster, str(config_path)], check=True, timeout=120)
    _wait(lambda: serve.status().applications.get("zonos-tts") and
          serve.status().applications["zonos-tts"].status == "RUNNING", 240, "the app to run")  # fmt: skip
    assert _generator_replicas() == 1

    url = f"http://127.0.0.1:{http_port}/v1/audio/speech"
    body = {"model": "tts-1", "voice": "alloy", "response_format": "pcm"}
    text = "The load test speaks this sentence. And then a second one, for good measure."
    statuses: list[int] = []
    stop = time.monotonic() + 240

    def client() -> None:
        while time.monotonic() < stop and not scaled.is_set():
            statuses.append(requests.post(url, json=body | {"input": text}, timeout=120).status_code)

    scaled = threading.Event()  # set once the second replica runs: the clients stop
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(client) for _ in range(8)]
        _wait(lambda: _generator_replicas() == 2, 240, "a second Generator replica")
        scaled.set()
        for future in futures:
            future.result()
    _wait(lambda: _generator_replicas() == 1, 120, "the Generator to scale back to one replica")
    assert statuses and set(statuses) == {200}
    assert requests.post(url, json=body | {"input": "Still serving."}, timeout=120).status_code == 200
