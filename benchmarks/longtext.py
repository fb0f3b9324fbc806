"""Long texts through the pipeline: wall time, RTF and peak memory, sequential vs fast.

    python -m benchmarks.longtext --model random-tiny --out out/longtext          # CPU
    python -m benchmarks.longtext --model zonos-1.6b-random --device cuda --dtype bfloat16

fast: one `Synthesizer.synthesize` call (what `pipeline.synthesize` runs): the text is split into
segments that all join the engine's continuous batch, then one batched, chunked codec decode.
sequential: the pre-optimisation baseline, one segment at a time: a `synthesize` call per
segment (batch 1, its own codec decode), as a caller of the reference does sentence by sentence.

Random weights rarely emit EOS, so each segment runs to its expected duration plus 1 s
(`duration_budget=1`, about 86 frames per second of expected speech): both modes do the same,
realistic work. Each (size, mode) runs in a fresh process after a warm-up, so its peak memory is
its own: peak RSS on CPU, max allocated on CUDA (weights included). Writes results.json and
longtext.png to --out.
"""

from __future__ import annotations

import json
import multiprocessing
import platform
import random
import resource
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import benchmark_parser, dtype_name
from pipeline.audio import join_segments
from pipeline.codec import SAMPLE_RATE
from pipeline.streaming import SynthesisRequest, segment_seed, split_request
from pipeline.synthesis import Synthesizer

VOCABULARY = """the a river morning light city quiet people walked along old bridge over water while children played
near market stalls selling bread fruit and flowers every voice carried stories about years gone by someone
remembered winter storms others spoke of summer evenings music drifted from open windows travellers paused to
listen before continuing their long journey toward distant mountains"""


def long_text(n_chars: int, seed: int = 0) -> str:
    """Seeded English-like prose of about `n_chars` characters, in sentences of 6-24 words."""
    rng = random.Random(seed)
    sentences: list[str] = []
    length = 0
    while length < n_chars:
        words = [rng.choice(VOCABULARY.split()) for _ in range(rng.randint(6, 24))]
        sentence = " ".join(words).capitalize() + rng.choice([".", ".", ".", "!", "?"])
        sentences.append(sentence)
        length += len(sentence) + 1
    return " ".join(sentences)[:n_chars].rsplit(" ", 1)[0] + "."


def _peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def synthesize_fast(synthesizer: Synthesizer, request: SynthesisRequest) -> tuple[np.ndarray, int]:
    """The pipeline as shipped: (audio, segments)."""
    result = synthesizer.synthesize(request)
    return result.audio, len(result.segments)


def synthesize_sequential(synthesizer: Synthesizer, request: SynthesisRequest) -> tuple[np.ndarray, int]:
    """The baseline: each segment alone, in text order, then the same join as the fast path.

    Each call gets the seed the fast path gives that segment, so both modes sample the same frames."""
    segments = split_request(request)
    audio = [
        synthesizer.synthesize(
            request.model_copy(update={"text": s.text, "seed": segment_seed(request.seed, s.index)})
        ).audio
        for s in segments
    ]
    return join_segments(audio, SAMPLE_RATE, request.pause_ms, request.crossfade_ms), len(segments)


MODES = {"fast": synthesize_fast, "sequential": synthesize_sequential}


def run_one(model: str, device: str, dtype: str, max_rows: int, n_chars: int, mode: str, seed: int) -> dict:
    """One (size, mode) measurement; runs in its own process."""
    synthesizer = Synthesizer.from_pretrained(model, device=device, dtype=dtype, max_rows=max_rows)
    settings = {"seed": seed, "duration_budget": 1.0}
    MODES[mode](synthesizer, SynthesisRequest(text=long_text(min(n_chars, 200), seed + 1), **settings))  # warm-up
    text = long_text(n_chars, seed)
    _sync(device)
    started = time.perf_counter()
    audio, n_segments = MODES[mode](synthesizer, SynthesisRequest(text=text, **settings))
    _sync(device)
    wall = time.perf_counter() - started
    seconds = len(audio) / SAMPLE_RATE
    return {
        "size": n_chars, "chars": len(text), "mode": mode, "segments": n_segments, "wall_s": wall,
        "audio_s": seconds, "rtf": wall / seconds, "peak_memory_mb": _peak_memory_mb(device),
        "dtype": dtype_name(synthesizer.engine.model.dtype),
    }  # fmt: skip


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for mode, marker in (("fast", "o"), ("sequential", "s")):
        runs = [r for r in results["runs"] if r["mode"] == mode]
        if runs:
            left.plot([r["chars"] for r in runs], [r["wall_s"] for r in runs], marker=marker, label=mode)
            right.plot([r["chars"] for r in runs], [r["peak_memory_mb"] for r in runs], marker=marker, label=mode)
    left.set_xlabel("characters")
    left.set_ylabel("wall time (s)")
    left.set_title(f"{results['model']} on {results['device']}: wall time")
    right.set_xlabel("characters")
    right.set_ylabel("peak memory (MiB, " + ("CUDA allocated)" if results["device"].startswith("cuda") else "RSS)"))
    right.set_title("peak memory")
    right.set_ylim(bottom=0)
    for axis in (left, right):
        axis.legend()
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> dict:
    parser = benchmark_parser("longtext", __doc__)
    parser.add_argument("--sizes", default="1000,5000,10000,20000", help="characters per text")
    parser.add_argument("--modes", default="fast,sequential")
    parser.add_argument("--max-rows", type=int, default=64, help="KV-cache rows of the engine (2 per segment)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    sizes = [int(s) for s in args.sizes.split(",")]
    runs = []
    context = multiprocessing.get_context("spawn")
    for mode in args.modes.split(","):
        for n_chars in sizes:
            with context.Pool(1) as pool:  # a fresh process: its own peak memory
                settings = (args.model, args.device, args.dtype, args.max_rows, n_chars, mode, args.seed)
                run = pool.apply(run_one, settings)
            runs.append(run)
            print(
                f"  {mode:10s} {run['chars']:6d} chars: {run['wall_s']:7.1f} s for {run['audio_s']:7.1f} s of audio "
                f"(RTF {run['rtf']:.3f}), {run['segments']} segments, peak {run['peak_memory_mb']:.0f} MiB"
            )

    wall = {(r["mode"], r["size"]): r["wall_s"] for r in runs}
    both = [n for n in sizes if ("sequential", n) in wall and ("fast", n) in wall]
    speedup = {n: wall["sequential", n] / wall["fast", n] for n in both}
    fast = [r for r in runs if r["mode"] == "fast"]
    # Wall time per character relative to the smallest text: 1.0 is exactly linear.
    linearity = {r["size"]: (r["wall_s"] / r["chars"]) / (fast[0]["wall_s"] / fast[0]["chars"]) for r in fast}
    results = {
        "model": args.model, "device": args.device, "dtype": args.dtype, "max_rows": args.max_rows,
        "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d"), "runs": runs,
        "speedup_fast_vs_sequential": speedup, "fast_time_per_char_vs_smallest": linearity,
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    plot(results, args.out / "longtext.png")
    summary = ", ".join(f"{n / 1000:g}k {s:.1f}x" for n, s in speedup.items())
    worst = max(linearity.values()) if linearity else float("nan")
    print(
        f"longtext {args.model} {args.device}: fast vs sequential {summary or 'n/a'}; fast time per char at most "
        f"{worst:.2f}x the smallest text's -> {args.out}/results.json"
    )
    return results


if __name__ == "__main__":
    main()
