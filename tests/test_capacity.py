"""KV-cache capacity sized from free memory (max_rows="auto"): the byte arithmetic, its edges, the
8 GB goal of issue 11, and an "auto" engine that still generates the reference's tokens."""

import json
import logging
import math

import pytest
import torch
from test_engine import assert_matches_reference

from conftest import CASES, DATA, case_request
from pipeline.engine import EngineConfig, ZonosEngine
from pipeline.engine import capacity as capacity_module
from pipeline.engine.capacity import (
    MAX_AUTO_ROWS,
    bytes_per_row,
    fixed_bytes,
    free_memory,
    kv_bytes_per_row,
    plan_capacity,
    rows_that_fit,
    state_bytes_per_row,
)
from pipeline.engine.delay import cache_positions
from pipeline.loading import RANDOM_1B6, RANDOM_SHAPES, config_json
from pipeline.model import MAX_FRAMES, ZonosConfig, ZonosModel

GIB = 2**30
FIXTURE = ZonosConfig.from_dict(json.loads((DATA / "config.json").read_text()))
PUBLISHED = ZonosConfig.from_dict(config_json(RANDOM_SHAPES[RANDOM_1B6]))

# By hand. Fixture: 4 layers, 2 K/V heads of 64, d_model 256, d_ff 512, float32, max_seq_len 512.
FIXTURE_KV = 4 * 2 * 512 * 2 * 64 * 4  # 2,097,152
FIXTURE_STATE = 9 * 512 * 8 + 8 + 1  # 36,873
FIXTURE_FIXED = 2 * 512 * 32 * 4 + 8192 * (4 * 512 + 4 * 256) * 4  # rope + prefill activations: 100,794,368
# Published 1.6B: 26 layers, 4 K/V heads of 128, d_model 2048, d_ff 8192, bfloat16, max_seq_len 3072.
PUBLISHED_KV = 26 * 2 * 3072 * 4 * 128 * 2  # 163,577,856
PUBLISHED_STATE = 9 * 3072 * 8 + 8 + 1  # 221,193
PUBLISHED_FIXED = 2 * 3072 * 64 * 4 + 8192 * (4 * 8192 + 4 * 2048) * 2  # 672,661,504


def test_bytes_per_row_of_the_fixture_config():
    assert kv_bytes_per_row(FIXTURE, 512, torch.float32) == FIXTURE_KV == 2_097_152
    assert state_bytes_per_row(512) == FIXTURE_STATE
    assert bytes_per_row(FIXTURE, 512, torch.float32) == FIXTURE_KV + FIXTURE_STATE
    assert fixed_bytes(FIXTURE, 512, 8192, torch.float32) == FIXTURE_FIXED == 100_794_368
    assert kv_bytes_per_row(FIXTURE, 512, torch.bfloat16) == FIXTURE_KV // 2


def test_bytes_per_row_of_the_published_config():
    assert kv_bytes_per_row(PUBLISHED, 3072, torch.bfloat16) == PUBLISHED_KV == 163_577_856
    assert bytes_per_row(PUBLISHED, 3072, torch.bfloat16) == PUBLISHED_KV + PUBLISHED_STATE == 163_799_049
    assert fixed_bytes(PUBLISHED, 3072, 8192, torch.bfloat16) == PUBLISHED_FIXED == 672_661_504


def test_bytes_per_row_match_what_the_engine_allocates(engine):
    """The formula against the tensors: KV cache and the runner's per-slot state."""
    fresh = ZonosEngine(engine.model, EngineConfig(max_rows=6, max_seq_len=512))
    runner = fresh.runner
    kv = sum(t.numel() * t.element_size() for t in (runner.cache.k, runner.cache.v))
    state = sum(t.numel() * t.element_size() for t in (runner.delayed, runner.remaining, runner.stopping))
    assert kv == 6 * kv_bytes_per_row(FIXTURE, 512, torch.float32)
    assert state == 6 * state_bytes_per_row(512)
    assert fresh.capacity.total_bytes == kv + state


def test_rows_that_fit_edges():
    row = 1000
    assert rows_that_fit(10_000, row, memory_fraction=0.5) == 5
    assert rows_that_fit(10_999, row, memory_fraction=1.0, fixed=999) == 10  # floor
    assert rows_that_fit(10**15, row) == MAX_AUTO_ROWS  # a huge budget meets the cap
    assert rows_that_fit(10**15, row, cap=64) == 64
    with pytest.raises(ValueError, match=r"1 KV-cache rows fit and a guided request needs 2.*1000 B"):
        rows_that_fit(1999, row, memory_fraction=1.0)
    with pytest.raises(ValueError, match=r"0 KV-cache rows fit.*memory_fraction 0.9"):
        rows_that_fit(10_000, row, memory_fraction=0.9, fixed=20_000)  # fixed costs exceed the budget


def _published_weight_bytes() -> int:
    """The 1.6B model as `from_pretrained` serves it in bfloat16 (prefix conditioner float32), on meta."""
    with torch.device("meta"):
        model = ZonosModel(PUBLISHED)
    model = model.to(torch.bfloat16)
    model.prefix_conditioner.float()
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))


def _mock_cuda(monkeypatch, free: int, total: int, allocated: int, reserved: int, fraction: float = 1.0):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, total))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: allocated)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: reserved)
    monkeypatch.setattr(torch.cuda, "get_per_process_memory_fraction", lambda device=None: fraction)


