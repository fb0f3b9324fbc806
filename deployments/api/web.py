"""The playground, GET /web: one page that speaks through the API, as static files of this package.

GET /web               307 to /web/ (Starlette's directory redirect), so the page's relative URLs
                       (`app.js`, `../v1/audio/speech`) work under any route prefix
GET /web/              index.html; GET /web/{file}: the files of deployments/api/web/ (app.js,
                       player.js, style.css), served by Starlette's StaticFiles (ETag,
                       Last-Modified, HEAD). No build step and no CDN: the page loads nothing from
                       anywhere else. Another path is 404, another method 405, both in OpenAI's
                       error shape (app.py's handlers)
GET /web/config.json   what the page builds its form from (`page_config`): the text limit, the
                       formats, the emotion names and the slider ranges, all read from the code
                       that enforces them, so the page and the API cannot disagree

The page (web/app.js) speaks through POST /v1/audio/speech (model zonos-v0.1, the one route that
takes both OpenAI's built-in voice names and library voices, with every control the page offers as
an extension) as SSE (`stream_format` "sse", `timestamps` true: pcm at 44.1 kHz in the deltas, a
speech.audio.segment event per sentence, an error event if it fails part way), plays it while it
streams, and lists and creates voices through GET /v1/audio/voices and POST /v1/voices; GET
/v1/models' card says whether the weights are real (a banner when `speech` is false). API keys:
these files are public (auth.py), and the page sends the key typed into its key box.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import get_args

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from deployments.api import context
from deployments.api.streaming import ResponseFormat
from deployments.backend import MODEL_ID
from deployments.config import AppConfig
from pipeline.audio import SAMPLE_RATE
from pipeline.engine.request import DEFAULT_EMOTION, EMOTION_NAMES
from pipeline.synthesis import SynthesisRequest

WEB_DIR = Path(__file__).with_name("web")
SLIDERS = ("speaking_rate", "pitch_std", "cfg_scale")  # SynthesisRequest fields the page offers as sliders
# One emotion weight's range: the emotion conditioner's Fourier input range (docs/zonos-v0.1.md, section 3);
# the API itself only asks for non-negative weights with a positive sum (pipeline.engine.request.Controls).
EMOTION_RANGE = (0.0, 1.0)


def page_config(config: AppConfig) -> dict:
    """GET /web/config.json's body: {"model", "max_text_chars", "max_upload_bytes", "formats",
    "default_response_format", "sample_rate" (Hz, the model's), "emotion": {"names", "default",
    "minimum", "maximum"}, "sliders": {field: {"minimum", "maximum", "default"}}}. The slider ranges
    are SynthesisRequest's validation bounds, read from its JSON schema."""
    return {
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
    }


@functools.cache
def _slider_ranges() -> dict[str, dict[str, float]]:
    properties = SynthesisRequest.model_json_schema()["properties"]
    return {name: {key: properties[name][key] for key in ("minimum", "maximum", "default")} for name in SLIDERS}


async def web_config(request: Request) -> Response:
    """GET /web/config.json (page_config)."""
    return JSONResponse(page_config(context.config(request)), headers={"Cache-Control": "no-store"})


ROUTES = [
    Route("/web/config.json", web_config, methods=["GET"]),
    Mount("/web", app=StaticFiles(directory=WEB_DIR, html=True), name="web"),
]
