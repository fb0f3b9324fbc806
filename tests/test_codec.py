"""The DAC codec: windowed and streaming decodes equal the whole-sequence decode, with bounded windows."""

import copy

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from transformers import DacConfig, DacModel
from transformers.models.dac.modeling_dac import DacDecoder

from conftest import warm_hub_cache
from pipeline.codec import (
    HOP_LENGTH,
    PUBLISHED_REPO,
    SAMPLE_RATE,
    Codec,
    StreamingSpans,
    random_model,
    random_tiny_config,
    receptive_field,
)
from pipeline.hub import WeightsUnavailableError

TOLERANCE = 1e-4  # fp32


@pytest.fixture(scope="module")
def tiny() -> Codec:
    return Codec.from_pretrained("random-tiny")


def with_options(codec: Codec, **options) -> Codec:
    """The same weights with other windowing options."""
    return Codec(codec.model, **options)


def random_codes(frames: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 1024, (9, frames), generator=torch.Generator().manual_seed(seed))


@torch.inference_mode()
def whole(codec: Codec, codes: torch.Tensor) -> np.ndarray:
    """The reference: transformers' decode of the whole sequence at once."""
    return codec.model.decode(audio_codes=codes[None]).audio_values[0].numpy()


@pytest.fixture
def decoder_calls(tiny):
    """Shapes [batch, channels, frames] of the calls into the decoder network, appended as they happen."""
    shapes = []
    handle = tiny.model.decoder.register_forward_pre_hook(lambda module, args: shapes.append(tuple(args[0].shape)))
    yield shapes
    handle.remove()


def test_constants():
    assert (SAMPLE_RATE, HOP_LENGTH) == (44100, 512)


def test_random_tiny_warns_and_makes_audible_noise(caplog):
    codec = Codec.from_pretrained("random-tiny")
    assert "RANDOM weights" in caplog.text
    audio = codec.decode([random_codes(50)])[0]
    assert audio.dtype == np.float32 and audio.shape == (50 * HOP_LENGTH,)
    assert audio.std() > 0.01  # loud enough that a 1e-4 tolerance means something


# --------------------------------------------------------------------------- receptive field


def test_published_decoder_receptive_field_is_ten_frames():
    config = DacConfig(sampling_rate=SAMPLE_RATE)  # the defaults are descript/dac_44khz's layout
    assert (config.decoder_hidden_size, list(config.upsampling_ratios), config.hop_length) == (1536, [8, 8, 4, 2], 512)
    with torch.device("meta"):  # layout only, no weights
        decoder = DacDecoder(config)
    assert receptive_field(decoder, HOP_LENGTH) == (10, 10)


def test_width_does_not_change_the_receptive_field(tiny):
    assert receptive_field(tiny.model.decoder, HOP_LENGTH) == (10, 10)
    assert tiny.context_frames == 10


@pytest.mark.parametrize("frame", [3, 30, 56])
def test_receptive_field_measured_by_gradient(tiny, frame):
    """In float64 the gradient of one frame's samples is non-zero exactly on the frames they depend on."""
    model = copy.deepcopy(tiny.model).double()
    latents = model.quantizer.from_codes(random_codes(60)[None])[0].detach().requires_grad_(True)
    audio = model.decoder(latents)[0, 0]
    (gradient,) = torch.autograd.grad(audio[frame * HOP_LENGTH : (frame + 1) * HOP_LENGTH].sum(), latents)
    depends_on = gradient[0].abs().sum(dim=0).nonzero().flatten().tolist()
    assert depends_on == list(range(max(frame - 10, 0), min(frame + 10, 59) + 1))


def test_chunked_decode_needs_the_full_context(tiny):
    codes = random_codes(300, seed=1)
    reference = whole(tiny, codes)
    exact = with_options(tiny, chunk_frames=16).decode([codes])[0]
    assert np.abs(exact - reference).max() < TOLERANCE
    short = with_options(tiny, chunk_frames=16, context_frames=5).decode([codes])[0]
    assert np.abs(short - reference).max() > 10 * TOLERANCE


# --------------------------------------------------------------------------- batched decode


def test_windows_stay_bounded_however_long_the_audio(tiny, decoder_calls):
    codec = with_options(tiny, chunk_frames=16, max_batch=4, deterministic=False)  # batches as grouped, unpadded
    codes = random_codes(1000, seed=2)
    audio = codec.decode([codes])[0]
    calls = list(decoder_calls)
    assert np.abs(audio - whole(tiny, codes)).max() < TOLERANCE
    assert max(frames for _, _, frames in calls) == codec.window_frames == 36
    assert max(batch for batch, _, _ in calls) == 4


