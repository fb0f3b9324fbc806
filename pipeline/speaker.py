"""The Zonos v0.1 speaker encoder: a voice clip -> the 128 floats the speaker conditioner takes.

A ResNet293 with SimAM attention and attentive statistics pooling (spec section 7), then an
LDA projection. Module and parameter names match `Zyphra/Zonos-v0.1-speaker-embedding`'s two
state dicts exactly, so they load without renaming. Embeddings are cached by the clip's
samples, so a voice that comes back with every request costs one forward pass.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

import av
import numpy as np
import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

from pipeline.hub import WeightsUnavailableError, resolve_files
from pipeline.loading import RANDOM_TINY

logger = logging.getLogger(__name__)

PUBLISHED_REPO = "Zyphra/Zonos-v0.1-speaker-embedding"
NETWORK_FILE = "ResNet293_SimAM_ASP_base.pt"
LDA_FILE = "ResNet293_SimAM_ASP_base_LDA-128.pt"
PUBLISHED_CHANNELS = 64
PUBLISHED_BLOCKS = (10, 20, 64, 3)

SAMPLE_RATE = 16000
N_MELS = 80
EMBEDDING_DIM = 256
LDA_DIM = 128
ATTENTION_DIM = 128
MIN_SECONDS = 1.0
MAX_SECONDS = 60.0
SILENCE_PEAK = 1e-4  # -80 dBFS: nothing a microphone picks up from a speaking voice is this quiet
RANDOM_SEED = 1234


class InvalidAudioError(ValueError):
    """The input cannot serve as a voice clip (not audio, too short or long, silent, NaN)."""


@dataclass(frozen=True)
class CacheInfo:
    hits: int
    misses: int
    size: int
    capacity: int


# ----------------------------------------------------------------------------- network


class SimAM(nn.Module):
    """Parameter-free attention: weights each position by how much it stands out in its channel."""

    def __init__(self, eps: float = 1e-4):
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[2] * x.shape[3] - 1
        d = (x - x.mean(dim=(2, 3), keepdim=True)).square()
        v = d.sum(dim=(2, 3), keepdim=True) / n
        return x * torch.sigmoid(d / (4 * (v + self.eps)) + 0.5)


class SimAMBasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.simam = SimAM()
        self.downsample = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.simam(self.bn2(self.conv2(out)))
        return F.relu(out + self.downsample(x))


class ResNetFront(nn.Module):
    """[B, 1, mels, frames] -> [B, 8C, mels / 8, frames / 8]."""

    def __init__(self, channels: int, blocks: tuple[int, int, int, int]):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        in_planes = channels
        for index, (n_blocks, stride) in enumerate(zip(blocks, (1, 2, 2, 2), strict=True)):
            planes = channels * 2**index
            layer = [SimAMBasicBlock(in_planes, planes, stride)]
            layer += [SimAMBasicBlock(planes, planes, 1) for _ in range(n_blocks - 1)]
            self.add_module(f"layer{index + 1}", nn.Sequential(*layer))
            in_planes = planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class AttentiveStatsPool(nn.Module):
    """Attention-weighted mean and standard deviation over time, one weight per feature and frame."""

    def __init__(self, in_dim: int):
        super().__init__()
        # Indices 0..3 are the checkpoint's names: conv, ReLU, BN, conv (the softmax is applied in forward).
        self.attention = nn.Sequential(
            nn.Conv1d(in_dim, ATTENTION_DIM, 1),
            nn.ReLU(),
            nn.BatchNorm1d(ATTENTION_DIM),
            nn.Conv1d(ATTENTION_DIM, in_dim, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.attention(x), dim=2)
        mu = (x * w).sum(dim=2)
        sg = ((x.square() * w).sum(dim=2) - mu.square()).clamp(min=1e-5).sqrt()
        return torch.cat([mu, sg], dim=1)


class SpeakerNetwork(nn.Module):
    """log-mel features [B, 80, frames] -> 256-d speaker embedding [B, 256]."""

    def __init__(self, channels: int, blocks: tuple[int, int, int, int]):
        super().__init__()
        pooled_dim = 8 * channels * (N_MELS // 8)
        self.front = ResNetFront(channels, blocks)
        self.pooling = AttentiveStatsPool(pooled_dim)
        self.bottleneck = nn.Linear(2 * pooled_dim, EMBEDDING_DIM)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.front(features.unsqueeze(1))
        return self.bottleneck(self.pooling(x.flatten(1, 2)))


def network_shape(state_dict: dict[str, torch.Tensor]) -> tuple[int, tuple[int, int, int, int]]:
    """Channels C and blocks per stage of a saved network, read off its tensor names and shapes."""
    if "front.conv1.weight" not in state_dict:
        raise WeightsUnavailableError(
            "the speaker network state dict has no 'front.conv1.weight': it is not the ResNet-SimAM-ASP "
            f"network that {NETWORK_FILE} holds"
        )
    channels = state_dict["front.conv1.weight"].shape[0]
    counts = [0, 0, 0, 0]
    for name in state_dict:
        found = re.match(r"front\.layer([1-4])\.(\d+)\.", name)
        if found:
            stage = int(found[1]) - 1
            counts[stage] = max(counts[stage], int(found[2]) + 1)
    return channels, tuple(counts)


# ----------------------------------------------------------------------------- audio


# What a decoded frame's samples are, by FFmpeg sample format (a "p" suffix means planar: one
# plane per channel; without it the channels are interleaved in one plane), and the scale that
# maps them onto [-1, 1). Unsigned 8-bit is offset binary: 128 is silence.
_SAMPLE_TYPES: dict[str, tuple[np.dtype, float, float]] = {
    "u8": (np.dtype(np.uint8), 128.0, 1 / 128),
    "s16": (np.dtype(np.int16), 0.0, 1 / 2**15),
    "s32": (np.dtype(np.int32), 0.0, 1 / 2**31),
    "s64": (np.dtype(np.int64), 0.0, 1 / 2**63),
    "flt": (np.dtype(np.float32), 0.0, 1.0),
    "dbl": (np.dtype(np.float64), 0.0, 1.0),
}
# Decoding stops when a clip is longer than it may be, or when its samples would fill this many
# float32 values (128 MiB: 60 s of 7.1 at 48 kHz or of stereo at 192 kHz fit), so a small file
# that expands to hours of audio or to hundreds of channels can't take the server's memory.
MAX_DECODED_VALUES = 2**25
# A clip is one self-contained file: FFmpeg may open no other file or URL on its behalf (an Ogg
# or WAV never needs to; a concat script or playlist would read the server's own files).
_OPEN_OPTIONS = {"protocol_whitelist": "none"}


def load_audio(source: str | os.PathLike | bytes, max_seconds: float = MAX_SECONDS) -> tuple[np.ndarray, int]:
    """Decode a voice clip, a file path or the file's bytes -> (samples, sample rate in Hz).

    Any container and codec FFmpeg decodes (through PyAV): wav (8/16/24/32-bit integer or 32/64-bit
    float, WAVE_FORMAT_EXTENSIBLE too), flac, mp3, Ogg Vorbis or Opus, WebM/Matroska Opus, m4a/mp4
    AAC, aiff, ... as browsers, phones and editors record them. The first audio stream is read;
    video and other streams beside it are skipped. The samples are float32 [channels, samples]
    at the file's own rate (Opus decodes at 48 kHz), integer formats scaled to [-1, 1).

    Decoding runs on the calling thread and shares nothing between calls. A packet the decoder
    rejects is skipped, and a truncated file gives the audio before the cut, as FFmpeg does.

    Raises FileNotFoundError for a path that is no file, and InvalidAudioError (a ValueError) when
    the data is empty, not audio FFmpeg reads, holds no audio stream, or no audio could be decoded
    from it, changes rate or channel count part way, is longer than `max_seconds`, or holds more
    than MAX_DECODED_VALUES samples. Its message says what was read (the size and first bytes, or
    the container FFmpeg found); it never holds the path or FFmpeg's own error text.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        file = io.BytesIO(bytes(source))
    elif os.path.isfile(source):
        file = open(source, "rb")  # noqa: SIM115 - closed below; FFmpeg reads it through Python, never by name
    else:
        raise FileNotFoundError(f"no audio file at {os.fspath(source)!r}")
    with file:
        size = file.seek(0, io.SEEK_END)
        file.seek(0)
        head = file.read(20)
        file.seek(0)
        if size == 0:
            raise InvalidAudioError("the voice clip is empty (0 bytes)")
        return _decode(file, f"read {size} bytes starting {_preview(head)}", max_seconds)


