"""What the HTTP API (deployments.api) needs from the server behind it: the backend contract.

No Starlette and no Ray here (`follow_serve_shutdown` imports ray when called, in a replica): the
Ingress implements `SpeechBackend` over the deployment handles, tests implement it with a fake,
and `deployments.api` serves any implementation.

What a backend raises, and what the API makes of it (deployments.api.errors.backend_error):
`BackendBusy` (queues full: 503 with Retry-After), TimeoutError (504), ValueError for input it
can't take (pipeline.speaker.InvalidAudioError for a bad clip, pipeline.text.NothingToSpeakError
for text with nothing to speak: 422), pipeline.text.MissingExtraError for a language whose extra
is not installed (422), pipeline.text.UnsupportedLanguageError for an unknown language (422),
pipeline.voices.DuplicateVoiceNameError from create_voice (409);
pipeline.voices.VoiceNotFoundError (a KeyError) means "no such voice", like None.

Draining: a backend's optional `draining` attribute (a `Drain`, or any truthy flag) says it is
shutting down. While it is true, GET /readyz answers 503 and the HTTP layer admits no new request
(503 server_busy with Retry-After, deployments.api.health); requests already admitted finish. A
backend raises `BackendDraining` (a BackendBusy: the same 503) from `Drain.admit()` for work that
reaches it another way (the Ingress's handle API).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel, ConfigDict, Field

from pipeline.streaming import AudioPiece, StepUnavailable
from pipeline.synthesis import SynthesisRequest
from pipeline.voices import VoiceInfo

if TYPE_CHECKING:
    from deployments.shutdown import AppDrainSignal

__all__ = [
    "MODEL_ALIASES",
    "MODEL_ID",
    "BackendBusy",
    "BackendDraining",
    "Drain",
    "ModelCard",
    "SpeechBackend",
    "VoiceInfo",
    "follow_serve_shutdown",
    "model_names",
]

logger = logging.getLogger("ray.serve")

MODEL_ID = "zonos-v0.1"
# OpenAI's text-to-speech model names, all answered by the one model (GET /v1/models lists them).
MODEL_ALIASES = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")


def model_names(aliases: Iterable[str] = ()) -> list[str]:
    """The names OpenAI's routes list (GET /v1/models, /v1/audio/models): zonos-v0.1, OpenAI's,
    then `aliases` (AppConfig.model_aliases), each once."""
    return list(dict.fromkeys([MODEL_ID, *MODEL_ALIASES, *aliases]))


class BackendBusy(StepUnavailable):
    """The backend's queues are full or a replica is unavailable: transient, the client should
    retry after `retry_after_s` (HTTP 503). A StepUnavailable, so the request graph retries the
    step that raised it before giving up (pipeline.streaming)."""

    def __init__(self, message: str = "the server is busy; retry shortly", retry_after_s: float = 1.0):
        super().__init__(message, retry_after_s)


class BackendDraining(BackendBusy):
    """The backend is shutting down: it takes no new work, another replica will (HTTP 503, Retry-After)."""


DRAIN_RETRY_AFTER_S = 2.0  # a retry then reaches a replica that is not stopping


class Drain:
    """Whether a backend is draining: false until `begin`, then true for good. Truthy while draining,
    so it serves as a backend's `draining` attribute; `begin` may be called from any thread."""

    def __init__(self, retry_after_s: float = DRAIN_RETRY_AFTER_S):
        self.retry_after_s = retry_after_s
        self._lock = threading.Lock()
        self.since: float | None = None  # time.monotonic() when draining began
        self.reason = ""
        self.in_flight = 0  # requests inside `track()`: what a graceful stop waits for

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        """Count a request in flight while inside (one event loop's requests, or any thread's)."""
        with self._lock:
            self.in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1

    def __bool__(self) -> bool:
        return self.since is not None

    def __repr__(self) -> str:
        return f"Drain(draining={bool(self)}, reason={self.reason!r})"

    def begin(self, reason: str) -> None:
        if self.since is None:
            self.reason = reason
            self.since = time.monotonic()
            logger.warning("draining (%s): new requests get 503; in-flight requests finish", reason)

    def admit(self) -> None:
        """Raise BackendDraining while draining; call it where new work enters the backend."""
        if self:
            raise BackendDraining(
                f"this server is shutting down ({self.reason}); retry, another replica will take it",
                retry_after_s=self.retry_after_s,
            )

    @classmethod
    def following_serve(cls, retry_after_s: float = DRAIN_RETRY_AFTER_S) -> Drain:
        """A Drain that begins when Ray Serve starts stopping the replica it is made in, or when a
        graceful stop of its whole app is requested (see `follow_serve_shutdown`); outside a
        replica it never begins by itself."""
        from deployments.shutdown import AppDrainSignal

        drain = cls(retry_after_s)
        follow_serve_shutdown(drain, app_signal=AppDrainSignal.for_this_replica())
        return drain


