"""Drive a ZonosEngine from asyncio: one background thread steps it, callers await their frames.

The engine is single-threaded by design; this wrapper is the one owner of it. Callers on any
event loop submit requests (they join the running batch at the next step) and receive the
FrameChunks of their own requests through an asyncio queue. A caller that stops listening
aborts its request, so abandoned rows stop costing compute.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass

from pipeline.engine.engine import EngineConfig, EngineStats, ZonosEngine
from pipeline.engine.request import FrameChunk, GenerationRequest

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Add:
    """Queue these requests under these stream ids (they join the batch at the next step)."""

    requests: list[tuple[str, GenerationRequest]]


@dataclass(frozen=True)
class Abort:
    request_id: str


@dataclass(frozen=True)
class Close:
    """Stop the engine thread (unfinished requests are aborted)."""


Command = Add | Abort | Close


@dataclass
class _Listener:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue


class AsyncEngine:
    def __init__(self, engine: ZonosEngine):
        self.engine = engine
        self._inbox: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self._listeners: dict[str, _Listener] = {}
        self._ids = itertools.count()
        self._open = True  # read and written by the engine thread only
        self._thread = threading.Thread(target=self._run, name="zonos-engine", daemon=True)
        self._thread.start()

    @property
    def config(self) -> EngineConfig:
        return self.engine.config

    def stats(self) -> EngineStats:
        """The engine's running totals (see `ZonosEngine.stats`)."""
        return self.engine.stats()

    def submit(self, requests: list[GenerationRequest]) -> list[str]:
        """Queue requests for admission at the next step; their stream ids, in the given order.

        Requests submitted together are admitted shortest first (see `Scheduler`)."""
        loop = asyncio.get_running_loop()
        ids = [f"r{next(self._ids)}" for _ in requests]
        for request_id in ids:
            self._listeners[request_id] = _Listener(loop, asyncio.Queue())
        self._inbox.put(Add(list(zip(ids, requests, strict=True))))
        return ids

    async def stream(self, request_id: str) -> AsyncIterator[FrameChunk]:
        """The chunks of one submitted request until its last; an engine error is raised here."""
        listener = self._listeners[request_id]
        finished = False
        try:
            while not finished:
                item = await listener.queue.get()
                if isinstance(item, BaseException):
                    raise item
                finished = item.finished
                yield item
        finally:
            self._listeners.pop(request_id, None)
            if not finished:
                self._inbox.put(Abort(request_id))

    async def generate(self, request: GenerationRequest) -> AsyncIterator[FrameChunk]:
        (request_id,) = self.submit([request])
        async for chunk in self.stream(request_id):
            yield chunk

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        self._inbox.put(Close())
        self._thread.join(timeout=10)

    # ----------------------------------------------------------------------- the engine thread

    def _deliver(self, request_id: str, item) -> None:
        listener = self._listeners.get(request_id)
        if listener is not None:
            listener.loop.call_soon_threadsafe(listener.queue.put_nowait, item)

    def _apply(self, command: Command) -> None:
        match command:
            case Add(requests):
                for request_id, request in requests:
                    try:
                        self.engine.add_request(request, request_id)
                    except Exception as exc:  # a bad item fails that item only
                        self._deliver(request_id, exc)
            case Abort(request_id):
                self.engine.abort(request_id)
            case Close():
                self._open = False

    def _apply_waiting(self) -> bool:
        """Apply every queued command before the next step; False once told to close."""
        while self._open:
            try:
                self._apply(self._inbox.get_nowait())
            except queue.Empty:
                break
        return self._open

    def _run(self) -> None:
        while self._open:
            self._apply(self._inbox.get())  # idle: wait for work
            try:
                for chunk in self.engine.drive(between_steps=self._apply_waiting):
                    self._deliver(chunk.request_id, chunk)
            except Exception as exc:  # an engine failure must reach every waiting caller
                logger.exception("engine step failed")  # the drive loop has aborted every request
                for request_id in list(self._listeners):
                    self._deliver(request_id, RuntimeError(f"generation failed: {exc}"))
