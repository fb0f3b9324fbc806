"""Audio responses: the backend's pieces encoded as they arrive (chunked transfer or SSE), or as one file.

Rates. The backend's audio is float32 mono at 44.1 kHz (SAMPLE_RATE, Zonos's codec). A route may
ask for another `sample_rate` (SAMPLE_RATES: the rates every format's encoder takes); the audio is
then resampled on the way out, chunk by chunk (pipeline.resample.StreamingResampler: for any
chunking, the samples torchaudio's resample of the whole signal gives), so a stream stays a
stream. opus is always coded at 48 kHz (libopus's rate: PyAV converts whatever it is fed), so it
ignores `sample_rate`. Every audio response carries X-Sample-Rate (the rate its bytes decode to),
X-Audio-Format, X-Seed and Cache-Control: no-store; raw pcm (s16le mono, no header) is 2 bytes per
sample at X-Sample-Rate.

Seeds. A request without a seed gets one here, before the backend starts
(pipeline.streaming.resolve_seed: random, 63 bits), and every audio response states its seed in
X-Seed: sending it back as `seed` repeats the audio (the same model, settings and text).

Streaming: the first piece of audio is awaited (and encoded) before the response starts, so
anything that fails early - busy, timeout, a request the model can't take (a ValueError from the
backend: 422, 400 on OpenAI's route) - gets its status (errors.backend_error). Once bytes are sent
the status can't change. A later failure that the request graph could not recover (pipeline.streaming retries a
failed worker's segment and skips what was sent) FAILS VISIBLY: a raw audio stream is cut without
its terminating chunk (`IncompleteStream`: curl exits 18, httpx/requests raise an incomplete-read
error), an SSE stream ends with an error event instead of speech.audio.done (503 server_busy, 504
timeout, anything else 500 internal_error). `audio_file_response` buffers the whole file instead,
so any failure still gets its status. When a response ends for any reason (done, failed, client
gone), the backend's iterator is closed (`aclose()`), which is how the backend learns to stop.

SSE (OpenAI's stream_format "sse"), each event one `data:` line of JSON:
- `{"type": "speech.audio.delta", "audio": <base64 of the next bytes of the file>}`;
- last, `{"type": "speech.audio.done", "usage": {"input_tokens", "output_tokens", "total_tokens"}}`
  (OpenAI's shape, all three required by its spec): input_tokens = the phoneme tokens of all of
  the text's segments (pipeline.segment: BOS and EOS included, what the model reads), output_tokens
  = the codec frames generated (one frame = 9 codebook codes = 512 samples, 11.6 ms of audio; the
  frames of the audio sent, a segment re-generated after a worker failure counts once),
  total_tokens their sum. Both come from the backend's pieces (each segment's last piece carries
  its `SegmentTiming`);
- with `timestamps` (an extension, off by default), `{"type": "speech.audio.segment", "segment":
  {"index", "text", "start_s", "end_s", "start_sample", "end_sample"}}` once all of a segment's audio
  has gone out (api/timestamps.py says exactly when, and how bounds are stated at the sent rate);
- instead of done, on a failure after the first event: `{"type": "error", "error": {"message",
  "type", "param", "code"}}`. OpenAI's speech stream specifies no error event; this is the error
  event of OpenAI's Realtime API (type "error", OpenAI's error object), which SSE clients of
  OpenAI already know. vLLM-Omni names its equivalent "speech.audio.error"; a client that
  switches on `type` must treat anything but a delta or done as the end of the stream either way.

Whole answers with timestamps (api/timestamps.py): `timestamps_response` (JSON: the file in base64
and each segment's bounds at its rate, optionally captions; or SRT or WebVTT alone) waits for all of
the audio, as `audio_file_response` does, so any failure keeps its status.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Literal, get_args

import anyio
import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from deployments.api import context
from deployments.api.errors import ApiError, backend_error, backend_errors
from deployments.api.timestamps import (
    CAPTION_MEDIA_TYPES,
    TimestampedSpeech,
    at_rate,
    captions,
    segment_bounds,
    segment_event,
)
from pipeline.audio import MEDIA_TYPES, SAMPLE_RATE, StreamingEncoder, encode_audio
from pipeline.resample import StreamingResampler, resample
from pipeline.streaming import AudioPiece, SegmentTiming, SynthesisResult, collect, resolve_seed
from pipeline.synthesis import SynthesisRequest

logger = logging.getLogger("ray.serve")  # Serve's replica log

ResponseFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]
# The output rates a route may ask for: those every format's encoder takes (libmp3lame's list;
# FFmpeg's aac, flac, wav and pcm take them too), from telephony's 8 kHz to 48 kHz.
SampleRate = Literal[8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000]
SAMPLE_RATES: tuple[int, ...] = get_args(SampleRate)

_OPUS_RATE = 48_000  # libopus codes at 48 kHz whatever it is fed (pipeline.audio)
_CLOSE_TIMEOUT_S = 5.0
_THREAD_ENCODE_SAMPLES = SAMPLE_RATE  # chunks of a second or more are encoded off the event loop


def output_rate(fmt: str, sample_rate: int | None) -> int:
    """The rate a response's bytes decode to: 48000 for opus, else `sample_rate` (None: 44100)."""
    return _OPUS_RATE if fmt == "opus" else sample_rate or SAMPLE_RATE


