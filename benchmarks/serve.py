"""Serve under load: streaming HTTP requests at several concurrencies, against the same work in-process.

    python -m benchmarks.serve --model random-tiny --out out/serve                # starts Ray + the app itself
    python -m benchmarks.serve --url http://127.0.0.1:8000 --modes serve          # an app that is already running
    python -m benchmarks.serve --model zonos-1.6b-random --device cuda            # bf16 LM, fp16 vocoder (auto)

Closed loop per concurrency level: N clients each send a streaming request, read it to its last
byte and send the next, until the level's requests are done. Per request: time to first audio
(TTFA: the first non-empty body chunk), wall time, audio seconds (pcm s16le mono: bytes / 2 /
X-Sample-Rate) and RTF = wall / audio. Per level: audio seconds per wall second, RTF and TTFA
p50/p95, errors.

serve: streaming POSTs to the app, from threads in this process: /v1/tts (the native route,
default) with a seed per request, or /v1/audio/speech (`--endpoint speech`, OpenAI's route, which
takes no seed). Without --url the benchmark starts Ray and the app itself
(deployments.app:build_app, each deployment's defaults) and shuts both down at the end.

inprocess: the same texts at the same concurrencies with no Ray and no HTTP: one process, asyncio
tasks running the very graph code the Ingress runs (pipeline.streaming.stream_audio) with its steps
in this process (pipeline.synthesis.LocalSteps: one AsyncEngine, one vocoder thread) instead of
deployment handles, and pcm bytes from a StreamingEncoder as the HTTP layer makes them. So the
difference between the modes is what Serve (processes, object transfers, @serve.batch, the proxy,
HTTP) costs. Issue 5's target: serve >= 80% of in-process audio-s/s at concurrency 16.

Why seeds: a segment ends on EOS or at its frame budget (2.5x its expected duration plus 1 s).
Random weights draw EOS by chance (random-tiny often cuts a segment short), so unseeded runs of
the same texts differ in length. With the text's index as seed both modes draw the same codes:
the same audio seconds, checked per level in results.json (serve_vs_inprocess). With
`--endpoint speech` in-process runs unseeded too, alike only on average.

Why `--threads 1`: Ray sets OMP_NUM_THREADS=1 in every replica of <= 1 CPU, so in Serve the
Generator and the Vocoder each run torch on one thread, in parallel processes. In-process, the
engine thread and the decoding thread would each use every core (torch's default), contending
for them: on 2 cores that made in-process 40% slower at concurrency 1 than with one thread each.
The load generator shares the machine with the app: on a small CPU its threads take a little
from Serve.
Writes results.json and serve.png to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import itertools
import json
import os
import platform
import random
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import requests
import torch

from benchmarks.common import DTYPE_CHOICES, benchmark_parser, dtype_name
from pipeline.audio import StreamingEncoder
from pipeline.codec import SAMPLE_RATE, Codec
from pipeline.engine import ZonosEngine
from pipeline.engine.capacity import longest_segment_positions
from pipeline.streaming import SynthesisRequest, stream_audio
from pipeline.synthesis import LocalSteps, Synthesizer, default_sources

HEADLINE_CONCURRENCY = 16  # the target is stated at this level
TARGET_RATIO = 0.8

# Plain English sentences of 20-140 characters; a request's text is 1-3 of them.
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella.",
    "Ask her to bring these things with her from the store.",
    "It was a bright cold day in April, and the clocks were striking thirteen.",
    "The train to the coast leaves at half past nine from platform four.",
    "She opened the window and let the cool morning air fill the room.",
    "Nobody expected the meeting to run so late.",
    "We will need more chairs, a longer table and at least two extra lamps before the guests arrive tonight.",
    "Thank you for waiting.",
    "The river had risen overnight, and the old wooden bridge was already under water by the time we reached it.",
    "He read the letter twice before he folded it and put it back in the envelope.",
    "Turn left at the bakery, then walk straight on until you see the blue door.",
    "Rain is expected in the afternoon.",
    "The library closes early on Sundays, so return your books before four.",
    "Every summer the village held a fair with music, games and far too much food for anyone to finish.",
    "I think we should leave now.",
    "Our flight was delayed by two hours because of fog at the airport.",
    "The children built a small boat out of paper and watched it drift slowly down the stream.",
    "Could you speak a little more slowly?",
    "After years of careful work, the team finally published the results, and the reviews were warmer than "
    "anyone had hoped.",
    "The kettle is on.",
    "Mountains rose on either side of the valley, their peaks still white with the last of the winter snow.",
    "Write down the address before you forget it.",
    "The museum has a new exhibition about ancient maps and the sailors who drew them.",
)


def workload_texts(n: int, seed: int, min_chars: int, max_chars: int) -> list[str]:
    """`n` seeded texts of 1-3 sentences, each `min_chars`..`max_chars` long: every mode speaks these."""
    fitting = [s for s in SENTENCES if len(s) <= max_chars]
    if not fitting or max(len(s) for s in fitting) * 3 + 2 < min_chars:
        raise ValueError(f"no text of {min_chars}..{max_chars} characters can be made of the benchmark's sentences")
    rng = random.Random(seed)
    texts: list[str] = []
    for _ in range(100_000):
        if len(texts) == n:
            return texts
        text = " ".join(rng.sample(fitting, rng.randint(1, min(3, len(fitting)))))
        if min_chars <= len(text) <= max_chars:
            texts.append(text)
    raise ValueError(f"could not draw {n} texts of {min_chars}..{max_chars} characters; widen the range")


def default_requests(concurrency: int) -> int:
    """Every client sends at least one request, a level at least four. (2x concurrency would reach a
    steadier state, but on 2 CPU cores concurrency 64 alone would then take ~6 minutes per mode.)"""
    return max(concurrency, 4)


# --------------------------------------------------------------------------- measurements


@dataclass
class RequestRecord:
    index: int
    ok: bool
    ttfa_s: float | None = None
    wall_s: float = 0.0
    audio_s: float = 0.0
    error: str | None = None

    @property
    def rtf(self) -> float:
        return self.wall_s / max(self.audio_s, 1e-9)


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def level_stats(concurrency: int, records: list[RequestRecord], wall_s: float) -> dict:
    """What one level did: throughput over the level's wall time, latencies over its good requests."""
    good = [r for r in records if r.ok]
    audio_s = sum(r.audio_s for r in good)
    rtfs, ttfas = [r.rtf for r in good], [r.ttfa_s for r in good]
    errors = sorted({r.error for r in records if not r.ok})
    return {
        "concurrency": concurrency, "requests": len(records), "errors": len(records) - len(good),
        "error_messages": errors[:5], "wall_s": wall_s, "audio_s": audio_s, "audio_s_per_s": audio_s / wall_s,
        "requests_per_s": len(good) / wall_s,
        "rtf_p50": _percentile(rtfs, 50), "rtf_p95": _percentile(rtfs, 95),
        "ttfa_p50_s": _percentile(ttfas, 50), "ttfa_p95_s": _percentile(ttfas, 95),
        "records": [asdict(r) for r in sorted(records, key=lambda r: r.index)],
    }  # fmt: skip