def test_rows_of_different_lengths_decode_as_if_alone_in_shared_batches(tiny, decoder_calls):
    codec = with_options(tiny, chunk_frames=16, max_batch=64, deterministic=False)  # batches as grouped, unpadded
    lengths = [1, 2, 2, 15, 36, 37, 50, 123]
    rows = [random_codes(n, seed=i) for i, n in enumerate(lengths)]
    audios = codec.decode(rows)
    calls = list(decoder_calls)
    for row, audio in zip(rows, audios, strict=True):
        assert audio.shape == (row.shape[1] * HOP_LENGTH,)
        assert np.abs(audio - whole(tiny, row)).max() < TOLERANCE
    # one call per length: short rows whole, grouped; the 36-frame row and all windows (36 frames) in one batch
    assert sorted(frames for _, _, frames in calls) == [1, 2, 15, 36]
    assert {frames: batch for batch, _, frames in calls} == {1: 1, 2: 2, 15: 1, 36: 1 + 3 + 4 + 8}


def test_rows_of_any_kind_are_accepted(tiny):
    codes = random_codes(20)
    reference = whole(tiny, codes)
    for row in (codes.numpy(), codes.int(), codes.numpy().astype(np.int16)):
        assert np.abs(tiny.decode([row])[0] - reference).max() < TOLERANCE
    assert tiny.decode([]) == []


@pytest.mark.parametrize(
    ("codes", "message"),
    [
        (torch.zeros(9, 0, dtype=torch.long), r"\[9, T\] with T >= 1"),
        (torch.zeros(8, 5, dtype=torch.long), r"\[9, T\]"),
        (torch.zeros(9, dtype=torch.long), r"\[9, T\]"),
        (torch.zeros(1, 9, 5, dtype=torch.long), r"\[9, T\]"),
        (torch.zeros(9, 5), "integer"),
        (torch.full((9, 5), 1024), r"outside 0\.\.1023"),
        (torch.full((9, 5), -1), r"outside 0\.\.1023"),
    ],
)
def test_decode_rejects_bad_codes(tiny, codes, message):
    with pytest.raises(ValueError, match=message):
        tiny.decode([random_codes(4), codes])


# --------------------------------------------------------------------------- streaming


@st.composite
def streams(draw):
    """A sequence length and cut points: repeated cuts give empty pushes, adjacent ones single frames."""
    frames = draw(st.integers(1, 90))
    cuts = sorted(draw(st.lists(st.integers(0, frames), max_size=12)))
    return frames, cuts, draw(st.integers(0, 2**16))


@settings(max_examples=30, deadline=None)
@given(streams())
@example((25, list(range(26)), 0))  # one frame per push, an empty one first
@example((90, [0, 0, 80], 1))  # a push much longer than a window
def test_streaming_equals_the_whole_decode_for_any_split(tiny, stream):
    frames, cuts, seed = stream
    codec = with_options(tiny, chunk_frames=8)
    codes = random_codes(frames, seed)
    decoder = codec.streaming_decoder()
    pieces = []
    for start, end in zip([0, *cuts], [*cuts, frames], strict=True):
        pieces.append(decoder.push(codes[:, start:end]))
        # exactly the frames with context_frames of right context are final
        assert sum(map(len, pieces)) == max(0, end - codec.context_frames) * HOP_LENGTH
        assert decoder.buffered_frames <= 2 * codec.context_frames
    pieces.append(decoder.flush())
    assert all(piece.dtype == np.float32 for piece in pieces)
    assert np.abs(np.concatenate(pieces) - whole(tiny, codes)).max() < TOLERANCE


def test_a_last_push_gives_in_one_span_what_a_push_and_a_flush_give(tiny):
    codes = random_codes(30)
    at_once, in_two = (StreamingSpans(tiny.context_frames, tiny.n_codebooks) for _ in range(2))
    assert at_once.push(codes[:, :20])[1:] == in_two.push(codes[:, :20])[1:]
    last = at_once.push(codes[:, 20:], last=True)
    decoded_last, *decoded_two = tiny.decode_spans([last, in_two.push(codes[:, 20:]), in_two.flush()])
    assert np.abs(decoded_last - np.concatenate(decoded_two)).max() < TOLERANCE
    with pytest.raises(RuntimeError, match="after flush"):
        at_once.push(codes[:, :1])


def test_stream_ends_at_flush(tiny):
    decoder = tiny.streaming_decoder()
    assert decoder.flush().shape == (0,)
    with pytest.raises(RuntimeError, match="after flush"):
        decoder.push(random_codes(3))
    with pytest.raises(ValueError, match="outside"):
        tiny.streaming_decoder().push(torch.full((9, 2), 1025))


