"""Speaker encoder: published layout, the reference's embeddings, clip checks and the embedding cache."""

import io
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import av
import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

import pipeline.speaker
from conftest import DATA
from pipeline.audio import encode_audio
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


# ----------------------------------------------------------------------------- any format FFmpeg decodes

SECONDS = 2.0
OPUS_RATE = 48000  # Opus decodes at 48 kHz whatever rate it was recorded at


def chirp(rate: int, channels: int, seconds: float = SECONDS) -> np.ndarray:
    """float32 [channels, samples]: a 200 -> 1400 Hz chirp at half scale, each channel its own phase,
    with noise 34 dB below it, so a decoder that swaps, drops or shifts channels is caught."""
    t = np.arange(round(rate * seconds)) / rate
    noise = np.random.default_rng(channels * rate).standard_normal((channels, t.size))
    phases = np.arange(channels)[:, None] * 1.3
    return (0.5 * np.sin(2 * np.pi * (200 + 300 * t) * t + phases) + 0.01 * noise).astype(np.float32)


def _frame_values(samples: np.ndarray, sample_format: str) -> np.ndarray:
    """float samples [channels, n] -> the array AudioFrame.from_ndarray takes for this sample format."""
    clipped = np.clip(samples, -1, 1).astype(np.float64)
    base = sample_format.removesuffix("p")
    if base == "u8":
        values = np.rint(clipped * 127 + 128).astype(np.uint8)
    elif base == "s16":
        values = np.rint(clipped * 32767).astype(np.int16)
    elif base == "s32":
        values = np.rint(clipped * (2**31 - 1)).astype(np.int32)
    else:
        values = clipped.astype(np.float32 if base == "flt" else np.float64)
    planar = sample_format.endswith("p")
    return np.ascontiguousarray(values if planar else values.T.reshape(1, -1))


