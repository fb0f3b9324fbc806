"""Speaker encoder: published layout, the reference's embeddings, clip checks and the embedding cache."""

import io
import json
import logging
import threading

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio
from safetensors.torch import load_file

from conftest import DATA
from pipeline.hub import WeightsUnavailableError
from pipeline.speaker import (
    LDA_FILE,
    NETWORK_FILE,
    PUBLISHED_BLOCKS,
    PUBLISHED_CHANNELS,
    InvalidAudioError,
    SpeakerEncoder,
    load_audio,
    network_shape,
)

SMALL = json.loads((DATA / "speaker-small.json").read_text())
RATE = SMALL["wav_sample_rate"]
# The fixture's BatchNorms are close to identity, so 1e-4 cannot tell some layer orders apart
# (BN before ReLU in the attention moves the LDA output by ~5e-5); we match to ~1e-6.
ATOL = 1e-5


@pytest.fixture(scope="module")
def expected():
    return load_file(str(DATA / "speaker-expected.safetensors"))


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory):
    """The small fixture network saved as the published repo saves it: two .pt state dicts."""
    directory = tmp_path_factory.mktemp("speaker-small")
    torch.save(load_file(str(DATA / "speaker-small.safetensors")), directory / NETWORK_FILE)
    torch.save(load_file(str(DATA / "speaker-small-lda.safetensors")), directory / LDA_FILE)
    return directory


@pytest.fixture
def encoder(small_dir):
    return SpeakerEncoder.from_pretrained(str(small_dir))


@pytest.fixture(scope="module")
def clip(expected):
    return expected["wav"][0].numpy()


# ----------------------------------------------------------------------------- layout and loading


def test_published_layout_names_and_shapes():
    layout = json.loads((DATA / "speaker-resnet293.layout.json").read_text())
    encoder = SpeakerEncoder(channels=PUBLISHED_CHANNELS, blocks=PUBLISHED_BLOCKS, device="meta")
    network = {name: list(tensor.shape) for name, tensor in encoder.network.state_dict().items()}
    lda = {name: list(tensor.shape) for name, tensor in encoder.lda.state_dict().items()}
    assert network == layout["tensors"]
    assert lda == layout["lda"]


def test_network_shape_read_from_published_names():
    layout = json.loads((DATA / "speaker-resnet293.layout.json").read_text())
    state = {name: torch.empty(shape, device="meta") for name, shape in layout["tensors"].items()}
    assert network_shape(state) == (PUBLISHED_CHANNELS, PUBLISHED_BLOCKS)


def test_network_shape_rejects_other_state_dicts():
    with pytest.raises(WeightsUnavailableError, match=r"front\.conv1\.weight"):
        network_shape({"weight": torch.zeros(2)})


def test_from_pretrained_infers_the_small_network(encoder):
    assert encoder.network.front.conv1.out_channels == 8
    assert [len(encoder.network.front.get_submodule(f"layer{i}")) for i in range(1, 5)] == [1, 1, 1, 1]


def test_missing_file_names_it(tmp_path, small_dir):
    (tmp_path / NETWORK_FILE).write_bytes((small_dir / NETWORK_FILE).read_bytes())
    with pytest.raises(WeightsUnavailableError, match=LDA_FILE):
        SpeakerEncoder.from_pretrained(str(tmp_path))


def test_random_tiny_warns_and_is_reproducible(caplog, clip):
    rng_state = torch.get_rng_state()
    with caplog.at_level(logging.WARNING, logger="pipeline.speaker"):
        first = SpeakerEncoder.from_pretrained("random-tiny")
    assert "RANDOM" in caplog.text
    assert torch.equal(torch.get_rng_state(), rng_state), "loading must not move the global RNG"
    embedding = first.embed(clip, RATE)
    assert embedding.shape == (128,) and torch.isfinite(embedding).all()
    assert torch.equal(SpeakerEncoder.from_pretrained("random-tiny").embed(clip, RATE), embedding)


# ----------------------------------------------------------------------------- reference embeddings


