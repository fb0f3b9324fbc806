"""`python -m deployments.run serve_config.yaml`: `serve run` for a Serve config file, with a
graceful stop on SIGINT (Ctrl-C) and SIGTERM.

It deploys the config as `serve run CONFIG` does (Ray started here unless `--address` names a
cluster; the config's http_options, proxy_location and applications), then waits. On the first
SIGINT or SIGTERM it stops gracefully (deployments.shutdown.graceful_stop): the apps' Ingress
replicas refuse new requests (503 + Retry-After, /readyz 503) and finish the ones in flight, for
at most each app's `graceful_shutdown_timeout_s` (its `args`, else AppConfig's default); then
Serve shuts down and the process exits 0. A second signal during the wait stops at once. A Ray
started here gets RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH (deployments.request_ids) unless set.
`serve run` itself kills the HTTP proxies on Ctrl-C, cutting every response in flight.

Exit status: 0 after a stop, 2 for an unusable config file (the message names the problem).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

import ray
import yaml
from pydantic import ValidationError
from ray import serve
from ray.serve._private import api as serve_api
from ray.serve._private.constants import SERVE_NAMESPACE
from ray.serve.config import gRPCOptions
from ray.serve.schema import ServeDeploySchema

from deployments.config import AppConfig
from deployments.request_ids import PROXY_CALLBACK
from deployments.shutdown import clear, graceful_stop


def grace_periods(config: ServeDeploySchema) -> dict[str, float]:
    """App name -> its graceful_shutdown_timeout_s (from its args where they are an AppConfig)."""
    periods = {}
    for app in config.applications:
        try:
            periods[app.name] = AppConfig.model_validate(app.args or {}).graceful_shutdown_timeout_s
        except ValidationError:  # not our app: Serve's own default grace
            periods[app.name] = AppConfig.model_fields["graceful_shutdown_timeout_s"].default
    return periods


def load_config(path: str) -> ServeDeploySchema:
    try:
        with open(path) as file:
            return ServeDeploySchema.model_validate(yaml.safe_load(file))
    except OSError as exc:
        raise SystemExit(f"deployments.run: cannot read {path}: {exc.strerror}") from None
    except (yaml.YAMLError, ValidationError) as exc:
        raise SystemExit(f"deployments.run: {path} is not a Serve config: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployments.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="a Serve config file (serve_config.yaml)")
    parser.add_argument("--address", default=None, help="a Ray cluster to deploy to (default: start Ray here)")
    args = parser.parse_args(argv)
    config = load_config(args.config)

    stop = threading.Event()

    def on_signal(signum, frame):
        if stop.is_set():  # a second signal: no more waiting
            raise KeyboardInterrupt
        stop.set()

    # Serve's proxies validate X-Request-ID with our guard (deployments.request_ids); a Ray started
    # here inherits this environment, a cluster's (--address) must have it set already.
    os.environ.setdefault("RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH", PROXY_CALLBACK)
    ray.init(address=args.address, namespace=SERVE_NAMESPACE)
    client = serve_api.serve_start(
        http_options=config.http_options.model_dump(),
        proxy_location=config.proxy_location,
        grpc_options=gRPCOptions(**config.grpc_options.model_dump()),
        controller_options=config.controller_options,
    )
    client.deploy_apps(config, _blocking=False)
    # after ray.init, which installs its own SIGTERM handler (log and die)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(f"deployments.run: deployed {args.config}; SIGINT/SIGTERM stops gracefully", flush=True)
    while not stop.wait(1.0):
        pass
    periods = grace_periods(config)
    print(f"deployments.run: draining {', '.join(periods)} (grace {max(periods.values()):.0f} s)", flush=True)
    try:
        finished = graceful_stop(periods)
    except KeyboardInterrupt:
        finished = False
    print(f"deployments.run: {'drained' if finished else 'grace period over'}; shutting down", flush=True)
    serve.shutdown()
    clear(periods)
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
