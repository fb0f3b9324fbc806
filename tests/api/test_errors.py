"""Bad input of every kind, and backend failures, answered in OpenAI's error shape with the right status."""

from __future__ import annotations

import json
import logging

import pytest

from api.conftest import (
    CLIP,
    MAX_TEXT,
    MAX_UPLOAD,
    SECONDS_PER_CHAR,
    TEXT,
    FakeBackend,
    assert_audio,
    assert_error,
    make_client,
    speech,
)
from api.test_request_ids import serve_logs
from deployments.api.errors import backend_error
from deployments.backend import BackendBusy
from pipeline.speaker import InvalidAudioError
from pipeline.text import MissingExtraError, NothingToSpeakError
from pipeline.voices import DuplicateVoiceNameError, InvalidVoiceNameError

JSON = {"content-type": "application/json"}
MULTIPART = {"content-type": "multipart/form-data"}  # without its boundary
FAR_TOO_LONG = "a" * (MAX_TEXT + 1)


def clip_form(name: str | None = "Dave", clip: bytes = CLIP, **extra) -> dict:
    data = ({} if name is None else {"name": name}) | extra
    return {"files": {"file": ("clip.wav", clip, "audio/wav")}, "data": data}


def tts_form(request, clip: bytes = CLIP) -> dict:
    part = request if isinstance(request, str) else json.dumps(request)
    return {"files": {"file": ("clip.wav", clip, "audio/wav")}, "data": {"request": part}}


SPEECH, TTS, VOICES = "/v1/audio/speech", "/v1/tts", "/v1/voices"


def case(name, status, code, param=None, *, method="POST", path=SPEECH, mode=None, **request):
    """One bad request: what it sends (`request`: TestClient.request's keyword arguments) and the
    error it must get; `mode` makes the fake backend misbehave for it."""
    return pytest.param(method, path, request, mode, status, param, code, id=name)


