"""Fast restarts and draining (issue 12, items 3 and 4), without a Ray instance.

A replica that falls back to random weights does not wait on a hub it cannot reach; the
health-check, graceful-shutdown and offline settings reach each deployment's `.options()`;
`Drain` and the Serve follower behave (the HTTP side is tests/api/test_health.py).
"""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
import time
import types
from pathlib import Path

import huggingface_hub
import pytest
import ray
import yaml
from ray.serve import Application

from conftest import DATA
from deployments.app import build_app
from deployments.backend import BackendBusy, BackendDraining, Drain, follow_serve_shutdown
from deployments.config import LIFECYCLE_DEFAULTS, AppConfig
from deployments.models import load_with_fallback
from pipeline import hub
from pipeline.codec import Codec
from pipeline.hub import WeightsUnavailableError
from pipeline.loading import from_pretrained

ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENT_NAMES = ("Ingress", "TextSplitter", "Generator", "Vocoder", "Voices")
LM_REPO = "Zyphra/Zonos-v0.1-transformer"
LOOKUP_BUDGET_S = 2.0  # issue 12: the fallback's hub lookups, with the hub unreachable


@pytest.fixture
def empty_hub(monkeypatch, tmp_path):
    """Online mode, an empty hub cache, a fresh probe; `point(url)` sets the hub endpoint."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("ZONOS_HUB_PROBE", raising=False)
    monkeypatch.delenv("ZONOS_HUB_PROBE_TIMEOUT_S", raising=False)
    hub.forget_probe()
    yield lambda url: monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", url)
    hub.forget_probe()


@contextlib.contextmanager
def stalled_endpoint():
    """A hub that accepts connections and never answers (a proxy or firewall that swallows them);
    yields (url, the number of connections made so far)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held, stop = [], threading.Event()

    def accept() -> None:
        server.settimeout(0.05)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", lambda: len(held)
    finally:
        stop.set()
        thread.join(2)
        for connection in held:
            connection.close()
        server.close()


@contextlib.contextmanager
def answering_endpoint():
    """A hub that answers every HEAD with 200; yields (url, the number of requests so far)."""
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            seen.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", lambda: len(seen)
    finally:
        server.shutdown()
        server.server_close()


# ----------------------------------------------------------------------- fast fallback


def test_a_stalled_hub_costs_the_fallback_under_two_seconds(empty_hub):
    """Without the probe this lookup waits on huggingface_hub's timeouts (10 s per request) and
    retries; with it, one probe of at most PROBE_TIMEOUT_S, then the cache only."""
    with stalled_endpoint() as (url, connections):
        empty_hub(url)
        started = time.perf_counter()
        model, real = load_with_fallback(from_pretrained, LM_REPO, "random-tiny", "language model")
        elapsed = time.perf_counter() - started
        assert connections() == 1, "one probe, then no hub request at all"
    assert real is False and model.config.n_layer > 0
    assert elapsed < LOOKUP_BUDGET_S, elapsed


def test_an_unresolvable_hub_costs_the_codec_fallback_under_two_seconds(empty_hub):
    """The same through transformers (DacModel.from_pretrained), which asks huggingface_hub itself."""
    empty_hub("https://hub.invalid")  # .invalid never resolves (RFC 2606)
    started = time.perf_counter()
    codec, real = load_with_fallback(Codec.from_pretrained, "descript/dac_44khz", "random-tiny", "codec")
    elapsed = time.perf_counter() - started
    assert real is False and isinstance(codec, Codec)
    assert elapsed < LOOKUP_BUDGET_S, elapsed
    assert huggingface_hub.constants.HF_HUB_OFFLINE is False, "offline only while loading"


def test_without_a_fallback_an_unreachable_hub_fails_at_once_naming_the_cache(empty_hub):
    with stalled_endpoint() as (url, _):
        empty_hub(url)
        started = time.perf_counter()
        with pytest.raises(WeightsUnavailableError, match="local cache") as error:
            load_with_fallback(from_pretrained, LM_REPO, None, "language model")
        assert time.perf_counter() - started < LOOKUP_BUDGET_S
    assert LM_REPO in str(error.value) and "local directory" in str(error.value)


def test_the_probe_runs_once_per_process(empty_hub):
    with answering_endpoint() as (url, requests_seen):
        empty_hub(url)
        assert hub.hub_reachable() and hub.hub_reachable()
        assert requests_seen() == 1
        hub.forget_probe()
        assert hub.hub_reachable()
        assert requests_seen() == 2


def test_a_directory_or_random_source_never_probes(empty_hub):
    with stalled_endpoint() as (url, connections):
        empty_hub(url)
        load_with_fallback(from_pretrained, str(DATA), "random-tiny", "language model")
        load_with_fallback(from_pretrained, "random-tiny", None, "language model")
        assert connections() == 0


def test_probe_off_and_offline_mode_send_nothing(empty_hub, monkeypatch):
    with stalled_endpoint() as (url, connections):
        empty_hub(url)
        monkeypatch.setenv("ZONOS_HUB_PROBE", "0")
        assert hub.hub_reachable()
        monkeypatch.delenv("ZONOS_HUB_PROBE")
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        assert not hub.hub_reachable()
        assert connections() == 0


# ----------------------------------------------------------------------- Serve options


