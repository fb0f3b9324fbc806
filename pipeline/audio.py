"""Generated segments to one waveform, and that waveform to the bytes of an HTTP response.

Audio here is mono float32 at nominally [-1, 1]. Joining never clips (a later gain stage may
still want the headroom); encoding clips, because every format below stores bounded samples.

Every container and codec is FFmpeg's, through PyAV, so the files are what players expect:

| format | container / codec          | decodes to           | when streamed                                       |
|--------|----------------------------|----------------------|-----------------------------------------------------|
| wav    | RIFF WAVE, 16-bit PCM      | input rate, exact    | RIFF and data sizes 0xFFFFFFFF ("to the end")       |
| flac   | native FLAC, 16-bit        | input rate, exact    | STREAMINFO total samples 0 ("unknown"), MD5 zero    |
| mp3    | MP3, LAME, 128 kb/s        | input rate           | no LAME gapless tag: decodes 25-53 ms longer        |
| opus   | Ogg Opus, libopus, 64 kb/s | 48 kHz (Opus's rate) | the same bytes as the whole file                    |
| aac    | ADTS AAC-LC, 128 kb/s      | input rate           | the same bytes; 23-47 ms longer (ADTS has no        |
|        |                            |                      | field for the 1024 priming samples), whole or not   |
| pcm    | raw s16le, no header       | input rate, exact    | the same bytes                                      |

The headers that need the total length (wav, flac, mp3's gapless tag) are written with
placeholders and patched at the end when the output can seek (`encode_audio`); a stream can't
seek back, so `StreamingEncoder` leaves FFmpeg's "unknown" values. Decoders read such a wav to
the end of the data (soundfile and FFmpeg both do), and FFmpeg and libFLAC decode such a flac
in full; python-soundfile (0.14) opens it but fails on its last read, because it seeks after
every read and libsndfile can't seek in a FLAC of unknown length.

Empty audio gives a header-only wav, flac, mp3 or Ogg file and no bytes at all for aac and pcm;
opus also drops audio shorter than ~2 ms, which its resampler doesn't flush.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from enum import StrEnum
from fractions import Fraction
from itertools import pairwise

import av
import numpy as np

SAMPLE_RATE = 44100  # Zonos v0.1's DAC decoder


class AudioFormat(StrEnum):
    WAV = "wav"
    FLAC = "flac"
    MP3 = "mp3"
    OPUS = "opus"
    AAC = "aac"
    PCM = "pcm"


FORMATS: tuple[str, ...] = tuple(fmt.value for fmt in AudioFormat)

MEDIA_TYPES: dict[str, str] = {
    AudioFormat.WAV: "audio/wav",
    AudioFormat.FLAC: "audio/flac",
    AudioFormat.MP3: "audio/mpeg",
    AudioFormat.OPUS: "audio/ogg",
    AudioFormat.AAC: "audio/aac",
    AudioFormat.PCM: "audio/pcm",  # raw s16le mono at the request's rate; nothing in the bytes says so
}

_INT16_SCALE = 32767  # symmetric: +1.0 -> 32767, -1.0 -> -32767, nothing clips after np.clip


@dataclass(frozen=True)
class _Codec:
    """How one AudioFormat is made with FFmpeg."""

    muxer: str
    encoder: str
    sample_format: str  # what we hand the encoder, so PyAV has no format to convert
    bit_rate: int | None = None
    rate: int | None = None  # the encoder's rate when it can't take the input's
    muxer_options: dict[str, str] = field(default_factory=dict)


_CODECS = {
    AudioFormat.WAV: _Codec("wav", "pcm_s16le", "s16"),
    # FFmpeg reserves 8 KiB of padding for tag editors by default: dead weight in a response
    AudioFormat.FLAC: _Codec("flac", "flac", "s16", muxer_options={"metadata_header_padding": "0"}),
    AudioFormat.MP3: _Codec("mp3", "libmp3lame", "fltp", bit_rate=128_000),
    # libopus codes at 48 kHz whatever it's fed; resampling up front makes Ogg's granule
    # positions trim the decoded output to exactly the input's duration. Ogg pages close
    # every 100 ms (FFmpeg's default is 1 s) so a stream's first audio leaves early.
    AudioFormat.OPUS: _Codec(
        "ogg", "libopus", "flt", bit_rate=64_000, rate=48_000, muxer_options={"page_duration": "100000"}
    ),
    AudioFormat.AAC: _Codec("adts", "aac", "fltp", bit_rate=128_000),
    AudioFormat.PCM: _Codec("s16le", "pcm_s16le", "s16"),
}


def _check_format(fmt: str) -> AudioFormat:
    try:
        return AudioFormat(fmt)
    except ValueError:
        raise ValueError(f"unknown audio format {fmt!r}; expected one of {', '.join(FORMATS)}") from None


def _check_rate(sample_rate: int) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
    return int(sample_rate)


def _check_samples(samples, what: str = "samples") -> np.ndarray:
    """The samples as a 1-D finite float32 array (maybe the caller's own: never write to it)."""
    array = np.asarray(samples)
    if array.ndim != 1:
        raise ValueError(f"{what} must be 1-D (mono), got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{what} must be floating point in [-1, 1], got dtype {array.dtype}")
    with np.errstate(over="ignore"):  # what float32 can't hold becomes inf, refused just below
        array = array.astype(np.float32, copy=False)
    bad = np.count_nonzero(~np.isfinite(array))
    if bad:
        raise ValueError(f"{what} hold {bad} non-finite values (NaN, inf, or beyond float32)")
    return array


def _ms_to_samples(ms: float, sample_rate: int, what: str) -> int:
    if not math.isfinite(ms) or ms < 0:
        raise ValueError(f"{what} must be a finite number >= 0, got {ms!r}")
    return round(ms * sample_rate / 1000)


def join_segments(
    segments, sample_rate: int = SAMPLE_RATE, pause_ms: float = 200, crossfade_ms: float = 0
) -> np.ndarray:
    """Lay segments end to end with pauses between them, optionally with equal-power fades.

    Without a crossfade, `pause_ms` of silence separates consecutive segments. With one, the
    last F samples of a segment are weighted by cos(θ) and the first F of the next by sin(θ),
    θ_i = π/2 · (i + 0.5) / F, and the next segment starts `pause_ms` after the fade-out
    starts. So at pause 0 the fades coincide sample for sample — an equal-power crossfade,
    cos²θ + sin²θ = 1, that keeps the loudness of uncorrelated signals — and with a pause of
    at least F they don't meet and pause − F of silence lies between them (between 0 and F,
    they overlap by F − pause). F is `crossfade_ms`, clipped at each boundary to half of the
    shorter neighbour, so a segment's own fade-in and fade-out never overlap.
    """
    arrays = [_check_samples(segment, f"segment {i}") for i, segment in enumerate(segments)]
    if not arrays:
        return np.zeros(0, np.float32)
    starts, fades = segment_layout([len(a) for a in arrays], sample_rate, pause_ms, crossfade_ms)
    out = np.zeros(starts[-1] + len(arrays[-1]), np.float32)
    for i, (array, start) in enumerate(zip(arrays, starts, strict=True)):
        weighted = array.copy()
        if i > 0 and fades[i - 1]:
            weighted[: fades[i - 1]] *= np.sin(_fade_angles(fades[i - 1]))
        if i < len(fades) and fades[i]:
            weighted[-fades[i] :] *= np.cos(_fade_angles(fades[i]))
        out[start : start + len(weighted)] += weighted
    return out


def segment_layout(
    lengths: list[int], sample_rate: int = SAMPLE_RATE, pause_ms: float = 200, crossfade_ms: float = 0
) -> tuple[list[int], list[int]]:
    """Where join_segments puts each segment (start sample) and the fade length at each boundary."""
    sample_rate = _check_rate(sample_rate)
    pause = _ms_to_samples(pause_ms, sample_rate, "pause_ms")
    crossfade = _ms_to_samples(crossfade_ms, sample_rate, "crossfade_ms")
    fades = [min(crossfade, a // 2, b // 2) for a, b in pairwise(lengths)]
    starts = [0]
    for length, fade in zip(lengths[:-1], fades, strict=True):
        starts.append(starts[-1] + length + pause - fade)
    return starts, fades


def segment_bounds(
    lengths: list[int], sample_rate: int = SAMPLE_RATE, pause_ms: float = 200, crossfade_ms: float = 0
) -> list[tuple[int, int]]:
    """[start, end) of each segment in join_segments' output, in samples; the pause after a segment
    is not in it, and the last end is the output's length.

    Without an overlap a segment's span is exactly where its samples lie (segment_layout's start
    plus its length), faded ends included, and [end_i, start_i+1) is the silence between them.
    Where two segments overlap (a crossfade longer than the pause, by o = fade - pause samples),
    the boundary is the overlap's midpoint: end_i = start_i+1 = start of i+1 + o // 2. So spans
    never overlap, and a span may be empty (a segment of no samples)."""
    starts, _ = segment_layout(lengths, sample_rate, pause_ms, crossfade_ms)
    bounds: list[tuple[int, int]] = []
    for i, (start, length) in enumerate(zip(starts, lengths, strict=True)):
        end = start + length
        if i + 1 < len(starts):
            end = min(end, starts[i + 1] + max(0, end - starts[i + 1]) // 2)
        bounds.append((max(start, bounds[-1][1]) if bounds else start, end))
    return bounds


class SegmentJoiner:
    """join_segments as a stream: segment audio in (any order, in pieces), joined audio out in order.

    Without a crossfade, the current segment's samples leave as they arrive and the pause after
    a finished segment goes with its last piece. With one, a segment leaves whole once its
    successor is finished, since the fade between them depends on both lengths; its span is
    cut from join_segments over it and its neighbours (a join is local), so the pieces
    concatenated equal join_segments of all segments. `bounds(i)` is where a released segment
    lies in that output (segment_bounds).
    """

    def __init__(self, n_segments: int, sample_rate: int = SAMPLE_RATE, pause_ms: float = 200, crossfade_ms: float = 0):
        self.n_segments, self.sample_rate = n_segments, _check_rate(sample_rate)
        self.pause_ms, self.crossfade_ms = pause_ms, crossfade_ms
        self._pause = np.zeros(_ms_to_samples(pause_ms, sample_rate, "pause_ms"), np.float32)
        _ms_to_samples(crossfade_ms, sample_rate, "crossfade_ms")
        self._pending: dict[int, list[np.ndarray]] = {}
        self._whole: dict[int, np.ndarray] = {}  # finished segments a crossfade still needs
        self._finished: set[int] = set()
        self._lengths: dict[int, int] = {}  # samples added per segment
        self.current = 0  # the segment whose audio leaves next

    def add(self, index: int, samples: np.ndarray, finished: bool = False) -> list[tuple[int, np.ndarray, bool]]:
        """More samples of segment `index`; returns (segment, samples, segment done) pieces now final."""
        samples = _check_samples(samples, f"segment {index}")
        self._pending.setdefault(index, []).append(samples)
        self._lengths[index] = self._lengths.get(index, 0) + len(samples)
        if finished:
            self._finished.add(index)
        return self._release_crossfaded() if self.crossfade_ms else self._release_plain()

    def bounds(self, index: int) -> tuple[int, int]:
        """[start, end) of segment `index` in the joined output, in samples (segment_bounds); known
        once the segment has left done. Raises ValueError before that."""
        if index >= self.current:
            raise ValueError(f"segment {index} has not left the joiner yet")
        known = min(index + 2, self.n_segments) if self.crossfade_ms else index + 1  # a fade needs the next
        lengths = [self._lengths.get(i, 0) for i in range(known)]
        return segment_bounds(lengths, self.sample_rate, self.pause_ms, self.crossfade_ms)[index]

    def _take(self, index: int) -> np.ndarray:
        pieces = self._pending.pop(index, [])
        return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)

    def _release_plain(self) -> list[tuple[int, np.ndarray, bool]]:
        out = []
        while self.current < self.n_segments:
            samples, done = self._take(self.current), self.current in self._finished
            if done and self.current + 1 < self.n_segments:
                samples = np.concatenate([samples, self._pause])
            if len(samples) or done:
                out.append((self.current, samples, done))
            if not done:
                break
            self.current += 1
        return out

    def _release_crossfaded(self) -> list[tuple[int, np.ndarray, bool]]:
        out = []
        while self.current in self._finished and (
            self.current + 1 in self._finished or self.current + 1 == self.n_segments
        ):
            index = self.current
            window = [i for i in (index - 1, index, index + 1) if 0 <= i < self.n_segments]
            for i in window:
                if i not in self._whole:
                    self._whole[i] = self._take(i)
            arrays = [self._whole[i] for i in window]
            joined = join_segments(arrays, self.sample_rate, self.pause_ms, self.crossfade_ms)
            starts, _ = segment_layout([len(a) for a in arrays], self.sample_rate, self.pause_ms, self.crossfade_ms)
            position = window.index(index)
            end = starts[position + 1] if position + 1 < len(window) else len(joined)
            out.append((index, joined[starts[position] : end], True))
            self._whole.pop(index - 1, None)
            self.current += 1
        return out


def _fade_angles(n: int) -> np.ndarray:
    return (np.pi / 2 * (np.arange(n) + 0.5) / n).astype(np.float32)


# FFmpeg's atempo takes 0.5..100, but "tempo greater than 2 will skip some samples rather than
# blend them in" (FFmpeg filter docs, atempo): a factor beyond [0.5, 2] is a chain of equal stages.
ATEMPO_STAGE_RANGE = (0.5, 2.0)
_STRETCH_BLOCK = 2048  # input samples per frame pushed into the filter graph (46 ms at 44.1 kHz)
_STRETCH_TAIL = 8192  # zeros fed after the input at flush, so atempo's last window reaches its end


def tempo_stages(tempo: float) -> list[float]:
    """The atempo factors, each in ATEMPO_STAGE_RANGE and equal, whose product is `tempo` ([] for 1).

    Raises ValueError unless tempo is a finite number > 0."""
    if isinstance(tempo, bool) or not isinstance(tempo, int | float) or not math.isfinite(tempo) or tempo <= 0:
        raise ValueError(f"tempo must be a finite number > 0, got {tempo!r}")
    if tempo == 1:
        return []
    n = max(1, math.ceil(abs(math.log2(tempo)) - 1e-12))
    return [tempo ** (1 / n)] * n


class TempoStretcher:
    """Time-stretch a stream of mono float32 audio by `tempo` with FFmpeg's atempo (through PyAV's
    filter graph), keeping its pitch: tempo 2 plays twice as fast, 0.5 half as fast.

    `push` takes chunks of any length and returns the stretched samples ready so far (float32, 1-D,
    maybe empty), `flush` the rest once the input is over. Exact rules, whatever the chunking:
    - all outputs concatenated have exactly round(n / tempo) samples for n input samples;
    - they are the same samples for any chunking of the same input: the input is regrouped into
      frames of `_STRETCH_BLOCK` samples before it reaches the graph, so atempo (whose output
      depends on its frame sizes when they are small) always sees the same frames;
    - never more than floor(fed / tempo) samples have left before flush, where fed counts the input
      samples pushed into the graph; flush then feeds `_STRETCH_TAIL` zeros so the end of the input
      is stretched too (atempo alone drops up to one window at the end), and cuts (or, never seen,
      pads with zeros) the output to its exact length.
    Latency: less than one block of input plus atempo's window (~2048 output samples per stage).
    tempo 1 passes the samples through untouched. Raises ValueError for a tempo `tempo_stages`
    refuses, or for samples that are not 1-D finite floats; push after flush is a ValueError too.
    """

    def __init__(self, tempo: float, sample_rate: int = SAMPLE_RATE):
        stages = tempo_stages(tempo)
        self.tempo, self.sample_rate = float(tempo), _check_rate(sample_rate)
        self._pending = np.zeros(0, np.float32)  # input not yet a whole block
        self._held = np.zeros(0, np.float32)  # output the length rule does not let out yet
        self._received = self._fed = self._pushed = self._released = 0
        self._done = False
        self._graph = None
        if stages:
            graph = av.filter.Graph()
            node = graph.add_abuffer(
                format="flt", sample_rate=self.sample_rate, layout="mono", time_base=Fraction(1, self.sample_rate)
            )
            for factor in stages:
                stage = graph.add("atempo", tempo=repr(factor))
                node.link_to(stage)
                node = stage
            sink = graph.add("abuffersink")
            node.link_to(sink)
            graph.configure()
            self._graph = graph

    def push(self, samples) -> np.ndarray:
        """More input; returns the stretched samples now final (float32, maybe empty)."""
        if self._done:
            raise ValueError("push() after flush(): this stretch is finished")
        samples = _check_samples(samples)
        self._received += len(samples)
        if self._graph is None:
            return samples
        self._pending = np.concatenate([self._pending, samples])
        n_blocks = len(self._pending) // _STRETCH_BLOCK
        for i in range(n_blocks):
            self._feed(self._pending[i * _STRETCH_BLOCK : (i + 1) * _STRETCH_BLOCK])
        self._pending = self._pending[n_blocks * _STRETCH_BLOCK :]
        return self._release(math.floor(self._fed / self.tempo))

    def flush(self) -> np.ndarray:
        """The input is over: the rest of the output (float32), so that everything returned holds
        exactly round(n / tempo) samples. A second flush returns nothing."""
        if self._done:
            return np.zeros(0, np.float32)
        self._done = True
        total = round(self._received / self.tempo)
        if self._graph is None:
            return np.zeros(0, np.float32)
        tail = np.concatenate([self._pending, np.zeros(_STRETCH_TAIL, np.float32)])
        for start in range(0, len(tail), _STRETCH_BLOCK):
            self._feed(tail[start : start + _STRETCH_BLOCK], count=False)
        self._feed(None)
        self._graph = None
        short = total - self._released - len(self._held)
        if short > 0:
            self._held = np.concatenate([self._held, np.zeros(short, np.float32)])
        return self._release(total)

    def _feed(self, block: np.ndarray | None, count: bool = True) -> None:
        """Push one block (None: end of input) and move whatever the graph has ready into _held."""
        if block is not None:
            frame = av.AudioFrame.from_ndarray(block[np.newaxis], format="flt", layout="mono")
            frame.sample_rate = self.sample_rate
            frame.time_base = Fraction(1, self.sample_rate)
            frame.pts = self._pushed
            self._pushed += len(block)
            if count:
                self._fed += len(block)
        self._graph.push(None if block is None else frame)
        out = [self._held]
        while True:
            try:
                out.append(self._graph.pull().to_ndarray().reshape(-1))
            except (av.BlockingIOError, av.EOFError):
                break
        self._held = np.concatenate(out)

    def _release(self, limit: int) -> np.ndarray:
        """The held output up to `limit` samples released in all."""
        n = max(0, min(len(self._held), limit - self._released))
        out, self._held = self._held[:n], self._held[n:]
        self._released += n
        return out


class _Encoder:
    """One FFmpeg muxer and encoder writing to `file`; seekable files get complete headers."""

    def __init__(self, fmt: AudioFormat, sample_rate: int, file) -> None:
        codec = _CODECS[fmt]
        encoder_rate = codec.rate or sample_rate
        supported = av.Codec(codec.encoder, "w").audio_rates
        if supported and encoder_rate not in supported:
            raise ValueError(
                f"{fmt} can't encode at {sample_rate} Hz; it takes {', '.join(map(str, sorted(supported)))}"
            )
        self._sample_rate = sample_rate
        self._sample_format = codec.sample_format
        self._written = 0
        self._container = av.open(file, mode="w", format=codec.muxer, container_options=codec.muxer_options)
        # bitexact: no encoder-version tags, so wav gets the canonical 44-byte header and equal
        # input gives equal bytes. flush_packets: every packet reaches `file` at once, so a
        # stream can be drained after each write.
        self._container.flags |= av.container.Flags.bitexact.value | av.container.Flags.flush_packets.value
        self._stream = self._container.add_stream(codec.encoder, rate=encoder_rate, layout="mono")
        self._stream.format = codec.sample_format
        if codec.bit_rate:
            self._stream.bit_rate = codec.bit_rate
        # PyAV writes the header on the first packet; write it now so that audio too short to
        # make a packet still gives a valid (empty) file.
        self._container.start_encoding()

    def encode(self, samples: np.ndarray) -> None:
        """Encode finite float32 samples; PyAV cuts them into the encoder's frame size (and
        resamples them for opus), keeping what doesn't fill a frame for the next call."""
        clipped = np.clip(samples, -1.0, 1.0)
        if self._sample_format == "s16":
            clipped = np.rint(clipped * _INT16_SCALE).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(clipped[np.newaxis], format=self._sample_format, layout="mono")
        frame.sample_rate = self._sample_rate
        frame.time_base = Fraction(1, self._sample_rate)
        frame.pts = self._written
        self._written += len(samples)
        self._container.mux(self._stream.encode(frame))

    def finish(self) -> None:
        """Flush the encoder's held-back audio and write the trailer."""
        self._container.mux(self._stream.encode(None))
        self._container.close()


def encode_audio(samples, sample_rate: int, fmt: str) -> bytes:
    """A complete file of `fmt` holding the samples (clipped to [-1, 1]), headers exact."""
    fmt = _check_format(fmt)
    sample_rate = _check_rate(sample_rate)
    samples = _check_samples(samples)
    file = io.BytesIO()  # seekable: FFmpeg patches lengths, STREAMINFO and gapless tags at the end
    encoder = _Encoder(fmt, sample_rate, file)
    if len(samples):
        encoder.encode(samples)
    encoder.finish()
    return file.getvalue()


class _StreamSink:
    """A write-only file with no seek: FFmpeg writes to it as it would to a socket."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def write(self, data) -> int:
        self._buffer += data
        return len(data)

    def drain(self) -> bytes:
        data = bytes(self._buffer)
        self._buffer.clear()
        return data


class StreamingEncoder:
    """Encode audio as it is generated: each write returns the bytes that are ready.

    The concatenation of everything `write` and `close` return is one valid file of `fmt`
    (see the module docstring for what a stream's headers can't know). Encoders hold back
    less than a frame (and Ogg up to a 100 ms page) until more audio or `close` comes.
    """

    def __init__(self, fmt: str, sample_rate: int) -> None:
        fmt = _check_format(fmt)
        sample_rate = _check_rate(sample_rate)
        self._sink = _StreamSink()
        self._encoder: _Encoder | None = _Encoder(fmt, sample_rate, self._sink)

    def write(self, samples) -> bytes:
        """Encode a chunk of any length; returns the bytes now ready, maybe b""."""
        if self._encoder is None:
            raise ValueError("write() after close(): this stream is finished")
        samples = _check_samples(samples)
        if len(samples):
            self._encoder.encode(samples)
        return self._sink.drain()

    def close(self) -> bytes:
        """Finish the stream; returns its last bytes (b"" when already closed)."""
        if self._encoder is not None:
            self._encoder.finish()
            self._encoder = None
        return self._sink.drain()