async def audio_stream_response(
    request: Request,
    synthesis: SynthesisRequest,
    fmt: str,
    deadline: float,
    text_param: str,
    sse: bool = False,
    sample_rate: int | None = None,
    timestamps: bool = False,
) -> StreamingResponse:
    """`synthesis` streamed as `fmt` at `sample_rate` (None: 44.1 kHz; ignored by opus): its bytes,
    or SSE events when `sse` (with speech.audio.segment events when `timestamps`); `text_param`
    names the text field."""
    synthesis = resolve_seed(synthesis)
    iterator, first = await _first_piece(request, synthesis, deadline, text_param)
    try:
        encoder = _Encoder(fmt, sample_rate)
        head = b"" if first is None else await _encode(encoder, first.samples)
    except BaseException:
        await _close(iterator)
        raise
    usage = _Usage()
    segments = _SegmentEvents(encoder, enabled=sse and timestamps)
    if first is not None:
        usage.add(first)
        segments.add(first)
    rid = context.request_id(request)
    # once bytes flow, the client's read timeout no longer bounds the response (context.stream_deadline)
    stream_deadline = context.stream_deadline(request)
    body = _stream_body(iterator, encoder, head, first is None, stream_deadline, rid, sse, usage, segments)
    headers = _audio_headers(fmt, encoder.rate, synthesis.seed)
    if sse:
        return StreamingResponse(body, media_type="text/event-stream", headers=headers | {"Cache-Control": "no-cache"})
    return StreamingResponse(body, media_type=MEDIA_TYPES[fmt], headers=headers)


async def audio_file_response(
    request: Request,
    synthesis: SynthesisRequest,
    fmt: str,
    deadline: float,
    text_param: str,
    sample_rate: int | None = None,
) -> Response:
    """`synthesis` as one `fmt` file at `sample_rate` (as audio_stream_response) with Content-Length,
    sent once all of it is generated."""
    synthesis, _, data = await _whole_file(request, synthesis, fmt, deadline, text_param, sample_rate)
    headers = _audio_headers(fmt, output_rate(fmt, sample_rate), synthesis.seed)
    return Response(data, media_type=MEDIA_TYPES[fmt], headers=headers)


async def timestamps_response(
    request: Request,
    synthesis: SynthesisRequest,
    fmt: str,
    deadline: float,
    text_param: str,
    sample_rate: int | None = None,
    captions_format: str | None = None,
) -> Response:
    """The answers made of timestamps, sent once all of `synthesis` is generated (api/timestamps.py):
    for `fmt` "srt" or "vtt" the captions alone (pipeline.captions), timed in samples at `sample_rate`
    (None: 44.1 kHz); for an audio `fmt`, JSON (timestamps.TimestampedSpeech): the whole file at
    `sample_rate` (as audio_file_response) in base64, each segment's bounds at that rate, and the
    captions in `captions_format` ("srt" | "vtt") when given."""
    if fmt in CAPTION_MEDIA_TYPES:
        synthesis = resolve_seed(synthesis)
        result = await _collect(request, synthesis, deadline, text_param)
        text = captions(result.segments, fmt, sample_rate or SAMPLE_RATE)
        headers = {"X-Seed": str(synthesis.seed), "Cache-Control": "no-store"}
        return Response(text, media_type=CAPTION_MEDIA_TYPES[fmt], headers=headers)
    synthesis, result, data = await _whole_file(request, synthesis, fmt, deadline, text_param, sample_rate)
    rate = output_rate(fmt, sample_rate)
    body = TimestampedSpeech(
        audio=base64.b64encode(data).decode(),
        response_format=fmt,
        sample_rate=rate,
        seed=synthesis.seed,
        segments=[segment_bounds(timing, rate) for timing in result.segments],
        captions=None if captions_format is None else captions(result.segments, captions_format, rate),
    )
    return JSONResponse(
        body.model_dump(mode="json", exclude_none=True), headers=_audio_headers(fmt, rate, synthesis.seed)
    )


