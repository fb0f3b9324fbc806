"""Finding checkpoint files: a local directory or a Hugging Face repo id.

huggingface_hub honours HF_HOME (cache location) and HF_HUB_OFFLINE (no network) by itself,
so a machine with a warm cache works offline with the repo id unchanged.
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import hf_hub_download


class WeightsUnavailableError(RuntimeError):
    """The weights a source names cannot be had (missing files, no network, unknown repo)."""


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
    if source.count("/") != 1 or local.exists():
        raise WeightsUnavailableError(
            f"{source!r} is neither a directory nor a Hugging Face repo id (owner/name); "
            f"pass a directory holding {', '.join(filenames)}"
        )
    try:
        return {name: Path(hf_hub_download(source, name)) for name in filenames}
    except Exception as exc:  # network, auth, missing repo or file: all mean the same to the caller
        raise WeightsUnavailableError(
            f"could not get {', '.join(filenames)} from the Hugging Face repo {source!r} "
            f"({type(exc).__name__}: {exc}). Download the repo on a machine with access "
            f"(`hf download {source} --local-dir DIR`) and pass that local directory instead, "
            f"or set HF_HOME to a cache that holds it."
        ) from exc