def _preview(head: bytes) -> str:
    """The first bytes of a file as a quoted string: printable ASCII as is, the rest as escapes."""
    text = "".join(chr(b) if 0x20 <= b < 0x7F and b not in b"'\\" else f"\\x{b:02x}" for b in head[:16])
    return f"'{text}...'" if len(head) > 16 else f"'{text}'"


def _decode(file, read: str, max_seconds: float) -> tuple[np.ndarray, int]:
    """load_audio on an open file; `read` describes it for error messages."""
    try:
        container = av.open(file, mode="r", container_options=_OPEN_OPTIONS)
    except Exception as exc:  # FFmpeg's error says nothing a client can act on; ours says what was read
        raise InvalidAudioError(
            f"could not decode the voice clip: the data is not audio in any format ffmpeg reads, or is damaged or "
            f"cut short ({read})"
        ) from exc
    with container:
        if not container.streams.audio:
            held = ", ".join(f"{s.type} ({_codec_name(s)})" for s in container.streams) or "no streams"
            raise InvalidAudioError(
                f"could not decode the voice clip: it has no audio stream (ffmpeg reads it as "
                f"{container.format.long_name} holding {held}; {read})"
            )
        stream = container.streams.audio[0]
        what = f"{_codec_name(stream)} audio in {container.format.name.split(',')[0]}"
        if stream.codec_context is None:
            raise InvalidAudioError(f"could not decode the voice clip: ffmpeg has no decoder for its {what} ({read})")
        try:
            return _decode_stream(container, stream, what, read, max_seconds)
        except (InvalidAudioError, MemoryError):
            raise
        except Exception as exc:  # anything else FFmpeg or PyAV trips on in a malformed file
            raise InvalidAudioError(f"could not decode the voice clip's {what} ({read})") from exc