# --------------------------------------------------------------------------- encode


def test_encode_shape_range_and_round_trip_length(tiny):
    samples = 3 * HOP_LENGTH + 7
    wav = 0.1 * torch.randn(samples, generator=torch.Generator().manual_seed(0))
    codes = tiny.encode(wav, SAMPLE_RATE)
    assert codes.dtype == torch.long and codes.shape == (9, 4)
    assert int(codes.min()) >= 0 and int(codes.max()) <= 1023
    assert tiny.decode([codes])[0].shape == (4 * HOP_LENGTH,)


def test_encode_mixes_channels_and_resamples(tiny):
    wav = 0.1 * np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    stereo = np.stack([wav, wav])
    assert torch.equal(tiny.encode(stereo, 16000), tiny.encode(wav, 16000))
    resampled = -(-16000 * SAMPLE_RATE // 16000)  # 44100 samples
    assert tiny.encode(wav, 16000).shape == (9, -(-resampled // HOP_LENGTH))


@pytest.mark.parametrize(
    "wav", [np.zeros(0, np.float32), np.zeros((1, 2, 3), np.float32), np.zeros(600, np.int16)], ids=str
)
def test_encode_rejects_bad_audio(tiny, wav):
    with pytest.raises(ValueError, match="wav must be"):
        tiny.encode(wav, SAMPLE_RATE)


# --------------------------------------------------------------------------- loading


def test_local_directory_loads_the_same_codec(tiny, tmp_path):
    tiny.model.save_pretrained(tmp_path)
    loaded = Codec.from_pretrained(str(tmp_path))
    codes = random_codes(30)
    assert np.array_equal(loaded.decode([codes])[0], tiny.decode([codes])[0])


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="neither a directory nor"):
        Codec.from_pretrained(str(tmp_path / "missing"))
    with pytest.raises(WeightsUnavailableError, match=r"model\.safetensors"):
        Codec.from_pretrained(str(tmp_path))  # exists, but empty


def test_unreachable_repo_names_the_repo_and_the_local_directory_way(offline_hub):
    with pytest.raises(WeightsUnavailableError) as error:
        Codec.from_pretrained(PUBLISHED_REPO)
    assert PUBLISHED_REPO in str(error.value) and "local directory" in str(error.value)


def test_repo_id_loads_from_a_warm_cache_offline(offline_hub, tiny, tmp_path):
    tiny.model.save_pretrained(tmp_path / "saved")
    warm_hub_cache(offline_hub, PUBLISHED_REPO, tmp_path / "saved")
    loaded = Codec.from_pretrained(PUBLISHED_REPO)
    assert all(torch.equal(a, b) for a, b in zip(loaded.model.parameters(), tiny.model.parameters(), strict=True))


def test_only_the_44khz_codec_is_accepted():
    with pytest.raises(ValueError, match="44100 Hz"):
        Codec(random_model(DacConfig(encoder_hidden_size=8, decoder_hidden_size=64)))  # 16 kHz


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])  # float16: the chunked vocoder on CUDA
def test_half_precision_chunked_decode_is_close_to_float32(tiny, dtype):
    codes = random_codes(40)
    half = Codec(random_model(random_tiny_config()).to(dtype=dtype), chunk_frames=16)
    audio = half.decode([codes])[0]
    assert audio.dtype == np.float32 and half.dtype == dtype
    assert np.abs(audio - whole(tiny, codes)).max() < 0.1


def test_unknown_dtype():
    with pytest.raises(ValueError, match="float64"):
        Codec.from_pretrained("random-tiny", dtype="float64")


def test_random_model_is_seeded():
    a, b = random_model(random_tiny_config()), random_model(random_tiny_config())
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    assert isinstance(a, DacModel)


def test_a_spans_samples_do_not_depend_on_what_shares_its_decode_batch():
    """Issue 12: the Vocoder batches windows of several requests; with deterministic decoding (the
    default on CPU) a span decodes to the same samples alone and among 1-12 others. Without it,
    oneDNN's batch-size-dependent kernels change a batch row's last bits (the check below shows it)."""
    torch.manual_seed(3)
    strict = Codec.from_pretrained("random-tiny")
    loose = with_options(strict, deterministic=False)
    spans = [(torch.randint(0, 1024, (9, 40)), 0, 40) for _ in range(13)]
    for codec, must_match in ((strict, True), (loose, False)):
        alone = codec.decode_spans(spans[:1])[0]
        matches = [np.array_equal(codec.decode_spans(spans[: n + 1])[0], alone) for n in (1, 2, 3, 6, 12)]
        assert all(matches) if must_match else not all(matches)