async def _whole_file(
    request: Request, synthesis: SynthesisRequest, fmt: str, deadline: float, text_param: str, sample_rate: int | None
) -> tuple[SynthesisRequest, SynthesisResult, bytes]:
    """`synthesis` with its seed resolved, all of its audio and timings, and the audio as one `fmt` file."""
    synthesis = resolve_seed(synthesis)
    result = await _collect(request, synthesis, deadline, text_param)
    return synthesis, result, await anyio.to_thread.run_sync(_encode_file, result.audio, fmt, sample_rate)


async def _collect(request: Request, synthesis: SynthesisRequest, deadline: float, text_param: str) -> SynthesisResult:
    """All of `synthesis`'s audio and segment timings (pipeline.streaming.collect); any failure is an API error."""
    iterator, first = await _first_piece(request, synthesis, deadline, text_param)

    async def pieces() -> AsyncIterator[AudioPiece]:
        if first is not None:
            yield first
        async for piece in iterator:
            yield piece

    try:
        with backend_errors(text_param=text_param):
            async with asyncio.timeout_at(deadline):
                return await collect(pieces())
    finally:
        await _close(iterator)


def _audio_headers(fmt: str, rate: int, seed: int) -> dict[str, str]:
    return {"X-Sample-Rate": str(rate), "X-Audio-Format": fmt, "X-Seed": str(seed), "Cache-Control": "no-store"}


def _encoder_rate(fmt: str, sample_rate: int | None) -> int:
    """The rate the encoder is fed: opus takes the backend's 44.1 kHz (libopus converts to 48 kHz)."""
    return SAMPLE_RATE if fmt == "opus" else output_rate(fmt, sample_rate)


def _encode_file(samples: np.ndarray, fmt: str, sample_rate: int | None) -> bytes:
    """A whole file (exact headers: pipeline.audio.encode_audio) of 44.1 kHz samples, resampled as a stream would be."""
    rate = _encoder_rate(fmt, sample_rate)
    return encode_audio(resample(samples, SAMPLE_RATE, rate), rate, fmt)


class _Encoder:
    """44.1 kHz float32 chunks in, the bytes of `fmt` at `rate` out: resampled (when needed), then
    encoded. `sent`: how many samples (at `encoder_rate`) have been handed to the encoder."""

    def __init__(self, fmt: str, sample_rate: int | None):
        self.rate = output_rate(fmt, sample_rate)
        self.encoder_rate = _encoder_rate(fmt, sample_rate)
        self.sent = 0
        rate = self.encoder_rate
        self._resampler = StreamingResampler(SAMPLE_RATE, rate) if rate != SAMPLE_RATE else None
        self._encoder = StreamingEncoder(fmt, rate)

    def write(self, samples: np.ndarray) -> bytes:
        if self._resampler is not None:
            samples = self._resampler.push(samples)
        return self._feed(samples)

    def close(self) -> bytes:
        head = b"" if self._resampler is None else self._feed(self._resampler.flush())
        return head + self._encoder.close()

    def _feed(self, samples: np.ndarray) -> bytes:
        self.sent += len(samples)
        return self._encoder.write(samples)


