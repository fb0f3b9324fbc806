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

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

from pipeline.hub import WeightsUnavailableError, resolve_files
from pipeline.model import RANDOM_TINY

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


def load_audio(source: str | os.PathLike | bytes) -> tuple[np.ndarray, int]:
    """Decode a file (path or its bytes) in any format soundfile reads -> float32 [channels, samples], rate."""
    if isinstance(source, bytes | bytearray | memoryview):
        if not source:
            raise InvalidAudioError("the voice clip is empty (0 bytes)")
        source = io.BytesIO(bytes(source))
    elif not os.path.isfile(source):
        raise FileNotFoundError(f"no audio file at {os.fspath(source)!r}")
    try:
        samples, sample_rate = sf.read(source, dtype="float32", always_2d=True)
    except sf.SoundFileError as exc:
        reason = getattr(exc, "error_string", str(exc)).rstrip(".")  # libsndfile's words, without the buffer's repr
        raise InvalidAudioError(
            f"could not decode the voice clip as audio ({reason}); send a wav, flac, ogg or mp3 file"
        ) from exc
    return np.ascontiguousarray(samples.T), sample_rate


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
        """A clip as a file path or the file's bytes -> the 128-d LDA embedding."""
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