def _print_level(mode: str, stats: dict) -> None:
    if stats["errors"] == stats["requests"]:
        failed = f"all {stats['requests']} requests failed: {stats['error_messages']}"
        print(f"  {mode:9s} c={stats['concurrency']:3d}: {failed}")
        return
    print(
        f"  {mode:9s} c={stats['concurrency']:3d}: {stats['audio_s_per_s']:6.2f} audio-s/s, "
        f"RTF p50 {stats['rtf_p50']:.3f} p95 {stats['rtf_p95']:.3f}, "
        f"TTFA p50 {stats['ttfa_p50_s']:.3f} s p95 {stats['ttfa_p95_s']:.3f} s, {stats['errors']} errors "
        f"({stats['requests']} requests, {stats['audio_s']:.0f} audio-s in {stats['wall_s']:.1f} s)"
    )


# --------------------------------------------------------------------------- serve: HTTP clients


def _speech_body(endpoint: str, text: str, index: int) -> tuple[str, dict]:
    """Unconditional speaker, speaking rate 15, pcm: the same SynthesisRequest either way, seeded on /v1/tts."""
    if endpoint == "speech":  # OpenAI's route takes no seed; audio streams unless stream_format is "sse"
        return "/v1/audio/speech", {"model": "tts-1", "input": text, "voice": "alloy", "response_format": "pcm"}
    return "/v1/tts", {"text": text, "seed": index, "response_format": "pcm", "stream": True}


