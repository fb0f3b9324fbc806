"""OpenAI's routes: POST /v1/audio/speech (createSpeech), GET /v1/models (listModels) and
GET /v1/models/{model} (retrieveModel).

/v1/audio/speech, as OpenAI's (its fields: `model`, `input`, `voice`, `instructions`,
`response_format`, `speed`, `stream_format`), with these choices:
- `model`: "zonos-v0.1", OpenAI's "tts-1", "tts-1-hd", "gpt-4o-mini-tts", any dated snapshot of
  these four ("gpt-4o-mini-tts-2025-12-15": name-YYYY-MM-DD, a real date), or one of the config's
  `model_aliases`; all are the same model. Anything else is 404 model_not_found, as OpenAI answers.
- `voice`: a library voice's id or name (or OpenAI's {"id": ...} form), or one of OpenAI's built-in
  names (OPENAI_VOICES), each a fixed voice: its configured voice_bindings target, else a library
  voice of that name, else a synthetic embedding derived from the name (api/voices.py,
  pipeline.voices.BuiltinVoices). Anything else is 404 "voice_not_found".
- `speed` 0.25..4.0 is OpenAI's playback speed: pipeline.streaming.speed_controls generates the text
  as at speed 1 (speaking_rate 15) and time-stretches it by `speed`, pitch kept (tempo), so with
  one seed every faster speed is strictly shorter (speed 1's length / speed). Zonos's own pacing is
  the `speaking_rate` extension instead.
- `response_format` defaults to the config's default_response_format (mp3 unless changed). `pcm` is
  raw s16le mono at 24 kHz, OpenAI's contract (its SDK's LocalAudioPlayer plays pcm at a hard-coded
  24000): the model's 44.1 kHz audio is resampled as it streams (api/streaming.py). The formats
  with a header that states their rate (mp3, aac, flac, wav) keep the model's 44.1 kHz: no
  resampling loss, and every player reads the rate from the file. opus is 48 kHz (libopus's rate),
  like OpenAI's. X-Sample-Rate always states the rate of the bytes.
- `stream_format` "audio" (default) streams the file's bytes with chunked transfer; "sse" sends
  OpenAI's speech.audio.delta events and a speech.audio.done with `usage` (input_tokens: phoneme
  tokens, output_tokens: codec frames; api/streaming.py), for every model name (OpenAI refuses sse
  for tts-1 and tts-1-hd).
- `instructions` is accepted and ignored (Zonos takes no prompt).
- `input` may hold up to config.max_text_chars characters (code points; 20,000 by default, OpenAI
  takes 4,096): longer is 413 input_too_long. Text with nothing to speak once cleaned is
  nothing_to_speak with param `input`.
- Invalid input is 400 invalid_request_error naming the field in `param` (`errors.openai_errors`:
  OpenAI's status, where /v1/tts answers 422); an unknown field is 400 "Unrecognized request
  argument supplied: <field>", code unknown_parameter, as OpenAI words it.

Extensions, zonos-serve's own fields on /v1/audio/speech (each optional; the openai SDK sends them
with `extra_body={...}`); each means what it means on /v1/tts (pipeline.streaming.SynthesisRequest)
and is validated there, an invalid value being 400 naming it:
- `language`: espeak-ng's language code of the text ("en-us", "fr-fr", "ja", ...), or an ISO 639-1 /
  BCP 47 tag that names one ("fr" -> "fr-fr", "zh-CN" -> "cmn"); without it the voice's default
  language when its library voice has one, else the text's own language when it can be told, else
  en-us (api/language.py; X-Language-Source says which);
- `seed`: 0..2**63-1, the same seed gives the same audio;
- `emotion` (8 non-negative weights), `pitch_std`, `cfg_scale`: Zonos's conditioning;
- `speaking_rate`: phonemes per second, 0..40, Zonos's own control, instead of `speed` (no
  time-stretch; both: 400 conflicting_fields);
- `normalize`: false reads the text literally (no number reading, markdown and emoji kept);
- `sample_rate`: the rate of the audio, one of SAMPLE_RATES (8000 .. 48000) for any format but
  opus (always 48 kHz); pcm's default is 24000, the other formats' 44100;
- `stream`: false sends the whole file with Content-Length once it is generated (any failure then
  still gets its status); default true. With stream_format "sse" it is 400 conflicting_fields.
- `timestamps`: true adds, with stream_format "sse", a `{"type": "speech.audio.segment", "segment":
  {"index", "text", "start_s", "end_s", "start_sample", "end_sample"}}` event once each segment's
  audio has been sent (before the next segment's deltas when a pause follows it), bounds in samples
  of the audio sent (pcm: at 24 kHz; api/timestamps.py has the rules). Default false, so a strict
  OpenAI client never sees an event type it does not know. Without "sse" it is 400
  conflicting_fields (one JSON answer with the audio and its timestamps is /v1/tts's).

/v1/models lists zonos-v0.1 (with the backend's ModelCard: `speech`, `note`), OpenAI's three
names and the config's model_aliases (each with `root`: zonos-v0.1); every entry is OpenAI's Model
object, {"id", "object": "model", "created", "owned_by"}, `created` the day Zonos v0.1 was
published (MODEL_CREATED). /v1/models/{model} returns one of them (a dated snapshot too), else 404
model_not_found.
"""