def follow_serve_shutdown(drain: Drain, poll_s: float = 0.1, app_signal: AppDrainSignal | None = None) -> bool:
    """Begin `drain` as soon as Ray Serve starts stopping the replica this runs in, or (with
    `app_signal`) once a graceful stop of the whole app is requested (deployments.shutdown); from
    then on the replica's `drain.in_flight` is reported to that stop every `poll_s`.

    Serve 2.60 calls no user code when it starts stopping a replica (scale-down, update, node
    drain, serve shutdown, app deletion): it stops routing to it, waits for its ongoing requests
    (every graceful_shutdown_wait_loop_s, at most graceful_shutdown_timeout_s, then kills it) and
    only then calls the user class's `__del__`, too late to refuse anything. What it does first
    is set its replica's `_shutting_down`; a daemon thread reads that flag every `poll_s` (the
    replica is the actor instance of this worker process). Returns whether it follows; outside a
    Serve replica, or if Serve's internals are not the expected ones, it logs and returns False.
    """
    try:
        import ray

        actors = list(ray._private.worker.global_worker.actors.values())
    except Exception:
        actors = []
    replicas = [a._replica_impl for a in actors if hasattr(getattr(a, "_replica_impl", None), "_shutting_down")]
    if len(replicas) != 1:
        logger.warning("not following Serve's shutdown: no Ray Serve replica in this process (draining is manual)")
        return False
    replica = replicas[0]

    def follow() -> None:
        while True:
            if getattr(replica, "_shutting_down", False):
                drain.begin("Ray Serve is stopping this replica")
                return
            if app_signal is not None and app_signal.requested():
                drain.begin("a graceful stop of the app was requested")
                break
            time.sleep(poll_s)
        while True:  # until the process ends: the stop waits for 0
            app_signal.report(drain.in_flight)
            time.sleep(poll_s)

    threading.Thread(target=follow, name="zonos-drain", daemon=True).start()
    return True


class ModelCard(BaseModel):
    """What the backend says about its model; GET /v1/models shows `speech` and `note`."""

    model_config = ConfigDict(frozen=True)

    id: str = MODEL_ID
    speech: bool = Field(description="False when random fallback weights are loaded: the output is noise.")
    note: str = ""


class SpeechBackend(Protocol):
    """What the HTTP layer needs; the Ray ingress implements it over the deployment handles.

    Optional, read with getattr: `draining` (truthy while the backend shuts down, e.g. a `Drain`)."""

    async def ready(self) -> bool:
        """Whether the models are loaded."""
        ...

    def model_card(self) -> ModelCard: ...

    def stream_audio(self, request: SynthesisRequest, request_id: str) -> AsyncIterator[AudioPiece]:
        """The audio in text order as pipeline.streaming.AudioPieces: `samples` float32 mono at 44100 Hz
        (maybe empty), each segment's last piece with its `timing` (phoneme tokens, codec frames: the
        usage OpenAI's SSE reports). aclose() on it means: stop, nobody listens."""
        ...

    async def embed_clip(self, clip: bytes) -> list[float]:
        """The 128-float embedding of a voice clip; ValueError when the bytes are not usable audio."""
        ...

    async def create_voice(self, name: str, clip: bytes, language: str | None = None) -> VoiceInfo:
        """Embed and store, with `language` as the voice's default language (None: none; stored as
        pipeline.text.check_language's code, UnsupportedLanguageError when it names none);
        DuplicateVoiceNameError when the name is taken, ValueError for a bad clip."""
        ...

    async def list_voices(self) -> list[VoiceInfo]: ...

    async def get_voice(self, id_or_name: str) -> VoiceInfo | None: ...

    async def delete_voice(self, voice_id: str) -> bool:
        """False when no voice has this id."""
        ...

    async def voice_embedding(self, id_or_name: str) -> list[float] | None: ...

    async def builtin_voice_embedding(self, name: str) -> list[float] | None:
        """The fixed embedding of one of OpenAI's built-in voice names (pipeline.voices.BuiltinVoices's
        rules over the configured voice_bindings); None when it is bound to a library voice that is missing."""
        ...
