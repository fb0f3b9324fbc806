"""The benchmarks run and write their outputs (their numbers are not asserted: speed is not a test)."""

import json

from benchmarks import engine


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
