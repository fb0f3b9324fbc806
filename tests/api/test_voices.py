"""The voice routes over the fake backend, and recorded clips through the real (random-tiny) speaker encoder."""

from __future__ import annotations

import asyncio
import io
from fractions import Fraction
from urllib.parse import quote

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.conftest import CLIP, RATE, FakeBackend, assert_error, make_client, tone
from deployments.backend import VoiceInfo
from pipeline.speaker import SpeakerEncoder


def test_voices_crud(client):
    assert client.get("/v1/voices").json() == {"object": "list", "data": []}
    created = client.post("/v1/voices", files={"file": ("a.wav", CLIP, "audio/wav")}, data={"name": "  Carol "})
    assert created.status_code == 201
    voice = created.json()
    assert voice == {"id": voice["id"], "name": "Carol", "created_at": 1_700_000_000, "object": "voice"}
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
