"""OpenAI's routes: POST /v1/audio/speech (createSpeech) and GET /v1/models (listModels).

/v1/audio/speech, as OpenAI's, with these choices:
- `model`: "zonos-v0.1" or the aliases "tts-1", "tts-1-hd", "gpt-4o-mini-tts" (all the same model);
  anything else is 404 with code "model_not_found", as OpenAI answers for a model it doesn't have.
- `voice`: a library voice's id or name (or OpenAI's {"id": ...} form). OpenAI's built-in names
  (OPENAI_VOICES) mean "no cloned voice": the model's unconditional speaker. A library voice with
  such a name wins. Anything else is 404 "voice_not_found".
- `speed` 0.25..4.0 becomes Zonos's speaking_rate = 15 * speed (phonemes/s), capped at 40.
- `response_format` defaults to the config's default_response_format (mp3 unless changed); pcm
  is raw s16le mono at 44.1 kHz (not OpenAI's 24 kHz): X-Sample-Rate says so.
- `stream_format` "audio" (default) streams the file's bytes with chunked transfer; "sse" sends
  OpenAI's speech.audio.delta / speech.audio.done events (deployments.api.streaming).
- `instructions` is accepted and ignored (Zonos has no prompt); other unknown fields are 422.
- `input` is limited to config.max_text_chars characters (code points): longer is 413; text with
  nothing to speak once cleaned is 422 nothing_to_speak with param `input`.

/v1/models lists zonos-v0.1 (with the backend's ModelCard: `speech`, `note`) and its aliases.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from deployments.api import context
from deployments.api.bodies import json_body
from deployments.api.errors import ApiError, validation_error
from deployments.api.streaming import ResponseFormat, audio_stream_response
from deployments.api.voices import speaker_embedding
from deployments.backend import MODEL_ALIASES, MODEL_ID
from pipeline.engine.request import SpeechText
from pipeline.synthesis import SynthesisRequest

OPENAI_VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse", "marin", "cedar"}
)


class SpeechRequest(BaseModel):
    """OpenAI's POST /v1/audio/speech body."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    model: str = Field(min_length=1)
    input: SpeechText
    voice: str = Field(min_length=1, description="Library voice id or name, or an OpenAI built-in voice name.")
    response_format: ResponseFormat | None = None
    speed: float = Field(1.0, ge=0.25, le=4.0)
    stream_format: Literal["audio", "sse"] = "audio"
    instructions: str | None = Field(None, description="Accepted for compatibility and ignored.")

    @field_validator("voice", mode="before")
    @classmethod
    def _voice_object(cls, voice: Any) -> Any:
        """OpenAI also takes {"id": "voice_..."} for custom voices."""
        if isinstance(voice, dict) and set(voice) == {"id"}:
            return voice["id"]
        return voice


async def create_speech(request: Request) -> Response:
    """POST /v1/audio/speech: the audio, streamed as it is generated."""
    body = await json_body(request, "input")
    try:
        speech = SpeechRequest.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc) from None
    if speech.model != MODEL_ID and speech.model not in MODEL_ALIASES:
        raise ApiError(
            404,
            f"model {speech.model!r} does not exist; use {MODEL_ID} or one of {', '.join(MODEL_ALIASES)}",
            param="model",
            code="model_not_found",
        )
    deadline = context.deadline(request)
    speaker = await speaker_embedding(request, speech.voice, deadline, builtin_names=OPENAI_VOICES)
    try:
        synthesis = SynthesisRequest(text=speech.input, speaker=speaker, speaking_rate=min(40.0, 15.0 * speech.speed))
    except ValidationError as exc:
        raise validation_error(exc) from None
    fmt = speech.response_format or context.config(request).default_response_format
    return await audio_stream_response(request, synthesis, fmt, deadline, "input", sse=speech.stream_format == "sse")


async def list_models(request: Request) -> Response:
    """GET /v1/models: the model, with its card, then each alias with `root` the model."""
    card = context.backend(request).model_card().model_dump(exclude={"id"})
    main = {"id": MODEL_ID, "object": "model", "owned_by": "zyphra"} | card
    aliases = [{"id": alias, "object": "model", "owned_by": "zyphra", "root": MODEL_ID} for alias in MODEL_ALIASES]
    return JSONResponse({"object": "list", "data": [main, *aliases]})
