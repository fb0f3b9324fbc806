"""Joining segments and encoding audio: layout, equal-power fades, and every format decoded back."""

import io
import struct

import av
import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.audio import (
    ATEMPO_STAGE_RANGE,
    FORMATS,
    MEDIA_TYPES,
    AudioFormat,
    SegmentJoiner,
    StreamingEncoder,
    TempoStretcher,
    encode_audio,
    join_segments,
    segment_bounds,
    segment_layout,
    tempo_stages,
)

RATE = 44100
LOSSLESS = ("wav", "flac", "pcm")
# How much longer than the input a lossy file may decode: a streamed mp3 has no LAME gapless
# tag, so the encoder delay (1105 samples) and the padding of the last 1152-sample frame stay;
# ADTS can't carry AAC's 1024 priming samples either. Ogg Opus trims to the exact duration.
EXTRA_S = {"mp3": 0.053, "aac": 0.047, "opus": 0.002}
DEMUXERS = {"wav": "wav", "flac": "flac", "mp3": "mp3", "opus": "ogg", "aac": "aac", "pcm": "s16le"}
STREAMABLE = ("wav", "mp3", "aac", "opus", "pcm")


def signal(seconds: float = 0.5, seed: int = 0) -> np.ndarray:
    """A tone plus noise: exercises the encoders more than silence would."""
    t = np.arange(round(seconds * RATE)) / RATE
    noise = np.random.default_rng(seed).standard_normal(len(t))
    return (0.4 * np.sin(2 * np.pi * 220 * t) + 0.1 * noise).astype(np.float32)


def quantised(samples: np.ndarray) -> np.ndarray:
    """The documented 16-bit quantisation: clip, scale by 32767, round half to even."""
    return np.rint(np.clip(samples, -1, 1) * 32767).astype(np.int16)


def decode_pyav(data: bytes, fmt: str) -> tuple[np.ndarray, int, int]:
    """(samples, rate, channels) as FFmpeg reads them; int16 for 16-bit formats."""
    with av.open(io.BytesIO(data), format=DEMUXERS[fmt]) as container:
        frames = list(container.decode(audio=0))
    samples = np.concatenate([frame.to_ndarray().reshape(-1) for frame in frames])
    return samples, frames[0].sample_rate, frames[0].layout.nb_channels


def decode_soundfile(data: bytes) -> tuple[np.ndarray, int, int]:
    samples, rate = sf.read(io.BytesIO(data), dtype="int16", always_2d=True)
    return samples[:, 0], rate, samples.shape[1]


def decode(data: bytes, fmt: str, streamed: bool) -> tuple[np.ndarray, int, int]:
    """Read `data` the way a client would: numpy for raw pcm, soundfile for wav and flac,
    PyAV for the rest. A streamed flac's STREAMINFO has no length, and python-soundfile's
    reader seeks after each read, which libsndfile can't do there: FFmpeg reads it."""
    if fmt == "pcm":
        return np.frombuffer(data, "<i2"), RATE, 1  # raw: rate and channels are what was asked for
    if fmt == "wav" or (fmt == "flac" and not streamed):
        return decode_soundfile(data)
    return decode_pyav(data, fmt)


def check_decodes(data: bytes, fmt: str, original: np.ndarray, streamed: bool) -> None:
    samples, rate, channels = decode(data, fmt, streamed)
    assert channels == 1
    assert rate == (48000 if fmt == "opus" else RATE)  # Ogg Opus always decodes at 48 kHz
    if fmt in LOSSLESS:
        np.testing.assert_array_equal(samples, quantised(original))
    else:
        extra = len(samples) / rate - len(original) / RATE
        assert -0.001 <= extra <= EXTRA_S[fmt], f"{fmt} decodes {extra * 1000:+.1f} ms off"


def stream(fmt: str, chunks) -> bytes:
    encoder = StreamingEncoder(fmt, RATE)
    return b"".join(encoder.write(chunk) for chunk in chunks) + encoder.close()


# --- formats ---------------------------------------------------------------------------------


def test_formats_and_media_types():
    assert set(FORMATS) == set(MEDIA_TYPES) == {"wav", "flac", "mp3", "opus", "aac", "pcm"}
    assert AudioFormat("opus") == "opus"
    assert MEDIA_TYPES["mp3"] == "audio/mpeg"
    assert MEDIA_TYPES[AudioFormat.OPUS] == "audio/ogg"


