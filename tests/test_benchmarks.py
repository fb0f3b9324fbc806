"""The benchmarks run and write their outputs (their numbers are not asserted: speed is not a test)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from benchmarks import engine, gpu_check, longtext, serve


def test_engine_benchmark_writes_results_and_plot(tmp_path, capsys):
    argv = ["--batch-sizes", "1,2", "--sweep-frames", "8", "--requests", "3", "--mixed-batch", "2"]
    results = engine.main([*argv, "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["batch_sweep"] == results["batch_sweep"] and [r["batch"] for r in saved["batch_sweep"]] == [1, 2]
    modes = saved["mixed_workload"]
    # the three modes did the same work: the same requests, the same frames
    assert modes["sequential"]["frames"] == modes["static_bucketed"]["frames"] == modes["continuous"]["frames"]
    assert modes["speedup_vs_sequential"]["sequential"] == 1.0
    assert (tmp_path / "engine.png").stat().st_size > 0
    assert "continuous" in capsys.readouterr().out


def test_serve_benchmark_in_process_mode_writes_consistent_stats(tmp_path, capsys):
    """In-process only (no Ray: a session may already run one for test_serve): tiny levels, short texts."""
    argv = ["--modes", "inprocess", "--concurrency", "1,2", "--requests-per-level", "2"]
    threads = torch.get_num_threads()
    results = serve.main([*argv, "--min-chars", "20", "--max-chars", "50", "--out", str(tmp_path)])
    assert torch.get_num_threads() == threads  # it ran on --threads 1 and gave the setting back
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["inprocess"]["levels"] == results["inprocess"]["levels"]
    assert "serve" not in saved and saved["serve_vs_inprocess"] == []
    levels = saved["inprocess"]["levels"]
    assert [level["concurrency"] for level in levels] == [1, 2]
    for level in levels:
        assert level["requests"] == len(level["records"]) == 2 and level["errors"] == 0
        assert level["audio_s"] > 0 and level["audio_s_per_s"] == level["audio_s"] / level["wall_s"]
        assert level["rtf_p50"] <= level["rtf_p95"] and level["ttfa_p50_s"] <= level["ttfa_p95_s"]
        assert all(0 < r["ttfa_s"] <= r["wall_s"] for r in level["records"])
    # seeded requests on the same texts: both levels did exactly the same work
    assert levels[0]["audio_s"] == levels[1]["audio_s"]
    assert (tmp_path / "serve.png").stat().st_size > 0
    assert "audio-s/s" in capsys.readouterr().out


def test_longtext_benchmark_runs_both_modes_in_their_own_processes(tmp_path, capsys):
    results = longtext.main(["--sizes", "150", "--max-rows", "8", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [(r["mode"], r["size"]) for r in saved["runs"]] == [("fast", 150), ("sequential", 150)]
    fast, sequential = saved["runs"]
    assert fast["segments"] == sequential["segments"] >= 2  # the same text, split the same way
    assert 100 < fast["chars"] <= 150 and fast["peak_memory_mb"] > 0
    assert fast["rtf"] == fast["wall_s"] / fast["audio_s"]
    assert results["speedup_fast_vs_sequential"][150] == sequential["wall_s"] / fast["wall_s"]
    assert (tmp_path / "longtext.png").stat().st_size > 0
    assert "fast vs sequential" in capsys.readouterr().out


def test_gpu_check_smoke_runs_every_part_without_ray_pyav_or_espeak(tmp_path):
    """`--device cpu --smoke`: the device check's code paths, in a process that cannot load Ray, PyAV,
    deployments/ or the espeak-ng library (the GPU machine has none of them)."""
    script = (
        "import sys; sys.modules.update(ray=None, av=None, deployments=None); "
        "from benchmarks import gpu_check; sys.exit(gpu_check.main(sys.argv[1:]))"
    )
    env = os.environ | {"PHONEMIZER_ESPEAK_LIBRARY": str(tmp_path / "no-espeak-ng.so")}
    argv = ["--device", "cpu", "--smoke", "--out", str(tmp_path)]
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, "-c", script, *argv], cwd=root, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    saved = json.loads((tmp_path / "results.json").read_text())
    parts = saved["parts"]
    assert saved["passed"] and saved["smoke"] and list(parts) == ["a_parity", "b_codec", "c_sweep", "d_long_text"]
    for name, part in parts.items():
        assert part["passed"] and part["checks"] and part["numbers"] and "error" not in part, name
        assert f"[PASS] ({name[0]})" in run.stdout
    assert all(parts["a_parity"]["checks"].values()) and len(parts["a_parity"]["checks"]) == 5
    assert min(parts["a_parity"]["numbers"]["min_logits_cosine"].values()) > 0.99
    assert len(parts["b_codec"]["checks"]) == 4  # fp32 and fp16, TF32 off and on
    sweep = parts["c_sweep"]["numbers"]
    assert [r["concurrency"] for r in sweep["sweep"]] == [1, 2, 4]
    assert all(r["frames_per_s"] > 0 for r in sweep["sweep"])
    assert sweep["ttfa_median_s"] > 0 and sweep["single_stream_rtf"] > 0
    long = parts["d_long_text"]["numbers"]
    assert long["segments"] == 3 and long["auto_rows"] >= 2 and long["audio_s"] > 0 and long["peak_bytes"] > 0
    assert (tmp_path / "gpu_check.png").stat().st_size > 0
    assert (tmp_path / "summary.md").read_text().startswith("# GPU check: PASSED")


def test_gpu_check_texts_are_what_the_front_end_gives():
    """The shipped phoneme ids are pipeline.segment's (regenerate: python -m benchmarks.gpu_check --make-texts)."""
    from pipeline.segment import split_text
    from pipeline.streaming import CHUNK_FRAMES

    assert gpu_check.FIRST_CHUNK_FRAMES == CHUNK_FRAMES
    texts = gpu_check.load_texts()
    assert len(texts["long"]["text"]) == 10_000 and len(texts["long"]["segments"]) > 30
    short = texts["short"]
    assert [s["phoneme_ids"] for s in short["segments"]] == [s.phoneme_ids for s in split_text(short["text"], "en-us")]
