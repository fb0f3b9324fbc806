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
    longest_segment_positions,
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
# Slot state: delayed int64 + uniforms fp32 + loop steps, stopping, offset + settings + the warm-up copy: 92,250
FIXTURE_STATE = 9 * 512 * 8 + 512 * 9 * 4 + 17 + 8 * 4 + 3 * 8 + (9 * 512 * 8 + 17)
FIXTURE_TABLES = 9 * (1026 + 1025) * 256 * 4  # codebook embeddings + heads, stacked: 18,899,712
# rope + codebook tables + scratch slot + prefill activations: 119,919,706
FIXTURE_FIXED = 512 * 2 * 64 * 4 + FIXTURE_TABLES + FIXTURE_STATE + 8192 * (4 * 512 + 4 * 256) * 4
# Published 1.6B: 26 layers, 4 K/V heads of 128, d_model 2048, d_ff 8192, bfloat16, max_seq_len 3072.
PUBLISHED_KV = 26 * 2 * 3072 * 4 * 128 * 2  # 163,577,856
PUBLISHED_STATE = 9 * 3072 * 8 + 3072 * 9 * 4 + 17 + 8 * 4 + 3 * 8 + (9 * 3072 * 8 + 17)  # 553,050
PUBLISHED_TABLES = 9 * (1026 + 1025) * 2048 * 2  # 75,608,064
PUBLISHED_FIXED = 3072 * 2 * 128 * 4 + PUBLISHED_TABLES + PUBLISHED_STATE + 8192 * (4 * 8192 + 4 * 2048) * 2
# ... at the default max_seq_len, the longest segment's 300 + 6 + 2580 + 9 = 2895 positions:
S = 2895
DEFAULT_KV = 26 * 2 * S * 4 * 128 * 2  # 154,152,960
DEFAULT_STATE = 9 * S * 8 + S * 9 * 4 + 17 + 8 * 4 + 3 * 8 + (9 * S * 8 + 17)  # 521,190
DEFAULT_FIXED = S * 2 * 128 * 4 + PUBLISHED_TABLES + DEFAULT_STATE + 8192 * (4 * 8192 + 4 * 2048) * 2


def test_bytes_per_row_of_the_fixture_config():
    assert kv_bytes_per_row(FIXTURE, 512, torch.float32) == FIXTURE_KV == 2_097_152
    assert state_bytes_per_row(512) == FIXTURE_STATE
    assert bytes_per_row(FIXTURE, 512, torch.float32) == FIXTURE_KV + FIXTURE_STATE
    assert fixed_bytes(FIXTURE, 512, 8192, torch.float32) == FIXTURE_FIXED == 119_919_706
    assert kv_bytes_per_row(FIXTURE, 512, torch.bfloat16) == FIXTURE_KV // 2


def test_bytes_per_row_of_the_published_config():
    assert kv_bytes_per_row(PUBLISHED, 3072, torch.bfloat16) == PUBLISHED_KV == 163_577_856
    assert bytes_per_row(PUBLISHED, 3072, torch.bfloat16) == PUBLISHED_KV + PUBLISHED_STATE == 164_130_906
    assert fixed_bytes(PUBLISHED, 3072, 8192, torch.bfloat16) == PUBLISHED_FIXED == 750_395_482


def test_bytes_per_row_match_what_the_engine_allocates(engine):
    """The formula against the tensors: KV cache and the runner's per-slot state."""
    fresh = ZonosEngine(engine.model, EngineConfig(max_rows=6, max_seq_len=512, deterministic=False))
    padded = ZonosEngine(engine.model, EngineConfig(max_rows=6, max_seq_len=512))  # deterministic: rows to 8
    assert padded.runner.cache.max_rows == 8 and padded.scheduler.rows.max_rows == padded.max_rows == 6
    runner = fresh.runner
    slots = runner.slots
    kv = sum(t.numel() * t.element_size() for t in (runner.cache.k, runner.cache.v))
    state = sum(t.numel() * t.element_size() for t in vars(slots).values() if isinstance(t, torch.Tensor))
    warm_up_copy = sum(t.numel() * t.element_size() for t in slots.mutable())
    tables = sum(t.numel() * t.element_size() for t in (runner.tables.embedding, runner.tables.heads))
    assert kv == 6 * kv_bytes_per_row(FIXTURE, 512, torch.float32)
    assert state + warm_up_copy == 7 * state_bytes_per_row(512)  # 6 slots and the scratch slot
    assert tables == FIXTURE_TABLES and runner.cache.rope.numel() * 4 == 512 * 2 * 64 * 4
    assert fresh.capacity.total_bytes == kv + 6 * state_bytes_per_row(512)


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
    assert config.max_seq_len == longest_segment_positions() == S
    assert plan.budget_bytes == int(0.9 * free - DEFAULT_FIXED) == 3_081_203_738
    assert plan.rows == math.floor(plan.budget_bytes / (DEFAULT_KV + DEFAULT_STATE)) == 19
    # Everything fits on the card: weights + cache + fixed costs + the 1 GiB taken elsewhere.
    assert weights + plan.total_bytes + DEFAULT_FIXED + 1 * GIB < 8 * GIB
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
    assert fixed.max_rows == fixed.stats().max_rows == fixed.scheduler.rows.max_rows == 10
    assert not fixed.capacity.auto


def test_max_rows_default_is_auto_on_cuda_and_32_elsewhere(monkeypatch):
    assert EngineConfig().max_rows is None
    cpu = plan_capacity(FIXTURE, torch.float32, "cpu", None, 512, 8192)
    assert cpu.rows == 32 and not cpu.auto
    _mock_cuda(monkeypatch, free=4 * GIB, total=8 * GIB, allocated=0, reserved=0)
    cuda = plan_capacity(FIXTURE, torch.float32, "cuda", None, 512, 8192)
    assert cuda.auto and cuda.rows == rows_that_fit(4 * GIB, FIXTURE_KV + FIXTURE_STATE, 0.9, FIXTURE_FIXED)


def test_auto_engine_gets_the_rows_that_fit_and_the_reference_tokens(engine, golden, monkeypatch, caplog):
    row = FIXTURE_KV + FIXTURE_STATE  # 2,134,025 B
    free = 2 * (FIXTURE_FIXED + 24 * row + row // 2)  # at memory_fraction 0.5: room for 24.5 rows
    monkeypatch.setattr(capacity_module, "free_memory", lambda device: free)
    config = EngineConfig(max_rows="auto", max_seq_len=512, memory_fraction=0.5)
    with caplog.at_level(logging.INFO, logger="pipeline.engine.engine"):
        auto = ZonosEngine(engine.model, config)
    assert auto.max_rows == auto.stats().max_rows == 24
    assert auto.capacity.auto and auto.capacity.free_bytes == free
    assert auto.runner.cache.k.shape[1] == auto.runner.slots.delayed.shape[0] - 1 == auto.scheduler.rows.max_rows == 24
    assert "KV cache: 24 rows (12 guided requests) x 512 positions" in caplog.text
    assert "max_rows=auto" in caplog.text
    (result,) = auto.generate([case_request(CASES[0])])
    assert_matches_reference(result.codes, golden, 0)


def test_auto_engine_refuses_a_device_too_small(engine, monkeypatch):
    monkeypatch.setattr(capacity_module, "free_memory", lambda device: FIXTURE_FIXED + 1)
    with pytest.raises(ValueError, match="KV-cache rows fit and a guided request needs 2"):
        ZonosEngine(engine.model, EngineConfig(max_rows="auto", max_seq_len=512))