@pytest.mark.parametrize("fmt", FORMATS)
def test_whole_file_decodes(fmt):
    audio = signal()
    check_decodes(encode_audio(audio, RATE, fmt), fmt, audio, streamed=False)


@pytest.mark.parametrize("fmt", FORMATS)
def test_stream_decodes(fmt):
    audio = signal()
    check_decodes(stream(fmt, np.array_split(audio, 13)), fmt, audio, streamed=True)


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=4, deadline=None)
@given(cuts=st.lists(st.integers(0, round(0.3 * RATE)), max_size=12))
def test_stream_any_chunking(fmt, cuts):
    audio = signal(0.3)
    check_decodes(stream(fmt, np.split(audio, sorted(cuts))), fmt, audio, streamed=True)


@pytest.mark.parametrize("fmt", STREAMABLE)
def test_stream_emits_audio_before_close(fmt):
    encoder = StreamingEncoder(fmt, RATE)
    early = b"".join(encoder.write(chunk) for chunk in np.array_split(signal(1.0), 10))
    samples, rate, _ = decode_pyav(early, fmt)
    assert len(samples) / rate > 0.5  # of the 1 s written, all but what fills a frame or an Ogg page
    encoder.close()


def test_whole_mp3_is_gapless():
    audio = signal()
    samples, rate, _ = decode_pyav(encode_audio(audio, RATE, "mp3"), "mp3")
    assert abs(len(samples) / rate - len(audio) / RATE) < 0.002  # the LAME tag trims delay and padding


@pytest.mark.parametrize("fmt", FORMATS)
def test_encoding_is_deterministic(fmt):
    audio = signal(0.2)
    assert encode_audio(audio, RATE, fmt) == encode_audio(audio, RATE, fmt)


def test_wav_headers():
    audio = signal(0.2)
    whole = encode_audio(audio, RATE, "wav")
    assert struct.unpack("<I", whole[4:8])[0] == len(whole) - 8
    assert sf.info(io.BytesIO(whole)).frames == len(audio)

    streamed = stream("wav", [audio])
    assert streamed[44:] == whole[44:]  # canonical 44-byte header, then the same data
    assert streamed[4:8] == streamed[40:44] == b"\xff\xff\xff\xff"  # lengths unknown: read to the end
    np.testing.assert_array_equal(decode_soundfile(streamed)[0], quantised(audio))
    np.testing.assert_array_equal(decode_pyav(streamed, "wav")[0], quantised(audio))


def test_encoding_clips_and_quantises():
    audio = np.array([2.0, -3.0, 0.25, 1.0, -1.0], np.float32)
    expected = np.array([32767, -32767, 8192, 32767, -32767], np.int16)
    assert encode_audio(audio, RATE, "pcm") == expected.astype("<i2").tobytes()
    np.testing.assert_array_equal(decode_soundfile(encode_audio(audio, RATE, "wav"))[0], expected)


def test_empty_audio():
    assert encode_audio(np.zeros(0, np.float32), RATE, "pcm") == b""
    for data in (encode_audio(np.zeros(0, np.float32), RATE, "wav"), stream("wav", [])):
        assert sf.info(io.BytesIO(data)).samplerate == RATE
        assert len(decode_soundfile(data)[0]) == 0


def test_other_sample_rates():
    audio = signal(0.2)[::2].copy()  # 22050 Hz
    samples, rate, _ = decode_soundfile(encode_audio(audio, 22050, "flac"))
    assert rate == 22050
    np.testing.assert_array_equal(samples, quantised(audio))
    with pytest.raises(ValueError, match="mp3 can't encode at 44101 Hz"):
        encode_audio(audio, 44101, "mp3")


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (np.array([0.0, np.nan, np.inf], np.float32), "2 non-finite"),
        (np.array([1e300]), "non-finite"),
        (np.zeros((2, 10), np.float32), r"1-D \(mono\), got shape \(2, 10\)"),
        (np.zeros(10, np.int16), "floating point.*int16"),
    ],
)
def test_encode_rejects_bad_samples(samples, message):
    with pytest.raises(ValueError, match=message):
        encode_audio(samples, RATE, "wav")
    encoder = StreamingEncoder("wav", RATE)
    data = encoder.write(np.zeros(10, np.float32))
    with pytest.raises(ValueError, match=message):
        encoder.write(samples)
    data += encoder.write(np.zeros(5, np.float32)) + encoder.close()
    assert len(decode_soundfile(data)[0]) == 15  # a refused chunk leaves the stream as it was


