"""How many KV-cache rows fit: `EngineConfig(max_rows="auto")` sized from the device's free memory.

A row holds one sequence of up to S = max_seq_len cache positions: a guided request takes 2 rows
(conditional, unconditional), an unguided one (cfg_scale 1.0) takes 1. `max_rows` counts ROWS,
not requests, whether it is a number or "auto". All sizes are in bytes; b is the model dtype's
element size (2 for bfloat16/float16, 4 for float32); L layers, H_kv K/V heads, D head dim:

    kv_bytes_per_row    = L x 2 (K and V) x S x H_kv x D x b                 (pipeline.model.KVCache)
    state_bytes_per_row = 9 x S x 8  (delayed layout, int64)
                          + S x 9 x 4 (the request's uniforms, fp32)
                          + 8 + 1 + 8 (loop steps left, stopping, offset)
                          + 8 x 4 + 3 x 8 (settings tables)                  (pipeline.engine.step.SlotState:
                          + 9 x S x 8 + 17 (warm-up copy of the mutable part)  one slot per row)
    bytes_per_row       = kv_bytes_per_row + state_bytes_per_row

    fixed_bytes         = rope table, S x 2 x D x 4
                          + codebook tables, 9 x 1026 x d x b + 9 x d x 1025 x b   (pipeline.model.CodebookTables)
                          + one scratch slot, state_bytes_per_row
                          + prefill activation peak, T x (4 d_ff + 4 d_model) x b,
                            T = max(max_prefill_tokens, 2 S)                  (one guided request always fits)
    budget              = memory_fraction x free_bytes - fixed_bytes
    rows                = min(MAX_AUTO_ROWS, floor(budget / bytes_per_row)), refused below MIN_ROWS

free_bytes is read when the engine is built, i.e. after the weights are on the device:
`torch.cuda.mem_get_info` plus the blocks PyTorch's caching allocator holds unused, capped by
`torch.cuda.set_per_process_memory_fraction`; on CPU, MemAvailable of /proc/meminfo. Whatever
memory_fraction leaves (10% by default) is headroom for the allocator's fragmentation, CUDA graph
pools and cuBLAS workspaces. Load models that share the device (codec, speaker encoder) before the
engine, or lower memory_fraction for them.

The activation term is an estimate of a prefill step's peak, the MLP of one layer over T tokens
(fc1's 2 d_ff outputs, the SiLU gate and the product, 2 d_ff more; the residual, its norm, fc2's
output and a spare, 4 d_model). Attention's share is smaller at segment lengths (300 phoneme ids).

The goal "10,000+ characters on an 8 GB GPU" (tests/test_capacity.py checks it): the published
1.6B transformer (26 layers, 4 K/V heads of 128) in bfloat16 takes 3.26 GB of weights, and one row
at S = 2895 (the default: the longest segment, see `longest_segment_positions`) takes 154,152,960 B
of K/V + 521,190 B of slot state = 154.7 MB. On an 8 GiB card with
1 GiB gone to the CUDA context, codec and speaker encoder, 4.26 GB is free after the weights;
0.9 of it less 0.75 GB of fixed costs is a 3.08 GB budget: 19 rows, i.e. 9 guided segments at
once. A 10,000-character text is ~35 such segments: it completes in 4 waves of 9.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.engine.delay import cache_positions
from pipeline.model import HEAD_SIZE, MAX_FRAMES, N_CODEBOOKS, VOCAB_SIZE, ZonosConfig
from pipeline.segment import DEFAULT_MAX_TOKENS

DEFAULT_MEMORY_FRACTION = 0.9
MAX_AUTO_ROWS = 1024  # "auto" never allocates more rows than this
MIN_ROWS = 2  # one guided request
DEFAULT_CPU_ROWS = 32  # max_rows=None off CUDA
GB = 1e9


def kv_bytes_per_row(config: ZonosConfig, max_seq_len: int, dtype: torch.dtype) -> int:
    """K and V of every layer for one row of `max_seq_len` positions: L x 2 x S x H_kv x D x b."""
    return config.n_layer * 2 * max_seq_len * config.n_kv_head * config.head_dim * dtype.itemsize


def state_bytes_per_row(max_seq_len: int) -> int:
    """`SlotState` per slot (delayed layout [9, S] int64, uniforms [S, 9] fp32, loop steps left,
    stopping, offset, 8 float and 3 int settings) and the copy of its mutable part that a CUDA
    graph's warm-up takes."""
    mutable = N_CODEBOOKS * max_seq_len * 8 + 8 + 1 + 8
    return mutable + max_seq_len * N_CODEBOOKS * 4 + 8 * 4 + 3 * 8 + mutable


def bytes_per_row(config: ZonosConfig, max_seq_len: int, dtype: torch.dtype) -> int:
    """Everything the engine allocates per KV-cache row."""
    return kv_bytes_per_row(config, max_seq_len, dtype) + state_bytes_per_row(max_seq_len)


