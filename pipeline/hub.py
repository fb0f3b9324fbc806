"""Finding checkpoint files: a local directory or a Hugging Face repo id.

huggingface_hub honours HF_HOME (cache location) and HF_HUB_OFFLINE (no network) by itself,
so a machine with a warm cache works offline with the repo id unchanged.

No load waits on a hub it cannot reach. Before its first hub lookup a process sends ONE request
to the hub endpoint (`HEAD HF_ENDPOINT`, proxies honoured, no retries) and waits at most
`PROBE_TIMEOUT_S` for any HTTP answer, DNS included (`hub_reachable`, kept for the process).
When the hub does not answer, repo ids resolve from the local cache only (offline mode), so a
repo that is not cached fails at once, where huggingface_hub's own retries take ~23 s with no
DNS (minutes where a firewall drops packets). `hub_access(source)` does the same around any
loader that asks huggingface_hub or transformers (the codec's `DacModel.from_pretrained`).
Lookups on a reachable hub use `ETAG_TIMEOUT_S`.

Environment: HF_HUB_OFFLINE=1 never contacts the hub (no probe either); ZONOS_HUB_PROBE_TIMEOUT_S
sets the probe's timeout; ZONOS_HUB_PROBE=0 turns the probe off (every lookup goes to the hub
with huggingface_hub's timeouts and retries).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from huggingface_hub import constants, hf_hub_download

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 1.5  # the hub answers a HEAD in well under a second where it is reachable at all
ETAG_TIMEOUT_S = 5.0  # per metadata request on a reachable hub (huggingface_hub's default is 10 s)

_probe_lock = threading.Lock()
_probed: dict[str, tuple[bool, str]] = {}  # endpoint -> (reachable, why), once per process


class WeightsUnavailableError(RuntimeError):
    """The weights a source names cannot be had (missing files, no network, unknown repo)."""


def is_repo_id(source: str) -> bool:
    """Whether `source` names a Hugging Face repo (owner/name) rather than a local path."""
    local = Path(source).expanduser()
    return source.count("/") == 1 and not local.exists()


def probe_timeout_s() -> float:
    try:
        return float(os.environ.get("ZONOS_HUB_PROBE_TIMEOUT_S", PROBE_TIMEOUT_S))
    except ValueError:
        return PROBE_TIMEOUT_S


def _probe(endpoint: str, timeout_s: float) -> tuple[bool, str]:
    """One HEAD request in a daemon thread, so a stalled DNS lookup counts against the timeout too."""
    from huggingface_hub.utils import get_session

    answer: list[tuple[bool, str]] = []

    def ask() -> None:
        try:
            status = get_session().head(endpoint, timeout=timeout_s, follow_redirects=False).status_code
            answer.append((status < 500, f"HTTP {status}"))
        except Exception as exc:
            answer.append((False, f"{type(exc).__name__}: {exc}"))

    thread = threading.Thread(target=ask, name="hub-probe", daemon=True)
    thread.start()
    thread.join(timeout_s + 0.1)
    return answer[0] if answer else (False, f"no answer within {timeout_s:g} s")


def hub_reachable() -> bool:
    """Whether the Hugging Face Hub endpoint answers HTTP within `probe_timeout_s()`: probed on the
    first call of the process (concurrent callers wait for that one probe), then remembered.
    True without a probe when ZONOS_HUB_PROBE=0; False without one in offline mode."""
    if constants.is_offline_mode():
        return False
    if os.environ.get("ZONOS_HUB_PROBE", "1") == "0":
        return True
    endpoint = constants.ENDPOINT
    with _probe_lock:
        if endpoint not in _probed:
            started = time.perf_counter()
            reachable, why = _probe(endpoint, probe_timeout_s())
            _probed[endpoint] = (reachable, why)
            if not reachable:
                logger.warning(
                    "the Hugging Face Hub (%s) is unreachable (%s, after %.2f s): models load from the "
                    "local cache (HF_HOME) or a directory only",
                    endpoint,
                    why,
                    time.perf_counter() - started,
                )
        return _probed[endpoint][0]


def forget_probe() -> None:
    """Probe again on the next lookup (tests, or a process whose network changed)."""
    with _probe_lock:
        _probed.clear()


def _offline() -> bool:
    return constants.is_offline_mode() or not hub_reachable()


@contextlib.contextmanager
def hub_access(source: str) -> Iterator[None]:
    """Around loading `source` with any loader that asks huggingface_hub (transformers too): when it
    is a repo id and the hub is unreachable, offline mode for the block, so only the local cache is
    read and a load that cannot succeed fails at once. Nothing changes for a directory, a random
    model, or a reachable hub. Offline mode is process-wide while the block runs (loads happen once,
    in a replica's constructor)."""
    if not is_repo_id(source) or constants.is_offline_mode() or hub_reachable():
        yield
        return
    previous = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = previous


def resolve_files(source: str, filenames: list[str]) -> dict[str, Path]:
    """Map each file name to a local path, from a directory or a Hugging Face repo id."""
    local = Path(source).expanduser()
    if local.is_dir():
        missing = [name for name in filenames if not (local / name).is_file()]
        if missing:
            raise WeightsUnavailableError(
                f"directory {str(local)!r} lacks {', '.join(missing)}; a checkpoint directory "
                f"holds {', '.join(filenames)}"
            )
        return {name: local / name for name in filenames}
    if not is_repo_id(source):
        raise WeightsUnavailableError(
            f"{source!r} is neither a directory nor a Hugging Face repo id (owner/name); "
            f"pass a directory holding {', '.join(filenames)}"
        )
    offline = _offline()
    try:
        return {
            name: Path(hf_hub_download(source, name, local_files_only=offline, etag_timeout=ETAG_TIMEOUT_S))
            for name in filenames
        }
    except Exception as exc:  # network, auth, missing repo or file: all mean the same to the caller
        where = "the local cache (the hub is unreachable or HF_HUB_OFFLINE is set)" if offline else "the repo"
        raise WeightsUnavailableError(
            f"could not get {', '.join(filenames)} of the Hugging Face repo {source!r} from {where} "
            f"({type(exc).__name__}: {exc}). Download the repo on a machine with access "
            f"(`hf download {source} --local-dir DIR`) and pass that local directory instead, "
            f"or set HF_HOME to a cache that holds it."
        ) from exc
