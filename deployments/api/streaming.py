"""Audio responses: the backend's float32 chunks encoded as they arrive (chunked transfer or SSE), or as one file.

Audio responses carry X-Sample-Rate (the rate the bytes decode to: 48000 for opus, which always
codes at 48 kHz, else 44100), X-Audio-Format and Cache-Control: no-store. pcm is raw s16le mono
at 44.1 kHz (not OpenAI's 24 kHz).

Streaming: the first chunk of audio is awaited (and encoded) before the response starts, so
anything that fails early - busy, timeout, a request the model can't take (a ValueError from the
backend, 422) - gets its status (errors.backend_error). Once bytes are sent the status can't
change. A later failure that the request graph could not recover (pipeline.streaming retries a
failed worker's segment and skips what was sent) FAILS VISIBLY: a raw audio stream is cut without
its terminating chunk (`IncompleteStream`: curl exits 18, httpx/requests raise an incomplete-read
error), an SSE stream ends with a `{"type": "error", "error": {...}}` event instead of
speech.audio.done (503 server_busy, 504 timeout, anything else 500 internal_error).
`audio_file_response` buffers the whole file instead,
so any failure still gets its status. When a response ends for any reason (done, failed, client
gone), the backend's iterator is closed (`aclose()`), which is how the backend learns to stop.

SSE (OpenAI's stream_format "sse"): `data: {"type": "speech.audio.delta", "audio": <base64 of the
next bytes of the file>}` events, then `data: {"type": "speech.audio.done"}` (no token usage:
there are no tokens to count).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator
from typing import Any, Literal

import anyio
import numpy as np
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from deployments.api import context
from deployments.api.errors import ApiError, backend_error, backend_errors
from pipeline.audio import MEDIA_TYPES, SAMPLE_RATE, StreamingEncoder, encode_audio
from pipeline.synthesis import SynthesisRequest

logger = logging.getLogger("ray.serve")  # Serve's replica log

ResponseFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]

_OPUS_RATE = 48_000  # libopus codes at 48 kHz whatever it is fed (pipeline.audio)
_CLOSE_TIMEOUT_S = 5.0
_THREAD_ENCODE_SAMPLES = SAMPLE_RATE  # chunks of a second or more are encoded off the event loop


async def audio_stream_response(
    request: Request, synthesis: SynthesisRequest, fmt: str, deadline: float, text_param: str, sse: bool = False
) -> StreamingResponse:
    """`synthesis` streamed as `fmt` (its bytes, or SSE events when `sse`); `text_param` names the text field."""
    iterator, first = await _first_chunk(request, synthesis, deadline, text_param)
    try:
        encoder = StreamingEncoder(fmt, SAMPLE_RATE)
        head = b"" if first is None else await _encode(encoder, first)
    except BaseException:
        await _close(iterator)
        raise
    body = _stream_body(iterator, encoder, head, first is None, deadline, context.request_id(request), sse)
    headers = _audio_headers(fmt)
    if sse:
        return StreamingResponse(body, media_type="text/event-stream", headers=headers | {"Cache-Control": "no-cache"})
    return StreamingResponse(body, media_type=MEDIA_TYPES[fmt], headers=headers)


async def audio_file_response(
    request: Request, synthesis: SynthesisRequest, fmt: str, deadline: float, text_param: str
) -> Response:
    """`synthesis` as one `fmt` file with Content-Length, sent once all of it is generated."""
    iterator, first = await _first_chunk(request, synthesis, deadline, text_param)
    chunks = [] if first is None else [np.asarray(first, np.float32)]
    try:
        with backend_errors(text_param=text_param):
            async with asyncio.timeout_at(deadline):
                async for chunk in iterator:
                    chunks.append(np.asarray(chunk, np.float32))
    finally:
        await _close(iterator)
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    data = await anyio.to_thread.run_sync(encode_audio, samples, SAMPLE_RATE, fmt)
    return Response(data, media_type=MEDIA_TYPES[fmt], headers=_audio_headers(fmt))


def _audio_headers(fmt: str) -> dict[str, str]:
    rate = _OPUS_RATE if fmt == "opus" else SAMPLE_RATE
    return {"X-Sample-Rate": str(rate), "X-Audio-Format": fmt, "Cache-Control": "no-store"}


async def _first_chunk(
    request: Request, synthesis: SynthesisRequest, deadline: float, text_param: str
) -> tuple[AsyncIterator[np.ndarray], np.ndarray | None]:
    """Start the backend's stream and wait for its first chunk (None: it ended at once); errors
    before it become API errors, those about the text naming `text_param`."""
    iterator: AsyncIterator[np.ndarray] | None = None
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
    iterator: AsyncIterator[np.ndarray],
    encoder: StreamingEncoder,
    head: bytes,
    ended: bool,
    deadline: float,
    rid: str,
    sse: bool,
) -> AsyncIterator[bytes]:
    def frame(data: bytes) -> bytes:
        return _sse({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()}) if sse else data

    try:
        if head:
            yield frame(head)
        while not ended:
            try:
                async with asyncio.timeout_at(deadline):
                    chunk = await anext(iterator)
            except StopAsyncIteration:
                break
            data = await _encode(encoder, chunk)
            if data:
                yield frame(data)
        tail = encoder.close()
        if tail:
            yield frame(tail)
        if sse:
            yield _sse({"type": "speech.audio.done"})
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


async def _encode(encoder: StreamingEncoder, chunk: np.ndarray) -> bytes:
    if len(chunk) >= _THREAD_ENCODE_SAMPLES:
        return await anyio.to_thread.run_sync(encoder.write, chunk)
    return encoder.write(chunk)


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