MATRIX = [
    # malformed bodies: 400
    case("invalid-json", 400, "invalid_json", content=b'{"model": ', headers=JSON),
    case("nan", 400, "invalid_json", content=json.dumps(speech(speed=float("nan"))), headers=JSON),
    case("infinity", 400, "invalid_json", path=TTS, content=b'{"text":"hi","speaker":[Infinity]}', headers=JSON),
    case("empty-body", 400, "invalid_json", content=b"", headers=JSON),
    case("json-array", 400, "invalid_body", json=[speech()]),
    case("json-string", 400, "invalid_body", path=TTS, json="hello"),
    case("deep-nesting", 400, "invalid_json", path=TTS, content=b"[" * 200_000, headers=JSON),
    case("not-utf8", 400, "invalid_json", path=TTS, content=b'{"text": "\xff\xfe"}', headers=JSON),
    case("text-plain", 400, "invalid_content_type", content=json.dumps(speech()),
         headers={"content-type": "text/plain"}),
    case("no-content-type", 400, "invalid_content_type", content=json.dumps(speech()).encode()),
    case("form-urlencoded", 400, "invalid_content_type", path=TTS, data={"text": "hi"}),
    case("voices-json", 400, "invalid_content_type", path=VOICES, json={"name": "x"}),
    case("no-boundary", 400, "invalid_multipart", path=VOICES, content=b"--x\r\n", headers=MULTIPART),
    case("request-part-not-json", 400, "invalid_json", "request", path=TTS, **tts_form("{text: hi}")),
    # invalid fields on OpenAI's route: 400, as OpenAI answers (errors.openai_errors)
    case("missing-model", 400, "missing", "model", json={"input": "hi", "voice": "alloy"}),
    case("missing-input", 400, "missing", "input", json={"model": "tts-1", "voice": "alloy"}),
    case("missing-voice", 400, "missing", "voice", json={"model": "tts-1", "input": "hi"}),
    case("empty-input", 400, "string_too_short", "input", json=speech(input="")),
    case("blank-input", 400, "value_error", "input", json=speech(input="  \n ")),
    case("input-number", 400, "string_type", "input", json=speech(input=42)),
    case("speed-low", 400, "greater_than_equal", "speed", json=speech(speed=0.1)),
    case("speed-high", 400, "less_than_equal", "speed", json=speech(speed=4.5)),
    case("speed-word", 400, "float_parsing", "speed", json=speech(speed="fast")),
    case("speed-overflow", 400, "finite_number", "speed", content=json.dumps(speech(speed=0)).replace("0}", "1e400}"),
         headers=JSON),
    case("bad-format", 400, "literal_error", "response_format", json=speech(response_format="ogg")),
    case("bad-stream-format", 400, "literal_error", "stream_format", json=speech(stream_format="websocket")),
    case("speech-unknown-field", 400, "unknown_parameter", "temperature", json=speech(temperature=0.5)),
    case("speech-seed", 400, "greater_than_equal", "seed", json=speech(seed=-1)),
    case("speech-seed-word", 400, "int_parsing", "seed", json=speech(seed="lucky")),
    case("speech-language", 400, "value_error", "language", json=speech(language="klingon")),
    case("speech-emotion", 400, "too_short", "emotion", json=speech(emotion=[1, 2])),
    case("speech-cfg-scale", 400, "less_than_equal", "cfg_scale", json=speech(cfg_scale=25)),
    case("speech-speaking-rate", 400, "less_than_equal", "speaking_rate", json=speech(speaking_rate=41)),
    case("speech-speed-and-rate", 400, "conflicting_fields", "speaking_rate", json=speech(speed=1, speaking_rate=15)),
    case("speech-sample-rate", 400, "literal_error", "sample_rate", json=speech(sample_rate=12345)),
    case("sse-not-streamed", 400, "conflicting_fields", "stream", json=speech(stream_format="sse", stream=False)),
    case("speech-stream-word", 400, "bool_parsing", "stream", json=speech(stream="maybe")),
    # invalid fields on the native route: 422
    case("tts-sample-rate", 422, "literal_error", "sample_rate", path=TTS, json={"text": "hi", "sample_rate": 96000}),
    case("tts-missing-text", 422, "missing", "text", path=TTS, json={"seed": 1}),
    case("tts-unknown-field", 422, "extra_forbidden", "speed", path=TTS, json={"text": "hi", "speed": 1.0}),
    case("tts-unknown-sampling-field", 422, "extra_forbidden", "sampling.temp", path=TTS,
         json={"text": "hi", "sampling": {"temp": 1}}),
    case("tts-voice-and-speaker", 422, "conflicting_fields", "speaker", path=TTS,
         json={"text": "hi", "voice": "taken", "speaker": [0.0] * 128}),
    case("tts-speaker-length", 422, "too_short", "speaker", path=TTS, json={"text": "hi", "speaker": [0.0] * 127}),
    case("tts-speaker-text", 422, "list_type", "speaker", path=TTS, json={"text": "hi", "speaker": "Alice"}),
    case("tts-speaker-overflow", 422, "finite_number", "speaker.0", path=TTS,
         content=b'{"text": "hi", "speaker": [1e400]}', headers=JSON),
    case("tts-temperature", 422, "less_than_equal", "sampling.temperature", path=TTS,
         json={"text": "hi", "sampling": {"temperature": 50}}),
    case("tts-cfg-scale", 422, "greater_than_equal", "cfg_scale", path=TTS, json={"text": "hi", "cfg_scale": 0.5}),
    case("tts-language", 422, "value_error", "language", path=TTS, json={"text": "hi", "language": "klingon"}),
    case("tts-emotion", 422, "too_short", "emotion", path=TTS, json={"text": "hi", "emotion": [1, 2, 3]}),
    case("tts-unconditional-key", 422, "literal_error", "unconditional_keys.0", path=TTS,
         json={"text": "hi", "unconditional_keys": ["voice"]}),
    case("tts-seed", 422, "greater_than_equal", "seed", path=TTS, json={"text": "hi", "seed": -1}),
    case("tts-stream", 422, "bool_parsing", "stream", path=TTS, json={"text": "hi", "stream": "maybe"}),
    case("tts-format", 422, "literal_error", "response_format", path=TTS,
         json={"text": "hi", "response_format": "m4a"}),
    case("tts-blank-text", 422, "value_error", "text", path=TTS, json={"text": " "}),
    case("tts-clip-and-voice", 422, "conflicting_fields", "voice", path=TTS,
         **tts_form({"text": "hi", "voice": "taken"})),
    case("tts-bad-clip", 422, "invalid_audio", "file", path=TTS, **tts_form({"text": "hi"}, clip=b"OggS not a wav")),
    case("tts-unknown-part", 422, "extra_forbidden", "x", path=TTS,
         files={"file": ("c.wav", CLIP)}, data={"request": "{}", "x": "1"}),
    case("tts-missing-request-part", 422, "missing", "request", path=TTS, files={"file": ("c.wav", CLIP)}),
    case("voices-bad-clip", 422, "invalid_audio", "file", path=VOICES, **clip_form(clip=b"garbage")),
    case("voices-empty-clip", 422, "invalid_audio", "file", path=VOICES, **clip_form(clip=b"")),
    case("voices-missing-name", 422, "missing", "name", path=VOICES, **clip_form(name=None)),
    case("voices-blank-name", 422, "invalid_value", "name", path=VOICES, **clip_form(name="   ")),
    case("voices-long-name", 422, "invalid_value", "name", path=VOICES, **clip_form(name="x" * 65)),
    case("voices-slash-name", 422, "invalid_value", "name", path=VOICES, **clip_form(name="team/alice")),
    case("voices-dots-name", 422, "invalid_value", "name", path=VOICES, **clip_form(name="..")),
    case("voices-bad-name-bad-clip", 422, "invalid_value", "name", path=VOICES,
         **clip_form(name="a?b", clip=b"garbage")),
    case("voices-missing-file", 422, "missing", "file", path=VOICES, files={"name": (None, "Eve")}),
    case("voices-file-as-field", 422, "invalid_type", "file", path=VOICES,
         files={"name": (None, "Eve"), "file": (None, "RIFF")}),
    case("backend-refuses", 400, "invalid_value", mode="value", json=speech()),
    case("backend-refuses-tts", 422, "invalid_value", mode="value", path=TTS, json={"text": "hi"}),
    # not found: 404
    case("unknown-model", 404, "model_not_found", "model", json=speech(model="tts-2")),
    case("unknown-voice", 404, "voice_not_found", "voice", json=speech(voice="nobody")),
    case("tts-unknown-voice", 404, "voice_not_found", "voice", path=TTS, json={"text": "hi", "voice": "nobody"}),
    case("get-unknown-voice", 404, "voice_not_found", "voice_id", method="GET", path="/v1/voices/voice_ffff"),
    case("delete-unknown-voice", 404, "voice_not_found", "voice_id", method="DELETE", path="/v1/voices/nobody"),
    case("unknown-route", 404, "not_found", method="GET", path="/v1/audio/transcriptions"),
    case("unknown-route-post", 404, "not_found", path="/v2/tts", json={}),
    # method not allowed: 405
    case("get-speech", 405, "method_not_allowed", method="GET"),
    case("delete-models", 405, "method_not_allowed", method="DELETE", path="/v1/models"),
    case("put-voices", 405, "method_not_allowed", method="PUT", path=VOICES, json={}),
    case("post-healthz", 405, "method_not_allowed", path="/healthz"),
    # conflict: 409
    case("duplicate-voice", 409, "voice_exists", "name", path=VOICES, **clip_form(name="taken")),
    # too large: 413
    case("input-too-long", 413, "input_too_long", "input", json=speech(input=FAR_TOO_LONG)),
    case("text-too-long", 413, "input_too_long", "text", path=TTS, json={"text": FAR_TOO_LONG}),
    case("multipart-text-too-long", 413, "input_too_long", "text", path=TTS, **tts_form({"text": FAR_TOO_LONG})),
    case("json-body-too-large", 413, "request_too_large", path=TTS, content=b" " * (2 * 1024 * 1024), headers=JSON),
    case("clip-too-big", 413, "upload_too_large", "file", path=VOICES, **clip_form(clip=CLIP + bytes(MAX_UPLOAD))),
    case("upload-huge", 413, "upload_too_large", "file", path=VOICES, **clip_form(clip=b"RIFF" + bytes(3 * 2**20))),
    case("tts-clip-too-big", 413, "upload_too_large", "file", path=TTS,
         **tts_form({"text": "hi"}, clip=CLIP + bytes(MAX_UPLOAD))),
    # backend trouble: 503, 504
    case("busy", 503, "server_busy", mode="busy", json=speech()),
    case("busy-tts", 503, "server_busy", mode="busy", path=TTS, json={"text": "hi", "stream": False}),
    case("timeout", 504, "timeout", mode="sleep", json=speech()),
    case("backend-timeout", 504, "timeout", mode="timeout", path=TTS, json={"text": "hi"}),
]  # fmt: skip


