"""The playground, GET /web: one page that speaks through the API, as static files of this package.

GET /web               307 to /web/ (Starlette's directory redirect), so the page's relative URLs
                       (`app.js`, `../v1/audio/speech`) work under any route prefix
GET /web/              index.html; GET /web/{file}: the files of deployments/api/web/ (app.js,
                       player.js, style.css), served by Starlette's StaticFiles (ETag,
                       Last-Modified, HEAD). No build step and no CDN: the page loads nothing from
                       anywhere else. Another path is 404, another method 405, both in OpenAI's
                       error shape (app.py's handlers)
GET /web/config.json   what the page builds its form from (`page_config`, a `PageConfig`): the text
                       limit, the formats, the emotion names and the slider ranges, all read from
                       the code that enforces them, so the page and the API cannot disagree; and the
                       backend's model card (`speech`, `note`), so the random-weights banner shows
                       before any key is typed (this file is public, /v1/models is not)

The page (web/app.js) speaks through POST /v1/audio/speech (model zonos-v0.1, the one route that
takes both OpenAI's built-in voice names and library voices, with every control the page offers as
an extension) as SSE (`stream_format` "sse", `timestamps` true: pcm at 44.1 kHz in the deltas, a
speech.audio.segment event per sentence, an error event if it fails part way), plays it while it
streams, and lists and creates voices through GET /v1/audio/voices and POST /v1/voices; config.json's
model card says whether the weights are real (a banner when `speech` is false). API keys:
these files are public (auth.py), and the page sends the key typed into its key box (a 401 shows
a hint pointing at it).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import get_args

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from deployments.api import context
from deployments.api.streaming import ResponseFormat
from deployments.backend import MODEL_ID, ModelCard
from deployments.config import AppConfig
from pipeline.audio import SAMPLE_RATE
from pipeline.engine.request import DEFAULT_EMOTION, EMOTION_NAMES
from pipeline.synthesis import SynthesisRequest

WEB_DIR = Path(__file__).with_name("web")
SLIDERS = ("speaking_rate", "pitch_std", "cfg_scale")  # SynthesisRequest fields the page offers as sliders
# One emotion weight's range: the emotion conditioner's Fourier input range (docs/zonos-v0.1.md, section 3);
# the API itself only asks for non-negative weights with a positive sum (pipeline.engine.request.Controls).
EMOTION_RANGE = (0.0, 1.0)


class SliderRange(BaseModel):
    minimum: float
    maximum: float
    default: float


class EmotionSliders(BaseModel):
    names: list[str] = Field(description="The 8 weights' names, in the order `emotion` takes them.")
    default: list[float]
    minimum: float
    maximum: float


class PageConfig(BaseModel):
    """GET /web/config.json: what the playground builds its form from, and the model card."""

    model: str = Field(description="The model name the page sends.")
    max_text_chars: int
    max_upload_bytes: int
    formats: list[ResponseFormat]
    default_response_format: ResponseFormat
    sample_rate: int = Field(description="The model's rate, in Hz.")
    emotion: EmotionSliders
    sliders: dict[str, SliderRange] = Field(description="SynthesisRequest's bounds of each control the page offers.")
    speech: bool = Field(description=ModelCard.model_fields["speech"].description)
    note: str = Field(description="The model card's note (why the output is not speech, when it is not).")


def page_config(config: AppConfig, card: ModelCard) -> dict:
    """GET /web/config.json's body (PageConfig): {"model", "max_text_chars", "max_upload_bytes",
    "formats", "default_response_format", "sample_rate" (Hz, the model's), "emotion": {"names",
    "default", "minimum", "maximum"}, "sliders": {field: {"minimum", "maximum", "default"}}, "speech",
    "note"}. The slider ranges are SynthesisRequest's validation bounds, read from its JSON schema;
    `speech` and `note` are `card`'s (the backend's model card, as GET /v1/models shows it)."""
    body = {
        "model": MODEL_ID,
        "max_text_chars": config.max_text_chars,
        "max_upload_bytes": config.max_upload_bytes,
        "formats": list(get_args(ResponseFormat)),
        "default_response_format": config.default_response_format,
        "sample_rate": SAMPLE_RATE,
        "emotion": {
            "names": list(EMOTION_NAMES),
            "default": list(DEFAULT_EMOTION),
            "minimum": EMOTION_RANGE[0],
            "maximum": EMOTION_RANGE[1],
        },
        "sliders": _slider_ranges(),
        "speech": card.speech,
        "note": card.note,
    }
    return PageConfig.model_validate(body).model_dump()


@functools.cache
def _slider_ranges() -> dict[str, dict[str, float]]:
    properties = SynthesisRequest.model_json_schema()["properties"]
    return {name: {key: properties[name][key] for key in ("minimum", "maximum", "default")} for name in SLIDERS}


async def web_config(request: Request) -> Response:
    """GET /web/config.json (page_config)."""
    body = page_config(context.config(request), context.backend(request).model_card())
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


ROUTES = [
    Route("/web/config.json", web_config, methods=["GET"]),
    Mount("/web", app=StaticFiles(directory=WEB_DIR, html=True), name="web"),
]
