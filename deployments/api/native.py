"""The native route, POST /v1/tts: every Zonos control.

It takes SynthesisRequest's fields (text, language, emotion, pitch_std, speaking_rate, fmax,
cfg_scale, sampling{...}, seed, unconditional_keys, max_tokens_per_segment, pause_ms, tempo, ...)
plus `voice` (library id or name; OpenAI's built-in names are not special here) or `speaker` (128
floats), not both (422 conflicting_fields); `response_format`; `sample_rate` (one of
api/streaming.py's SAMPLE_RATES, 8000 .. 48000, for any format but opus, which is always 48 kHz;
default 44100, the model's own rate: other rates are resampled as the audio streams, X-Sample-Rate
says the rate); and `stream` (default true; false buffers the whole file and sends it with
Content-Length, so any failure still gets its status). Unknown fields are 422. The response's
X-Seed is the request's seed (a random one when none was given): sent back, it repeats the audio.
As multipart/form-data it takes a `file` part (a voice clip, at most config.max_upload_bytes) and a
`request` part holding that same JSON object (not individual form fields, so nested `sampling`
works); the clip's embedding becomes the speaker, so `voice`/`speaker` may not be given as well.
Text with nothing to speak once cleaned is 422 nothing_to_speak, param `text`.
"""

from __future__ import annotations

from pydantic import Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from deployments.api import context
from deployments.api.bodies import form_fields, json_body, json_part, media_type, voice_clip
from deployments.api.errors import ApiError, call_backend, validation_error
from deployments.api.streaming import ResponseFormat, SampleRate, audio_file_response, audio_stream_response
from deployments.api.voices import speaker_embedding
from pipeline.synthesis import SynthesisRequest


class TtsRequest(SynthesisRequest):
    """POST /v1/tts: every SynthesisRequest field (and its validation: blank text, unknown language,
    speaker and emotion lengths, repeated unconditional keys) plus the voice and how to send the audio."""

    voice: str | None = Field(None, min_length=1, description="Library voice id or name (instead of `speaker`).")
    response_format: ResponseFormat | None = None
    sample_rate: SampleRate | None = None
    stream: bool = True

    def synthesis_request(self, speaker: list[float] | None) -> SynthesisRequest:
        fields = {name: getattr(self, name) for name in SynthesisRequest.model_fields}
        return SynthesisRequest(**(fields | {"speaker": speaker}))


async def tts(request: Request) -> Response:
    """POST /v1/tts (JSON, or multipart with a voice clip): the audio, streamed unless "stream": false."""
    config = context.config(request)
    clip = None
    if media_type(request) == "multipart/form-data":
        form = await form_fields(request, {"file", "request"})
        body = json_part(form, "request", "text", config)
        if "file" in form:
            clip = voice_clip(form["file"], config)
    else:
        body = await json_body(request, "text")
    try:
        tts = TtsRequest.model_validate(body)
    except ValidationError as exc:
        raise validation_error(exc) from None
    if tts.voice is not None and tts.speaker is not None:
        raise ApiError(
            422, "speaker: give either `voice` or `speaker`, not both", param="speaker", code="conflicting_fields"
        )
    if clip is not None and (tts.voice is not None or tts.speaker is not None):
        param = "voice" if tts.voice is not None else "speaker"
        raise ApiError(
            422, f"{param}: give a clip (`file`) or `{param}`, not both", param=param, code="conflicting_fields"
        )
    deadline = context.deadline(request)
    speaker = tts.speaker
    if clip is not None:
        speaker = await call_backend(context.backend(request).embed_clip(clip), deadline, clip_param="file")
    elif tts.voice is not None:
        speaker = await speaker_embedding(request, tts.voice, deadline)
    try:
        synthesis = tts.synthesis_request(None if speaker is None else list(speaker))
    except ValidationError as exc:
        raise validation_error(exc) from None
    fmt = tts.response_format or config.default_response_format
    respond = audio_stream_response if tts.stream else audio_file_response
    return await respond(request, synthesis, fmt, deadline, "text", sample_rate=tts.sample_rate)
