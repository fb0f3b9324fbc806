"""The voice routes over the fake backend (the library's, OpenAI's /v1/audio/voices through the openai SDK,
Open WebUI's discovery), OpenAI's built-in names as fixed voices, and recorded clips through the real
(random-tiny) speaker encoder."""

from __future__ import annotations

import asyncio
import io
from fractions import Fraction
from urllib.parse import quote

import av
import numpy as np
import openai
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from openai import OpenAI

from api.conftest import (
    CLIP,
    MAX_UPLOAD,
    RATE,
    SECONDS_PER_CHAR,
    TEXT,
    FakeBackend,
    assert_audio,
    assert_error,
    make_client,
    real_server,
    speech,
    tone,
)
from deployments.api import build_http_app
from deployments.backend import VoiceInfo
from deployments.config import AppConfig
from pipeline.speaker import SpeakerEncoder
from pipeline.voices import OPENAI_VOICES, BuiltinVoices, synthetic_embedding


def test_voices_crud(client):
    assert client.get("/v1/voices").json() == {"object": "list", "data": []}
    created = client.post("/v1/voices", files={"file": ("a.wav", CLIP, "audio/wav")}, data={"name": "  Carol "})
    assert created.status_code == 201
    voice = created.json()
    assert voice == {
        "id": voice["id"],
        "name": "Carol",
        "created_at": 1_700_000_000,
        "object": "voice",
        "language": None,
    }
    assert created.headers["location"] == f"/v1/voices/{voice['id']}"
    assert client.get("/v1/voices").json() == {"object": "list", "data": [voice]}
    assert client.get(f"/v1/voices/{voice['id']}").json() == voice
    assert client.get("/v1/voices/Carol").json() == voice
    deleted = client.delete("/v1/voices/Carol")
    assert deleted.status_code == 200
    assert deleted.json() == {"id": voice["id"], "object": "voice.deleted", "deleted": True}
    assert_error(client.get(f"/v1/voices/{voice['id']}"), 404, "invalid_request_error", "voice_id", "voice_not_found")
    assert client.get("/v1/voices").json()["data"] == []


# --------------------------------------------------------------------------- the name rule over HTTP

# letters of any script, combining marks, decimal digits, space, '-', '_', '.': a letter or digit at each end
letter_or_digit = st.characters(categories=["Lu", "Ll", "Lt", "Lm", "Lo", "Nd"])
name_char = st.characters(categories=["Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd"], include_characters=" -_.")
valid_names = st.builds(lambda a, b, c: a + b + c, letter_or_digit, st.text(name_char, max_size=62), letter_or_digit)


@settings(max_examples=40, deadline=None)
@given(name=valid_names)
def test_every_valid_name_works_as_a_url_path_segment(name):
    """The reason for the rule: a name stands in for an id in /v1/voices/{ref}."""
    client = make_client(FakeBackend())
    created = client.post("/v1/voices", files={"file": ("a.wav", CLIP, "audio/wav")}, data={"name": name})
    assert created.status_code == 201, created.text
    assert created.json()["name"] == name
    url = f"/v1/voices/{quote(name, safe='')}"
    assert client.get(url).json() == created.json()
    assert client.delete(url).json()["deleted"] is True
    assert client.get("/v1/voices").json()["data"] == []


@pytest.mark.parametrize(
    ("name", "says"), [("team/alice", "'/'"), ("..", "no letter or digit"), ("x" * 65, "1 to 64"), ("a\tb", "'\\t'")]
)
def test_invalid_names_are_refused_naming_the_rule(client, backend, name, says):
    response = client.post("/v1/voices", files={"file": ("a.wav", CLIP, "audio/wav")}, data={"name": name})
    error = assert_error(response, 422, "invalid_request_error", "name", "invalid_value")
    assert says in error["message"]
    assert "letters (any script, accents included), digits, spaces, '-', '_' or '.'" in error["message"]
    assert backend.voices == {}


def test_voices_named_under_an_older_rule_are_listed_and_deleted_by_id(client, backend):
    legacy = VoiceInfo(id="voice_00000000000000a1", name="team/alice", created_at=1_600_000_000)
    backend.voices[legacy.id] = legacy
    backend.embeddings[legacy.id] = [0.0] * 128
    listed = client.get("/v1/voices").json()["data"]
    assert [(v["id"], v["name"]) for v in listed] == [(legacy.id, "team/alice")]
    assert client.get(f"/v1/voices/{legacy.id}").json()["name"] == "team/alice"
    assert client.delete(f"/v1/voices/{legacy.id}").json() == {
        "id": legacy.id,
        "object": "voice.deleted",
        "deleted": True,
    }
    assert client.get("/v1/voices").json()["data"] == []


