"""The 44.1 kHz DAC codec Zonos speaks in: audio <-> 9 codebooks of 1024 codes, 512 samples per frame.

A thin layer over transformers' `DacModel` that adds what serving needs: batches of rows of
different lengths, bounded memory however long the audio, and streaming, all giving the samples
the whole-sequence decode gives.

Chunking exactness
------------------
The decoder is a stack of non-causal convolutions, so the samples of frame f depend on a fixed,
finite range of frames around f: its receptive field. Decode a window that holds that range and
the samples of f come out as in the whole-sequence decode; only the window's outer edges, where
each convolution zero-pads its own input, differ. So a long sequence is decoded in windows of
`chunk_frames` centre frames plus `context_frames` on each side, and only the centres are kept.

`context_frames` is 10 for the published `descript/dac_44khz` decoder (hop 512, upsampling
ratios [8, 8, 4, 2], decoder_hidden_size 1536), established two ways:

* Analytically (`receptive_field`): walk the decoder's convolutions from the output back to the
  input, carrying the index range that the 512 samples of frame 0 depend on. Conv1d (kernel k,
  dilation d, padding p) widens [lo, hi] to [lo - p, hi - p + d(k - 1)]; ConvTranspose1d (kernel
  k, stride s, padding p) maps it to [ceil((lo + p - k + 1) / s), floor((hi + p) / s)] at the
  coarser rate. Each residual unit's kernel-7 convolution (dilations 1, 3, 9) reaches 3d on each
  side; its identity path reaches less. Snake, tanh and weight norm act per sample or per weight
  and change nothing. Walking back, the range after each stage:

      conv2 (kernel 7)                  [-3, 514]   samples (512 per frame)
      block 4: residual units, ConvT s2 [-42, 553]  -> [-22, 277]  (256 per frame)
      block 3: residual units, ConvT s4 [-61, 316]  -> [-16, 79]   (64 per frame)
      block 2: residual units, ConvT s8 [-55, 118]  -> [-8, 15]    (8 per frame)
      block 1: residual units, ConvT s8 [-47, 54]   -> [-7, 7]     frames
      conv1 (kernel 7)                  [-10, 10]   frames

  Channel widths play no part, so the same walk over the `random-tiny` decoder (the published
  layout at reduced width) gives 10 too; `Codec` runs this walk on whatever decoder it loads.
* Empirically (tests/test_codec.py), on `random-tiny` in float64: the gradient of frame f's
  samples with respect to the decoder's input is non-zero on exactly frames f-10 .. f+10. And in
  fp32, chunked decoding with 10 frames of context matches the whole decode to 2e-7 (rounding),
  with 5 it is off by 2e-2. Random weights make the outermost taps weak (context 9 is still off
  by only 6e-7, 8 by 6e-4), so the tolerance test alone cannot pin the number; the gradient can.

Two more rules keep it exact. Windows near a sequence's true start or end slide to lie inside it
instead of padding codes, because the whole decode zero-pads *inside* the network at those edges,
which no code reproduces. And a window's samples equal the whole decode's only up to float
rounding, since convolutions of different lengths may sum in a different order: about 1e-7 in
fp32, more in fp16/bf16, where only closeness to fp32 is promised. On CUDA, cuDNN may run fp32
convolutions in TF32 (torch.backends.cudnn.allow_tf32, on by default), which rounds far above
1e-4; turn it off where fp32 exactness is checked.

Memory: the decoder only ever sees windows of at most chunk_frames + 2 * context_frames frames,
in batches of at most `max_batch` windows; windows of equal length from any rows share a batch.
A `StreamingDecoder` returns a frame's samples once 10 frames after it have arrived (116 ms of
audio lookahead) and keeps at most 2 * context_frames frames between pushes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF
from torch import nn
from transformers import DacConfig, DacModel

from pipeline.hub import WeightsUnavailableError
from pipeline.loading import resolve_dtype

logger = logging.getLogger(__name__)

SAMPLE_RATE = 44100
HOP_LENGTH = 512
PUBLISHED_REPO = "descript/dac_44khz"
RANDOM_TINY = "random-tiny"
RANDOM_SEED = 0
DEFAULT_CHUNK_FRAMES = 128
DEFAULT_MAX_BATCH = 16
# On a CPU, large batches of windows outgrow the caches: measured on 2 cores, 4 windows per
# batch decode ~1.5x faster than 16 (random-tiny, fp32). GPUs want the larger batches.
CPU_MAX_BATCH = 4


def receptive_field(decoder: nn.Module, hop_length: int) -> tuple[int, int]:
    """Frames before and after a frame that its samples depend on, from the decoder's convolutions.

    Assumes the convolutions run in the order they are registered and residual branches keep
    length and alignment, as in transformers' DacDecoder (see the module docstring).
    """
    lo, hi = 0, hop_length - 1  # the samples of frame 0
    convolutions = [m for m in decoder.modules() if isinstance(m, nn.Conv1d | nn.ConvTranspose1d)]
    for conv in reversed(convolutions):
        (kernel,), (dilation,), (padding,), (stride,) = conv.kernel_size, conv.dilation, conv.padding, conv.stride
        reach = dilation * (kernel - 1)
        if isinstance(conv, nn.ConvTranspose1d):  # output t reads input i where i * stride + k * dilation - padding = t
            lo, hi = -((reach - padding - lo) // stride), (hi + padding) // stride
        else:  # output t reads input t * stride - padding + k * dilation
            lo, hi = lo * stride - padding, hi * stride - padding + reach
    return -lo, hi


def random_tiny_config() -> DacConfig:
    """The published layout and hop with narrow channels: fast on a CPU, same receptive field."""
    return DacConfig(encoder_hidden_size=8, decoder_hidden_size=64, sampling_rate=SAMPLE_RATE)


def random_model(config: DacConfig, seed: int = RANDOM_SEED) -> DacModel:
    """Seeded random weights with PyTorch's default layer init.

    transformers' init (std 0.02, made for training) leaves a random decoder near-silent, which
    would make a 1e-4 comparison meaningless; the default init gives noise of a useful level.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DacModel(config)
        for module in model.modules():
            if isinstance(module, nn.Conv1d | nn.ConvTranspose1d | nn.Embedding):
                module.reset_parameters()
    return model