def _codec_name(stream) -> str:
    context = stream.codec_context  # None for data and attachment streams, and codecs FFmpeg can't decode
    return context.name if context is not None else "unknown codec"


def _decode_stream(container, stream, what: str, read: str, max_seconds: float) -> tuple[np.ndarray, int]:
    """The stream's samples, float32 [channels, samples], and rate, checking the limits as they grow."""
    stream.codec_context.thread_count = 1  # decode here, on the caller's thread
    chunks: list[np.ndarray] = []
    rate = channels = length = 0
    for frame in _frames(container, stream):
        samples = _frame_samples(frame, what)
        if not chunks:
            rate, channels = frame.sample_rate, samples.shape[0]
            if rate <= 0 or channels == 0:
                raise InvalidAudioError(
                    f"could not decode the voice clip: its {what} has no sample rate or no channels"
                )
        elif (frame.sample_rate, samples.shape[0]) != (rate, channels):
            raise InvalidAudioError(
                f"the voice clip changes part way from {_channels(channels)} at {rate} Hz to "
                f"{_channels(samples.shape[0])} at {frame.sample_rate} Hz ({what}); send one recording"
            )
        chunks.append(samples)
        length += samples.shape[1]
        if length > max_seconds * rate:
            raise InvalidAudioError(
                f"the voice clip is longer than {max_seconds:g} s ({what}); a voice clip needs "
                f"{MIN_SECONDS:g} to {MAX_SECONDS:g} s of speech"
            )
        if length * channels > MAX_DECODED_VALUES:
            raise InvalidAudioError(
                f"the voice clip holds more audio than a voice clip needs: {channels} channels at {rate} Hz pass "
                f"{MAX_DECODED_VALUES} samples within {length / rate:.1f} s ({what})"
            )
    if length == 0:
        raise InvalidAudioError(f"could not decode the voice clip: no audio could be decoded from its {what} ({read})")
    return np.concatenate(chunks, axis=1), rate


def _channels(count: int) -> str:
    return "1 channel" if count == 1 else f"{count} channels"


def _frames(container, stream):
    """The stream's decoded frames. A packet its decoder rejects is skipped, and a read error (a
    truncated or corrupt file) ends the stream after what came before it; both are what ffmpeg does."""
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except Exception:
            logger.debug("voice clip: stopped reading at a corrupt or truncated packet", exc_info=True)
            break
        try:
            yield from packet.decode()
        except Exception:
            logger.debug("voice clip: skipped a packet the decoder rejected", exc_info=True)
    try:  # the demuxer failed before its flush packet: drain the decoder's delayed frames
        yield from stream.codec_context.decode(None)
    except Exception:
        logger.debug("voice clip: the decoder failed to flush", exc_info=True)