# --------------------------------------------------------------------------- recorded clips, real speaker encoder


class EncodingBackend(FakeBackend):
    """The fake backend with the Voices deployment's embed_clip: the speaker encoder, in a worker thread."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = SpeakerEncoder.from_pretrained("random-tiny")

    async def embed_clip(self, clip: bytes) -> list[float]:
        return (await asyncio.to_thread(self.encoder.embed_file, clip)).tolist()


def recorded(muxer: str, codec: str) -> bytes:
    """2 s of mono tone at 48 kHz as a browser's MediaRecorder (webm/Opus) or a phone (m4a/AAC) saves it."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=muxer) as container:
        stream = container.add_stream(codec, rate=48000, layout="mono")
        stream.format = "fltp" if codec == "aac" else "flt"
        frame = av.AudioFrame.from_ndarray(tone(2.0)[np.newaxis], format=stream.format.name, layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = RATE, 0, Fraction(1, RATE)
        container.mux(stream.encode(frame))  # PyAV resamples 44.1 -> 48 kHz and cuts codec frames
        container.mux(stream.encode(None))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("filename", "media_type", "muxer", "codec"),
    [("memo.m4a", "audio/mp4", "ipod", "aac"), ("recording.webm", "audio/webm;codecs=opus", "webm", "libopus")],
)
def test_voices_accept_recorded_clips(filename, media_type, muxer, codec):
    backend = EncodingBackend()
    client = make_client(backend, max_upload_bytes=256 * 1024)
    clip = recorded(muxer, codec)
    response = client.post("/v1/voices", files={"file": (filename, clip, media_type)}, data={"name": "Mallory"})
    assert response.status_code == 201, response.text
    embedding = backend.embeddings[response.json()["id"]]
    assert len(embedding) == 128 and all(np.isfinite(embedding))


@pytest.mark.parametrize(
    ("clip", "says"),
    [
        (b"GIF89a\x10\x00\x10\x00\x80\x00\x00" + bytes(64), "no audio stream"),
        (b"Hello, this is my voice. " * 20, "not audio in any format ffmpeg reads"),
    ],
)
def test_voices_refuse_what_is_not_audio(clip, says):
    client = make_client(EncodingBackend())
    response = client.post("/v1/voices", files={"file": ("voice.m4a", clip, "audio/mp4")}, data={"name": "Trudy"})
    error = assert_error(response, 422, "invalid_request_error", "file", "invalid_audio")
    assert says in error["message"] and f"read {len(clip)} bytes starting '" in error["message"]


# ----------------------------------------------------------- OpenAI's voice routes, Open WebUI's discovery


def open_webui_voices(body: dict) -> dict[str, str]:
    """What Open WebUI keeps of GET {base}/audio/voices (routers/audio.py, get_available_voices)."""
    return {voice["id"]: voice["name"] for voice in body.get("voices", [])}


def test_audio_voices_lists_the_builtin_names_then_the_library(client):
    assert client.get("/v1/audio/voices").json() == {"voices": [{"id": name, "name": name} for name in OPENAI_VOICES]}
    carol = client.post("/v1/voices", files={"file": ("c.wav", CLIP)}, data={"name": "Carol"}).json()
    nova = client.post("/v1/voices", files={"file": ("n.wav", CLIP)}, data={"name": "nova"}).json()
    listed = client.get("/v1/audio/voices").json()
    assert open_webui_voices(listed) == {name: name for name in OPENAI_VOICES} | {
        carol["id"]: "Carol",
        nova["id"]: "nova",
    }
    assert [voice["id"] for voice in listed["voices"]][-2:] == [carol["id"], nova["id"]]
    assert all(set(voice) == {"id", "name"} for voice in listed["voices"])
    client.delete(f"/v1/voices/{carol['id']}")
    assert carol["id"] not in open_webui_voices(client.get("/v1/audio/voices").json())
    assert_error(client.put("/v1/audio/voices"), 405, "invalid_request_error", None, "method_not_allowed")


