"""Loading a model for a deployment, with the configured fallback when the real one cannot be had.

A replica that will fall back does not wait on the network first: `pipeline.hub.hub_access` loads
from the local cache only when a short probe finds the Hugging Face Hub unreachable (once per
process), so a restarted replica falls back within a second or two instead of after
huggingface_hub's ~23 s of retries. `sources.offline` (HF_HUB_OFFLINE=1 in the replica, set by
`deployments.app:build_app`) skips the probe too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from pipeline.hub import WeightsUnavailableError, hub_access
from pipeline.loading import RANDOM_1B6, RANDOM_TINY

logger = logging.getLogger("ray.serve")
Model = TypeVar("Model")
RANDOM_SOURCES = (RANDOM_TINY, RANDOM_1B6)  # sources that are random weights by name: noise, not speech


def load_with_fallback(
    load: Callable[[str], Model], source: str, fallback: str | None, what: str
) -> tuple[Model, bool]:
    """(model, real) from `source`, `real` False when `source` itself names random weights
    (random-tiny, zonos-1.6b-random); or, when its weights cannot be had and a fallback is set,
    (fallback model, False) after a loud warning. Without a fallback the error propagates."""
    started = time.perf_counter()
    try:
        with hub_access(source):
            return load(source), source not in RANDOM_SOURCES
    except WeightsUnavailableError as exc:
        if fallback is None:
            raise
        logger.warning(
            "\n%s\n!!! %s %r is unavailable (%s; found out in %.1f s)\n"
            "!!! FALLING BACK TO %r: RANDOM WEIGHTS, THE OUTPUT IS NOT SPEECH\n%s",
            "!" * 100, what, source, exc, time.perf_counter() - started, fallback, "!" * 100,
        )  # fmt: skip
        return load(fallback), False