@pytest.mark.parametrize(("key", "rate"), [("wav", RATE), ("wav_16k", 16000)])
def test_matches_reference(encoder, expected, key, rate):
    wav = expected[key]
    embedding = encoder.embed(wav, rate)
    assert embedding.dtype == torch.float32 and embedding.shape == (128,)
    torch.testing.assert_close(embedding, expected["embedding_lda_128"][0], atol=ATOL, rtol=0)
    torch.testing.assert_close(encoder.embed_256(wav, rate), expected["embedding_256"][0], atol=ATOL, rtol=0)


def test_numpy_and_1d_inputs_match_torch(encoder, expected, clip):
    reference = encoder.embed(expected["wav"], RATE)
    encoder.clear_cache()
    assert torch.equal(encoder.embed(clip, RATE), reference)
    assert torch.equal(encoder.embed(clip.astype(np.float64), RATE), reference)
    torch.testing.assert_close(encoder.embed(expected["wav"].bfloat16(), RATE), reference, atol=2e-3, rtol=0)


@pytest.mark.parametrize("rate", [44100, 48000])
def test_other_rates_are_resampled(encoder, expected, rate):
    wav = torchaudio.functional.resample(expected["wav_16k"], 16000, rate)
    embedding = encoder.embed(wav, rate)
    assert embedding.shape == (128,) and torch.isfinite(embedding).all()
    torch.testing.assert_close(embedding, expected["embedding_lda_128"][0], atol=1e-3, rtol=0)


def test_stereo_is_the_mean_of_its_channels(encoder, clip):
    other = np.roll(clip, 1000) * 0.5
    stereo = encoder.embed(np.stack([clip, other]), RATE)
    torch.testing.assert_close(stereo, encoder.embed((clip + other) / 2, RATE), atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------- files and bytes


def _encoded(clip: np.ndarray, fmt: str, subtype: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, clip, RATE, format=fmt, subtype=subtype)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "subtype", "atol"),
    [("WAV", "FLOAT", ATOL), ("WAV", "PCM_16", ATOL), ("FLAC", "PCM_24", ATOL), ("OGG", "VORBIS", 2e-2)],
)
def test_files_and_bytes_round_trip(encoder, expected, clip, tmp_path, fmt, subtype, atol):
    data = _encoded(clip, fmt, subtype)
    path = tmp_path / f"voice.{fmt.lower()}"
    path.write_bytes(data)
    samples, rate = load_audio(path)
    assert samples.dtype == np.float32 and samples.shape == (1, clip.size) and rate == RATE
    from_path = encoder.embed_file(path)
    assert torch.equal(encoder.embed_file(str(path)), from_path)
    assert torch.equal(encoder.embed_file(data), from_path)
    torch.testing.assert_close(from_path, expected["embedding_lda_128"][0], atol=atol, rtol=0)


def test_stereo_file_is_channels_first(clip):
    stereo = np.stack([clip, -clip], axis=1)  # soundfile's layout: [samples, channels]
    buffer = io.BytesIO()
    sf.write(buffer, stereo, RATE, format="WAV", subtype="FLOAT")
    samples, rate = load_audio(buffer.getvalue())
    assert samples.shape == (2, clip.size) and rate == RATE
    np.testing.assert_array_equal(samples[1], -clip)


# ----------------------------------------------------------------------------- invalid clips


@pytest.mark.parametrize(
    ("wav", "rate", "message"),
    [
        (np.full(6400, 0.1, np.float32), 16000, r"clip is 0\.40 s long; a voice clip needs 1 to 60 s"),
        (np.full(8000 * 61, 0.1, np.float32), 8000, r"clip is 61\.00 s long"),
        (np.zeros(0, np.float32), 16000, r"clip is 0\.00 s long"),
        (np.zeros(16000, np.float32), 16000, "silent"),
        (np.full(16000, 1e-6, np.float32), 16000, "silent"),
        (np.r_[np.full(15999, 0.1), np.nan].astype(np.float32), 16000, "NaN or infinite"),
        (np.r_[np.full(15999, 0.1), np.inf].astype(np.float32), 16000, "NaN or infinite"),
        (np.full((1, 1, 16000), 0.1, np.float32), 16000, "shape"),
        (np.zeros((0, 16000), np.float32), 16000, "shape"),
        (np.full((16000, 2), 0.1, np.float32), 16000, "more channels than samples"),
        (np.full(16000, 1000, np.int16), 16000, "floating point"),
        (np.full(16000, 0.1, np.float32), 0, "positive integer"),
        (np.full(16000, 0.1, np.float32), 16000.0, "positive integer"),
    ],
)
def test_invalid_clips_are_rejected(encoder, wav, rate, message):
    with pytest.raises(InvalidAudioError, match=message):
        encoder.embed(wav, rate)
    assert encoder.cache_info().size == 0