def test_audio_models_are_the_names_v1_models_lists(client):
    models = client.get("/v1/audio/models").json()
    assert set(models) == {"models"} and all(set(model) == {"id"} for model in models["models"])
    listed = [model["id"] for model in client.get("/v1/models").json()["data"]]
    assert [model["id"] for model in models["models"]] == listed
    assert {"zonos-v0.1", "tts-1", "tts-1-hd"} <= set(listed)
    for model in listed:  # each is a model /v1/audio/speech takes
        assert client.post("/v1/audio/speech", json=speech(model=model, response_format="wav")).status_code == 200


def test_the_openai_sdk_creates_and_deletes_voices(backend):
    """client.audio.voices (openai-python 3.57) against a real server: multipart create, typed result."""
    with real_server(build_http_app(backend, AppConfig(max_upload_bytes=MAX_UPLOAD))) as url:
        client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        voice = client.audio.voices.create(
            audio_sample=("carol.wav", CLIP, "audio/wav"), consent="cons_1234", name=" Carol ", type="audio_sample"
        )
        assert (voice.object, voice.type, voice.name, voice.created_at) == (
            "audio.voice",
            "audio_sample",
            "Carol",
            1_700_000_000,
        )
        assert backend.voices[voice.id].name == "Carol"
        assert backend.embeddings[voice.id] == [len(CLIP) / 10_000] * 128  # the fake's embedding of that clip
        bare = client.audio.voices.create(audio_sample=("dave.wav", CLIP + b"\0"), consent="cons_1", name="Dave")
        assert bare.type == "audio_sample" and backend.voices[bare.id].name == "Dave"
        with pytest.raises(openai.ConflictError) as duplicate:
            client.audio.voices.create(audio_sample=("again.wav", CLIP), consent="cons_1", name="Carol")
        assert (duplicate.value.code, duplicate.value.param) == ("voice_exists", "name")
        with pytest.raises(openai.BadRequestError) as prompt:
            client.audio.voices.create(name="Deep", prompt="a deep, calm voice", type="prompt")
        assert (prompt.value.code, prompt.value.param) == ("invalid_value", "type")
        assert "clip" in prompt.value.message
        deleted = client.audio.voices.delete(voice.id)
        assert (deleted.id, deleted.deleted, deleted.object) == (voice.id, True, "audio.voice.deleted")
        assert list(backend.voices) == [bare.id]
        with pytest.raises(openai.NotFoundError):
            client.audio.voices.delete(voice.id)


def form(**parts) -> dict:
    """Multipart parts: bytes as a file upload, str as a plain field."""
    return {key: (f"{key}.wav", value) if isinstance(value, bytes) else (None, value) for key, value in parts.items()}


@pytest.mark.parametrize(
    ("parts", "status", "param", "code"),
    [
        ({"name": "Carol"}, 400, "audio_sample", "missing"),
        ({"audio_sample": "RIFF...", "name": "Carol"}, 400, "audio_sample", "invalid_type"),
        ({"audio_sample": b"", "name": "Carol"}, 400, "audio_sample", "invalid_audio"),
        ({"audio_sample": b"GIF89a, not a clip", "name": "Carol"}, 400, "audio_sample", "invalid_audio"),
        ({"audio_sample": CLIP}, 400, "name", "missing"),
        ({"audio_sample": CLIP, "name": "team/alice"}, 400, "name", "invalid_value"),
        ({"audio_sample": CLIP, "name": "Carol", "consent": b"a file"}, 400, "consent", "invalid_type"),
        ({"audio_sample": CLIP, "name": "Carol", "type": "prompt"}, 400, "type", "invalid_value"),
        ({"audio_sample": CLIP, "name": "Carol", "prompt": "deep"}, 400, "prompt", "invalid_value"),
        ({"audio_sample": CLIP, "name": "Carol", "file": CLIP}, 400, "file", "unknown_parameter"),
        ({"audio_sample": b"RIFF" + bytes(MAX_UPLOAD), "name": "Carol"}, 413, "audio_sample", "upload_too_large"),
    ],
)
def test_create_audio_voice_refuses_bad_input_naming_the_part(client, backend, parts, status, param, code):
    response = client.post("/v1/audio/voices", files=form(**parts))
    error = assert_error(response, status, "invalid_request_error", param, code)
    assert param in error["message"].replace("voice name", "name")  # the message names the part too
    assert backend.voices == {}