class _SegmentEvents:
    """The speech.audio.segment events of a stream (timestamps.py), in text order, each released
    once every sample of its segment (at the encoder's rate) has been handed to the encoder; bounds
    stated at the response's rate. Disabled, it releases none."""

    def __init__(self, encoder: _Encoder, enabled: bool):
        self._encoder, self._enabled = encoder, enabled
        self._waiting: deque[SegmentTiming] = deque()

    def add(self, piece: AudioPiece) -> None:
        if self._enabled and piece.timing is not None:
            self._waiting.append(piece.timing)

    def ready(self, last: bool = False) -> list[bytes]:
        """The events now due; `last` (the audio is over): all that wait."""
        events = []
        while self._waiting and (last or self._sent(self._waiting[0])):
            events.append(_sse(segment_event(self._waiting.popleft(), self._encoder.rate)))
        return events

    def _sent(self, timing: SegmentTiming) -> bool:
        return at_rate(timing, self._encoder.encoder_rate).end_sample <= self._encoder.sent


class _Usage:
    """OpenAI's speech usage, summed over the segments' timings (module docstring)."""

    def __init__(self) -> None:
        self.input_tokens = self.output_tokens = 0

    def add(self, piece: AudioPiece) -> None:
        if piece.timing is not None:
            self.input_tokens += piece.timing.n_tokens
            self.output_tokens += piece.timing.n_frames

    def event(self) -> dict:
        total = self.input_tokens + self.output_tokens
        usage = {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens, "total_tokens": total}
        return {"type": "speech.audio.done", "usage": usage}


async def _first_piece(
    request: Request, synthesis: SynthesisRequest, deadline: float, text_param: str
) -> tuple[AsyncIterator[AudioPiece], AudioPiece | None]:
    """Start the backend's stream and wait for its first piece (None: it ended at once); errors
    before it become API errors, those about the text naming `text_param`."""
    iterator: AsyncIterator[AudioPiece] | None = None
    try:
        with backend_errors(text_param=text_param):
            async with asyncio.timeout_at(deadline):
                iterator = context.backend(request).stream_audio(synthesis, context.request_id(request))
                try:
                    return iterator, await anext(iterator)
                except StopAsyncIteration:
                    return iterator, None
    except BaseException:
        if iterator is not None:
            await _close(iterator)
        raise


async def _stream_body(
    iterator: AsyncIterator[AudioPiece],
    encoder: _Encoder,
    head: bytes,
    ended: bool,
    deadline: float,
    rid: str,
    sse: bool,
    usage: _Usage,
    segments: _SegmentEvents,
) -> AsyncIterator[bytes]:
    def frame(data: bytes) -> bytes:
        return _sse({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()}) if sse else data

    try:
        if head:
            yield frame(head)
        for event in segments.ready():
            yield event
        while not ended:
            try:
                async with asyncio.timeout_at(deadline):
                    piece = await anext(iterator)
            except StopAsyncIteration:
                break
            usage.add(piece)
            segments.add(piece)
            data = await _encode(encoder, piece.samples)
            if data:
                yield frame(data)
            for event in segments.ready():
                yield event
        tail = encoder.close()
        if tail:
            yield frame(tail)
        for event in segments.ready(last=True):
            yield event
        if sse:
            yield _sse(usage.event())
    except Exception as exc:
        error = backend_error(exc) or ApiError(500, "audio generation failed part way", code="internal_error")
        logger.warning("request %s: stream failed after the response started: %r", rid, exc)
        if not sse:
            # No silent loss: raw audio ends WITHOUT its terminating chunk, so the client's HTTP
            # library reports an incomplete body instead of a short file that looks complete.
            raise IncompleteStream(f"request {rid}: {error.message}") from None
        yield _sse({"type": "error", "error": error.body()})
    finally:
        await _close(iterator)


async def _encode(encoder: _Encoder, samples: np.ndarray) -> bytes:
    if len(samples) >= _THREAD_ENCODE_SAMPLES:
        return await anyio.to_thread.run_sync(encoder.write, samples)
    return encoder.write(samples)


async def _close(iterator: Any) -> None:
    """Close the backend's iterator (so it stops generating), even while being cancelled."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is None:
        return
    with anyio.move_on_after(_CLOSE_TIMEOUT_S, shield=True):
        try:
            await aclose()
        except Exception as exc:
            logger.warning("closing a backend stream failed: %r", exc)


class IncompleteStream(RuntimeError):
    """Raised out of a raw audio body that cannot be completed: the server then closes the
    connection without the final chunk (HTTP/1.1 chunked transfer), which clients report."""


def _sse(event: dict) -> bytes:
    return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"