def test_rejects_bad_format_and_rate():
    with pytest.raises(ValueError, match=r"unknown audio format 'ogg'; expected one of wav, flac"):
        encode_audio(signal(0.1), RATE, "ogg")
    with pytest.raises(ValueError, match="unknown audio format"):
        StreamingEncoder("m4a", RATE)
    for rate in (0, -44100, 44100.0, True):
        with pytest.raises(ValueError, match="sample_rate must be a positive integer"):
            encode_audio(signal(0.1), rate, "wav")
        with pytest.raises(ValueError, match="sample_rate must be a positive integer"):
            StreamingEncoder("wav", rate)


def test_stream_close_ends_it():
    encoder = StreamingEncoder("mp3", RATE)
    encoder.write(signal(0.1))
    assert encoder.close()  # the flushed tail
    assert encoder.close() == b""
    with pytest.raises(ValueError, match="after close"):
        encoder.write(signal(0.1))


# --- joining ---------------------------------------------------------------------------------


def test_join_empty_and_single():
    joined = join_segments([])
    assert joined.dtype == np.float32 and joined.shape == (0,)
    np.testing.assert_array_equal(join_segments([signal(0.1)]), signal(0.1))


def test_join_puts_pauses_between_segments():
    a, b, c = signal(0.1, seed=1), signal(0.05, seed=2), signal(0.02, seed=3).astype(np.float64)
    joined = join_segments([a, b, c], sample_rate=RATE, pause_ms=200)
    pause = np.zeros(8820, np.float32)
    np.testing.assert_array_equal(joined, np.concatenate([a, pause, b, pause, c.astype(np.float32)]))
    assert joined.dtype == np.float32
    np.testing.assert_array_equal(join_segments([a, b], pause_ms=0), np.concatenate([a, b]))


def test_join_does_not_clip():
    assert join_segments([np.array([3.0, -2.0], np.float32)]).tolist() == [3.0, -2.0]


def test_crossfade_is_equal_power():
    n, fade = 2000, 441  # 10 ms
    ones, zeros = np.ones(n, np.float32), np.zeros(n, np.float32)
    fading_out = join_segments([ones, zeros], pause_ms=0, crossfade_ms=10)  # the gain on the first
    fading_in = join_segments([zeros, ones], pause_ms=0, crossfade_ms=10)  # the gain on the second
    assert len(fading_out) == 2 * n - fade  # they overlap by the crossfade

    overlap = slice(n - fade, n)
    np.testing.assert_allclose(fading_out[overlap] ** 2 + fading_in[overlap] ** 2, 1.0, atol=1e-6)
    assert np.all(np.diff(fading_out[overlap]) < 0) and np.all(np.diff(fading_in[overlap]) > 0)
    np.testing.assert_allclose(fading_out[overlap], fading_in[overlap][::-1], atol=1e-6)  # mirror images
    assert np.all(fading_out[: n - fade] == 1) and np.all(fading_out[n:] == 0)
    assert np.all(fading_in[: n - fade] == 0) and np.all(fading_in[n:] == 1)


def test_crossfade_keeps_loudness_of_uncorrelated_audio():
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal(40000).astype(np.float32) for _ in range(2))
    joined = join_segments([a, b], pause_ms=0, crossfade_ms=500)  # 22050-sample fade
    overlap = joined[40000 - 22050 : 40000]
    assert np.mean(overlap**2) == pytest.approx(1.0, abs=0.03)


