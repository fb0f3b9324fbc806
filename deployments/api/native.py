"""The native route, POST /v1/tts: every Zonos control.

It takes SynthesisRequest's fields (text, language, emotion, pitch_std, speaking_rate, fmax,
cfg_scale, sampling{...}, seed, unconditional_keys, max_tokens_per_segment, pause_ms, tempo, ...)
plus `voice` (library id or name, or one of OpenAI's built-in names, the same fixed voices as on
/v1/audio/speech: deployments.api.voices.speaker_embedding) or `speaker` (128
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
`language` defaults to en-us, with one exception: a `voice` whose library voice has a default
language (api/voices.py voice_language) is read in that language when the body has no `language`
key at all (an explicit "language": "en-us" stays en-us). No detection here: the OpenAI route
detects, this route does what it is told.

Timestamps (api/timestamps.py has every rule): `"timestamps": true` answers one JSON object, sent
once all is generated: {"audio": base64 of the whole file in `response_format`, "response_format",
"sample_rate", "seed", "segments": [{"index", "text", "start_s", "end_s", "start_sample",
"end_sample"}], and "captions" (SRT or WebVTT text) when `"captions": "srt" | "vtt"` asks}; the
bounds are samples of that file at its rate. `"response_format": "srt" | "vtt"` answers the
captions alone (application/x-subrip, text/vtt). `"stream_format": "sse"` streams OpenAI's SSE
events (api/streaming.py), with a speech.audio.segment event after each segment's audio when
`"timestamps": true`. Contradictions are 422 conflicting_fields: `"stream": false` with sse;
`"captions"` without `"timestamps": true` or with sse; srt/vtt with timestamps or sse; an explicit
`"stream": true` with an answer that is sent whole (timestamps without sse, srt/vtt).
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from deployments.api import context
from deployments.api.bodies import form_fields, json_body, json_part, media_type, voice_clip
from deployments.api.errors import call_backend, conflicting_fields, validation_error
from deployments.api.streaming import (
    ResponseFormat,
    SampleRate,
    audio_file_response,
    audio_stream_response,
    timestamps_response,
)
from deployments.api.timestamps import CAPTION_MEDIA_TYPES, CaptionFormat
from deployments.api.voices import speaker_and_language
from pipeline.synthesis import SynthesisRequest

# the audio formats and the captions formats, as one Literal (one error naming every value)
TtsFormat = Literal[(*get_args(ResponseFormat), *get_args(CaptionFormat))]


class TtsRequest(SynthesisRequest):
    """POST /v1/tts: every SynthesisRequest field (and its validation: blank text, unknown language,
    speaker and emotion lengths, repeated unconditional keys) plus the voice and how to send the audio."""

    voice: str | None = Field(None, min_length=1, description="Library voice id or name (instead of `speaker`).")
    response_format: TtsFormat | None = Field(
        None, description="An audio format, or srt / vtt for the captions alone (api/timestamps.py)."
    )
    sample_rate: SampleRate | None = None
    stream: bool = True
    stream_format: Literal["audio", "sse"] = Field("audio", description="sse: OpenAI's speech SSE events.")
    timestamps: bool = Field(
        False, description="Each segment's bounds: one JSON answer, or speech.audio.segment events with sse."
    )
    captions: CaptionFormat | None = Field(None, description='With "timestamps": true, SRT or WebVTT in the JSON.')

    def check_conflicts(self) -> None:
        """422 conflicting_fields for fields that exclude each other (module docstring)."""
        sse = self.stream_format == "sse"
        captions_alone = self.response_format in CAPTION_MEDIA_TYPES
        if not self.stream and sse:
            raise conflicting_fields("stream", 'stream_format "sse" is a stream; `stream`: false is not')
        if captions_alone and (self.timestamps or sse):
            raise conflicting_fields(
                "response_format",
                f'"{self.response_format}" answers the captions alone; for audio with timestamps give an audio format',
            )
        if self.captions is not None and (not self.timestamps or sse):
            raise conflicting_fields(
                "captions",
                'captions come in the JSON answer of "timestamps": true (without stream_format "sse"); '
                'for captions alone use "response_format": "srt" or "vtt"',
            )
        if "stream" in self.model_fields_set and self.stream and not sse and (self.timestamps or captions_alone):
            raise conflicting_fields("stream", "this answer is sent whole once generated; leave out `stream`")

    def synthesis_request(self, speaker: list[float] | None) -> SynthesisRequest:
        fields = {name: getattr(self, name) for name in SynthesisRequest.model_fields}
        return SynthesisRequest(**(fields | {"speaker": speaker}))


async def tts(request: Request) -> Response:
    """POST /v1/tts (JSON, or multipart with a voice clip): the audio, streamed unless "stream": false;
    SSE with stream_format "sse"; JSON with timestamps, or captions alone (module docstring)."""
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
    tts.check_conflicts()
    if tts.voice is not None and tts.speaker is not None:
        raise conflicting_fields("speaker", "give either `voice` or `speaker`, not both")
    if clip is not None and (tts.voice is not None or tts.speaker is not None):
        param = "voice" if tts.voice is not None else "speaker"
        raise conflicting_fields(param, f"give a clip (`file`) or `{param}`, not both")
    deadline = context.deadline(request)
    speaker = tts.speaker
    if clip is not None:
        speaker = await call_backend(context.backend(request).embed_clip(clip), deadline, clip_param="file")
    elif tts.voice is not None:
        speaker, voice_language = await speaker_and_language(
            request, tts.voice, deadline, language="language" not in tts.model_fields_set
        )
        if voice_language is not None:
            tts = tts.model_copy(update={"language": voice_language})
    try:
        synthesis = tts.synthesis_request(None if speaker is None else list(speaker))
    except ValidationError as exc:
        raise validation_error(exc) from None
    fmt = tts.response_format or config.default_response_format
    rate = tts.sample_rate
    if tts.stream_format == "sse":
        sse = dict(sse=True, timestamps=tts.timestamps)
        return await audio_stream_response(request, synthesis, fmt, deadline, "text", sample_rate=rate, **sse)
    if tts.timestamps or fmt in CAPTION_MEDIA_TYPES:
        return await timestamps_response(request, synthesis, fmt, deadline, "text", rate, tts.captions)
    respond = audio_stream_response if tts.stream else audio_file_response
    return await respond(request, synthesis, fmt, deadline, "text", sample_rate=rate)