def av_encode(samples: np.ndarray, rate: int, muxer: str, codec: str, sample_format: str, **stream_options) -> bytes:
    """Encode float32 [channels, samples] at `rate` Hz with PyAV: one file of `muxer` holding one `codec` stream.

    Opus is encoded at 48 kHz (PyAV resamples), the rate browsers record it at."""
    channels = samples.shape[0]
    layout = {1: "mono", 2: "stereo", 6: "5.1"}[channels]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=muxer) as container:
        stream = container.add_stream(codec, rate=OPUS_RATE if "opus" in codec else rate, layout=layout)
        stream.format = sample_format
        stream.codec_context.options = stream_options
        frame = av.AudioFrame.from_ndarray(_frame_values(samples, sample_format), format=sample_format, layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
        container.mux(stream.encode(frame))  # PyAV cuts it into the encoder's frame size
        container.mux(stream.encode(None))
    return buffer.getvalue()


def aligned_correlation(decoded: np.ndarray, reference: np.ndarray, max_lag: int) -> tuple[float, int]:
    """Pearson correlation of two 1-D signals at the lag (within +-max_lag samples, + when `decoded`
    is late) where their cross-correlation peaks, and that lag."""
    n = min(len(decoded), len(reference))
    a, b = decoded[:n] - decoded[:n].mean(), reference[:n] - reference[:n].mean()
    cross = np.fft.irfft(np.fft.rfft(a, 2 * n) * np.conj(np.fft.rfft(b, 2 * n)), 2 * n)
    lags = np.arange(-max_lag, max_lag + 1)
    lag = int(lags[np.argmax(cross[lags % (2 * n)])])
    a, b = (decoded[lag:n], reference[: n - lag]) if lag >= 0 else (decoded[: n + lag], reference[-lag:n])
    return float(np.corrcoef(a, b)[0, 1]), lag


# name: muxer, codec, sample format handed to the encoder, rate, channels. The lossless ones
# decode to the source's samples (up to quantisation); the lossy ones to a close copy.
LOSSLESS = {
    "wav-s16-mono-8k": ("wav", "pcm_s16le", "s16", 8000, 1),
    "wav-u8-stereo-22k": ("wav", "pcm_u8", "u8", 22050, 2),
    "wav-s24-mono-44k": ("wav", "pcm_s24le", "s32", 44100, 1),  # > 16 bits: WAVE_FORMAT_EXTENSIBLE
    "wav-s32-stereo-48k": ("wav", "pcm_s32le", "s32", 48000, 2),
    "wav-f32-stereo-44k": ("wav", "pcm_f32le", "flt", 44100, 2),
    "wav-f64-mono-16k": ("wav", "pcm_f64le", "dbl", 16000, 1),
    "wav-s16-5.1-48k": ("wav", "pcm_s16le", "s16", 48000, 6),  # a channel mask: WAVE_FORMAT_EXTENSIBLE
    "aiff-s16-stereo-22k": ("aiff", "pcm_s16be", "s16", 22050, 2),
    "aiff-s24-mono-48k": ("aiff", "pcm_s24be", "s32", 48000, 1),
    "flac-s16-mono-8k": ("flac", "flac", "s16", 8000, 1),
    "flac-s16-stereo-44k": ("flac", "flac", "s16", 44100, 2),
}
LOSSY = {
    "mp3-mono-22k": ("mp3", "libmp3lame", "fltp", 22050, 1),
    "mp3-stereo-44k": ("mp3", "libmp3lame", "fltp", 44100, 2),
    "mp3-mono-8k": ("mp3", "libmp3lame", "fltp", 8000, 1),
    "ogg-vorbis-stereo-48k": ("ogg", "vorbis", "fltp", 48000, 2),  # FFmpeg's own encoder: stereo only
    "ogg-opus-mono-48k": ("ogg", "libopus", "flt", 48000, 1),
    "ogg-opus-stereo-22k": ("ogg", "libopus", "flt", 22050, 2),
    "webm-opus-mono-48k": ("webm", "libopus", "flt", 48000, 1),  # Chrome's and Firefox's MediaRecorder
    "webm-opus-stereo-44k": ("webm", "libopus", "flt", 44100, 2),
    "m4a-aac-mono-44k": ("ipod", "aac", "fltp", 44100, 1),  # iPhone voice memos, Safari's MediaRecorder
    "m4a-aac-stereo-48k": ("ipod", "aac", "fltp", 48000, 2),
    "mp4-aac-mono-8k": ("mp4", "aac", "fltp", 8000, 1),
    "mp4-aac-5.1-48k": ("mp4", "aac", "fltp", 48000, 6),
}
# Quantisation of the lossless formats; the u8 scale (x * 127 + 128) is not 1/128's exactly.
LOSSLESS_ATOL = {"u8": 0.012, "s16": 1e-4}


@pytest.fixture(scope="module")
def module_encoder(small_dir):
    return SpeakerEncoder.from_pretrained(str(small_dir))


def _check_decoded(samples, rate, source, source_rate, codec, lossless: bool) -> None:
    channels = source.shape[0]
    expected_rate = OPUS_RATE if "opus" in codec else source_rate
    assert samples.dtype == np.float32 and samples.ndim == 2 and samples.flags.c_contiguous
    assert samples.shape[0] == channels and rate == expected_rate
    reference = source
    if rate != source_rate:
        reference = torchaudio.functional.resample(torch.from_numpy(source), source_rate, rate).numpy()
    if lossless:
        assert samples.shape[1] == source.shape[1]
        return
    # Codecs pad to whole frames (AAC's 1024 samples, Vorbis' blocks) where the container can't trim.
    assert abs(samples.shape[1] / rate - SECONDS) <= 1152 / source_rate + 1e-3, samples.shape[1] / rate
    for channel in range(channels):
        if channels == 6 and channel == 3:
            continue  # 5.1's LFE channel: AAC keeps only what lies below 120 Hz
        correlation, lag = aligned_correlation(samples[channel], reference[channel], max_lag=rate // 100)
        assert correlation > 0.95, (channel, correlation, lag)
        assert abs(lag) <= rate // 1000, lag  # these containers carry the encoder delay: no offset


@pytest.mark.parametrize("case", LOSSLESS)
def test_lossless_formats_decode_to_the_source(module_encoder, case):
    muxer, codec, sample_format, source_rate, channels = LOSSLESS[case]
    source = chirp(source_rate, channels)
    data = av_encode(source, source_rate, muxer, codec, sample_format)
    if case.startswith("wav") and (channels > 2 or "s24" in case):
        assert data[20:22] == b"\xfe\xff", "meant to test WAVE_FORMAT_EXTENSIBLE"
    samples, rate = load_audio(data)
    _check_decoded(samples, rate, source, source_rate, codec, lossless=True)
    base = sample_format.removesuffix("p")
    np.testing.assert_allclose(samples, source, rtol=0, atol=LOSSLESS_ATOL.get(base, 1e-6))
    embedding = module_encoder.embed_file(data)
    assert embedding.shape == (128,) and embedding.dtype == torch.float32 and torch.isfinite(embedding).all()


@pytest.mark.parametrize("case", LOSSY)
def test_lossy_formats_decode_close_to_the_source(module_encoder, case):
    muxer, codec, sample_format, source_rate, channels = LOSSY[case]
    source = chirp(source_rate, channels)
    data = av_encode(
        source, source_rate, muxer, codec, sample_format, **({"strict": "-2"} if codec == "vorbis" else {})
    )
    samples, rate = load_audio(data)
    _check_decoded(samples, rate, source, source_rate, codec, lossless=False)
    embedding = module_encoder.embed_file(data)
    assert embedding.shape == (128,) and embedding.dtype == torch.float32 and torch.isfinite(embedding).all()


@pytest.mark.parametrize(
    ("fmt", "subtype", "rate", "channels"),
    [
        ("WAVEX", "PCM_16", 22050, 1),
        ("WAVEX", "FLOAT", 48000, 2),
        ("OGG", "VORBIS", 22050, 1),
        ("AIFF", "PCM_24", 8000, 2),
    ],
)
def test_libsndfile_files_decode(fmt, subtype, rate, channels):
    """Files written by libsndfile, a different writer from FFmpeg's (mono Vorbis: FFmpeg's encoder can't)."""
    source = chirp(rate, channels)
    buffer = io.BytesIO()
    sf.write(buffer, source.T, rate, format=fmt, subtype=subtype)
    data = buffer.getvalue()
    if fmt == "WAVEX":
        assert data[20:22] == b"\xfe\xff"
    samples, decoded_rate = load_audio(data)
    lossless = subtype != "VORBIS"
    _check_decoded(samples, decoded_rate, source, rate, "", lossless=lossless)
    if lossless:
        np.testing.assert_allclose(samples, source, rtol=0, atol=1e-4)


def test_path_and_bytes_decode_alike(tmp_path):
    data = av_encode(chirp(48000, 1), 48000, "webm", "libopus", "flt")
    path = tmp_path / "clip.webm"
    path.write_bytes(data)
    from_bytes = load_audio(data)
    for source in (path, str(path), bytearray(data), memoryview(data)):
        samples, rate = load_audio(source)
        assert rate == from_bytes[1]
        np.testing.assert_array_equal(samples, from_bytes[0])


def test_audio_beside_video_is_read():
    """A phone's video message: the audio stream is decoded, the video skipped."""
    source = chirp(16000, 1)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        video = container.add_stream("mpeg4", rate=10)
        video.width = video.height = 32
        audio = container.add_stream("aac", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(source, format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 16000, 0, Fraction(1, 16000)
        container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
        for i in range(20):
            picture = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 10 * i, np.uint8), format="rgb24")
            picture.pts = i
            container.mux(video.encode(picture))
        container.mux(video.encode(None))
    samples, rate = load_audio(buffer.getvalue())
    _check_decoded(samples, rate, source, 16000, "aac", lossless=False)


def test_first_audio_stream_is_read():
    first, second = chirp(16000, 1), chirp(44100, 2)[:, ::-1].copy()
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="matroska") as container:
        streams = [
            container.add_stream("pcm_s16le", rate=16000, layout="mono"),
            container.add_stream("pcm_f32le", rate=44100, layout="stereo"),
        ]
        streams[0].format, streams[1].format = "s16", "flt"
        for stream, source, rate, fmt, layout in zip(
            streams, (first, second), (16000, 44100), ("s16", "flt"), ("mono", "stereo"), strict=True
        ):
            frame = av.AudioFrame.from_ndarray(_frame_values(source, fmt), format=fmt, layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
            container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    samples, rate = load_audio(buffer.getvalue())
    assert rate == 16000 and samples.shape == first.shape
    np.testing.assert_allclose(samples, first, rtol=0, atol=1e-4)


def test_truncated_stream_gives_the_audio_before_the_cut():
    source = chirp(22050, 1)
    data = encode_audio(source[0], 22050, "wav")
    cut = 44 + 2 * 30000 + 1  # the canonical header, 30000 samples and one odd byte
    samples, rate = load_audio(data[:cut])
    assert rate == 22050 and samples.shape == (1, 30000)
    np.testing.assert_allclose(samples, source[:, :30000], rtol=0, atol=1e-4)
    mp3 = av_encode(source, 22050, "mp3", "libmp3lame", "fltp")
    samples, rate = load_audio(mp3[: len(mp3) * 2 // 3])
    assert rate == 22050 and 0.5 * SECONDS < samples.shape[1] / rate < 0.8 * SECONDS


def test_clip_longer_than_the_limit_stops_decoding():
    """61 s of tone in FLAC: decoding stops at 60 s and says why."""
    t = np.arange(61 * 8000) / 8000
    data = av_encode((0.3 * np.sin(2 * np.pi * 300 * t))[None].astype(np.float32), 8000, "flac", "flac", "s16")
    with pytest.raises(
        InvalidAudioError, match=r"longer than 60 s \(flac audio in flac\); a voice clip needs 1 to 60 s"
    ):
        load_audio(data)
    with pytest.raises(InvalidAudioError, match=r"longer than 1\.5 s"):
        load_audio(av_encode(chirp(8000, 1), 8000, "wav", "pcm_s16le", "s16"), max_seconds=1.5)


def test_decoded_size_is_bounded(monkeypatch):
    monkeypatch.setattr(pipeline.speaker, "MAX_DECODED_VALUES", 100_000)
    data = av_encode(chirp(48000, 6), 48000, "flac", "flac", "s16")
    with pytest.raises(InvalidAudioError, match=r"6 channels at 48000 Hz pass 100000 samples within 0\.\d s"):
        load_audio(data)


def test_rate_change_part_way_is_refused():
    """Two mp3s end to end (what `cat` makes): FFmpeg decodes both, at different rates."""
    data = av_encode(chirp(22050, 1), 22050, "mp3", "libmp3lame", "fltp")
    data += av_encode(chirp(44100, 2), 44100, "mp3", "libmp3lame", "fltp")
    with pytest.raises(InvalidAudioError, match="changes part way from 1 channel at 22050 Hz to 2 channels"):
        load_audio(data)


def test_concurrent_decodes_agree():
    clips = [
        av_encode(chirp(48000, 1), 48000, "webm", "libopus", "flt"),
        av_encode(chirp(44100, 2), 44100, "ipod", "aac", "fltp"),
        av_encode(chirp(22050, 1), 22050, "mp3", "libmp3lame", "fltp"),
        av_encode(chirp(8000, 2), 8000, "flac", "flac", "s16"),
    ]
    expected = [load_audio(clip) for clip in clips]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(load_audio, clips * 8))
    for index, (samples, rate) in enumerate(results):
        assert rate == expected[index % 4][1]
        np.testing.assert_array_equal(samples, expected[index % 4][0])


def _video_only() -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        video = container.add_stream("mpeg4", rate=10)
        video.width = video.height = 32
        for i in range(5):
            picture = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 50 * i, np.uint8), format="rgb24")
            picture.pts = i
            container.mux(video.encode(picture))
        container.mux(video.encode(None))
    return buffer.getvalue()


NOT_AUDIO = {
    "text": (b"Hello, this is my voice. " * 20, "not audio in any format ffmpeg reads", "'Hello, this is m...'"),
    "json": (b'{"voice": "alice"}', "not audio", '\'{"voice": "alice...\''),
    "html": (b"<!DOCTYPE html><html><body>403</body></html>", "not audio", "'<!DOCTYPE html><...'"),
    "png": (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x02\x00\x00\x00" + bytes(64),
        r"no audio stream \(ffmpeg reads it as piped png sequence holding video \(png\)",
        r"'\x89PNG\x0d\x0a\x1a\x0a",
    ),
    "gif": (b"GIF89a\x10\x00\x10\x00\x80\x00\x00" + bytes(64), r"no audio stream .* video \(gif\)", "'GIF89a"),
    "jpeg": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(200), "no audio stream", r"'\xff\xd8\xff\xe0"),
    "random": (np.random.default_rng(0).bytes(4096), "not audio", r"'_\x82\xc2"),
    "zeros": (bytes(1000), "not audio", r"'\x00\x00"),
    "one byte": (b"R", "not audio", "'R'"),
    "wav header only": (encode_audio(np.zeros(0, np.float32), 16000, "wav"), "no audio could be decoded", "'RIFF"),
    "truncated m4a": (
        av_encode(chirp(16000, 1), 16000, "ipod", "aac", "fltp")[:3000],
        "not audio in any format ffmpeg reads, or is damaged or cut short",
        r"'\x00\x00\x00\x1cftypM4A ",
    ),
    "video only": (_video_only(), r"no audio stream \(ffmpeg reads it as QuickTime / MOV holding video \(mpeg4\)", ""),
}


