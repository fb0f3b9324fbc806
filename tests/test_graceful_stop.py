"""Issue 12: SIGTERM while streaming, on a real Serve app started by `python -m deployments.run`.

The launcher runs in its own process (its own local Ray, as a user's `python -m deployments.run
serve_config.yaml` does). A seeded pcm stream is half sent when the launcher gets SIGTERM: from
then on new requests get 503 with Retry-After and /readyz 503, while the stream goes on to the
exact bytes of an undisturbed run with a normal end; then the launcher shuts Serve down and exits 0.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests
import yaml

from conftest import DATA
from deployments.app import APP_NAME

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = " ".join(f"Sentence number {n} is here and it keeps going for a while longer." for n in range(1, 25))
BODY = {"text": TEXT, "response_format": "pcm", "seed": 11}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(base: str, process: subprocess.Popen, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "the launcher exited before the app was ready"
        try:
            if requests.get(f"{base}/readyz", timeout=5).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):  # the proxy or the app not up yet
            pass
        time.sleep(0.5)
    raise AssertionError("the app did not become ready")


@pytest.fixture
def launched(tmp_path):
    """`python -m deployments.run CONFIG --address local` in its own process group; yields (base url, process)."""
    port = _free_port()
    config = {
        "proxy_location": "HeadOnly",
        "http_options": {"host": "127.0.0.1", "port": port},
        "applications": [
            {
                "name": APP_NAME,
                "route_prefix": "/",
                "import_path": "deployments.app:build_app",
                "args": {
                    "sources": {"model": str(DATA), "codec": "random-tiny", "speaker": "random-tiny"},
                    "engine": {"max_rows": 32, "max_seq_len": 1024},
                    "voices_db": str(tmp_path / "voices.sqlite3"),
                    "graceful_shutdown_timeout_s": 120,
                    **{  # logical CPU shares that fit a 2-core machine, as in serve_config.yaml
                        name: {"ray_actor_options": {"num_cpus": 0.1}}
                        for name in ("ingress", "splitter", "generator", "vocoder", "voices")
                    },
                },
            }
        ],
    }
    path = tmp_path / "serve_config.yaml"
    path.write_text(yaml.safe_dump(config))
    log = open(tmp_path / "launcher.log", "w")  # noqa: SIM115 - closed below
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    process = subprocess.Popen(
        [sys.executable, "-m", "deployments.run", str(path), "--address", "local"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base, process)
        yield base, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.send_signal(signal.SIGINT)  # the second one: stop without waiting
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def test_sigterm_while_streaming_finishes_the_stream_refuses_new_work_and_exits(launched):
    base, process = launched
    calm = requests.post(f"{base}/v1/tts", json=BODY, timeout=300)
    assert calm.status_code == 200 and len(calm.content) > 44100 * 2
    first_chunk = threading.Event()
    result: dict = {}

    def stream() -> None:
        try:
            with requests.post(f"{base}/v1/tts", json=BODY, stream=True, timeout=300) as response:
                chunks = response.iter_content(chunk_size=None)
                received = [next(chunks)]
                first_chunk.set()
                received += list(chunks)  # raises ChunkedEncodingError if the stream were cut
                result["audio"] = b"".join(received)
        except Exception as exc:  # reported by the assertion below
            result["error"] = exc
            first_chunk.set()

    reader = threading.Thread(target=stream)
    reader.start()
    assert first_chunk.wait(120)
    process.send_signal(signal.SIGTERM)

    refused = None
    deadline = time.monotonic() + 10
    while refused is None and time.monotonic() < deadline:  # the drain begins within a poll or two
        response = requests.post(f"{base}/v1/tts", json={"text": "A new one.", "response_format": "pcm"}, timeout=30)
        if response.status_code == 503:
            refused = response
        else:
            time.sleep(0.1)
    stream_still_running = reader.is_alive()
    assert refused is not None, "new requests were still admitted after SIGTERM"
    assert refused.json()["error"]["code"] == "server_busy" and int(refused.headers["Retry-After"]) >= 1
    readyz = requests.get(f"{base}/readyz", timeout=30)
    assert readyz.status_code == 503

    reader.join(300)
    assert "error" not in result, f"the in-flight stream failed: {result.get('error')!r}"
    assert result["audio"] == calm.content  # whole, and exactly the undisturbed bytes
    assert stream_still_running, "the stream ended before the drain was observed; lengthen TEXT"
    assert process.wait(120) == 0


def test_the_launcher_names_an_unusable_config(tmp_path):
    from deployments.run import grace_periods, load_config

    with pytest.raises(SystemExit, match="cannot read"):
        load_config(str(tmp_path / "missing.yaml"))
    (tmp_path / "bad.yaml").write_text("applications: 3\n")
    with pytest.raises(SystemExit, match="not a Serve config"):
        load_config(str(tmp_path / "bad.yaml"))
    config = load_config(os.path.join(ROOT, "serve_config.yaml"))
    assert grace_periods(config) == {APP_NAME: 60}  # the main job's graceful_shutdown_timeout_s
