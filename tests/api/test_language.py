"""The language of /v1/audio/speech (deployments.api.language) over the fake backend: the body's
`language` wins, else the text's detected language, else the default; Content-Language and
X-Language-Source say which, and the backend gets that language."""

from __future__ import annotations

import openai
import pytest

from api.conftest import assert_error, speech

FRENCH = "Il a plu toute la journée, alors nous sommes restés à la maison pour lire."
GERMAN = "Kannst du mir bitte sagen, wann der nächste Bus zum Hauptbahnhof fährt?"
JAPANESE = "来週の月曜日に友達と京都へ旅行に行く予定です。"

# the three response paths: streamed bytes, SSE events, one whole file
PATHS = {"stream": {}, "sse": {"stream_format": "sse"}, "file": {"stream": False}}


def sent_language(backend) -> str:
    (request, _id), *_ = backend.requests
    return request.language


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("text", "code"), [(FRENCH, "fr-fr"), (GERMAN, "de"), (JAPANESE, "ja")])
def test_the_text_language_is_detected(client, backend, path, text, code):
    response = client.post("/v1/audio/speech", json=speech(input=text, **PATHS[path]))
    assert response.status_code == 200, response.text
    assert sent_language(backend) == code
    assert response.headers["content-language"] == code
    assert response.headers["x-language-source"] == "detected"


@pytest.mark.parametrize("text", ["ok", "Paris", "12345 678"])
def test_unclear_text_gets_the_default(client, backend, text):
    response = client.post("/v1/audio/speech", json=speech(input=text))
    assert response.status_code == 200, response.text
    assert sent_language(backend) == "en-us"
    assert (response.headers["content-language"], response.headers["x-language-source"]) == ("en-us", "default")


@pytest.mark.parametrize(("given", "code"), [("de", "de"), ("FR_fr", "fr-fr"), ("en-gb", "en-gb")])
def test_the_language_field_wins(client, backend, given, code):
    """Even over text plainly in another language; written in any case or with "_" it is canonical."""
    response = client.post("/v1/audio/speech", json=speech(input=JAPANESE, language=given))
    assert response.status_code == 200, response.text
    assert sent_language(backend) == code
    assert (response.headers["content-language"], response.headers["x-language-source"]) == (code, "request")


@pytest.mark.parametrize(
    ("language", "code"),
    [("klingon", "value_error"), ("fr-xx", "value_error"), ("", "value_error"), (7, "string_type")],
)
def test_an_unsupported_language_is_400_naming_it(client, backend, language, code):
    response = client.post("/v1/audio/speech", json=speech(input=FRENCH, language=language))
    error = assert_error(response, 400, "invalid_request_error", "language", code)
    assert error["message"].startswith("language: ")
    assert "content-language" not in response.headers
    assert backend.requests == []


def test_through_the_openai_sdk(client, backend):
    """The openai SDK sends `language` with extra_body and reads the headers off the raw response."""
    sdk = openai.OpenAI(base_url=f"{client.base_url}/v1", api_key="unused", http_client=client, max_retries=0)
    detected = sdk.audio.speech.with_raw_response.create(model="tts-1", voice="alloy", input=FRENCH)
    assert detected.headers["content-language"] == "fr-fr"
    asked = sdk.audio.speech.with_raw_response.create(
        model="tts-1", voice="alloy", input=FRENCH, extra_body={"language": "it"}
    )
    assert (asked.headers["content-language"], asked.headers["x-language-source"]) == ("it", "request")
    assert [request.language for request, _id in backend.requests] == ["fr-fr", "it"]
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.audio.speech.create(model="tts-1", voice="alloy", input=FRENCH, extra_body={"language": "xx"})
    assert refused.value.param == "language"
