"""Stopping a whole app without cutting a response: drain its Ingress replicas, wait for their
in-flight requests, then shut Serve down.

Serve 2.60's own stop (`serve shutdown`, Ctrl-C or SIGTERM on `serve run`) kills the HTTP proxies
at once and stops every deployment together, so a response being streamed is cut (and a replica's
own graceful shutdown cannot help: its requests need the proxies and the other deployments). A
graceful stop goes in order instead (`graceful_stop`, used by `python -m deployments.run` on
SIGINT/SIGTERM and by `python -m deployments.stop` for an app deployed otherwise):

1. A drain request per app goes into Ray's GCS key-value store (namespace `zonos-serve`). Every
   Ingress replica polls it (`AppDrainSignal`, next to Serve's own stopping flag, see
   deployments.backend.follow_serve_shutdown) and begins draining: new requests get 503 with
   Retry-After, /readyz 503; requests already admitted go on, with the proxies and the other
   deployments still up.
2. Each draining Ingress replica writes its in-flight request count (HTTP and handle calls) beside
   it every poll. The stop waits until every running Ingress replica reports 0, at most the app's
   `graceful_shutdown_timeout_s`.
3. The caller shuts Serve down (`serve.shutdown()`), which now cuts nothing (or only what outlived
   the grace period).

No ray import at module level: deployments.backend reads this lazily inside a replica.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable

logger = logging.getLogger("ray.serve")

KV_NAMESPACE = "zonos-serve"
INGRESS = "Ingress"  # the deployment whose replicas hold the HTTP requests (deployments.app)
REPORT_MAX_AGE_S = 3.0  # an in-flight report older than this is from a replica that is gone
POLL_S = 0.2


def _drain_key(app: str) -> bytes:
    return f"drain/{app}".encode()


def _report_prefix(app: str) -> bytes:
    return f"in-flight/{app}/".encode()


class AppDrainSignal:
    """The drain request for one app as one Ingress replica sees it, and that replica's report.

    `requested()` is True once `request_drain(app)` ran; `report(n)` publishes the replica's
    in-flight request count with the time it was taken."""

    def __init__(self, app: str, replica_id: str):
        self.app, self.replica_id = app, replica_id

    @classmethod
    def for_this_replica(cls) -> AppDrainSignal | None:
        """The signal of the Serve replica this runs in (None outside one)."""
        try:
            from ray import serve

            context = serve.get_replica_context()
            return cls(context.app_name, context.replica_id.unique_id)
        except Exception:
            return None

    def requested(self) -> bool:
        from ray.experimental import internal_kv

        try:
            return internal_kv._internal_kv_exists(_drain_key(self.app), namespace=KV_NAMESPACE)
        except Exception:  # the GCS briefly unreachable: not a drain request
            return False

    def report(self, in_flight: int) -> None:
        from ray.experimental import internal_kv

        value = json.dumps({"in_flight": in_flight, "at": time.time()}).encode()
        try:
            key = _report_prefix(self.app) + self.replica_id.encode()
            internal_kv._internal_kv_put(key, value, overwrite=True, namespace=KV_NAMESPACE)
        except Exception as exc:
            logger.warning("could not report %d requests in flight for the drain: %r", in_flight, exc)


def request_drain(apps: Iterable[str]) -> None:
    """Ask every Ingress replica of `apps` to drain (connected to the cluster: ray.init done)."""
    from ray.experimental import internal_kv

    for app in apps:
        internal_kv._internal_kv_put(_drain_key(app), b"1", overwrite=True, namespace=KV_NAMESPACE)


def in_flight_reports(app: str) -> dict[str, int]:
    """Replica id -> requests in flight, from the reports of the last REPORT_MAX_AGE_S seconds."""
    from ray.experimental import internal_kv

    reports = {}
    prefix = _report_prefix(app)
    for key in internal_kv._internal_kv_list(prefix, namespace=KV_NAMESPACE):
        raw = internal_kv._internal_kv_get(key, namespace=KV_NAMESPACE)
        if raw is None:
            continue
        report = json.loads(raw)
        if time.time() - report["at"] <= REPORT_MAX_AGE_S:
            reports[key[len(prefix) :].decode()] = int(report["in_flight"])
    return reports


def running_ingress_replicas(app: str) -> int:
    """How many Ingress replicas of `app` Serve counts as RUNNING (0 if the app is unknown)."""
    from ray import serve

    status = serve.status().applications.get(app)
    deployment = status.deployments.get(INGRESS) if status else None
    if deployment is None:
        return 0
    return sum(count for state, count in deployment.replica_states.items() if str(state).endswith("RUNNING"))


def clear(apps: Iterable[str]) -> None:
    """Remove the drain requests and reports of `apps` (after Serve is shut down)."""
    from ray.experimental import internal_kv

    for app in apps:
        internal_kv._internal_kv_del(_drain_key(app), namespace=KV_NAMESPACE)
        internal_kv._internal_kv_del(_report_prefix(app), del_by_prefix=True, namespace=KV_NAMESPACE)


def graceful_stop(apps: dict[str, float]) -> bool:
    """Drain `apps` (name -> grace period in seconds) and wait for their in-flight requests.

    Returns True when every running Ingress replica reported no request in flight within its app's
    grace period, False when the time ran out (the caller shuts down anyway). Does not shut Serve
    down: call `serve.shutdown()` next."""
    request_drain(apps)
    logger.warning("draining %s: new requests get 503; waiting for in-flight requests", ", ".join(apps))
    started = time.monotonic()
    pending = dict(apps)
    while pending:
        for app, grace_s in list(pending.items()):
            reports = in_flight_reports(app)
            running = running_ingress_replicas(app)
            if len(reports) >= running and not any(reports.values()):
                logger.warning("%s: no request in flight after %.1f s", app, time.monotonic() - started)
                del pending[app]
            elif time.monotonic() - started > grace_s:
                logger.warning(
                    "%s: %d requests still in flight after the %.0f s grace period; stopping anyway",
                    app,
                    sum(reports.values()),
                    grace_s,
                )
                del pending[app]
        if pending:
            time.sleep(POLL_S)
    return all(not any(in_flight_reports(app).values()) for app in apps)