def test_crossfade_with_a_pause_fades_into_and_out_of_silence():
    a, b = np.ones(1000, np.float32), np.full(1000, 0.5, np.float32)
    joined = join_segments([a, b], pause_ms=10, crossfade_ms=2)  # 441-sample pause, 88-sample fades
    assert len(joined) == 1000 + 441 - 88 + 1000
    angles = np.pi / 2 * (np.arange(88) + 0.5) / 88
    np.testing.assert_allclose(joined[912:1000], np.cos(angles), atol=1e-6)
    assert np.all(joined[1000:1353] == 0)  # pause - fade of silence
    np.testing.assert_allclose(joined[1353:1441], 0.5 * np.sin(angles), atol=1e-6)
    assert np.all(joined[:912] == 1) and np.all(joined[1441:] == 0.5)


def test_crossfade_is_clipped_to_half_the_shorter_segment():
    short, long = np.ones(100, np.float32), np.ones(5000, np.float32)
    joined = join_segments([long, short, long], pause_ms=0, crossfade_ms=50)
    assert len(joined) == 5000 + 100 + 5000 - 2 * 50  # 50-sample fades, not 2205
    assert np.all(joined[: 5000 - 50] == 1) and np.all(joined[5000 + 50 :] == 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pause_ms": -1}, "pause_ms must be a finite number >= 0"),
        ({"crossfade_ms": float("nan")}, "crossfade_ms must be a finite number >= 0"),
        ({"sample_rate": 0}, "sample_rate must be a positive integer"),
        ({"segments": [np.zeros(3, np.float32), np.zeros((3, 1), np.float32)]}, r"segment 1 must be 1-D"),
        ({"segments": [np.array([np.nan], np.float32)]}, "segment 0 hold 1 non-finite"),
    ],
)
def test_join_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        join_segments(**({"segments": [np.zeros(3, np.float32)]} | kwargs))


# --- where each segment lies -----------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 3000), min_size=1, max_size=5),
    pause_ms=st.sampled_from([0.0, 1.0, 5.0, 20.0]),
    crossfade_ms=st.sampled_from([0.0, 1.0, 5.0, 30.0]),
)
def test_segment_bounds_are_where_the_samples_lie(lengths, pause_ms, crossfade_ms):
    """Segment i is the constant i + 1 (faded at its ends, never to 0): the joined audio is non-zero
    exactly inside the spans and silent between them; where two segments overlap, the boundary is
    the overlap's midpoint; the last end is the audio's length."""
    segments = [np.full(n, i + 1, np.float32) for i, n in enumerate(lengths)]
    joined = join_segments(segments, RATE, pause_ms, crossfade_ms)
    bounds = segment_bounds(lengths, RATE, pause_ms, crossfade_ms)
    assert bounds[-1][1] == len(joined) and bounds[0][0] == 0
    inside = np.zeros(len(joined), bool)
    for (start, end), (next_start, _) in zip(bounds, [*bounds[1:], (len(joined), None)], strict=True):
        assert 0 <= start <= end <= next_start
        inside[start:end] = True
    np.testing.assert_array_equal(joined != 0, inside)
    starts, _ = segment_layout(lengths, RATE, pause_ms, crossfade_ms)
    for i, ((start, end), first, n) in enumerate(zip(bounds, starts, lengths, strict=True)):
        overlap_after = first + n - starts[i + 1] if i + 1 < len(starts) else 0
        if overlap_after > 0:  # the midpoint of where segment i and i + 1 sound together
            assert end == bounds[i + 1][0] == starts[i + 1] + overlap_after // 2
        else:
            assert end == first + n
        if not crossfade_ms:  # no fades: the span holds the segment's own samples, untouched
            np.testing.assert_array_equal(joined[start:end], segments[i])


@pytest.mark.parametrize("crossfade_ms", [0.0, 5.0])
def test_joiner_bounds_match_segment_bounds(crossfade_ms):
    lengths = [700, 0, 300, 1200]
    joiner = SegmentJoiner(len(lengths), RATE, pause_ms=3, crossfade_ms=crossfade_ms)
    with pytest.raises(ValueError, match="not left"):
        joiner.bounds(0)
    done = []
    for i, n in reversed(list(enumerate(lengths))):  # any order of arrival
        for piece in np.array_split(np.full(n, 0.5, np.float32), 3):
            joiner.add(i, piece)
        done += [index for index, _, finished in joiner.add(i, np.zeros(0, np.float32), True) if finished]
    assert done == [0, 1, 2, 3]
    expected = segment_bounds(lengths, RATE, 3, crossfade_ms)
    assert [joiner.bounds(i) for i in range(4)] == expected