def test_an_open_webui_like_client_finds_a_library_voice_and_speaks_with_it(backend):
    """Open WebUI's flow: list voices and models (requests, no auth), pick one, POST /audio/speech
    with that voice's id; the audio comes back and the embedding that reached the backend is the voice's."""
    with real_server(build_http_app(backend, AppConfig(max_upload_bytes=MAX_UPLOAD))) as url:
        base = f"{url}/v1"
        sdk = OpenAI(base_url=base, api_key="unused", max_retries=0)
        carol = sdk.audio.voices.create(audio_sample=("carol.wav", CLIP + bytes(100)), consent="cons_1", name="Carol")
        sdk.audio.voices.create(audio_sample=("dave.wav", CLIP), consent="cons_2", name="Dave")
        available = open_webui_voices(requests.get(f"{base}/audio/voices", timeout=10).json())
        models = requests.get(f"{base}/audio/models", timeout=10).json().get("models", [])
        voice_id = next(id_ for id_, name in available.items() if name == "Carol")
        payload = {"input": TEXT, "voice": voice_id, "model": models[0]["id"]}
        response = requests.post(f"{base}/audio/speech", json=payload, timeout=10)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "audio/mpeg"  # the config's default format
        assert_audio(response.content, "mp3", SECONDS_PER_CHAR * len(TEXT))
        spoken, _ = backend.requests[-1]
        assert voice_id == carol.id and spoken.speaker == backend.embeddings[carol.id]
        assert spoken.speaker == [len(CLIP + bytes(100)) / 10_000] * 128  # the clip that was uploaded as Carol


def test_builtin_names_speak_one_fixed_voice_each(client, backend):
    spoken = {}
    for name in ("echo", "nova", "echo", "nova"):
        assert client.post("/v1/audio/speech", json=speech(voice=name, response_format="wav")).status_code == 200
        spoken.setdefault(name, []).append(backend.requests[-1][0].speaker)
    assert spoken["echo"][0] == spoken["echo"][1] == synthetic_embedding("echo")
    assert spoken["nova"][0] == spoken["nova"][1] != spoken["echo"][0]


def test_a_bound_builtin_name_speaks_the_bound_voice(backend):
    backend.builtins = BuiltinVoices({"alloy": "Carol"})  # as the Voices deployment gets AppConfig.voice_bindings
    client = make_client(backend, voice_bindings={"alloy": "Carol"})
    error = assert_error(
        client.post("/v1/audio/speech", json=speech(voice="alloy")),
        404,
        "invalid_request_error",
        "voice",
        "voice_not_found",
    )
    assert "'alloy' is bound to library voice 'Carol'" in error["message"]
    carol = client.post("/v1/audio/voices", files=form(audio_sample=CLIP, name="Carol")).json()
    client.post("/v1/audio/voices", files=form(audio_sample=CLIP + b"\0", name="alloy"))  # the binding still wins
    assert client.post("/v1/audio/speech", json=speech(voice="alloy", response_format="wav")).status_code == 200
    assert backend.requests[-1][0].speaker == backend.embeddings[carol["id"]]


def test_a_voice_language_is_stored_and_shown_on_every_route(backend):
    """`language` on both create routes (through the openai SDK: extra_body, as OpenAI's voices have no
    language) comes back as the espeak-ng code in every voice reply and reaches the backend."""
    with real_server(build_http_app(backend, AppConfig(max_upload_bytes=MAX_UPLOAD))) as url:
        sdk = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        amelie = sdk.audio.voices.create(
            audio_sample=("a.wav", CLIP), consent="cons_1", name="Amélie", extra_body={"language": "fr"}
        )
        assert amelie.model_extra == {"language": "fr-fr"}
        made = requests.post(
            f"{url}/v1/voices", files={"file": ("b.wav", CLIP)}, data={"name": "Bia", "language": "pt-BR"}, timeout=10
        )
        assert made.status_code == 201 and made.json()["language"] == "pt-br"
        listed = requests.get(f"{url}/v1/voices", timeout=10).json()["data"]
        assert [(v["name"], v["language"]) for v in listed] == [("Amélie", "fr-fr"), ("Bia", "pt-br")]
        assert requests.get(f"{url}/v1/voices/Bia", timeout=10).json() == made.json()
    assert [(v.name, v.language) for v in backend.voices.values()] == [("Amélie", "fr-fr"), ("Bia", "pt-br")]