from __future__ import annotations

import datetime
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from deployments.api import context
from deployments.api.bodies import json_body
from deployments.api.errors import ApiError, conflicting_fields, openai_errors, validation_error
from deployments.api.language import language_headers, speech_language
from deployments.api.streaming import ResponseFormat, SampleRate, audio_file_response, audio_stream_response
from deployments.api.voices import speaker_and_language
from deployments.backend import MODEL_ALIASES, MODEL_ID, model_names
from deployments.config import AppConfig
from pipeline.engine.request import CfgScale, Controls, EmotionWeights, PitchStd, Seed, SpeakingRate, SpeechText
from pipeline.streaming import speed_controls
from pipeline.synthesis import SynthesisRequest
from pipeline.text import LANGUAGE_DESCRIPTION, LanguageCode

OPENAI_PCM_RATE = 24_000  # OpenAI's pcm: s16le mono at 24 kHz
MODEL_CREATED = 1_739_145_600  # 2025-02-10 00:00 UTC: Zyphra's "Beta release of Zonos-v0.1"
MODEL_OWNER = "zyphra"
# A dated snapshot of a model name, as OpenAI names them: "gpt-4o-mini-tts-2025-12-15"
_SNAPSHOT = re.compile(r"(?P<name>.+)-(?P<date>\d{4}-\d{2}-\d{2})")
# The extensions that are SynthesisRequest fields of the same name (the module docstring lists them all)
SYNTHESIS_EXTENSIONS = ("language", "seed", "emotion", "pitch_std", "cfg_scale", "speaking_rate", "normalize")


