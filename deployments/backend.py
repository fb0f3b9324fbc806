"""What the HTTP API (deployments.api) needs from the server behind it: the backend contract.

No Starlette and no Ray here: the Ingress implements `SpeechBackend` over the deployment
handles, tests implement it with a fake, and `deployments.api` serves any implementation.

What a backend raises, and what the API makes of it (deployments.api.errors.backend_error):
`BackendBusy` (queues full: 503 with Retry-After), TimeoutError (504), ValueError for input it
can't take (pipeline.speaker.InvalidAudioError for a bad clip, pipeline.text.NothingToSpeakError
for text with nothing to speak: 422), pipeline.text.MissingExtraError for a language whose extra
is not installed (422), pipeline.voices.DuplicateVoiceNameError from create_voice (409);
pipeline.voices.VoiceNotFoundError (a KeyError) means "no such voice", like None.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pipeline.synthesis import SynthesisRequest
from pipeline.voices import VoiceInfo

__all__ = ["MODEL_ALIASES", "MODEL_ID", "BackendBusy", "ModelCard", "SpeechBackend", "VoiceInfo"]

MODEL_ID = "zonos-v0.1"
# OpenAI's text-to-speech model names, all answered by the one model (GET /v1/models lists them).
MODEL_ALIASES = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")


class BackendBusy(Exception):
    """The backend's queues are full: the client should retry after `retry_after_s` (HTTP 503)."""

    def __init__(self, message: str = "the server is busy; retry shortly", retry_after_s: float = 1.0):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ModelCard(BaseModel):
    """What the backend says about its model; GET /v1/models shows `speech` and `note`."""

    model_config = ConfigDict(frozen=True)

    id: str = MODEL_ID
    speech: bool = Field(description="False when random fallback weights are loaded: the output is noise.")
    note: str = ""


class SpeechBackend(Protocol):
    """What the HTTP layer needs; the Ray ingress implements it over the deployment handles."""

    async def ready(self) -> bool:
        """Whether the models are loaded."""
        ...

    def model_card(self) -> ModelCard: ...

    def stream_audio(self, request: SynthesisRequest, request_id: str) -> AsyncIterator[np.ndarray]:
        """float32 mono chunks at 44100 Hz, in order; aclose() on it means: stop, nobody listens."""
        ...

    async def embed_clip(self, clip: bytes) -> list[float]:
        """The 128-float embedding of a voice clip; ValueError when the bytes are not usable audio."""
        ...

    async def create_voice(self, name: str, clip: bytes) -> VoiceInfo:
        """Embed and store; DuplicateVoiceNameError when the name is taken, ValueError for a bad clip."""
        ...

    async def list_voices(self) -> list[VoiceInfo]: ...

    async def get_voice(self, id_or_name: str) -> VoiceInfo | None: ...

    async def delete_voice(self, voice_id: str) -> bool:
        """False when no voice has this id."""
        ...

    async def voice_embedding(self, id_or_name: str) -> list[float] | None: ...
