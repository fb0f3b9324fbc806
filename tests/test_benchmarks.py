"""The benchmarks run and write their outputs (their numbers are not asserted: speed is not a test)."""

import json

import torch

from benchmarks import engine, longtext, serve


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
