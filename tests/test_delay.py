"""The delay-pattern arithmetic against the reference's layout, and the stop rule."""

import torch

from conftest import CASES, reference_delayed
from pipeline.engine import delay
from pipeline.model import EOS_TOKEN, MASK_TOKEN, N_CODEBOOKS


def test_layout_puts_codebook_k_of_frame_t_at_t_plus_k_plus_1(golden):
    index = next(i for i, case in enumerate(CASES) if "audio_prefix" in case)
    prefix = CASES[index]["audio_prefix"]
    layout = delay.delayed_layout(prefix, max_new_tokens=5)
    n_prefix = len(prefix[0])
    assert layout.shape == (N_CODEBOOKS, n_prefix + 5 + N_CODEBOOKS)
    reference = reference_delayed(golden, index)
    for k in range(N_CODEBOOKS):
        assert (layout[k, : k + 1] == MASK_TOKEN).all()  # the ramp
        assert torch.equal(layout[k, k + 1 : k + 1 + n_prefix], reference[k, k + 1 : k + 1 + n_prefix])
        assert (layout[k, k + 1 + n_prefix : k + 1 + n_prefix + 5] == delay.UNKNOWN).all()


def test_the_frame_completed_at_an_offset_is_the_one_whose_codebook_8_it_holds():
    n_prefix, offset = 3, 20
    positions = delay.completed_positions(torch.tensor([offset]), torch.arange(N_CODEBOOKS))[0]
    frame = offset - N_CODEBOOKS  # codebook k of frame t sits at t + k + 1
    assert positions.tolist() == [frame + k + 1 for k in range(N_CODEBOOKS)]
    assert delay.new_frame_index(offset, n_prefix) == frame - n_prefix
    # the last new frame completes one loop step before the reference's last (which the engine skips)
    max_new = 7
    last_offset = delay.first_sampled(n_prefix) + delay.loop_steps(max_new) - 1
    assert delay.new_frame_index(last_offset, n_prefix) == max_new - 1


def test_cache_positions_cover_the_prefill_and_every_fed_position():
    n_ids, n_prefix, max_new = 10, 2, 30
    last_fed = delay.fed_position(delay.first_sampled(n_prefix) + delay.loop_steps(max_new) - 1)
    assert delay.prefill_length(n_ids, n_prefix) == n_ids + 6 + n_prefix + 1
    assert delay.cache_position(delay.conditioning_length(n_ids), last_fed) < delay.cache_positions(
        n_ids, n_prefix, max_new
    )


def test_eos_on_codebook_0_ends_every_codebook_on_the_same_frame():
    tokens = torch.full((1, N_CODEBOOKS), 7)
    tokens[0, 0] = EOS_TOKEN
    remaining, stopping = torch.tensor([100]), torch.tensor([False])
    written = []
    while True:
        out, remaining, stopping = delay.apply_stop_rule(tokens, remaining, stopping)
        written.append(out[0])
        if delay.finished(remaining.numpy())[0]:
            break
        tokens = torch.full((1, N_CODEBOOKS), 7)
    # step j after the EOS writes MASK below codebook j and EOS at it; the last useful step is the 8th
    assert len(written) == N_CODEBOOKS - 1
    for j, row in enumerate(written):
        assert row[:j].eq(MASK_TOKEN).all() and row[j] == EOS_TOKEN and row[j + 1 :].eq(7).all()