class SpeechRequest(BaseModel):
    """OpenAI's POST /v1/audio/speech body, with zonos-serve's extensions (module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    model: str = Field(min_length=1)
    input: SpeechText
    voice: str = Field(min_length=1, description="Library voice id or name, or an OpenAI built-in voice name.")
    response_format: ResponseFormat | None = None
    speed: float = Field(1.0, ge=0.25, le=4.0)
    stream_format: Literal["audio", "sse"] = "audio"
    instructions: str | None = Field(None, description="Accepted for compatibility and ignored.")
    # extensions: SynthesisRequest validates the values of SYNTHESIS_EXTENSIONS; the bounds are its own
    # (pipeline.engine.request's types), declared here too so that this body's JSON schema states them
    language: LanguageCode | None = Field(None, description=LANGUAGE_DESCRIPTION)
    seed: Seed | None = None
    emotion: EmotionWeights | None = Field(None, description=Controls.model_fields["emotion"].description)
    pitch_std: PitchStd | None = None
    cfg_scale: CfgScale | None = None
    speaking_rate: SpeakingRate | None = Field(
        None, description="Phonemes per second: Zonos's own control, instead of `speed` (no time-stretch)."
    )
    normalize: bool | None = None
    sample_rate: SampleRate | None = None
    stream: bool = True
    timestamps: bool = False

    @field_validator("voice", mode="before")
    @classmethod
    def _voice_object(cls, voice: Any) -> Any:
        """OpenAI also takes {"id": "voice_..."} for custom voices."""
        if isinstance(voice, dict) and set(voice) == {"id"}:
            return voice["id"]
        return voice

    def check_conflicts(self) -> None:
        """422 conflicting_fields (400 on this route) for fields that exclude each other."""
        if self.speaking_rate is not None and "speed" in self.model_fields_set:
            raise conflicting_fields("speaking_rate", "give `speed` or `speaking_rate`, not both")
        if not self.stream and self.stream_format == "sse":
            raise conflicting_fields("stream", 'stream_format "sse" is a stream; `stream`: false is not')
        if self.timestamps and self.stream_format != "sse":
            raise conflicting_fields(
                "timestamps", 'timestamps come as SSE events: add stream_format "sse" (or use POST /v1/tts)'
            )

    def synthesis_request(self, speaker: list[float] | None) -> SynthesisRequest:
        """The SynthesisRequest this asks for (its validation errors name the extension fields)."""
        fields = self.model_dump(include=set(SYNTHESIS_EXTENSIONS), exclude_none=True)
        if "speaking_rate" not in fields:
            fields["speaking_rate"], fields["tempo"] = speed_controls(self.speed)
        try:
            return SynthesisRequest(text=self.input, speaker=speaker, **fields)
        except ValidationError as exc:
            raise validation_error(exc) from None


@openai_errors
async def create_speech(request: Request) -> Response:
    """POST /v1/audio/speech: the audio, streamed as it is generated (unless `stream`: false)."""
    body = await json_body(request, "input")
    try:
        speech = SpeechRequest.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc) from None
    check_model(speech.model, context.config(request))
    speech.check_conflicts()
    deadline = context.deadline(request)
    speaker, voice_language = await speaker_and_language(
        request, speech.voice, deadline, language=speech.language is None
    )
    synthesis, source = await speech_language(speech.synthesis_request(speaker), speech.language, voice_language)
    fmt = speech.response_format or context.config(request).default_response_format
    rate = speech.sample_rate or (OPENAI_PCM_RATE if fmt == "pcm" else None)
    if not speech.stream:
        response = await audio_file_response(request, synthesis, fmt, deadline, "input", sample_rate=rate)
    else:
        sse = speech.stream_format == "sse"
        response = await audio_stream_response(
            request, synthesis, fmt, deadline, "input", sse=sse, sample_rate=rate, timestamps=speech.timestamps
        )
    return language_headers(response, synthesis.language, source)


@openai_errors
async def list_models(request: Request) -> Response:
    """GET /v1/models: the model, with its card, then each alias with `root` the model."""
    names = model_names(context.config(request).model_aliases)
    return JSONResponse({"object": "list", "data": [_model(request, name) for name in names]})


@openai_errors
async def retrieve_model(request: Request) -> Response:
    """GET /v1/models/{model_id}: one Model object, or 404 model_not_found."""
    name = request.path_params["model_id"]
    check_model(name, context.config(request))
    return JSONResponse(_model(request, name))


def check_model(name: str, config: AppConfig) -> None:
    """404 model_not_found unless `name` is a listed name or a dated snapshot of a built-in one."""
    snapshot = _SNAPSHOT.fullmatch(name)
    names = model_names(config.model_aliases)
    if name in names or (snapshot and snapshot["name"] in (MODEL_ID, *MODEL_ALIASES) and _is_date(snapshot["date"])):
        return
    raise ApiError(
        404,
        f"The model `{name}` does not exist; use one of {', '.join(names)}, or a dated snapshot "
        f"such as {MODEL_ALIASES[-1]}-2025-12-15",
        param="model",
        code="model_not_found",
    )


def _model(request: Request, name: str) -> dict:
    """OpenAI's Model object for `name`: zonos-v0.1 with the backend's card, an alias with its `root`."""
    model = {"id": name, "object": "model", "created": MODEL_CREATED, "owned_by": MODEL_OWNER}
    if name == MODEL_ID:
        return model | context.backend(request).model_card().model_dump(exclude={"id"})
    return model | {"root": MODEL_ID}


def _is_date(text: str) -> bool:
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True