# --- tempo -------------------------------------------------------------------------------------


def stretch(samples: np.ndarray, tempo: float, cuts=()) -> tuple[np.ndarray, int]:
    """The stretched samples pushed in pieces cut at `cuts`, and how many left before flush."""
    stretcher = TempoStretcher(tempo, RATE)
    early = [stretcher.push(piece) for piece in np.split(samples, sorted(cuts))]
    out = np.concatenate([*early, stretcher.flush()])
    assert out.dtype == np.float32 and stretcher.flush().shape == (0,)
    return out, sum(len(piece) for piece in early)


@pytest.mark.parametrize("tempo", [0.25, 0.3, 0.5, 0.8, 1.0, 1.9, 2.0, 2.5, 4.0])
def test_tempo_stages_multiply_to_the_tempo_within_atempos_blending_range(tempo):
    stages = tempo_stages(tempo)
    assert np.prod(stages) == pytest.approx(tempo, rel=1e-12)
    assert all(ATEMPO_STAGE_RANGE[0] <= s <= ATEMPO_STAGE_RANGE[1] for s in stages)
    assert len(stages) == (0 if tempo == 1 else max(1, int(np.ceil(abs(np.log2(tempo)) - 1e-9))))


@settings(max_examples=40, deadline=None)
@given(
    tempo=st.floats(0.25, 4.0),
    n=st.integers(0, 20000),
    cuts=st.lists(st.integers(0, 20000), max_size=12),
    seed=st.integers(0, 3),
)
def test_stretch_any_chunking_gives_the_same_samples_and_exact_length(tempo, n, cuts, seed):
    """Measured: atempo alone is not chunk-invariant (frames of ~200 samples change its output by up
    to 0.4 at the start); regrouped into fixed blocks, any chunking gives identical samples."""
    audio = signal(n / RATE, seed)
    whole, _ = stretch(audio, tempo)
    chunked, _ = stretch(audio, tempo, [c for c in cuts if c <= n])
    np.testing.assert_array_equal(chunked, whole)
    assert len(whole) == round(n / tempo)


@pytest.mark.parametrize("tempo", [0.375, 0.75, 1.5, 2.0, 4.0])
def test_stretch_keeps_the_pitch_and_streams_early(tempo):
    t = np.arange(RATE) / RATE
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out, early = stretch(tone, tempo, range(0, RATE, 8192))  # the vocoder's 16-frame chunks
    assert len(out) == round(RATE / tempo)
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    peak_hz = np.argmax(spectrum) * RATE / len(out)
    assert abs(peak_hz - 440) < 5  # a resampler would move it to 440 * tempo
    assert np.sqrt(np.mean(out[2048:-2048] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)
    assert early >= len(out) - 8192 / tempo - 2 * 4096  # all but about a block and a window before flush


def test_stretch_keeps_the_end_of_the_input():
    """atempo alone drops up to a window at the end; the flushed tail of zeros brings it out."""
    burst = (0.5 * np.sin(2 * np.pi * 440 * np.arange(2205) / RATE)).astype(np.float32)
    audio = np.concatenate([np.zeros(RATE, np.float32), burst])
    for tempo in (0.375, 0.75, 1.5, 3.0):
        out, _ = stretch(audio, tempo)
        tail = out[-round(len(burst) / tempo) :]
        assert np.sqrt(np.mean(tail**2)) > 0.25, tempo


def test_tempo_one_passes_samples_through():
    audio = signal(0.2)
    stretcher = TempoStretcher(1.0)
    np.testing.assert_array_equal(stretcher.push(audio), audio)
    assert stretcher.flush().shape == (0,)


@pytest.mark.parametrize("tempo", [0, -1.0, float("nan"), float("inf"), True])
def test_stretch_rejects_a_bad_tempo(tempo):
    with pytest.raises(ValueError, match="tempo must be a finite number > 0"):
        TempoStretcher(tempo)


def test_stretch_push_after_flush_is_an_error():
    stretcher = TempoStretcher(1.5)
    stretcher.push(signal(0.1))
    stretcher.flush()
    with pytest.raises(ValueError, match="after flush"):
        stretcher.push(signal(0.1))