def http_request(session: requests.Session, url: str, endpoint: str, text: str, index: int) -> RequestRecord:
    """One streaming request, read to its end; its TTFA, wall time and audio seconds."""
    path, body = _speech_body(endpoint, text, index)
    started = time.perf_counter()
    first, n_bytes = None, 0
    try:
        with session.post(url + path, json=body, stream=True, timeout=(30, 600)) as response:
            if response.status_code != 200:
                return RequestRecord(index, False, error=f"HTTP {response.status_code}: {response.text[:200]}")
            rate = int(response.headers.get("x-sample-rate", SAMPLE_RATE))
            for chunk in response.iter_content(chunk_size=None):
                if chunk and first is None:
                    first = time.perf_counter() - started
                n_bytes += len(chunk)
    except requests.RequestException as exc:
        return RequestRecord(index, False, error=f"{type(exc).__name__}: {exc}"[:300])
    wall = time.perf_counter() - started
    if not n_bytes:
        return RequestRecord(index, False, wall_s=wall, error="no audio")
    return RequestRecord(index, True, first, wall, n_bytes / 2 / rate)


def closed_loop_threads(
    concurrency: int, n_requests: int, work: Callable[[requests.Session, int], RequestRecord]
) -> tuple[list[RequestRecord], float]:
    """`concurrency` threads send requests 0..n-1 back to back; the records and the level's wall time."""
    counter, lock, records = itertools.count(), threading.Lock(), []

    def client() -> None:
        with requests.Session() as session:
            while True:
                with lock:
                    index = next(counter)
                if index >= n_requests:
                    return
                records.append(work(session, index))

    threads = [threading.Thread(target=client, name=f"client-{i}") for i in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return records, time.perf_counter() - started


def wait_ready(url: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if requests.get(f"{url}/readyz", timeout=10).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url}/readyz did not answer 200 within {timeout_s:.0f} s")
        time.sleep(1.0)


def serve_levels(url: str, args: argparse.Namespace, plan: dict[int, int], texts: list[str]) -> dict:
    wait_ready(url)
    warmup = http_request(requests.Session(), url, args.endpoint, texts[0], 0)
    if not warmup.ok:
        raise RuntimeError(f"the warm-up request failed: {warmup.error}")
    levels = []
    for concurrency, n_requests in plan.items():
        records, wall = closed_loop_threads(
            concurrency, n_requests, lambda session, i: http_request(session, url, args.endpoint, texts[i], i)
        )
        levels.append(level_stats(concurrency, records, wall))
        _print_level("serve", levels[-1])
    return {"url": url, "warmup_s": warmup.wall_s, "levels": levels}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def app_args(args: argparse.Namespace, voices_db: str) -> dict:
    """build_app's args for the benchmark's model: the same sources and engine as in-process."""
    return {
        "sources": {"model": args.model, "codec": args.codec, "speaker": args.speaker, "device": args.device,
                    "dtype": args.dtype, "codec_dtype": args.codec_dtype},
        "engine": {"max_rows": args.max_rows, "max_seq_len": args.max_seq_len},
        "voices_db": voices_db,
    }  # fmt: skip


def run_serve(args: argparse.Namespace, plan: dict[int, int], texts: list[str]) -> dict:
    """Against --url, or a local Ray + app started here and always shut down again."""
    if args.url:
        return serve_levels(args.url.rstrip("/"), args, plan, texts)
    import ray
    from ray import serve

    from deployments.app import APP_NAME, build_app

    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False)
        try:
            serve.start(http_options={"host": "127.0.0.1", "port": port})
            started = time.perf_counter()
            serve.run(build_app(app_args(args, str(Path(tmp) / "voices.sqlite3"))), name=APP_NAME, route_prefix="/")
            print(f"  serve: app up in {time.perf_counter() - started:.1f} s on port {port}")
            return serve_levels(f"http://127.0.0.1:{port}", args, plan, texts)
        finally:
            try:
                serve.shutdown()
            finally:
                ray.shutdown()


