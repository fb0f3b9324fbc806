"""The language of /v1/audio/speech (deployments.api.language) over the fake backend: the body's
`language` wins, else the text's detected language, else the default; Content-Language and
X-Language-Source say which, and the backend gets that language."""

from __future__ import annotations

import openai
import pytest

from api.conftest import CLIP, TEXT, assert_error, make_client, speech
from pipeline.voices import BuiltinVoices

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


# --------------------------------------------------------------------------- a voice's default language


def add_voice(client, name: str, language: str | None = None, route: str = "/v1/voices") -> dict:
    """A library voice made over HTTP (the fake backend embeds the clip), with `language` as its form field."""
    part = "file" if route == "/v1/voices" else "audio_sample"
    fields = {"name": name} | ({} if language is None else {"language": language})
    response = client.post(route, files={part: ("clip.wav", CLIP)}, data=fields)
    assert response.status_code in (200, 201), response.text
    return response.json()


@pytest.mark.parametrize("route", ["/v1/voices", "/v1/audio/voices"])
def test_a_voice_language_reads_text_the_detector_would_read_otherwise(client, backend, route):
    """German text with a voice whose language is French: the voice decides, not the detector."""
    amelie = add_voice(client, "Amélie", "fr", route)
    assert amelie["language"] == "fr-fr"
    for voice in ("Amélie", amelie["id"]):
        response = client.post("/v1/audio/speech", json=speech(input=GERMAN, voice=voice))
        assert response.status_code == 200, response.text
        assert backend.requests[-1][0].language == "fr-fr"
        assert (response.headers["content-language"], response.headers["x-language-source"]) == ("fr-fr", "voice")


def test_the_request_language_wins_over_the_voice(client, backend):
    add_voice(client, "Amélie", "fr-fr")
    response = client.post("/v1/audio/speech", json=speech(input=GERMAN, voice="Amélie", language="it"))
    assert backend.requests[-1][0].language == "it"
    assert (response.headers["content-language"], response.headers["x-language-source"]) == ("it", "request")


def test_a_voice_without_language_leaves_it_to_the_text(client, backend):
    add_voice(client, "Carol")
    response = client.post("/v1/audio/speech", json=speech(input=GERMAN, voice="Carol"))
    assert (response.headers["content-language"], response.headers["x-language-source"]) == ("de", "detected")


def test_a_builtin_name_bound_to_a_library_voice_has_its_language(backend):
    backend.builtins = BuiltinVoices({"alloy": "Amélie"})  # as the Voices deployment gets AppConfig.voice_bindings
    client = make_client(backend, voice_bindings={"alloy": "Amélie"})
    add_voice(client, "Amélie", "ja")
    add_voice(client, "nova", "de")  # an unbound built-in name stands for the library voice of its name
    for voice, code in (("alloy", "ja"), ("nova", "de")):
        response = client.post("/v1/audio/speech", json=speech(input=FRENCH, voice=voice))
        assert (response.headers["content-language"], response.headers["x-language-source"]) == (code, "voice")
    response = client.post("/v1/audio/speech", json=speech(input=FRENCH, voice="echo"))  # synthetic: no language
    assert (response.headers["content-language"], response.headers["x-language-source"]) == ("fr-fr", "detected")
    assert [request.language for request, _id in backend.requests] == ["ja", "de", "fr-fr"]


def test_tts_uses_the_voice_language_only_without_a_language_key(client, backend):
    """/v1/tts has no detection: its `language` defaults to en-us, but a library voice's language
    comes first when the body has no `language` at all; an explicit one, en-us too, wins."""
    add_voice(client, "Amélie", "fr")
    add_voice(client, "Carol")
    bodies = [
        {"text": GERMAN, "voice": "Amélie"},
        {"text": GERMAN, "voice": "Amélie", "language": "en-us"},
        {"text": GERMAN, "voice": "Amélie", "language": "de"},
        {"text": GERMAN, "voice": "Carol"},
        {"text": GERMAN},
    ]
    for body in bodies:
        assert client.post("/v1/tts", json=body | {"response_format": "wav"}).status_code == 200
    assert [request.language for request, _id in backend.requests] == ["fr-fr", "en-us", "de", "en-us", "en-us"]


def test_an_unknown_voice_is_still_404_when_its_language_is_looked_up(client, backend):
    for route, body in (("/v1/audio/speech", speech(voice="nobody")), ("/v1/tts", {"text": GERMAN, "voice": "nobody"})):
        error = assert_error(client.post(route, json=body), 404, "invalid_request_error", "voice", "voice_not_found")
        assert "'nobody'" in error["message"]
    assert backend.requests == []


# --------------------------------------------------------------------------- ISO 639-1 / BCP 47 tags


@pytest.mark.parametrize(("given", "code"), [("fr", "fr-fr"), ("en", "en-us"), ("zh-CN", "cmn"), ("pt-BR", "pt-br")])
def test_iso_and_bcp47_tags_name_the_espeak_code_on_both_routes(client, backend, given, code):
    speech_response = client.post("/v1/audio/speech", json=speech(input=FRENCH, language=given))
    assert (speech_response.headers["content-language"], speech_response.headers["x-language-source"]) == (
        code,
        "request",
    )
    assert client.post("/v1/tts", json={"text": FRENCH, "language": given}).status_code == 200
    assert [request.language for request, _id in backend.requests] == [code, code]


@pytest.mark.parametrize("given", ["klingon", "en-AU", "pt-PT", "zh-yue"])
def test_an_unknown_or_ambiguous_language_names_the_field_and_no_module(client, backend, given):
    """en-AU could be en-us or en-gb: refused, not guessed; the message helps without naming our code."""
    voice = {"name": "X", "language": given}
    answers = [
        (client.post("/v1/audio/speech", json=speech(language=given)), 400, "value_error"),
        (client.post("/v1/tts", json={"text": TEXT, "language": given}), 422, "value_error"),
        (client.post("/v1/voices", files={"file": ("a.wav", CLIP)}, data=voice), 422, "invalid_value"),
        (client.post("/v1/audio/voices", files={"audio_sample": ("a.wav", CLIP)}, data=voice), 400, "invalid_value"),
    ]
    errors = [
        assert_error(answer, status, "invalid_request_error", "language", code) for answer, status, code in answers
    ]
    for error in errors:
        assert f"unsupported language {given!r}" in error["message"]
        assert "109 espeak-ng codes" in error["message"] and "README" in error["message"]
        assert "pipeline." not in error["message"] and ".py" not in error["message"]
    assert backend.requests == [] and backend.voices == {}


def test_an_empty_language_form_field_means_none(client, backend):
    assert add_voice(client, "Carol", "  ")["language"] is None
    assert backend.voices[next(iter(backend.voices))].language is None
