"""One-command device check: parity, the fp16 codec, a concurrency sweep and a long text under 8 GB.

    python -m benchmarks.gpu_check --out out/gpu_check                        # CUDA, <= 8 minutes on an H200
    python -m benchmarks.gpu_check --out out/gpu_smoke --device cpu --smoke   # the same code paths, < 1 minute
    python -m benchmarks.gpu_check --make-texts                               # regenerate the shipped phoneme ids

Runs without Ray, PyAV or espeak-ng (it needs torch, transformers, safetensors, pydantic, numpy,
matplotlib and the phonemizer *package*, whose import needs no espeak-ng library): the golden
cases carry the reference's phonemes, and the texts' phoneme ids are shipped in
benchmarks/data/gpu_check_texts.json (made here by `--make-texts`, with pipeline.segment).

(a) parity: the fixture checkpoint in fp32 gives the reference's tokens (benchmarks.golden, as
    tests/test_engine.py checks them), each case alone and all six batched; CUDA graphs on and off
    give identical tokens on a mixed batch that requests join and leave (greedy golden cases and
    seeded sampling); bf16 and fp16 logits, teacher-forced on the reference's codes, have a cosine
    similarity > 0.99 to fp32's.
(b) codec: the vocoder (random-tiny weights, the published layout at narrow width, same receptive
    field) decodes in 16-frame chunks what it decodes whole, in fp16 and fp32, TF32 off and on.
(c) sweep: zonos-1.6b-random in bf16, 1..256 concurrent guided requests of 128 frames (smoke:
    random-tiny, 1..4): frames/s, ms per step, audio-seconds per second (the LM's), single-stream
    RTF, and time to first audio of one stream (prefill + the first 16 frames + their vocoder chunk,
    through the pipeline's StreamingDecoder; vocoder: the published DAC layout with random weights
    in fp16, smoke: random-tiny).
(d) long text: the 10,000-character text's segments (each to its expected duration + 1 s) with
    max_rows="auto" under an 8 GB cap (torch.cuda.set_per_process_memory_fraction), LM and vocoder
    on the device, then the vocoder decode of all of it: completes, peak memory. Smoke: 3 segments
    of 24 frames, "auto" within a 300 MB budget (memory_fraction scaled to MemAvailable).

Each part records its checks (pass/fail) and numbers; an exception fails that part only. Writes
results.json, gpu_check.png and summary.md to --out, prints one line per part, exits 1 if any
check failed.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import dtype_name
from benchmarks.engine import batch_sweep, timed_generate, workload_request
from benchmarks.golden import (
    CASES,
    DATA,
    case_phoneme_ids,
    case_request,
    load_golden,
    reference_mismatch,
    teacher_forced_logits,
)
from pipeline.codec import HOP_LENGTH, SAMPLE_RATE, Codec, random_model
from pipeline.engine import EngineConfig, GenerationRequest, SamplingParams, ZonosEngine, capacity
from pipeline.loading import RANDOM_1B6, RANDOM_TINY, from_pretrained
from pipeline.model import FRAME_RATE

TEXTS = Path(__file__).parent / "data" / "gpu_check_texts.json"
FIRST_CHUNK_FRAMES = 16  # pipeline.streaming.CHUNK_FRAMES (not imported here: pipeline.streaming needs PyAV)
COSINE_MIN = 0.99
CODEC_FP32_TOLERANCE = 1e-4  # absolute, fp32 without TF32 (pipeline/codec.py)
CODEC_LOW_PRECISION_TOLERANCE = 1e-2  # relative to the whole decode's peak: fp16, or fp32 with TF32
MEMORY_CAP_BYTES = 8 * 10**9  # "an 8 GB GPU"; the allocator's cap (the CUDA context comes on top)
SAMPLED = SamplingParams(temperature=1.0, min_p=0.05, top_k=50, repetition_penalty=2.0, repetition_penalty_window=4)


@dataclass(frozen=True)
class Settings:
    """What a run does: the full check on CUDA, or the smoke version of every part."""

    device: str
    smoke: bool
    sweep_model: str
    sweep_levels: tuple[int, ...]
    sweep_frames: int
    codec_frames: int
    long_segments: int | None  # None: all of them
    long_max_frames: int | None  # None: each segment's own budget
    memory_cap: int

    @classmethod
    def make(cls, device: str, smoke: bool) -> Settings:
        if smoke:
            return cls(device, True, RANDOM_TINY, (1, 2, 4), 16, 120, 3, 24, 300 * 10**6)
        levels = (1, 2, 4, 8, 16, 32, 64, 128, 256)
        return cls(device, False, RANDOM_1B6, levels, 128, 300, None, None, MEMORY_CAP_BYTES)

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")


def _sync(settings: Settings) -> None:
    if settings.cuda:
        torch.cuda.synchronize()


def _free(settings: Settings) -> None:
    gc.collect()
    if settings.cuda:
        torch.cuda.empty_cache()


def load_texts() -> dict:
    return json.loads(TEXTS.read_text(encoding="utf-8"))


def vocoder(settings: Settings) -> tuple[Codec, str]:
    """The vocoder for timing: the published DAC layout, random weights, fp16 (CUDA); random-tiny in a smoke run."""
    if settings.smoke:
        return Codec.from_pretrained(RANDOM_TINY, device=settings.device), "random-tiny"
    from transformers import DacConfig

    model = random_model(DacConfig(sampling_rate=SAMPLE_RATE)).to(device=settings.device, dtype=torch.float16)
    return Codec(model, max_batch=16), "descript/dac_44khz layout, random weights, float16"


# --------------------------------------------------------------------------- (a) parity


def golden_request(case: dict, **overrides) -> GenerationRequest:
    """A golden case with its phoneme ids given: the engine never calls espeak-ng."""
    return case_request(case, phoneme_ids=case_phoneme_ids(case), **overrides)


def joins_and_leaves(engine: ZonosEngine) -> dict[str, torch.Tensor]:
    """A mixed batch: requests of different lengths join at steps 0, 10 and 30 and leave as they finish."""
    arrivals = {
        0: {"case0": golden_request(CASES[0]), "case3": golden_request(CASES[3]),
            "sampled_a": golden_request(CASES[1], sampling=SAMPLED, seed=7, max_new_tokens=40)},
        10: {"case1": golden_request(CASES[1]), "case2": golden_request(CASES[2])},
        30: {"case5": golden_request(CASES[5]),
             "sampled_b": golden_request(CASES[0], sampling=SAMPLED, seed=8, max_new_tokens=30, cfg_scale=1.0)},
    }  # fmt: skip
    frames: dict[str, list[torch.Tensor]] = {name: [] for joining in arrivals.values() for name in joining}
    step = 0
    while step <= max(arrivals) or engine.has_unfinished():
        for name, request in arrivals.get(step, {}).items():
            engine.add_request(request, name)
        for chunk in engine.step():
            frames[chunk.request_id].append(chunk.frames)
        step += 1
    return {name: torch.cat(chunks, dim=1) for name, chunks in frames.items()}


def check_parity(settings: Settings) -> dict:
    golden = load_golden()
    engine = ZonosEngine.from_pretrained(str(DATA), settings.device, "float32", max_rows=24, max_seq_len=512)
    requests = [golden_request(case) for case in CASES]
    alone = [reference_mismatch(engine.generate([r])[0].codes, golden, i) for i, r in enumerate(requests)]
    batched = [reference_mismatch(r.codes, golden, i) for i, r in enumerate(engine.generate(requests))]
    mismatches = [m for m in alone + batched if m]

    runs = {}
    for graphs in (True, False):
        config = EngineConfig(max_rows=24, max_seq_len=512, cuda_graphs=graphs)
        runs[graphs] = joins_and_leaves(ZonosEngine(engine.model, config))
    differing = [name for name in runs[False] if not torch.equal(runs[True][name], runs[False][name])]
    graphed_golden = [reference_mismatch(runs[True][f"case{i}"], golden, i) for i in (0, 1, 2, 3, 5)]

    # bf16 on every case; fp16 (slow on a CPU) on two in a smoke run, as tests/test_model.py does
    cosines = {}
    for dtype in ("bfloat16", "float16"):
        half = from_pretrained(str(DATA), device=settings.device, dtype=dtype)
        indices = (0, 2) if settings.smoke and dtype == "float16" else range(len(CASES))
        worst = 1.0
        for index in indices:
            full = teacher_forced_logits(engine.model, golden, index)
            low = teacher_forced_logits(half, golden, index)
            finite = torch.isfinite(full)
            if not torch.equal(finite, torch.isfinite(low)):
                worst = float("nan")
                break
            similarity = torch.nn.functional.cosine_similarity(
                full[finite].view(-1, 1025), low[finite].view(-1, 1025), dim=-1
            )
            worst = min(worst, float(similarity.min()))
        cosines[dtype] = worst
    return {
        "checks": {
            "fp32_tokens_match_reference": not mismatches,
            "graphed_equals_eager": not differing,
            "graphed_golden_cases_match_reference": not any(graphed_golden),
            **{f"{dtype}_logits_cosine_gt_{COSINE_MIN}": cosines[dtype] > COSINE_MIN for dtype in cosines},
        },
        "numbers": {
            "fp32_mismatches": mismatches + [m for m in graphed_golden if m],
            "graphs_used": getattr(engine.runner, "graphs", None) is not None,
            "graphed_vs_eager_requests": len(runs[False]),
            "graphed_vs_eager_differing": differing,
            "min_logits_cosine": cosines,
        },
        "line": (
            f"fp32 tokens {'==' if not mismatches else '!='} reference (6 cases alone + batched); graphed "
            f"{'==' if not differing else '!='} eager on {len(runs[False])} requests joining/leaving; min cosine "
            + ", ".join(f"{d} {c:.5f}" for d, c in cosines.items())
        ),
    }


# --------------------------------------------------------------------------- (b) codec


def codec_errors(codes: torch.Tensor, dtype: str, device: str) -> dict:
    """Chunked (16-frame chunks) vs whole decode of `codes` by the random-tiny codec in `dtype`."""
    codec = Codec.from_pretrained(RANDOM_TINY, device=device, dtype=dtype, chunk_frames=16)
    with torch.inference_mode():
        whole = codec.model.decode(audio_codes=codes[None].to(device)).audio_values[0].float().cpu().numpy()
    chunked = codec.decode([codes])[0]
    peak = float(np.abs(whole).max())
    error = float(np.abs(chunked - whole).max())
    return {"max_abs_error": error, "relative_error": error / peak, "peak": peak, "whole": whole}


def check_codec(settings: Settings) -> dict:
    codes = torch.randint(0, 1024, (9, settings.codec_frames), generator=torch.Generator().manual_seed(1))
    flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    results, checks = {}, {}
    try:
        for tf32 in (False, True):
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
            for dtype in ("float32", "float16"):
                name = f"{dtype}_tf32_{'on' if tf32 else 'off'}"
                results[name] = codec_errors(codes, dtype, settings.device)
                exact = dtype == "float32" and not tf32
                ok = results[name]["max_abs_error"] < CODEC_FP32_TOLERANCE if exact else None
                if not exact:
                    ok = results[name]["relative_error"] < CODEC_LOW_PRECISION_TOLERANCE
                checks[f"chunked_equals_whole_{name}"] = bool(ok and np.isfinite(results[name]["whole"]).all())
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags
    reference = results["float32_tf32_off"]["whole"]
    peak = float(np.abs(reference).max())
    for result in results.values():  # how far each whole decode is from fp32 without TF32 (recorded, not checked)
        result["vs_fp32_relative"] = float(np.abs(result.pop("whole") - reference).max()) / peak
    worst_fp16 = max(results[f"float16_tf32_{s}"]["relative_error"] for s in ("off", "on"))
    return {
        "checks": checks,
        "numbers": {"codec": "random-tiny", "frames": settings.codec_frames, "chunk_frames": 16, **results},
        "line": (
            f"random-tiny codec, {settings.codec_frames} frames in 16-frame chunks: fp32 error "
            f"{results['float32_tf32_off']['max_abs_error']:.1e} (TF32 off) / "
            f"{results['float32_tf32_on']['relative_error']:.1e} rel (on); fp16 {worst_fp16:.1e} rel"
        ),
    }


# --------------------------------------------------------------------------- (c) sweep


def time_to_first_audio(engine: ZonosEngine, codec: Codec, phoneme_ids: list[int], settings: Settings) -> dict:
    """One stream on an idle engine: from add_request to the first samples out of the StreamingDecoder,
    fed FIRST_CHUNK_FRAMES frames at a time as the pipeline feeds its vocoder."""
    request = GenerationRequest(text="-", phoneme_ids=phoneme_ids, max_new_tokens=256, seed=0)
    _sync(settings)
    started = time.perf_counter()
    request_id = engine.add_request(request)
    engine.step()  # admission: prefill and the first decode step
    _sync(settings)
    prefill_s = time.perf_counter() - started
    decoder, pending, steps = codec.streaming_decoder(), [], 1
    samples = np.empty(0, np.float32)
    while not len(samples) and engine.has_unfinished():
        for chunk in engine.step():
            pending.append(chunk.frames)
        steps += 1
        if sum(f.shape[1] for f in pending) >= FIRST_CHUNK_FRAMES:
            frames_s = time.perf_counter() - started
            samples = decoder.push(torch.cat(pending, dim=1))
            pending = []
    _sync(settings)
    total = time.perf_counter() - started
    engine.abort(request_id)
    return {"ttfa_s": total, "prefill_s": prefill_s, "frames_s": frames_s, "vocoder_s": total - frames_s,
            "steps": steps, "first_samples": len(samples)}  # fmt: skip


def check_sweep(settings: Settings) -> dict:
    model = from_pretrained(settings.sweep_model, device=settings.device, dtype="bfloat16")
    codec, codec_name = vocoder(settings)
    levels = list(settings.sweep_levels)
    engine = ZonosEngine(model, EngineConfig(max_rows=2 * max(levels), max_seq_len=1024))
    n_phonemes = round(settings.sweep_frames / FRAME_RATE * 15)
    for level in levels:  # warm-up: records every (rows, span) bucket the sweep uses, outside the timing
        short = [workload_request(n_phonemes, seed, 2.0) for seed in range(level)]
        short = [request.model_copy(update={"max_new_tokens": 4}) for request in short]
        timed_generate(engine, [short], settings.device)
    sweep = batch_sweep(engine, levels, settings.sweep_frames, 2.0, settings.device)
    for row in sweep:
        row["concurrency"] = row.pop("batch")
    ids = load_texts()["short"]["segments"][0]["phoneme_ids"]
    time_to_first_audio(engine, codec, ids, settings)  # warm-up
    ttfa = [time_to_first_audio(engine, codec, ids, settings) for _ in range(3)]
    ttfa_median = statistics.median(r["ttfa_s"] for r in ttfa)
    rtf = 1 / sweep[0]["audio_s_per_s"]
    at_128 = next((r["audio_s_per_s"] for r in sweep if r["concurrency"] == 128), None)
    checks = {"all_levels_ran": [r["concurrency"] for r in sweep] == levels and all(r["frames"] > 0 for r in sweep)}
    del engine
    _free(settings)
    numbers = {
        "model": settings.sweep_model, "dtype": dtype_name(model.dtype), "cfg_scale": 2.0,
        "frames_per_request": settings.sweep_frames, "codec_for_ttfa": codec_name, "sweep": sweep,
        "single_stream_rtf": rtf, "ttfa_median_s": ttfa_median, "ttfa_runs": ttfa,
        "audio_s_per_s_at_128": at_128,
        "targets": {"single_stream_rtf": 0.08, "audio_s_per_s_at_128": 500, "ttfa_s": 0.120},
    }  # fmt: skip
    return {
        "checks": checks,
        "numbers": numbers,
        "line": (
            f"{settings.sweep_model} bf16, {levels[0]}..{levels[-1]} guided streams: "
            f"{sweep[-1]['frames_per_s']:.0f} frames/s and {sweep[-1]['audio_s_per_s']:.1f} audio-s/s at "
            f"{levels[-1]} ({sweep[-1]['step_ms']:.2f} ms/step); single-stream RTF {rtf:.3f}; TTFA "
            f"{1000 * ttfa_median:.0f} ms" + (f"; {at_128:.0f} audio-s/s at 128" if at_128 else "")
        ),
        "_model": model,
        "_codec": codec,
    }


# --------------------------------------------------------------------------- (d) long text


def check_long_text(settings: Settings, model=None, codec: Codec | None = None) -> dict:
    text = load_texts()["long"]
    segments = text["segments"][: settings.long_segments]
    cap = settings.long_max_frames or 10**9  # frames per segment
    requests = [
        GenerationRequest(
            text=s["text"], phoneme_ids=s["phoneme_ids"], max_new_tokens=min(s["max_new_tokens"], cap), seed=s["index"]
        )
        for s in segments
    ]
    memory_fraction = capacity.DEFAULT_MEMORY_FRACTION
    if settings.cuda:
        _free(settings)
        total = torch.cuda.get_device_properties(settings.device).total_memory
        torch.cuda.set_per_process_memory_fraction(settings.memory_cap / total, settings.device)
        torch.cuda.reset_peak_memory_stats(settings.device)
    else:  # a fake budget: "auto" may take memory_cap bytes of what MemAvailable says
        memory_fraction = min(1.0, settings.memory_cap / capacity.free_memory("cpu"))
    try:
        model = model or from_pretrained(settings.sweep_model, device=settings.device, dtype="bfloat16")
        codec = codec or vocoder(settings)[0]
        config = EngineConfig(max_rows="auto", memory_fraction=memory_fraction)
        _sync(settings)
        started = time.perf_counter()
        engine = ZonosEngine(model, config)
        results = engine.generate(requests)
        _sync(settings)
        generate_s = time.perf_counter() - started
        audio = codec.decode([r.codes for r in results])
        _sync(settings)
        wall = time.perf_counter() - started
        if settings.cuda:
            peak = torch.cuda.max_memory_allocated(settings.device)
        else:
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # the process's, on Linux
        rows = engine.max_rows
        del engine
    finally:
        if settings.cuda:
            torch.cuda.set_per_process_memory_fraction(1.0, settings.device)
    frames = sum(r.codes.shape[1] for r in results)
    complete = all(
        (r.stop_reason == "eos" or r.codes.shape[1] == q.max_new_tokens) and len(a) == r.codes.shape[1] * HOP_LENGTH
        for r, q, a in zip(results, requests, audio, strict=True)
    )
    checks = {"completes": complete}
    if settings.cuda:
        checks["peak_within_cap"] = peak <= settings.memory_cap
    audio_s = sum(len(a) for a in audio) / SAMPLE_RATE
    numbers = {
        "chars": len(text["text"]) if settings.long_segments is None else sum(len(s["text"]) for s in segments),
        "segments": len(segments), "auto_rows": rows, "memory_cap_bytes": settings.memory_cap,
        "memory_fraction": memory_fraction, "peak_bytes": peak,
        "peak_is": "torch.cuda.max_memory_allocated" if settings.cuda else "process peak RSS (no cap on CPU)",
        "frames": frames, "audio_s": audio_s, "generate_s": generate_s, "wall_s": wall, "rtf": wall / audio_s,
    }  # fmt: skip
    return {
        "checks": checks,
        "numbers": numbers,
        "line": (
            f"{len(segments)} segments ({frames} frames, {audio_s:.0f} s of audio) with max_rows=auto -> {rows} rows "
            f"under {settings.memory_cap / 1e9:.1f} GB: {'completed' if complete else 'INCOMPLETE'} in {wall:.1f} s, "
            f"peak {peak / 1e9:.2f} GB"
        ),
    }


# --------------------------------------------------------------------------- the run


def run_part(name: str, function: Callable[..., dict], *args) -> dict:
    """Run one part; an exception fails it (recorded) and the next part still runs."""
    started = time.perf_counter()
    try:
        result = function(*args)
    except Exception:
        result = {"checks": {"ran": False}, "numbers": {}, "error": traceback.format_exc(), "line": "raised"}
        result["line"] = "ERROR " + result["error"].strip().splitlines()[-1]
    result["seconds"] = time.perf_counter() - started
    result["passed"] = bool(result["checks"]) and all(result["checks"].values())
    verdict = "PASS" if result["passed"] else "FAIL"
    print(f"[{verdict}] {name} ({result['seconds']:.1f} s): {result['line']}", flush=True)
    return result


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = results["parts"]
    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4))
    sweep = parts["c_sweep"]["numbers"].get("sweep", [])
    if sweep:
        levels = [r["concurrency"] for r in sweep]
        left.plot(levels, [r["frames_per_s"] for r in sweep], marker="o")
        left.set_xscale("log", base=2)
        twin = left.twinx()
        twin.plot(levels, [r["step_ms"] for r in sweep], marker="s", color="tab:red")
        twin.set_ylabel("ms / decode step", color="tab:red")
        middle.plot(levels, [r["audio_s_per_s"] for r in sweep], marker="o", color="tab:green")
        middle.set_xscale("log", base=2)
        if not results["smoke"]:
            middle.axhline(500, color="grey", linestyle="--", label="target at 128 streams")
            middle.legend()
    left.set_xlabel("concurrent guided requests")
    left.set_ylabel("frames / s")
    left.set_title(f"(c) {parts['c_sweep']['numbers'].get('model', '')} on {results['device_name']}")
    middle.set_xlabel("concurrent guided requests")
    middle.set_ylabel("audio-seconds / s (LM)")
    middle.set_title("(c) audio-seconds per second")
    names = [n for n in parts if parts[n]["checks"]]
    right.barh(names, [1] * len(names), color=["tab:green" if parts[n]["passed"] else "tab:red" for n in names])
    for i, name in enumerate(names):
        verdict = "PASS" if parts[name]["passed"] else "FAIL"
        right.text(0.02, i, f"{verdict}  {parts[name]['seconds']:.0f} s", va="center")
    long = parts["d_long_text"]["numbers"]
    if "peak_bytes" in long:
        right.set_title(f"(d) peak {long['peak_bytes'] / 1e9:.2f} GB, {long['auto_rows']} auto rows")
    right.set_xticks([])
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def summary_markdown(results: dict) -> str:
    lines = [
        f"# GPU check: {'PASSED' if results['passed'] else 'FAILED'}",
        "",
        f"{results['date']}, {results['device_name']}, torch {results['torch']}, smoke={results['smoke']}, "
        f"`{results['command']}`",
        "",
        "| part | result | seconds | summary |",
        "|---|---|---:|---|",
    ]
    for name, part in results["parts"].items():
        verdict = "pass" if part["passed"] else "**FAIL**"
        lines.append(f"| {name} | {verdict} | {part['seconds']:.1f} | {part['line']} |")
    lines.append("")
    for name, part in results["parts"].items():
        lines.append(f"## {name}")
        lines += [f"- {check}: {'pass' if ok else '**FAIL**'}" for check, ok in part["checks"].items()]
        if "error" in part:
            lines += ["", "```", part["error"].strip(), "```"]
        sweep = part["numbers"].get("sweep")
        if sweep:
            lines += ["", "| streams | frames/s | ms/step | audio-s/s |", "|---:|---:|---:|---:|"]
            lines += [
                f"| {r['concurrency']} | {r['frames_per_s']:.0f} | {r['step_ms']:.2f} | {r['audio_s_per_s']:.1f} |"
                for r in sweep
            ]
        lines.append("")
    return "\n".join(lines)


def make_texts(path: Path = TEXTS) -> dict:
    """Regenerate the shipped phoneme ids (needs espeak-ng and PyAV): a short sentence for time to first
    audio and benchmarks.longtext's seeded 10,000-character text, split by pipeline.segment, each segment
    with the frame budget pipeline.streaming gives it at 15 phonemes/s and duration_budget 1 (random
    weights rarely emit EOS, so each runs to its expected duration + 1 s)."""
    from benchmarks.longtext import long_text
    from pipeline.segment import split_text
    from pipeline.streaming import CHUNK_FRAMES, frame_budget

    assert CHUNK_FRAMES == FIRST_CHUNK_FRAMES

    def entry(text: str) -> dict:
        segments = [
            s.model_dump(include={"index", "text", "start", "end", "phoneme_ids"})
            | {"max_new_tokens": frame_budget(s.n_tokens, 15.0, duration_budget=1.0)}
            for s in split_text(text, "en-us")
        ]
        return {"text": text, "language": "en-us", "segments": segments}

    texts = {
        "made_by": "python -m benchmarks.gpu_check --make-texts (pipeline.segment.split_text, espeak-ng)",
        "short": entry("Hello there, and welcome to the show. It is good to see you again."),
        "long": entry(long_text(10_000, seed=0)),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(texts, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"{path}: short {len(texts['short']['segments'])} segment(s), long {len(texts['long']['text'])} chars in "
          f"{len(texts['long']['segments'])} segments")  # fmt: skip
    return texts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("out") / "gpu_check")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: every code path in under a minute on a CPU")
    parser.add_argument("--make-texts", action="store_true", help=f"regenerate {TEXTS.name} (needs espeak-ng) and exit")
    args = parser.parse_args(argv)
    if args.make_texts:
        make_texts()
        return 0

    settings = Settings.make(args.device, args.smoke)
    started = time.perf_counter()
    parts = {
        "a_parity": run_part("(a) parity", check_parity, settings),
        "b_codec": run_part("(b) codec", check_codec, settings),
        "c_sweep": run_part("(c) sweep", check_sweep, settings),
    }
    model, codec = parts["c_sweep"].pop("_model", None), parts["c_sweep"].pop("_codec", None)
    parts["d_long_text"] = run_part("(d) long text", check_long_text, settings, model, codec)
    cuda_name = torch.cuda.get_device_name(settings.device) if settings.cuda else None
    results = {
        "passed": all(p["passed"] for p in parts.values()),
        "command": "python -m benchmarks.gpu_check " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": time.strftime("%Y-%m-%d %H:%M"), "device": settings.device,
        "device_name": cuda_name or platform.processor() or platform.machine(),
        "torch": torch.__version__, "cuda": torch.version.cuda, "smoke": settings.smoke,
        "settings": asdict(settings), "wall_s": time.perf_counter() - started, "parts": parts,
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (args.out / "summary.md").write_text(summary_markdown(results))
    plot(results, args.out / "gpu_check.png")
    failed = [name for name, part in parts.items() if not part["passed"]]
    print(
        f"gpu_check {settings.device}{' smoke' if settings.smoke else ''}: "
        f"{'all parts passed' if not failed else 'FAILED ' + ', '.join(failed)} in {results['wall_s']:.0f} s "
        f"-> {args.out}/results.json"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