@pytest.mark.parametrize("data", [b"", b"this is not audio at all" * 10, b"RIFF\x00\x00\x00\x00WAVEfmt "])
def test_bytes_that_are_not_audio(encoder, data):
    with pytest.raises(InvalidAudioError, match=r"empty|could not decode"):
        encoder.embed_file(data)


def test_file_that_is_not_audio(encoder, tmp_path):
    path = tmp_path / "voice.wav"
    path.write_text("hello")
    with pytest.raises(InvalidAudioError, match="could not decode"):
        encoder.embed_file(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_audio(tmp_path / "absent.wav")


def test_invalid_audio_error_is_a_value_error():
    assert issubclass(InvalidAudioError, ValueError)


# ----------------------------------------------------------------------------- cache


@pytest.fixture
def forward_calls(encoder, monkeypatch):
    """Counts network forwards, so a test can tell a cache hit from a recomputation."""
    calls = []
    original = encoder.network.forward

    def counting(features):
        calls.append(features.shape)
        return original(features)

    monkeypatch.setattr(encoder.network, "forward", counting)
    return calls


def test_repeated_clip_is_a_cache_hit(encoder, forward_calls, clip):
    first = encoder.embed(clip, RATE)
    second = encoder.embed(clip.copy(), RATE)
    assert torch.equal(first, second)
    assert len(forward_calls) == 1
    info = encoder.cache_info()
    assert (info.hits, info.misses, info.size, info.capacity) == (1, 1, 1, 256)
    assert encoder.embed_256(clip, RATE).shape == (256,) and len(forward_calls) == 1


def test_cached_value_is_not_shared_with_callers(encoder, clip):
    first = encoder.embed(clip, RATE)
    first.zero_()
    assert encoder.embed(clip, RATE).abs().sum() > 0


def test_rate_is_part_of_the_key(encoder, forward_calls, clip):
    encoder.embed(clip, RATE)
    encoder.embed(clip, 16000)
    assert len(forward_calls) == 2 and encoder.cache_info().misses == 2


def test_least_recently_used_is_evicted(small_dir, clip):
    encoder = SpeakerEncoder.from_pretrained(str(small_dir), cache_capacity=2)
    a, b, c = clip, clip * 0.5, clip * 0.25
    encoder.embed(a, RATE)
    encoder.embed(b, RATE)
    encoder.embed(a, RATE)  # a is now the most recent
    encoder.embed(c, RATE)  # evicts b
    assert encoder.cache_info().size == 2
    encoder.embed(a, RATE)
    assert encoder.cache_info().hits == 2
    encoder.embed(b, RATE)
    info = encoder.cache_info()
    assert (info.hits, info.misses, info.size) == (2, 4, 2)


def test_capacity_zero_disables_the_cache(small_dir, clip):
    encoder = SpeakerEncoder.from_pretrained(str(small_dir), cache_capacity=0)
    encoder.embed(clip, RATE)
    encoder.embed(clip, RATE)
    info = encoder.cache_info()
    assert (info.hits, info.misses, info.size) == (0, 2, 0)


def test_concurrent_embeds_agree(encoder, clip):
    clips = [clip, clip * 0.5]
    results: list[tuple[int, torch.Tensor]] = []

    def work(index: int) -> None:
        results.append((index % 2, encoder.embed(clips[index % 2], RATE)))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, embedding in results:
        assert torch.equal(embedding, encoder.embed(clips[index], RATE))
    info = encoder.cache_info()
    assert info.hits + info.misses == 8 + len(results) and info.size == 2