def _frame_samples(frame, what: str) -> np.ndarray:
    """One decoded frame -> float32 [channels, samples]."""
    name = frame.format.name
    planar = name.endswith("p")
    try:
        dtype, offset, scale = _SAMPLE_TYPES[name.removesuffix("p")]
    except KeyError:
        raise InvalidAudioError(f"could not decode the voice clip: its {what} has samples of format {name}") from None
    channels, count = frame.layout.nb_channels, frame.samples
    if planar:
        planes = [np.frombuffer(plane, dtype, count) for plane in frame.planes[:channels]]
        samples = np.stack(planes) if planes else np.zeros((0, count), dtype)
    else:
        samples = np.frombuffer(frame.planes[0], dtype, count * channels).reshape(count, channels).T
    if dtype.kind != "f":
        samples = (samples.astype(np.float64) - offset) * scale
    return samples.astype(np.float32, order="C")  # interleaved channels come here transposed


def _as_samples(wav, sample_rate) -> np.ndarray:
    """Check a clip and return it as float32 [channels, samples]: the one form the cache and the network take."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer) or sample_rate <= 0:
        raise InvalidAudioError(f"sample rate must be a positive integer (Hz), got {sample_rate!r}")
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().cpu()
        wav = (wav.float() if wav.is_floating_point() else wav).numpy()  # numpy has no bfloat16
    wav = np.asarray(wav)
    if not np.issubdtype(wav.dtype, np.floating):
        raise InvalidAudioError(f"samples must be floating point in [-1, 1], got dtype {wav.dtype}")
    if wav.ndim == 1:
        wav = wav[None]
    if wav.ndim != 2 or wav.shape[0] == 0:
        raise InvalidAudioError(f"a clip is 1-D [samples] or 2-D [channels, samples], got shape {wav.shape}")
    if wav.shape[0] > wav.shape[1] > 0:
        raise InvalidAudioError(
            f"a clip is [channels, samples], got shape {wav.shape}: more channels than samples "
            "(transpose [samples, channels])"
        )
    seconds = wav.shape[1] / sample_rate
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise InvalidAudioError(
            f"clip is {seconds:.2f} s long; a voice clip needs {MIN_SECONDS:g} to {MAX_SECONDS:g} s of speech"
        )
    if not np.isfinite(wav).all():
        raise InvalidAudioError("clip holds NaN or infinite samples")
    peak = float(np.abs(wav).max())
    if peak < SILENCE_PEAK:
        raise InvalidAudioError(f"clip is silent (peak amplitude {peak:.1e}); a voice clip needs audible speech")
    return np.ascontiguousarray(wav, dtype=np.float32)


# ----------------------------------------------------------------------------- encoder


class SpeakerEncoder:
    """Network + LDA + feature extraction, with an LRU cache of embeddings keyed by the clip's samples."""

    def __init__(
        self,
        channels: int = PUBLISHED_CHANNELS,
        blocks: tuple[int, int, int, int] = PUBLISHED_BLOCKS,
        device: str | torch.device = "cpu",
        cache_capacity: int = 256,
    ):
        if cache_capacity < 0:
            raise ValueError(f"cache_capacity must be >= 0, got {cache_capacity}")
        self.device = torch.device(device)
        with self.device:
            self.network = SpeakerNetwork(channels, tuple(blocks)).eval().requires_grad_(False)
            self.lda = nn.Linear(EMBEDDING_DIM, LDA_DIM).eval().requires_grad_(False)
        with torch.device("cpu"):  # its filter bank is computed at build time, which the meta device cannot do
            mel = torchaudio.transforms.MelSpectrogram(
                SAMPLE_RATE, n_fft=512, win_length=400, hop_length=160, n_mels=N_MELS
            )
        self.mel = mel.to(self.device)
        self.cache_capacity = cache_capacity
        self._cache: OrderedDict[bytes, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    @classmethod
    def from_pretrained(
        cls, source: str = PUBLISHED_REPO, device: str | torch.device = "cpu", cache_capacity: int = 256
    ) -> SpeakerEncoder:
        """Load from the published repo id, a local directory holding its two .pt files, or `random-tiny`."""
        if source == RANDOM_TINY:
            logger.warning(
                "speaker encoder %r has RANDOM weights: its embeddings do not describe a voice. Pass %s "
                "or a local directory with %s and %s for real voice cloning.",
                source,
                PUBLISHED_REPO,
                NETWORK_FILE,
                LDA_FILE,
            )
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(RANDOM_SEED)
                encoder = cls(channels=8, blocks=(1, 1, 1, 1), cache_capacity=cache_capacity)
            return encoder.to(device)
        files = resolve_files(source, [NETWORK_FILE, LDA_FILE])
        network_sd = torch.load(files[NETWORK_FILE], map_location="cpu", weights_only=True)
        lda_sd = torch.load(files[LDA_FILE], map_location="cpu", weights_only=True)
        channels, blocks = network_shape(network_sd)
        encoder = cls(channels=channels, blocks=blocks, cache_capacity=cache_capacity)
        encoder.load_state_dicts(network_sd, lda_sd)
        return encoder.to(device)

    def load_state_dicts(self, network_sd: dict[str, torch.Tensor], lda_sd: dict[str, torch.Tensor]) -> None:
        """Load the two published state dicts (strict: every name and shape must match)."""
        self.network.load_state_dict(network_sd)
        self.lda.load_state_dict(lda_sd)
        self.clear_cache()

    def to(self, device: str | torch.device) -> SpeakerEncoder:
        self.device = torch.device(device)
        self.network.to(self.device)
        self.lda.to(self.device)
        self.mel.to(self.device)
        return self

    # ------------------------------------------------------------------------- embedding

    def embed(self, wav: np.ndarray | torch.Tensor, sample_rate: int) -> torch.Tensor:
        """A clip (1-D or [channels, samples], any rate) -> the 128-d LDA embedding, float32 on the CPU."""
        return self._embeddings(wav, sample_rate)[1]

    def embed_256(self, wav: np.ndarray | torch.Tensor, sample_rate: int) -> torch.Tensor:
        """The network's 256-d embedding before the LDA (what speaker-verification scores compare)."""
        return self._embeddings(wav, sample_rate)[0]

    def embed_file(self, source: str | os.PathLike | bytes) -> torch.Tensor:
        """A clip as a file path or the file's bytes, in any format `load_audio` decodes -> the 128-d LDA
        embedding, float32 on the CPU. InvalidAudioError (a ValueError) for a clip that is not usable audio."""
        return self.embed(*load_audio(source))

    def features(self, wav: torch.Tensor) -> torch.Tensor:
        """Mono 16 kHz samples [N] -> mean-normalised log-mel features [80, frames]."""
        logmel = torch.log(self.mel(wav) + 1e-6)
        return logmel - logmel.mean(dim=-1, keepdim=True)

    def _embeddings(self, wav, sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
        samples = _as_samples(wav, sample_rate)
        key = self._key(samples, sample_rate)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                self._hits += 1
            else:
                self._misses += 1
        if cached is None:
            cached = self._compute(samples, sample_rate)
            with self._lock:
                self._cache[key] = cached
                while len(self._cache) > self.cache_capacity:
                    self._cache.popitem(last=False)
        return cached[0].clone(), cached[1].clone()  # callers may modify what they get

    @torch.inference_mode()
    def _compute(self, samples: np.ndarray, sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
        mono = torch.from_numpy(samples).to(self.device).mean(dim=0)
        if sample_rate != SAMPLE_RATE:
            mono = torchaudio.functional.resample(mono, sample_rate, SAMPLE_RATE)
        embedding = self.network(self.features(mono)[None])
        projected = self.lda(embedding)
        return embedding[0].float().cpu(), projected[0].float().cpu()

    @staticmethod
    def _key(samples: np.ndarray, sample_rate: int) -> bytes:
        digest = hashlib.blake2b(samples, digest_size=16)  # hashes the contiguous buffer without a copy
        digest.update(f"{samples.shape}@{sample_rate}".encode())
        return digest.digest()

    # ------------------------------------------------------------------------- cache

    def cache_info(self) -> CacheInfo:
        with self._lock:
            return CacheInfo(self._hits, self._misses, len(self._cache), self.cache_capacity)

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()
            self._hits = self._misses = 0
