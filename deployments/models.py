"""Loading a model for a deployment, with the configured fallback when the real one cannot be had."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from pipeline.hub import WeightsUnavailableError

logger = logging.getLogger("ray.serve")
Model = TypeVar("Model")


def load_with_fallback(
    load: Callable[[str], Model], source: str, fallback: str | None, what: str
) -> tuple[Model, bool]:
    """(model, True) from `source`; or, when its weights cannot be had and a fallback is set,
    (fallback model, False) after a loud warning. Without a fallback the error propagates."""
    try:
        return load(source), True
    except WeightsUnavailableError as exc:
        if fallback is None:
            raise
        logger.warning(
            "\n%s\n!!! %s %r is unavailable (%s)\n!!! FALLING BACK TO %r: RANDOM WEIGHTS, THE OUTPUT IS NOT SPEECH\n%s",
            "!" * 100, what, source, exc, fallback, "!" * 100,
        )  # fmt: skip
        return load(fallback), False
