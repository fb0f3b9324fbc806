"""The language a /v1/audio/speech request is read in, and the headers that say which.

| source (X-Language-Source) | when                                                                |
|----------------------------|---------------------------------------------------------------------|
| request                    | the body's `language` extension (validated by SynthesisRequest: an  |
|                            | unknown code is an error naming `language`)                         |
| voice                      | no `language`, and the voice has a default language (its library    |
|                            | voice's `language`, pipeline.voices.VoiceInfo; a built-in name bound |
|                            | to a library voice has that voice's: api/voices.py voice_language)  |
| detected                   | no `language`, no voice language: pipeline.language.guess_language  |
|                            | recognised the text                                                 |
| default                    | none of these, and the text too short or unclear to tell: en-us,    |
|                            | SynthesisRequest's default                                          |

Content-Language is the espeak-ng code the text was phonemised with (pipeline.text.LANGUAGES).

Detection reads the first pipeline.language.DETECT_CHARS (1,000) characters, under 0.3 ms, so it
runs on the event loop; only the model's one-time load (~0.45 s) goes to a worker thread.
"""

from __future__ import annotations

from typing import Literal

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from pipeline.language import detector_ready, guess_language, load_detector
from pipeline.synthesis import SynthesisRequest

LanguageSource = Literal["request", "voice", "detected", "default"]


async def speech_language(
    synthesis: SynthesisRequest, requested: str | None, voice_language: str | None = None
) -> tuple[SynthesisRequest, LanguageSource]:
    """`synthesis` with the language its text is read in, and where that language came from
    (the module docstring's table). `requested` is the body's `language` field, which `synthesis`
    already holds validated; else `voice_language`, the voice's default language (an espeak-ng code,
    as the library stores it); otherwise the text decides, or SynthesisRequest's default stays."""
    if requested is not None:
        return synthesis, "request"
    if voice_language is not None:
        return synthesis.model_copy(update={"language": voice_language}), "voice"
    if not detector_ready():
        await run_in_threadpool(load_detector)
    code = guess_language(synthesis.text)
    if code is None:
        return synthesis, "default"
    return synthesis.model_copy(update={"language": code}), "detected"


def language_headers(response: Response, language: str, source: LanguageSource) -> Response:
    """`response` with Content-Language (the espeak-ng code) and X-Language-Source set."""
    response.headers.update({"Content-Language": language, "X-Language-Source": source})
    return response