def test_a_10000_character_text_on_an_8_gb_gpu(monkeypatch):
    """Issue 11's goal by arithmetic: the 1.6B model in bfloat16 on an 8 GiB card, 1 GiB taken by the
    CUDA context, codec and speaker encoder; max_rows="auto" at the defaults (max_seq_len 3072)."""
    weights = _published_weight_bytes()
    assert 3.2e9 < weights < 3.3e9  # 1.62e9 parameters
    free = 8 * GIB - weights - 1 * GIB
    _mock_cuda(monkeypatch, free=free, total=8 * GIB, allocated=weights, reserved=weights)
    config = EngineConfig(max_rows="auto")
    plan = plan_capacity(
        PUBLISHED, torch.bfloat16, "cuda", "auto", config.max_seq_len, config.max_prefill_tokens, config.memory_fraction
    )
    assert plan.free_bytes == free == 4_257_095_680
    assert plan.budget_bytes == int(0.9 * free - PUBLISHED_FIXED) == 3_158_724_608
    assert plan.rows == math.floor(plan.budget_bytes / (PUBLISHED_KV + PUBLISHED_STATE)) == 19
    # Everything fits on the card: weights + cache + fixed costs + the 1 GiB taken elsewhere.
    assert weights + plan.total_bytes + PUBLISHED_FIXED + 1 * GIB < 8 * GIB
    # A 300-token segment (the splitter's limit) with the 30 s frame cap fits one row.
    assert cache_positions(300, n_prefix_frames=0, max_new_tokens=MAX_FRAMES) == 2895 <= config.max_seq_len
    segments_at_once = plan.rows // 2  # guided: 2 rows each
    assert segments_at_once == 9
    assert math.ceil(35 / segments_at_once) == 4  # a 10,000-character text (~35 segments): 4 waves


def test_free_memory_on_cuda_counts_cached_blocks_and_honours_the_process_cap(monkeypatch):
    # PyTorch's allocator holds 100 MB it does not use: the engine may use it.
    _mock_cuda(monkeypatch, free=4_000_000_000, total=8 * GIB, allocated=3_000_000_000, reserved=3_100_000_000)
    assert free_memory("cuda") == 4_100_000_000
    # torch.cuda.set_per_process_memory_fraction caps an H200 at 8 GiB: free is what is left under the cap.
    total = 141_000_000_000
    _mock_cuda(monkeypatch, free=137_000_000_000, total=total, allocated=3_000_000_000, reserved=3_000_000_000,
               fraction=8 * GIB / total)  # fmt: skip
    assert free_memory("cuda") == pytest.approx(8 * GIB - 3_000_000_000, abs=1)


def test_free_memory_on_cpu_reads_mem_available(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:    8000000 kB\n")
    assert capacity_module._mem_available(meminfo) == 8_000_000 * 1024
    with pytest.raises(ValueError, match="set max_rows to a number"):
        capacity_module._mem_available(tmp_path / "missing")
    with pytest.raises(ValueError, match="cuda and cpu only"):
        free_memory("meta")
    assert free_memory("cpu") > 0


def test_a_numbered_max_rows_never_reads_free_memory(engine, monkeypatch):
    def unreachable(device):
        raise AssertionError("free memory read for a fixed max_rows")

    monkeypatch.setattr(capacity_module, "free_memory", unreachable)
    fixed = ZonosEngine(engine.model, EngineConfig(max_rows=10, max_seq_len=512))
    assert fixed.max_rows == fixed.stats().max_rows == fixed.runner.cache.max_rows == 10
    assert not fixed.capacity.auto and EngineConfig().max_rows == 32


def test_auto_engine_gets_the_rows_that_fit_and_the_reference_tokens(engine, golden, monkeypatch, caplog):
    row = FIXTURE_KV + FIXTURE_STATE  # 2,134,025 B
    free = 2 * (FIXTURE_FIXED + 24 * row + row // 2)  # at memory_fraction 0.5: room for 24.5 rows
    monkeypatch.setattr(capacity_module, "free_memory", lambda device: free)
    config = EngineConfig(max_rows="auto", max_seq_len=512, memory_fraction=0.5)
    with caplog.at_level(logging.INFO, logger="pipeline.engine.engine"):
        auto = ZonosEngine(engine.model, config)
    assert auto.max_rows == auto.stats().max_rows == 24
    assert auto.capacity.auto and auto.capacity.free_bytes == free
    assert auto.runner.cache.k.shape[1] == auto.runner.delayed.shape[0] == auto.scheduler.rows.max_rows == 24
    assert "KV cache: 24 rows (12 guided requests) x 512 positions" in caplog.text
    assert "max_rows=auto" in caplog.text
    (result,) = auto.generate([case_request(CASES[0])])
    assert_matches_reference(result.codes, golden, 0)


def test_auto_engine_refuses_a_device_too_small(engine, monkeypatch):
    monkeypatch.setattr(capacity_module, "free_memory", lambda device: FIXTURE_FIXED + 1)
    with pytest.raises(ValueError, match="KV-cache rows fit and a guided request needs 2"):
        ZonosEngine(engine.model, EngineConfig(max_rows="auto", max_seq_len=512))
