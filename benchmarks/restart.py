"""Generator restart time (issue 12, item 3): a measurement, not a test.

    python3 -m benchmarks.restart                          # serve_config.yaml, one kill
    python3 -m benchmarks.restart --kills 3 --config serve_config.yaml

Starts Ray and the app from the config's `args` (deployments.app:build_app, with `serve.run`;
the voice library in a temporary directory, HTTP on a free local port), checks that
POST /v1/tts answers, then kills the Generator replica's actor with `ray.kill(actor,
no_restart=False)` (found by its Serve actor name, SERVE_REPLICA::<app>#Generator#<id>) and
times until a /v1/tts request succeeds again. Per kill it prints: when Serve first reported a
replica other than the killed one (starting), when the Generator was RUNNING again, and when
the first request after the kill got its audio (the number that matters).
"""

from __future__ import annotations

import argparse
import json
import socket
import tempfile
import threading
import time
from pathlib import Path

import ray
import requests
import yaml
from ray import serve

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = "Generator"
BODY = {"text": "Restart check.", "seed": 1, "response_format": "wav", "stream": False}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _generator_actors(app_name: str) -> set[str]:
    prefix = f"SERVE_REPLICA::{app_name}#{GENERATOR}#"
    return {a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(prefix)}


def _generator_status(app_name: str) -> dict:
    app = serve.status().applications.get(app_name)
    deployment = app.deployments.get(GENERATOR) if app else None
    return {} if deployment is None else {str(k): v for k, v in deployment.replica_states.items()}


def _tts_ok(url: str, timeout_s: float, verbose: bool = False) -> bool:
    try:
        response = requests.post(f"{url}/v1/tts", json=BODY, timeout=timeout_s)
    except requests.RequestException as exc:
        if verbose:
            print(f"  /v1/tts: {type(exc).__name__}: {exc}", flush=True)
        return False
    if verbose and response.status_code != 200:
        print(f"  /v1/tts: {response.status_code} {response.text[:300]}", flush=True)
    return response.status_code == 200


def measure_once(url: str, app_name: str, timeout_s: float) -> dict:
    (victim,) = _generator_actors(app_name)
    actor = ray.get_actor(victim, namespace="serve")
    events: dict[str, float] = {}
    done = threading.Event()

    def watch() -> None:  # Serve's view of the Generator, polled
        while not done.is_set():
            now = time.perf_counter()
            if "new_actor" not in events and _generator_actors(app_name) - {victim}:
                events["new_actor"] = now
            states = _generator_status(app_name)
            if "new_actor" in events and "running" not in events and states.get("RUNNING"):
                events["running"] = now
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    killed = time.perf_counter()
    ray.kill(actor, no_restart=False)
    watcher.start()
    attempts = 0
    while True:
        attempts += 1
        if _tts_ok(url, timeout_s=30, verbose=True):
            served = time.perf_counter()
            break
        if time.perf_counter() - killed > timeout_s:
            raise TimeoutError(f"/v1/tts did not succeed within {timeout_s} s of the kill")
        time.sleep(0.1)
    done.set()
    watcher.join()
    return {
        "new_replica_seen_s": round(events["new_actor"] - killed, 2) if "new_actor" in events else None,
        "generator_running_s": round(events["running"] - killed, 2) if "running" in events else None,
        "serving_again_s": round(served - killed, 2),
        "attempts": attempts,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "serve_config.yaml"))
    parser.add_argument("--kills", type=int, default=1)
    parser.add_argument("--num-cpus", type=int, default=8, help="logical CPUs of the local Ray instance")
    parser.add_argument("--timeout", type=float, default=180.0, help="give up on one restart after this long")
    options = parser.parse_args(argv)

    from deployments.app import build_app

    config = yaml.safe_load(Path(options.config).read_text(encoding="utf-8"))
    (app,) = config["applications"]
    port = _free_port()
    ray.init(num_cpus=options.num_cpus, include_dashboard=False, log_to_driver=False)
    results = []
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        with tempfile.TemporaryDirectory() as tmp:
            args = dict(app.get("args") or {}) | {"voices_db": str(Path(tmp) / "voices.sqlite3")}
            started = time.perf_counter()
            serve.run(build_app(args), name=app["name"], route_prefix=app.get("route_prefix", "/"))
            url = f"http://127.0.0.1:{port}"
            deadline = time.perf_counter() + 120
            while not _tts_ok(url, timeout_s=120, verbose=True):
                if time.perf_counter() > deadline:
                    raise RuntimeError("the app does not answer /v1/tts before any kill")
                time.sleep(1)
            print(f"app up and serving in {time.perf_counter() - started:.1f} s", flush=True)
            for i in range(options.kills):
                time.sleep(2.0)  # let the app settle
                result = measure_once(url, app["name"], options.timeout)
                results.append(result)
                print(f"kill {i + 1}: {json.dumps(result)}", flush=True)
    finally:
        serve.shutdown()
        ray.shutdown()
    if results:
        worst = max(r["serving_again_s"] for r in results)
        print(f"serving again after a Generator kill: worst {worst:.1f} s over {len(results)} kill(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