@pytest.fixture(scope="module")
def shared():
    """One app for the whole matrix, so the last test can check it still serves afterwards."""
    backend = FakeBackend()
    client = make_client(backend)
    assert client.post("/v1/voices", **clip_form(name="taken")).status_code == 201
    return backend, client


@pytest.mark.parametrize(("method", "path", "kwargs", "mode", "status", "param", "code"), MATRIX)
def test_bad_input(shared, method, path, kwargs, mode, status, param, code):
    backend, client = shared
    backend.mode = mode
    try:
        with serve_logs() as logs:
            response = client.request(method, path, **kwargs)
    finally:
        backend.mode = None
    error = assert_error(response, status, "server_error" if status >= 500 else "invalid_request_error", param, code)
    # logged once, under the response's request id: the client's mistakes at INFO, the rest at WARNING
    (record,) = logs.about(response.headers["x-request-id"])
    assert record.levelno == (logging.INFO if status < 500 else logging.WARNING)
    assert record.exc_info is None and f"-> {status} {code}: {error['message']}" in record.getMessage()
    if status == 405:
        assert method not in response.headers["allow"].split(", ")
    # the openai SDK's retry hint: only a 503 is worth retrying (errors.py)
    assert response.headers["x-should-retry"] == ("true" if status == 503 else "false")
    if status == 503:
        assert response.headers["retry-after"] == "3"  # 2.5 s, rounded up
        assert response.headers["retry-after-ms"] == "2500"