def built_deployments(app: Application) -> dict:
    """A built app's deployments by name: the ingress and those bound to it (no Ray needed)."""
    ingress = app._bound_deployment
    bound = [arg._bound_deployment for arg in ingress.init_args if isinstance(arg, Application)]
    return {deployment.name: deployment for deployment in [ingress, *bound]}


def main_args() -> dict:
    (app,) = yaml.safe_load((ROOT / "serve_config.yaml").read_text(encoding="utf-8"))["applications"]
    return app["args"]


def test_health_check_and_drain_defaults_reach_every_deployment():
    built = built_deployments(build_app(main_args()))
    grace = AppConfig.model_validate(main_args()).graceful_shutdown_timeout_s
    for name in DEPLOYMENT_NAMES:
        config = built[name]._deployment_config
        for key, value in LIFECYCLE_DEFAULTS.items():
            assert getattr(config, key) == value, (name, key)
        assert config.graceful_shutdown_timeout_s == grace, name
    assert grace == 60


def test_the_app_grace_period_yields_to_a_deployments_own():
    args = {"graceful_shutdown_timeout_s": 300, "generator": {"graceful_shutdown_timeout_s": 45}}
    built = built_deployments(build_app(args))
    assert built["Generator"]._deployment_config.graceful_shutdown_timeout_s == 45
    assert built["Ingress"]._deployment_config.graceful_shutdown_timeout_s == 300
    assert built["Vocoder"]._deployment_config.graceful_shutdown_timeout_s == 300


def test_offline_sets_hf_hub_offline_in_the_replicas_that_load_models():
    given_env = {"runtime_env": {"env_vars": {"HF_HOME": "/cache"}}, "num_cpus": 1}
    args = {"sources": {"offline": True}, "vocoder": {"ray_actor_options": given_env}}
    built = built_deployments(build_app(args))
    for name in ("Generator", "Vocoder", "Voices"):
        env = built[name].ray_actor_options["runtime_env"]["env_vars"]
        assert env["HF_HUB_OFFLINE"] == "1", name
    assert built["Vocoder"].ray_actor_options["runtime_env"]["env_vars"]["HF_HOME"] == "/cache"
    assert built["Vocoder"].ray_actor_options["num_cpus"] == 1
    for name in ("Ingress", "TextSplitter"):
        assert "runtime_env" not in (built[name].ray_actor_options or {}), name
    online = built_deployments(build_app({}))
    assert "runtime_env" not in (online["Generator"].ray_actor_options or {})


# ----------------------------------------------------------------------- Drain


def test_drain_refuses_new_work_once_begun():
    drain = Drain(retry_after_s=3)
    assert not drain
    drain.admit()
    drain.begin("test")
    drain.begin("again")  # the first reason stays
    assert drain and drain.reason == "test"
    with pytest.raises(BackendDraining) as error:
        drain.admit()
    assert isinstance(error.value, BackendBusy) and error.value.retry_after_s == 3


def test_outside_a_replica_nothing_is_followed():
    assert follow_serve_shutdown(Drain()) is False


def test_drain_begins_when_serve_starts_stopping_the_replica(monkeypatch):
    """Serve sets its replica's `_shutting_down` first thing in a graceful shutdown; the follower
    sees it (the replica is the actor instance of the worker process, as in a real replica)."""
    replica = types.SimpleNamespace(_shutting_down=False)
    actor = types.SimpleNamespace(_replica_impl=replica)
    monkeypatch.setattr(ray._private.worker.global_worker, "actors", {"actor-id": actor}, raising=False)
    drain = Drain()
    assert follow_serve_shutdown(drain, poll_s=0.01)
    time.sleep(0.05)
    assert not drain
    replica._shutting_down = True
    deadline = time.monotonic() + 2
    while not drain and time.monotonic() < deadline:
        time.sleep(0.01)
    assert drain and "Serve" in drain.reason


def test_a_graceful_app_stop_begins_the_drain_and_gets_in_flight_reports(monkeypatch):
    """deployments.shutdown's request reaches the follower (with Serve's own flag still down); from
    then on the replica reports how many requests `Drain.track` holds, down to 0."""
    replica = types.SimpleNamespace(_shutting_down=False)
    monkeypatch.setattr(
        ray._private.worker.global_worker, "actors", {"a": types.SimpleNamespace(_replica_impl=replica)}, raising=False
    )

    class Signal:
        def __init__(self):
            self.asked, self.reports = False, []

        def requested(self):
            return self.asked

        def report(self, n):
            self.reports.append(n)

    signal, drain = Signal(), Drain()
    assert follow_serve_shutdown(drain, poll_s=0.01, app_signal=signal)
    with drain.track(), drain.track():
        time.sleep(0.05)
        assert not drain and not signal.reports
        signal.asked = True
        deadline = time.monotonic() + 2
        while not signal.reports and time.monotonic() < deadline:
            time.sleep(0.01)
        assert drain and "graceful stop" in drain.reason and signal.reports[-1] == 2
    deadline = time.monotonic() + 2
    while signal.reports[-1] != 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert signal.reports[-1] == 0 and drain.in_flight == 0


def test_a_source_that_names_random_weights_is_not_real_speech():
    """The model card's `speech` (and the playground's banner) must not call random-tiny real when a
    config names it directly rather than falling back to it."""
    assert load_with_fallback(from_pretrained, str(DATA), None, "language model")[1] is True
    assert load_with_fallback(from_pretrained, "random-tiny", None, "language model")[1] is False