# --------------------------------------------------------------------------- in-process: the graph without Ray


class InProcessGraph:
    """The Serve graph's own code (pipeline.streaming.stream_audio) with its steps on this process's models."""

    def __init__(self, synthesizer: Synthesizer, seeded: bool = True):
        self.synthesizer, self.seeded = synthesizer, seeded
        self.steps: LocalSteps = synthesizer.steps()

    async def request(self, text: str, index: int) -> RequestRecord:
        """One request measured as the HTTP client measures it: pcm bytes, first non-empty bytes."""
        started = time.perf_counter()
        first, n_bytes = None, 0
        try:
            encoder = StreamingEncoder("pcm", SAMPLE_RATE)
            request = SynthesisRequest(text=text, seed=index if self.seeded else None)
            async for piece in stream_audio(request, self.steps):
                data = encoder.write(piece.samples)
                if data and first is None:
                    first = time.perf_counter() - started
                n_bytes += len(data)
            n_bytes += len(encoder.close())
        except Exception as exc:
            return RequestRecord(index, False, error=f"{type(exc).__name__}: {exc}"[:300])
        wall = time.perf_counter() - started
        if not n_bytes:
            return RequestRecord(index, False, wall_s=wall, error="no audio")
        return RequestRecord(index, True, first, wall, n_bytes / 2 / SAMPLE_RATE)

    async def closed_loop(self, concurrency: int, n_requests: int, texts: list[str]) -> tuple[list, float]:
        indices, records = iter(range(n_requests)), []

        async def client() -> None:
            for index in indices:  # shared by all clients: each index is taken once
                records.append(await self.request(texts[index], index))

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return records, time.perf_counter() - started

    async def aclose(self) -> None:
        await asyncio.to_thread(self.synthesizer.close)


async def run_inprocess(args: argparse.Namespace, plan: dict[int, int], texts: list[str]) -> dict:
    previous_threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return await _inprocess_levels(args, plan, texts)
    finally:
        torch.set_num_threads(previous_threads)  # main() may be called from a test session


async def _inprocess_levels(args: argparse.Namespace, plan: dict[int, int], texts: list[str]) -> dict:
    started = time.perf_counter()
    engine = ZonosEngine.from_pretrained(
        args.model, device=args.device, dtype=args.dtype, max_rows=args.max_rows, max_seq_len=args.max_seq_len
    )
    codec = Codec.from_pretrained(args.codec, device=args.device, dtype=args.codec_dtype)
    graph = InProcessGraph(Synthesizer(engine, codec), seeded=args.endpoint == "tts")
    try:
        load_s = time.perf_counter() - started
        warmup = await graph.request(texts[0], 0)
        if not warmup.ok:
            raise RuntimeError(f"the warm-up request failed: {warmup.error}")
        levels = []
        for concurrency, n_requests in plan.items():
            records, wall = await graph.closed_loop(concurrency, n_requests, texts)
            levels.append(level_stats(concurrency, records, wall))
            _print_level("inprocess", levels[-1])
        return {
            "threads": torch.get_num_threads(), "dtype": dtype_name(engine.model.dtype),
            "codec_dtype": dtype_name(codec.dtype),
            "load_s": load_s, "warmup_s": warmup.wall_s, "levels": levels,
        }  # fmt: skip
    finally:
        await graph.aclose()