@pytest.mark.parametrize("case", NOT_AUDIO)
def test_not_audio_says_what_was_read(case, tmp_path):
    data, reason, head = NOT_AUDIO[case]
    for source in (data, tmp_path / "secret-name.m4a"):
        if not isinstance(source, bytes):
            source.write_bytes(data)
        with pytest.raises(InvalidAudioError, match=reason) as caught:
            load_audio(source)
        message = str(caught.value)
        assert message.startswith("could not decode the voice clip")
        assert f"read {len(data)} bytes starting {head}" in message
        assert "secret-name" not in message and str(tmp_path) not in message
        assert "Traceback" not in message and "Errno" not in message


def test_empty_file_is_empty(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    for source in (b"", bytearray(), tmp_path / "empty.wav"):
        with pytest.raises(InvalidAudioError, match=r"the voice clip is empty \(0 bytes\)"):
            load_audio(source)


def test_clip_cannot_open_other_files(tmp_path, monkeypatch):
    """An FFmpeg concat script names other files; a clip is one self-contained file."""
    (tmp_path / "server-side.wav").write_bytes(av_encode(chirp(16000, 1), 16000, "wav", "pcm_s16le", "s16"))
    monkeypatch.chdir(tmp_path)
    for script in (
        b"ffconcat version 1.0\nfile server-side.wav\n",
        b"ffconcat version 1.0\nfile 'file:server-side.wav'\n",
    ):
        with pytest.raises(InvalidAudioError, match="could not decode the voice clip"):
            load_audio(script)


def _valid_clips() -> list[bytes]:
    source = chirp(16000, 1, seconds=0.3)
    return [
        av_encode(source, 16000, "wav", "pcm_s16le", "s16"),
        av_encode(source, 16000, "flac", "flac", "s16"),
        av_encode(source, 16000, "mp3", "libmp3lame", "fltp"),
        av_encode(source, 16000, "webm", "libopus", "flt"),
        av_encode(source, 16000, "ipod", "aac", "fltp"),
    ]


VALID_CLIPS = _valid_clips()


def _decodes_or_refuses(data: bytes) -> None:
    try:
        samples, rate = load_audio(data)
    except InvalidAudioError as exc:
        assert str(exc).startswith(("could not decode the voice clip", "the voice clip")), str(exc)
        assert "Traceback" not in str(exc)
    else:
        assert samples.dtype == np.float32 and samples.ndim == 2 and samples.shape[0] >= 1
        assert isinstance(rate, int) and rate > 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_only_raise_invalid_audio(data):
    _decodes_or_refuses(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(VALID_CLIPS), st.data())
def test_damaged_clips_only_raise_invalid_audio(clip, data):
    """A valid clip with bytes overwritten and cut short: decodes to something or is refused, nothing else."""
    damaged = bytearray(clip)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(damaged) - 1))
        patch = data.draw(st.binary(min_size=1, max_size=16))
        damaged[position : position + len(patch)] = patch
    damaged = damaged[: data.draw(st.integers(1, len(damaged)))]
    _decodes_or_refuses(bytes(damaged))


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
