"""`python -m deployments.stop`: stop the Serve apps of a running cluster gracefully, then shut Serve down.

For an app started with `serve deploy`, `serve run` in another shell, or KubeRay (where
`python -m deployments.run` did not start it): the apps' Ingress replicas refuse new requests
(503 + Retry-After) and finish the ones in flight for at most `--timeout` seconds
(deployments.shutdown.graceful_stop), then Serve shuts down (`serve shutdown` would cut them).
`--keep-serve` drains and waits only (e.g. before a node is removed by other means).
"""

from __future__ import annotations

import argparse
import sys

import ray
from ray import serve
from ray.serve._private.constants import SERVE_NAMESPACE

from deployments.config import AppConfig
from deployments.shutdown import clear, graceful_stop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deployments.stop", description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", default="auto", help="the Ray cluster (default: auto)")
    parser.add_argument("--app", action="append", help="an app to stop (default: every app)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=AppConfig.model_fields["graceful_shutdown_timeout_s"].default,
        help="seconds to wait for in-flight requests (default: AppConfig's graceful_shutdown_timeout_s)",
    )
    parser.add_argument("--keep-serve", action="store_true", help="drain and wait, but do not shut Serve down")
    args = parser.parse_args(argv)
    ray.init(address=args.address, namespace=SERVE_NAMESPACE, log_to_driver=False)
    apps = args.app or list(serve.status().applications)
    finished = graceful_stop(dict.fromkeys(apps, args.timeout))
    print(f"deployments.stop: {'drained' if finished else 'grace period over'}: {', '.join(apps)}", flush=True)
    if not args.keep_serve:
        serve.shutdown()
        clear(apps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