# --------------------------------------------------------------------------- report


def compare(results: dict) -> list[dict]:
    """serve / in-process audio-s/s per level (both modes ran it), with each mode's audio seconds:
    equal when the runs were seeded and error-free, i.e. both did the same work."""
    if "serve" not in results or "inprocess" not in results:
        return []
    inprocess = {lv["concurrency"]: lv for lv in results["inprocess"]["levels"]}
    rows = []
    for level in results["serve"]["levels"]:
        other = inprocess.get(level["concurrency"])
        if other and other["audio_s_per_s"] > 0:
            ratio = level["audio_s_per_s"] / other["audio_s_per_s"]
            rows.append({"concurrency": level["concurrency"], "audio_s_per_s_ratio": ratio,
                         "audio_s": {"serve": level["audio_s"], "inprocess": other["audio_s"]}})  # fmt: skip
    return rows


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for mode, color in (("serve", "tab:blue"), ("inprocess", "tab:green")):
        if mode not in results:
            continue
        levels = [lv for lv in results[mode]["levels"] if lv["ttfa_p50_s"] is not None]
        x = [lv["concurrency"] for lv in levels]
        left.plot(x, [lv["audio_s_per_s"] for lv in levels], marker="o", color=color, label=mode)
        right.plot(x, [lv["ttfa_p50_s"] for lv in levels], marker="o", color=color, label=f"{mode} p50")
        right.plot(x, [lv["ttfa_p95_s"] for lv in levels], marker="s", ls="--", color=color, label=f"{mode} p95")
    for ratio in results["serve_vs_inprocess"]:
        serve_level = next(lv for lv in results["serve"]["levels"] if lv["concurrency"] == ratio["concurrency"])
        left.annotate(f"{ratio['audio_s_per_s_ratio']:.0%}", (ratio["concurrency"], serve_level["audio_s_per_s"]),
                      textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)  # fmt: skip
    right.set_yscale("log")  # from tenths of a second when idle to minutes when requests queue for rows
    for axis, label in ((left, "audio seconds / wall second"), (right, "time to first audio (s)")):
        axis.set_xscale("log", base=2)
        axis.set_xticks(results["concurrency"], [str(c) for c in results["concurrency"]])
        axis.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        axis.set_xlabel("concurrent clients")
        axis.set_ylabel(label)
        axis.legend()
    left.set_title(f"{results['model']} on {results['device']}: throughput")
    right.set_title("time to first audio")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def summary(results: dict, out: Path) -> str:
    modes = [m for m in ("serve", "inprocess") if m in results]
    levels = {m: {lv["concurrency"]: lv for lv in results[m]["levels"]} for m in modes}
    common = set.intersection(*(set(lv) for lv in levels.values()))
    c = HEADLINE_CONCURRENCY if HEADLINE_CONCURRENCY in common else max(common)
    rows = {m: levels[m][c] for m in modes}

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    head = f"serve {results['model']} {results['device']}: c={c}"
    if len(modes) == 2:
        ratio = next(r["audio_s_per_s_ratio"] for r in results["serve_vs_inprocess"] if r["concurrency"] == c)
        s, i = rows["serve"], rows["inprocess"]
        return (
            f"{head} serve {s['audio_s_per_s']:.1f} audio-s/s vs in-process {i['audio_s_per_s']:.1f} ({ratio:.0%}), "
            f"TTFA p50 {ms(s['ttfa_p50_s'])} vs {ms(i['ttfa_p50_s'])} s, p95 {ms(s['ttfa_p95_s'])} vs "
            f"{ms(i['ttfa_p95_s'])} s, RTF p50 {ms(s['rtf_p50'])} vs {ms(i['rtf_p50'])}, "
            f"errors {s['errors']}/{i['errors']} -> {out}/results.json"
        )
    (mode,) = modes
    row = rows[mode]
    return (
        f"{head} {mode} {row['audio_s_per_s']:.1f} audio-s/s, TTFA p50 {ms(row['ttfa_p50_s'])} s "
        f"p95 {ms(row['ttfa_p95_s'])} s, RTF p50 {ms(row['rtf_p50'])}, errors {row['errors']} -> {out}/results.json"
    )


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> dict:
    parser = benchmark_parser("serve", __doc__)
    parser.add_argument("--codec", help="codec source (default: random-tiny for random-tiny, else descript/dac_44khz)")
    parser.add_argument("--speaker", help="speaker encoder source for the app's Voices (same default rule)")
    parser.add_argument("--codec-dtype", default="auto", choices=DTYPE_CHOICES, help="auto: float16 on CUDA")
    parser.add_argument("--max-rows", type=int, default=64, help="engine KV-cache rows (a guided segment takes 2)")
    parser.add_argument("--max-seq-len", type=int, default=longest_segment_positions())
    parser.add_argument("--url", help="benchmark this running app instead of starting Ray and the app here")
    parser.add_argument("--modes", default="serve,inprocess")
    endpoints = "tts: /v1/tts, seeded (the work of in-process); speech: /v1/audio/speech, unseeded"
    parser.add_argument("--endpoint", default="tts", choices=["tts", "speech"], help=endpoints)
    parser.add_argument("--concurrency", default="1,4,16,64")
    parser.add_argument("--requests-per-level", type=int, help="default: max(concurrency, 4)")
    parser.add_argument("--min-chars", type=int, default=60)
    parser.add_argument("--max-chars", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0, help="seed of the text draw")
    parser.add_argument("--threads", type=int, default=1, help="in-process torch threads (a replica gets 1); 0: all")
    parser.add_argument("--ray-cpus", type=int, default=8, help="logical CPUs for ray.init (not real cores)")
    args = parser.parse_args(argv)

    asked = {m.strip() for m in args.modes.split(",") if m.strip()}
    if not asked or asked - {"serve", "inprocess"}:
        parser.error(f"--modes takes serve and/or inprocess, got {args.modes!r}")
    modes = [m for m in ("serve", "inprocess") if m in asked]  # serve first: its Ray is gone before in-process
    default_codec, default_speaker = default_sources(args.model)
    args.codec, args.speaker = args.codec or default_codec, args.speaker or default_speaker
    levels = [int(c) for c in args.concurrency.split(",")]
    plan = {c: args.requests_per_level or default_requests(c) for c in levels}
    texts = workload_texts(max(plan.values()), args.seed, args.min_chars, args.max_chars)

    results: dict = {
        "model": args.model, "codec": args.codec, "device": args.device, "dtype": args.dtype,
        "codec_dtype": args.codec_dtype,
        "endpoint": args.endpoint, "url": args.url, "concurrency": levels, "requests_per_level": plan,
        "engine": {"max_rows": args.max_rows, "max_seq_len": args.max_seq_len}, "ray_cpus": args.ray_cpus,
        "texts": {"n": len(texts), "seed": args.seed, "min_chars": args.min_chars, "max_chars": args.max_chars,
                  "mean_chars": sum(map(len, texts)) / len(texts)},
        "torch": torch.__version__, "ray": _version("ray"), "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }  # fmt: skip
    for mode in modes:
        print(f"{mode}:")
        if mode == "serve":
            results["serve"] = run_serve(args, plan, texts)
        else:
            results["inprocess"] = asyncio.run(run_inprocess(args, plan, texts))
    results["serve_vs_inprocess"] = compare(results)
    headline = next((r for r in results["serve_vs_inprocess"] if r["concurrency"] == HEADLINE_CONCURRENCY), None)
    results["target"] = {
        "concurrency": HEADLINE_CONCURRENCY, "min_ratio": TARGET_RATIO,
        "met": None if headline is None else headline["audio_s_per_s_ratio"] >= TARGET_RATIO,
    }  # fmt: skip

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    plot(results, args.out / "serve.png")
    print(summary(results, args.out))
    sys.stdout.flush()
    return results


if __name__ == "__main__":
    main()