def test_matrix_is_big_enough():
    assert len(MATRIX) >= 30
    assert len({case.id for case in MATRIX}) == len(MATRIX)


def test_still_serves_after_the_matrix(shared):
    backend, client = shared
    response = client.post("/v1/audio/speech", json=speech(response_format="wav", voice="taken"))
    assert response.status_code == 200
    assert_audio(response.content, "wav", SECONDS_PER_CHAR * len(TEXT))
    assert [v["name"] for v in client.get("/v1/voices").json()["data"]] == ["taken"]
    # every stream the matrix started was closed again
    assert backend.closed == len(backend.requests)


# --------------------------------------------------------------------------- the one mapping, row by row

BACKEND_ERRORS = [
    # (raised, the request's own fields, status, code, param)
    (BackendBusy("queue full", retry_after_s=2.5), {}, 503, "server_busy", None),
    (TimeoutError(), {"text_param": "input"}, 504, "timeout", None),
    (DuplicateVoiceNameError("Alice"), {"clip_param": "file"}, 409, "voice_exists", "name"),
    (InvalidVoiceNameError("voice name may not contain '/'"), {"clip_param": "file"}, 422, "invalid_value", "name"),
    (InvalidVoiceNameError("voice name may not contain '/'"), {}, 422, "invalid_value", "name"),
    (InvalidAudioError("not audio"), {"clip_param": "file"}, 422, "invalid_audio", "file"),
    (NothingToSpeakError("nothing to speak"), {"text_param": "input"}, 422, "nothing_to_speak", "input"),
    (NothingToSpeakError("nothing to speak"), {"text_param": "text"}, 422, "nothing_to_speak", "text"),
    (MissingExtraError("pip install zonos-serve[ja]"), {"text_param": "text"}, 422, "language_unavailable", "language"),
    (ValueError("too many phonemes"), {"text_param": "text"}, 422, "invalid_value", None),
]


@pytest.mark.parametrize(("raised", "fields", "status", "code", "param"), BACKEND_ERRORS)
def test_backend_error(raised, fields, status, code, param):
    error = backend_error(raised, **fields)
    assert (error.status, error.code, error.param) == (status, code, param)
    assert error.headers["x-should-retry"] == ("true" if status == 503 else "false")
    assert error.type == ("server_error" if status >= 500 else "invalid_request_error")
    assert error.message


@pytest.mark.parametrize(
    ("raised", "fields"),
    [
        (ValueError("a bug"), {}),
        (MissingExtraError("not a clip's fault"), {"clip_param": "file"}),
        (RuntimeError("a bug"), {"text_param": "text"}),
    ],
)
def test_backend_error_leaves_the_rest_to_the_500_handler(raised, fields):
    assert backend_error(raised, **fields) is None