def fixed_bytes(config: ZonosConfig, max_seq_len: int, max_prefill_tokens: int, dtype: torch.dtype) -> int:
    """What the engine costs whatever its rows: the rope table, the stacked codebook tables, the
    scratch slot, and the estimated prefill activation peak."""
    rope = max_seq_len * 2 * config.head_dim * 4
    tables = N_CODEBOOKS * (VOCAB_SIZE + HEAD_SIZE) * config.d_model * dtype.itemsize
    tokens = max(max_prefill_tokens, 2 * max_seq_len)
    activations = tokens * (4 * config.d_ff + 4 * config.d_model) * dtype.itemsize
    return rope + tables + state_bytes_per_row(max_seq_len) + activations


def rows_that_fit(
    free_bytes: int,
    row_bytes: int,
    memory_fraction: float = DEFAULT_MEMORY_FRACTION,
    fixed: int = 0,
    cap: int = MAX_AUTO_ROWS,
) -> int:
    """floor((memory_fraction x free_bytes - fixed) / row_bytes), at most `cap`.

    Raises ValueError, naming the numbers, when fewer than MIN_ROWS (one guided request) fit."""
    budget = memory_fraction * free_bytes - fixed
    rows = max(0, math.floor(budget / row_bytes))
    if rows < MIN_ROWS:
        raise ValueError(
            f"max_rows='auto': {rows} KV-cache rows fit and a guided request needs {MIN_ROWS}: the budget is "
            f"memory_fraction {memory_fraction} x {free_bytes / GB:.3f} GB free - {fixed / GB:.3f} GB fixed "
            f"(prefill activations, rope tables) = {budget / GB:.3f} GB, and one row takes {row_bytes / GB:.4f} GB "
            f"({row_bytes} B); lower max_seq_len or max_prefill_tokens, raise memory_fraction, free device "
            "memory or set max_rows to a number"
        )
    return min(rows, cap)


def free_memory(device: str | torch.device) -> int:
    """Bytes the engine may still allocate on `device` (see the module docstring)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        allocated = torch.cuda.memory_allocated(device)
        free += torch.cuda.memory_reserved(device) - allocated  # cached by PyTorch's allocator, unused
        limit = torch.cuda.get_per_process_memory_fraction(device) * total - allocated
        return int(min(free, limit))
    if device.type == "cpu":
        return _mem_available()
    raise ValueError(f"max_rows='auto' reads free memory on cuda and cpu only, not {device.type}: set max_rows")


def _mem_available(meminfo: Path = Path("/proc/meminfo")) -> int:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    raise ValueError(f"max_rows='auto' cannot read the available memory ({meminfo}): set max_rows to a number")


@dataclass(frozen=True)
class Capacity:
    """The KV cache the engine allocates, and where its row count came from."""

    rows: int  # KV-cache rows (a guided request takes 2)
    max_seq_len: int
    bytes_per_row: int
    auto: bool  # rows were sized from free memory
    free_bytes: int | None = None  # when auto: free memory read at start
    budget_bytes: int | None = None  # when auto: memory_fraction x free - fixed

    @property
    def total_bytes(self) -> int:
        return self.rows * self.bytes_per_row

    def describe(self) -> str:
        text = (
            f"{self.rows} rows ({self.rows // 2} guided requests) x {self.max_seq_len} positions, "
            f"{self.bytes_per_row / 1e6:.1f} MB a row, {self.total_bytes / GB:.2f} GB"
        )
        if self.auto:
            text += f" (max_rows=auto: {self.free_bytes / GB:.2f} GB free, budget {self.budget_bytes / GB:.2f} GB)"
        return text


def longest_segment_positions(max_tokens: int = DEFAULT_MAX_TOKENS, max_frames: int = MAX_FRAMES) -> int:
    """Cache positions of the longest segment the splitter emits (`max_tokens` phoneme ids, by
    default pipeline.segment's 300) with the model's 30 s frame cap: 300 + 6 + 2580 + 9 = 2895.
    EngineConfig.max_seq_len's default: a segment never needs more, and a longer row wastes memory."""
    return cache_positions(max_tokens, n_prefix_frames=0, max_new_tokens=max_frames)


def plan_capacity(
    config: ZonosConfig,
    dtype: torch.dtype,
    device: str | torch.device,
    max_rows: int | str | None,
    max_seq_len: int,
    max_prefill_tokens: int,
    memory_fraction: float = DEFAULT_MEMORY_FRACTION,
) -> Capacity:
    """The rows to allocate: `max_rows` as given, or for "auto" as many as fit (reads free memory);
    None is "auto" on CUDA and DEFAULT_CPU_ROWS elsewhere (RAM is shared with everything else)."""
    row_bytes = bytes_per_row(config, max_seq_len, dtype)
    if max_rows is None:
        max_rows = "auto" if torch.device(device).type == "cuda" else DEFAULT_CPU_ROWS
    if max_rows != "auto":
        return Capacity(int(max_rows), max_seq_len, row_bytes, auto=False)
    free = free_memory(device)
    fixed = fixed_bytes(config, max_seq_len, max_prefill_tokens, dtype)
    rows = rows_that_fit(free, row_bytes, memory_fraction, fixed)
    budget = int(memory_fraction * free - fixed)
    return Capacity(rows, max_seq_len, row_bytes, auto=True, free_bytes=free, budget_bytes=budget)