def _load_pretrained(source: str) -> DacModel:
    """DacModel.from_pretrained from a local directory or a Hugging Face repo id, with errors that say what to do."""
    local = Path(source).expanduser()
    if not local.is_dir() and (local.exists() or source.count("/") != 1):
        raise WeightsUnavailableError(
            f"{source!r} is neither a directory nor a Hugging Face repo id (owner/name); pass a local "
            f"directory holding the codec in transformers format (config.json, model.safetensors)"
        )
    if local.is_dir():
        remedy = "a codec directory holds config.json and model.safetensors, as DacModel.save_pretrained writes them"
    else:
        remedy = (
            f"download the repo on a machine with access (`hf download {source} --local-dir DIR`) and pass that "
            f"local directory instead, or set HF_HOME to a cache that holds it"
        )
    try:
        return DacModel.from_pretrained(str(local) if local.is_dir() else source)
    except Exception as exc:  # network, missing repo or files, bad files: the caller's remedy is the same
        raise WeightsUnavailableError(
            f"could not load the DAC codec from {source!r} ({type(exc).__name__}: {exc}); {remedy}"
        ) from exc


BATCH_TILE = 8  # decode batches padded to a multiple of this when deterministic (CPU)


class Codec:
    """Encode audio to codes and decode codes to audio, in windows that bound memory and stay exact."""

    def __init__(
        self,
        model: DacModel,
        chunk_frames: int = DEFAULT_CHUNK_FRAMES,
        max_batch: int = DEFAULT_MAX_BATCH,
        context_frames: int | None = None,
        deterministic: bool = True,
    ):
        """`context_frames` defaults to the decoder's receptive field; less breaks exactness.

        `deterministic` (CPU only): decode batches are padded to a multiple of BATCH_TILE windows,
        so a window's samples do not depend on which other requests' windows share its batch
        (oneDNN's convolutions give a batch row a result that depends on the batch size below 8;
        measured, tests/test_codec.py). Costs the padded windows' compute at small batches."""
        config = model.config
        if config.sampling_rate != SAMPLE_RATE or config.hop_length != HOP_LENGTH:
            raise ValueError(
                f"the codec runs at {config.sampling_rate} Hz with hop {config.hop_length}; Zonos needs the "
                f"{SAMPLE_RATE} Hz codec with hop {HOP_LENGTH} ({PUBLISHED_REPO})"
            )
        if chunk_frames < 1 or max_batch < 1:
            raise ValueError(f"chunk_frames ({chunk_frames}) and max_batch ({max_batch}) must be >= 1")
        self.model = model.eval().requires_grad_(False)
        self.n_codebooks = config.n_codebooks
        self.codebook_size = config.codebook_size
        self.chunk_frames = chunk_frames
        self.max_batch = max_batch
        self.batch_tile = BATCH_TILE if deterministic and model.device.type == "cpu" else 1
        self.context_frames = (
            max(receptive_field(model.decoder, HOP_LENGTH)) if context_frames is None else context_frames
        )

    @classmethod
    def from_pretrained(
        cls,
        source: str,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "auto",
        *,
        chunk_frames: int = DEFAULT_CHUNK_FRAMES,
        max_batch: int | None = None,
    ) -> Codec:
        """Load from a Hugging Face repo id (`descript/dac_44khz`), a local directory, or `random-tiny`.

        dtype "auto" is float16 on CUDA (the chunked fp16 vocoder) and float32 elsewhere; max_batch None
        (windows decoded at once) is 16 on CUDA and 4 elsewhere."""
        torch_dtype = resolve_dtype(dtype, device, cuda_default=torch.float16)
        if source == RANDOM_TINY:
            logger.warning(
                "codec %r has RANDOM weights: it decodes to noise, not speech. Pass %s or a local "
                "directory holding it for real audio.",
                source,
                PUBLISHED_REPO,
            )
            model = random_model(random_tiny_config())
        else:
            model = _load_pretrained(source)
        if max_batch is None:
            max_batch = DEFAULT_MAX_BATCH if torch.device(device).type == "cuda" else CPU_MAX_BATCH
        return cls(model.to(device=device, dtype=torch_dtype), chunk_frames=chunk_frames, max_batch=max_batch)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def window_frames(self) -> int:
        """The longest input the decoder network ever gets: one chunk with context on both sides."""
        return self.chunk_frames + 2 * self.context_frames

    @torch.inference_mode()
    def encode(self, wav: np.ndarray | torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Codes [n_codebooks, ceil(samples at 44.1 kHz / 512)] (CPU LongTensor) of a 1-D or [channels, samples] wav."""
        wav = torch.as_tensor(wav)
        if wav.ndim not in (1, 2) or wav.shape[-1] == 0 or not wav.is_floating_point():
            raise ValueError(
                f"wav must be a non-empty floating-point array of [samples] or [channels, samples], "
                f"got {tuple(wav.shape)} {wav.dtype}"
            )
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        wav = wav.to(device=self.device, dtype=torch.float32)
        mono = wav.mean(dim=0) if wav.ndim == 2 else wav
        if sample_rate != SAMPLE_RATE:
            mono = AF.resample(mono, orig_freq=sample_rate, new_freq=SAMPLE_RATE)
        mono = nn.functional.pad(mono, (0, -mono.shape[-1] % HOP_LENGTH))
        codes = self.model.encode(mono[None, None].to(self.dtype)).audio_codes
        return codes[0].long().cpu()

    def decode(self, codes: list[torch.Tensor | np.ndarray]) -> list[np.ndarray]:
        """Float32 audio, 512 samples per frame, for each [n_codebooks, T] row; each as if decoded alone."""
        rows = [self._check_codes(row, f"codes[{i}]") for i, row in enumerate(codes)]
        return self.decode_spans([(row, 0, row.shape[1]) for row in rows])

    def streaming_decoder(self) -> StreamingDecoder:
        return StreamingDecoder(self)

    def _check_codes(self, codes: torch.Tensor | np.ndarray, name: str, allow_empty: bool = False) -> torch.Tensor:
        codes = torch.as_tensor(codes)
        if codes.ndim != 2 or codes.shape[0] != self.n_codebooks or (codes.shape[1] == 0 and not allow_empty):
            raise ValueError(
                f"{name} must have shape [{self.n_codebooks}, T] with T >= {0 if allow_empty else 1}, "
                f"got {tuple(codes.shape)}"
            )
        if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
            raise ValueError(f"{name} must hold integer codes, got {codes.dtype}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(
                f"{name} holds codes outside 0..{self.codebook_size - 1} "
                f"(min {int(codes.min())}, max {int(codes.max())}); EOS and mask tokens must be removed first"
            )
        return codes.to(device=self.device, dtype=torch.long)

    @torch.inference_mode()
    def decode_spans(self, spans: list[CodeSpan]) -> list[np.ndarray]:
        """The samples of frames [a, b) of each span (codes, a, b), decoded in windows.

        A span's start or end may be a cut rather than the true sequence edge only where the
        caller keeps context_frames beyond it (a >= context or b <= length - context); then every
        kept frame has its full receptive field in its window, or the true edge.
        """
        window, context, chunk = self.window_frames, self.context_frames, self.chunk_frames
        outputs = [np.empty((b - a) * HOP_LENGTH, dtype=np.float32) for _, a, b in spans]
        # window length -> [(span index, window start, keep from, keep to)], all in frames of the span
        pieces: dict[int, list[tuple[int, int, int, int]]] = {}
        for index, (codes, a, b) in enumerate(spans):
            length = codes.shape[1]
            if length <= window:
                if b > a:
                    pieces.setdefault(length, []).append((index, 0, a, b))
                continue
            for start in range(a, b, chunk):
                window_start = min(max(start - context, 0), length - window)
                pieces.setdefault(window, []).append((index, window_start, start, min(start + chunk, b)))
        for length, group in pieces.items():
            for first in range(0, len(group), self.max_batch):
                batch = group[first : first + self.max_batch]
                # spans may arrive on the host (the Vocoder deployment builds them from numpy)
                codes = torch.stack([spans[i][0][:, s : s + length] for i, s, _, _ in batch]).to(self.device)
                pad = -len(batch) % self.batch_tile
                if pad:  # batch invariance: the same windows decode to the same samples whatever shares the batch
                    codes = torch.cat([codes, codes.new_zeros((pad, *codes.shape[1:]))])
                audio = self.model.decode(audio_codes=codes).audio_values.float().cpu().numpy()
                for row, (i, s, keep_from, keep_to) in zip(audio[: len(batch)], batch, strict=True):
                    a = spans[i][1]
                    outputs[i][(keep_from - a) * HOP_LENGTH : (keep_to - a) * HOP_LENGTH] = row[
                        (keep_from - s) * HOP_LENGTH : (keep_to - s) * HOP_LENGTH
                    ]
        return outputs


CodeSpan = tuple[torch.Tensor, int, int]  # (codes [n_codebooks, L] int64, keep from frame, keep to frame)


class StreamingSpans:
    """Which span of frames to decode as frames arrive, so every returned frame is final.

    A frame's samples are final once `context` frames after it are known (or the stream ended),
    so push() names exactly the frames not returned yet that became final, with the context
    they need; flush() the rest. It keeps only the frames still needed. The decoding itself
    (Codec.decode_spans) is stateless, so it can run anywhere, e.g. a separate vocoder service.
    """

    def __init__(self, context_frames: int, n_codebooks: int, device=None):
        self._context = context_frames
        self._frames = torch.empty((n_codebooks, 0), dtype=torch.long, device=device)
        self._offset = 0  # stream index of self._frames[:, 0]
        self._returned = 0  # frames whose span was handed out
        self._flushed = False

    @property
    def buffered_frames(self) -> int:
        return self._frames.shape[1]

    def push(self, frames: torch.Tensor, last: bool = False) -> CodeSpan | None:
        """Add frames [n_codebooks, n] int64 (n may be 0); the span that became final, if any.
        `last` ends the stream: the span then holds every frame not handed out yet."""
        if self._flushed:
            raise RuntimeError("push() after flush() or a last push: the stream has ended; start a new stream")
        self._frames = torch.cat([self._frames, frames.to(self._frames.device)], dim=1)
        self._flushed = last
        return self._release(self._offset + self._frames.shape[1] - (0 if last else self._context))

    def flush(self) -> CodeSpan | None:
        """End the stream: the span of all frames not handed out yet."""
        return self.push(self._frames[:, :0], last=True)

    def _release(self, upto: int) -> CodeSpan | None:
        if upto <= self._returned:
            return None
        span = (self._frames, self._returned - self._offset, upto - self._offset)
        self._returned = upto
        drop = max(0, self._returned - self._context - self._offset)
        self._frames = self._frames[:, drop:]
        self._offset += drop
        return span


class StreamingDecoder:
    """Decode frames as they arrive; the concatenated outputs equal decoding all frames at once."""

    def __init__(self, codec: Codec):
        self._codec = codec
        self._spans = StreamingSpans(codec.context_frames, codec.n_codebooks, codec.device)

    @property
    def buffered_frames(self) -> int:
        return self._spans.buffered_frames

    def push(self, frames: torch.Tensor | np.ndarray) -> np.ndarray:
        """Add frames [n_codebooks, n] (n may be 0); return the samples that became final."""
        return self._decode(self._spans.push(self._codec._check_codes(frames, "frames", allow_empty=True)))

    def flush(self) -> np.ndarray:
        """End the stream: the samples of all frames not returned yet."""
        return self._decode(self._spans.flush())

    def _decode(self, span: CodeSpan | None) -> np.ndarray:
        return np.empty(0, dtype=np.float32) if span is None else self._codec.decode_spans([span])[0]
