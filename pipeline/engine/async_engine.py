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

from pipeline.engine.engine import ZonosEngine
from pipeline.engine.request import FrameChunk, GenerationRequest

logger = logging.getLogger(__name__)


@dataclass
class _Listener:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue


class AsyncEngine:
    def __init__(self, engine: ZonosEngine):
        self.engine = engine
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._listeners: dict[str, _Listener] = {}
        self._ids = itertools.count()
        self._thread = threading.Thread(target=self._run, name="zonos-engine", daemon=True)
        self._thread.start()

    def submit(self, requests: list[GenerationRequest]) -> list[str]:
        """Queue requests, in this order, for admission at the next step; their stream ids."""
        loop = asyncio.get_running_loop()
        ids = [f"r{next(self._ids)}" for _ in requests]
        for request_id in ids:
            self._listeners[request_id] = _Listener(loop, asyncio.Queue())
        self._inbox.put(("add", list(zip(ids, requests, strict=True))))
        return ids

    def submit_shortest_first(self, requests: list[GenerationRequest]) -> list[str]:
        """Queue a batch shortest first, so prefills of similar lengths go together; ids in the given order."""
        order = sorted(range(len(requests)), key=lambda i: len(requests[i].phoneme_ids or requests[i].text))
        ids = [""] * len(requests)
        for i, request_id in zip(order, self.submit([requests[i] for i in order]), strict=True):
            ids[i] = request_id
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
                self._inbox.put(("abort", request_id))

    async def generate(self, request: GenerationRequest) -> AsyncIterator[FrameChunk]:
        (request_id,) = self.submit([request])
        async for chunk in self.stream(request_id):
            yield chunk

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        self._inbox.put(("close", None))
        self._thread.join(timeout=10)

    # ----------------------------------------------------------------------- the engine thread

    def _deliver(self, request_id: str, item) -> None:
        listener = self._listeners.get(request_id)
        if listener is not None:
            listener.loop.call_soon_threadsafe(listener.queue.put_nowait, item)

    def _handle(self, command: str, payload) -> None:
        if command == "add":
            for request_id, request in payload:
                try:
                    self.engine.add_request(request, request_id)
                except Exception as exc:  # a bad item fails that item only
                    self._deliver(request_id, exc)
        elif command == "abort":
            self.engine.abort(payload)

    def _run(self) -> None:
        while True:
            block = not self.engine.has_unfinished()
            try:
                command, payload = self._inbox.get(block=block)
            except queue.Empty:
                command = None
            if command == "close":
                return
            if command:
                self._handle(command, payload)
                continue  # take every waiting command before the next step
            try:
                for chunk in self.engine.step():
                    self._deliver(chunk.request_id, chunk)
            except Exception as exc:  # an engine failure must reach every waiting caller
                logger.exception("engine step failed")
                for request_id in list(self._listeners):
                    self.engine.abort(request_id)
                    self._deliver(request_id, RuntimeError(f"generation failed: {exc}"))
