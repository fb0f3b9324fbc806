"""The Serve application on a real local Ray instance: HTTP, the OpenAI SDK, handles, batching."""

import base64
import concurrent.futures
import io
import itertools
import json
import re
import threading
import time

import av
import numpy as np
import pytest
import ray
import requests
import soundfile as sf
from openai import OpenAI
from ray import serve

from conftest import DATA
from deployments.app import APP_NAME, build_app
from pipeline.segment import DEFAULT_MAX_TOKENS, split_text

FORMATS = ["mp3", "opus", "aac", "flac", "wav", "pcm"]
TEXT = "Hello there. This is a short test of the server."


def _speech(server, **fields):
    body = {"model": "tts-1", "input": TEXT, "voice": "alloy"} | fields
    return requests.post(f"{server}/v1/audio/speech", json=body, timeout=120)


def _decoded_seconds(data: bytes, fmt: str, pcm_rate: int = 44100) -> tuple[float, int, int]:
    """(duration, sample rate, channels) of encoded audio; raw pcm is s16le mono at `pcm_rate`."""
    if fmt == "pcm":
        return len(data) / 2 / pcm_rate, pcm_rate, 1
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / stream.rate, stream.rate, stream.codec_context.layout.nb_channels


def _generator_stats():
    return serve.get_deployment_handle("Generator", APP_NAME).stats.remote().result(timeout_s=30)


def test_models_and_health(server):
    models = requests.get(f"{server}/v1/models", timeout=30).json()
    assert {m["id"] for m in models["data"]} >= {"zonos-v0.1", "tts-1", "tts-1-hd", "gpt-4o-mini-tts"}
    assert requests.get(f"{server}/healthz", timeout=30).status_code == 200
    assert requests.get(f"{server}/readyz", timeout=30).status_code == 200


@pytest.mark.parametrize("fmt", FORMATS)
def test_http_round_trip_in_every_format(server, fmt):
    response = _speech(server, response_format=fmt)
    assert response.status_code == 200, response.text
    assert response.headers["x-audio-format"] == fmt
    seconds, rate, channels = _decoded_seconds(response.content, fmt, pcm_rate=24000)  # OpenAI's pcm rate
    assert rate == int(response.headers["x-sample-rate"]) and channels == 1
    assert seconds > 0.1


@pytest.mark.parametrize("fmt", ["wav", "mp3", "flac"])
def test_openai_sdk_round_trip_plain_and_streaming(server, fmt):
    client = OpenAI(base_url=f"{server}/v1", api_key="not-needed")
    plain = client.audio.speech.create(model="tts-1", voice="alloy", input=TEXT, response_format=fmt)
    assert _decoded_seconds(plain.content, fmt)[0] > 0.1
    with client.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts", voice="nova", input=TEXT, response_format=fmt
    ) as response:
        streamed = b"".join(response.iter_bytes())
    assert _decoded_seconds(streamed, fmt)[0] > 0.1


def test_openai_sse_usage_is_the_graphs_tokens_and_frames_and_x_seed_repeats(server):
    """Through the real graph: speech.audio.done's usage counts the phoneme tokens of every segment
    (as the splitter cuts the text here) and the codec frames of the audio (512 samples each; the
    rest is the 200 ms pauses between segments); the X-Seed of a request sent back gives its bytes."""
    text = "Request number one. It has two sentences."
    body = {"model": "tts-1", "input": text, "voice": "alloy", "language": "en-us", "response_format": "wav"}

    def sse(**fields):
        response = requests.post(
            f"{server}/v1/audio/speech", json=body | {"stream_format": "sse"} | fields, timeout=120
        )
        assert response.status_code == 200, response.text
        events = [json.loads(block.removeprefix("data: ")) for block in response.text.split("\n\n") if block]
        audio = b"".join(base64.b64decode(event["audio"]) for event in events[:-1])
        return response.headers["x-seed"], audio, events[-1]

    seed, audio, done = sse()
    segments = split_text(text, "en-us", DEFAULT_MAX_TOKENS)
    assert len(segments) == 2
    usage = done["usage"]
    assert done["type"] == "speech.audio.done" and usage["input_tokens"] == sum(s.n_tokens for s in segments)
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    with av.open(io.BytesIO(audio)) as container:
        n_samples = sum(frame.samples for frame in container.decode(audio=0))
    assert n_samples == 512 * usage["output_tokens"] + round(0.2 * 44100)
    assert sse(seed=int(seed)) == (seed, audio, done)


def test_native_tts_with_a_library_voice(server):
    clip = io.BytesIO()
    sf.write(clip, (0.1 * np.random.default_rng(0).standard_normal(44100 * 2)).astype(np.float32), 44100, format="WAV")
    created = requests.post(
        f"{server}/v1/voices", files={"file": ("me.wav", clip.getvalue(), "audio/wav")}, data={"name": "me"}, timeout=60
    )
    assert created.status_code == 201, created.text
    voice_id = created.json()["id"]
    assert voice_id in [v["id"] for v in requests.get(f"{server}/v1/voices", timeout=30).json()["data"]]
    body = {"text": TEXT, "voice": voice_id, "seed": 3, "response_format": "wav", "stream": False}
    response = requests.post(f"{server}/v1/tts", json=body, timeout=120)
    assert response.status_code == 200, response.text
    assert _decoded_seconds(response.content, "wav")[0] > 0.1
    assert requests.delete(f"{server}/v1/voices/{voice_id}", timeout=30).json()["deleted"]
    assert requests.get(f"{server}/v1/voices/{voice_id}", timeout=30).status_code == 404


def test_concurrent_requests_share_generator_flushes(server):
    before = len(_generator_stats()["flush_sizes"])
    texts = [f"Request number {i}. It has two sentences." for i in range(16)]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda t: _speech(server, input=t, response_format="pcm").status_code, texts))
    assert statuses == [200] * 16
    flushes = _generator_stats()["flush_sizes"][before:]
    assert sum(flushes) == 32  # every segment of every request went through a flush
    assert max(flushes) > 1  # and segments of different requests were gathered together


BAD_REQUESTS = [
    ("post", "/v1/audio/speech", {"data": "{not json", "headers": {"content-type": "application/json"}}, 400),
    ("post", "/v1/audio/speech", {"data": "[1, 2]", "headers": {"content-type": "application/json"}}, 400),
    ("post", "/v1/audio/speech", {"data": "text", "headers": {"content-type": "text/plain"}}, 400),
    ("post", "/v1/audio/speech", {"json": {"model": "tts-1", "voice": "alloy"}}, 400),
    ("post", "/v1/audio/speech", {"json": {"model": "tts-1", "input": "hi"}}, 400),
    ("post", "/v1/audio/speech", {"json": {"model": "nope", "input": "hi", "voice": "alloy"}}, 404),
    ("post", "/v1/audio/speech", {"json": {"model": "tts-1", "input": "hi", "voice": "nobody"}}, 404),
    ("post", "/v1/audio/speech", {"json": {"model": "tts-1", "input": "", "voice": "alloy"}}, 400),
    ("post", "/v1/audio/speech", {"json": {"model": "tts-1", "input": "x" * 2001, "voice": "alloy"}}, 413),
    ("post", "/v1/audio/speech", {"json": {"model": "tts-1", "input": "hi", "voice": "alloy", "speed": 9}}, 400),
    ("post", "/v1/audio/speech", {"json": {"model": "tts-1", "input": "hi", "voice": "alloy", "speed": 0.1}}, 400),
    (
        "post",
        "/v1/audio/speech",
        {"json": {"model": "tts-1", "input": "hi", "voice": "alloy", "response_format": "ogg"}},
        400,
    ),
    ("post", "/v1/audio/speech", {"json": {"model": "tts-1", "input": "hi", "voice": "alloy", "volume": 3}}, 400),
    ("post", "/v1/tts", {"json": {"text": "hi", "language": "xx"}}, 422),
    ("post", "/v1/tts", {"json": {"text": "hi", "speaker": [0.1] * 5}}, 422),
    ("post", "/v1/tts", {"json": {"text": "hi", "emotion": [1, 2]}}, 422),
    ("post", "/v1/tts", {"json": {"text": "hi", "cfg_scale": 0.5}}, 422),
    ("post", "/v1/tts", {"json": {"text": "hi", "sampling": {"temperature": -1}}}, 422),
    ("post", "/v1/tts", {"json": {"text": "hi", "voice": "nobody"}}, 404),
    ("post", "/v1/tts", {"json": {"text": "hi", "voice": "x", "speaker": [0.0] * 128}}, 422),
    ("post", "/v1/tts", {"json": {"text": "hi", "unknown_field": 1}}, 422),
    ("post", "/v1/tts", {"json": {"text": "hi", "seed": -5}}, 422),
    ("post", "/v1/tts", {"data": '{"text": NaN}', "headers": {"content-type": "application/json"}}, 400),
    (
        "post",
        "/v1/voices",
        {"files": {"file": ("x.wav", b"not audio at all", "audio/wav")}, "data": {"name": "x"}},
        422,
    ),
    ("post", "/v1/voices", {"data": {"name": "no file"}}, 400),  # a form, but not multipart
    ("get", "/v1/voices/voice_doesnotexist", {}, 404),
    ("delete", "/v1/voices/voice_doesnotexist", {}, 404),
    ("get", "/v1/nothing-here", {}, 404),
    ("get", "/v1/audio/speech", {}, 405),
    ("put", "/v1/models", {}, 405),
]


# What a body must never show: Ray's ANSI colour codes, remote tracebacks, pids, hosts, file paths.
_LEAKS = re.compile(
    r"\x1b\[|Traceback|File \"|pid=|ip=|\b\d{1,3}(\.\d{1,3}){3}\b"
    r"|/(tmp|home|root|usr|work)/|\.py\b|Ray(Task|Actor)?Error"
)


def _assert_clean_error(response) -> dict:
    """The body is OpenAI's error shape with a message that shows nothing of the server's insides."""
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"} and error["message"]
    assert not _LEAKS.search(response.text), response.text
    return error


@pytest.mark.parametrize(("method", "path", "kwargs", "status"), BAD_REQUESTS)
def test_bad_input_gets_a_json_4xx(server, method, path, kwargs, status):
    response = getattr(requests, method)(f"{server}{path}", timeout=60, **kwargs)
    assert response.status_code == status, response.text
    _assert_clean_error(response)


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/audio/speech", {"model": "tts-1", "input": "\u200b", "voice": "alloy"}, "input"),
        ("/v1/audio/speech", {"model": "tts-1", "input": "\u200b\ufeff\u2060 \u00ad", "voice": "alloy"}, "input"),
        ("/v1/audio/speech", {"model": "tts-1", "input": "✅ 🎉", "voice": "alloy", "stream_format": "sse"}, "input"),
        ("/v1/tts", {"text": "\u200d\u200c", "stream": False}, "text"),
        ("/v1/tts", {"text": "*** --- ###", "stream": True}, "text"),
    ],
)
def test_nothing_to_speak_is_a_4xx_naming_the_field(server, path, body, param):
    response = requests.post(f"{server}{path}", json=body, timeout=60)
    assert 400 <= response.status_code < 500, response.text
    error = _assert_clean_error(response)
    assert error["param"] == param and "nothing to speak" in error["message"]


def test_a_replicas_error_reaches_the_client_as_its_own_message(server):
    """The splitter's refusal crosses Ray and comes back as its message alone (the issue's example,
    "⣿", is now cleaned away as Braille; "⨌" alone reads as more ids than 16 and is refused)."""
    for text in ("⣿", "⨌"):
        body = {"text": text, "max_tokens_per_segment": 16, "stream": False}
        response = requests.post(f"{server}/v1/tts", json=body, timeout=60)
        assert 400 <= response.status_code < 500, response.text
        _assert_clean_error(response)
    assert "alone reads as" in response.json()["error"]["message"]
    clip = {"file": ("clip.m4a", b"GIF89a" + bytes(200), "audio/mp4")}
    response = requests.post(f"{server}/v1/voices", files=clip, data={"name": "gif"}, timeout=60)
    assert response.status_code == 422, response.text
    assert _assert_clean_error(response)["param"] == "file"


def test_ray_wrappers_come_off_in_one_place(server):
    """replica_errors(): a remote exception (nested any depth) is raised as itself; Ray's own
    failures (a dead actor) become BackendBusy with a fixed message."""
    from deployments.backend import BackendBusy
    from deployments.ray_errors import REPLICA_UNAVAILABLE, replica_errors

    @ray.remote
    def inner():
        raise KeyError("the cause's own message")

    @ray.remote
    def outer():
        return ray.get(inner.remote())

    with pytest.raises(KeyError) as info, replica_errors():
        ray.get(outer.remote())
    assert type(info.value) is KeyError and info.value.args == ("the cause's own message",)

    @ray.remote
    class Doomed:
        def ping(self):
            return "pong"

    actor = Doomed.remote()
    assert ray.get(actor.ping.remote()) == "pong"
    ray.kill(actor)  # asynchronous: a call made at once may still be answered
    deadline = time.monotonic() + 60
    while True:
        try:
            with replica_errors():
                ray.get(actor.ping.remote(), timeout=30)
        except BackendBusy as busy:
            assert str(busy) == REPLICA_UNAVAILABLE
            break
        assert time.monotonic() < deadline, "the killed actor kept answering"
        time.sleep(0.1)


def test_still_serving_after_the_bad_inputs(server):
    assert _speech(server, response_format="wav").status_code == 200


def test_first_bytes_arrive_before_the_last_segment_is_generated(server):
    text = " ".join(f"This is sentence number {i}, spoken at an easy pace." for i in range(8))
    body = {"model": "tts-1", "input": text, "voice": "alloy", "response_format": "pcm"}
    with requests.post(f"{server}/v1/audio/speech", json=body, stream=True, timeout=300) as response:
        chunks = response.iter_content(chunk_size=None)
        assert len(next(chunks)) > 0
        frames_at_first_bytes = _generator_stats()["frames"]
        rest = b"".join(chunks)
    assert len(rest) > 0
    assert _generator_stats()["frames"] > frames_at_first_bytes  # generation went on after the first bytes


def test_handles_from_a_second_application(server):
    @serve.deployment
    class Caller:
        async def plain(self, text: str):
            result = await serve.get_app_handle(APP_NAME).synthesize.remote({"text": text, "seed": 1})
            bounds = [(s.start_sample, s.end_sample) for s in result.segments]
            return result.sample_rate, len(result.audio), [s.index for s in result.segments], bounds

        async def streamed(self, text: str):
            handle = serve.get_app_handle(APP_NAME).options(stream=True)
            pieces = [piece async for piece in handle.stream.remote({"text": text, "seed": 1})]
            return [(p.segment_index, len(p.samples), p.segment_done) for p in pieces]

    caller = serve.run(Caller.bind(), name="caller", route_prefix="/caller")
    try:
        text = " ".join(f"This is sentence number {i}, long enough to stand alone." for i in range(3))
        rate, n_samples, segments, bounds = caller.plain.remote(text).result(timeout_s=120)
        assert rate == 44100 and n_samples > 0 and segments == [0, 1, 2]
        # each segment's span in the audio: increasing, not overlapping, the last ending with the audio
        edges = [edge for span in bounds for edge in span]
        assert edges == sorted(edges) and all(start < end for start, end in bounds) and edges[-1] == n_samples
        pieces = caller.streamed.remote(text).result(timeout_s=120)
        assert [p[0] for p in pieces] == sorted(p[0] for p in pieces)
        assert [p[0] for p in pieces if p[2]] == [0, 1, 2]
        assert sum(p[1] for p in pieces) == n_samples  # same seed: the same audio, streamed
    finally:
        serve.delete("caller")


def _generator_replica() -> str:
    """The name of the Generator replica's actor (Serve names replicas "SERVE_REPLICA::app#deployment#id")."""
    names = [
        entry["name"]
        for entry in ray.util.list_named_actors(all_namespaces=True)
        if entry["name"].startswith(f"SERVE_REPLICA::{APP_NAME}#Generator#")
    ]
    (name,) = names
    return name


def test_a_generator_crash_mid_stream_is_recovered_to_the_exact_bytes(server):
    """Issue 12: the Generator replica dies while two seeded pcm streams (sharing Generator and
    Vocoder batches) are half sent. Their unfinished segments are re-submitted to the replacement
    replica (counter-based, batch-invariant sampling repeats them) and each client gets exactly the
    bytes of its undisturbed run alone, then a normal end."""
    texts = [
        " ".join(f"Sentence number {n} is here and it keeps going for a while." for n in range(1, 9)),
        " ".join(f"Another line, {n}, with other words in it." for n in range(1, 7)),
    ]
    bodies = [{"text": text, "response_format": "pcm", "seed": 5 + i} for i, text in enumerate(texts)]
    calm = [requests.post(f"{server}/v1/tts", json=body, timeout=300).content for body in bodies]
    assert all(calm)
    before = _generator_replica()
    killed = threading.Event()

    def stream(body):
        with requests.post(f"{server}/v1/tts", json=body, stream=True, timeout=300) as response:
            chunks = response.iter_content(chunk_size=None)
            received = [next(chunks)]
            killed.wait(60)
            received += list(chunks)  # raises ChunkedEncodingError if the stream were cut
            return b"".join(received)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(stream, body) for body in bodies]
        time.sleep(0.5)  # both streams have started sending
        ray.kill(ray.get_actor(before, namespace="serve"), no_restart=True)
        killed.set()
        received = [future.result() for future in futures]
    assert [len(r) for r in received] == [len(c) for c in calm]
    assert received == calm
    deadline = time.monotonic() + 120
    while True:  # the replacement serves, under another actor name
        try:
            if _generator_replica() != before:
                break
        except ValueError:  # none (or old and new) listed
            pass
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert requests.post(f"{server}/v1/tts", json=bodies[0], timeout=300).content == calm[0]


def test_an_invalid_request_id_is_replaced_by_one_id_everywhere(server):
    """Serve's proxy echoes X-Request-ID unvalidated unless our guard runs there first: an id with
    spaces and quotes comes back replaced, and the replica's log carries that same id."""
    response = requests.get(f"{server}/v1/models", headers={"X-Request-ID": 'bad id "with quotes"'}, timeout=30)
    rid = response.headers["X-Request-ID"]
    assert rid != 'bad id "with quotes"' and re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", rid)
    good = requests.get(f"{server}/v1/models", headers={"X-Request-ID": "client-id_1.2:3"}, timeout=30)
    assert good.headers["X-Request-ID"] == "client-id_1.2:3"


def test_overload_is_a_clean_503_or_the_whole_audio_never_a_cut(server, tmp_path):
    """Issue 12: an app whose Generator takes 2 requests and queues 2, and whose Ingress admits 4
    segments at once (the README's rule: Generator limits >= max_segments_in_flight). Six 3-segment
    texts at once: each response is its whole audio (the bytes of a calm run) or 503 with
    Retry-After before any byte; never a 200 that ends early."""
    args = {
        "sources": {"model": str(DATA), "codec": "random-tiny", "speaker": "random-tiny"},
        "engine": {"max_rows": 32, "max_seq_len": 1024},
        "voices_db": str(tmp_path / "voices.sqlite3"),
        "generator": {"max_ongoing_requests": 2, "max_queued_requests": 2},
        "max_segments_in_flight": 4,
    }
    serve.run(build_app(args), name="zonos-tight", route_prefix="/tight")
    try:
        body = {"text": "One is here. Two is here. Three is here.", "response_format": "pcm", "seed": 5}
        calm = requests.post(f"{server}/tight/v1/tts", json=body, timeout=300)
        assert calm.status_code == 200 and calm.content

        def attempt(_):
            response = requests.post(f"{server}/tight/v1/tts", json=body, timeout=300)
            return response.status_code, response.headers, response.content

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            results = list(pool.map(attempt, range(6)))
        statuses = sorted(status for status, _, _ in results)
        assert set(statuses) <= {200, 503} and 200 in statuses and 503 in statuses, statuses
        for status, headers, content in results:
            if status == 200:
                assert content == calm.content
            else:
                assert int(headers["Retry-After"]) >= 1 and headers["x-should-retry"] == "true"
    finally:
        serve.delete("zonos-tight")


def test_timestamps_on_the_real_app_match_the_audio_sent(server):
    """Issue 13: /v1/tts with "timestamps": true over the real graph (Splitter, Generator, Vocoder,
    the real joiner): the segments' bounds tile the decoded wav, the pause between two segments is
    exact silence, and the last end is the audio's length."""
    text = "First sentence is here. Second one follows it. And a third closes."
    body = {"text": text, "response_format": "wav", "seed": 4, "pause_ms": 250, "timestamps": True, "stream": False}
    response = requests.post(f"{server}/v1/tts", json=body, timeout=300)
    assert response.status_code == 200, response.text
    answer = response.json()
    audio, rate = sf.read(io.BytesIO(base64.b64decode(answer["audio"])), dtype="int16")
    segments = answer["segments"]
    assert rate == answer["sample_rate"] == 44100 and len(segments) == 3
    assert [s["index"] for s in segments] == [0, 1, 2] and segments[0]["start_sample"] == 0
    assert segments[-1]["end_sample"] == len(audio)
    pause = round(0.25 * rate)
    for before, after in itertools.pairwise(segments):
        assert after["start_sample"] - before["end_sample"] == pause
        assert not audio[before["end_sample"] : after["start_sample"]].any()  # the pause, exactly
        assert before["start_sample"] < before["end_sample"]
        assert abs(before["end_s"] - before["end_sample"] / rate) < 1e-9


def test_an_open_webui_like_flow_on_the_real_app(server):
    """Issue 13 over the real graph: the openai SDK creates a voice (with a default language) through
    OpenAI's POST /v1/audio/voices, Open WebUI's GET /v1/audio/voices and /v1/audio/models list it,
    and speech with it reads French by the voice's language, German text by detection with a
    built-in name; a speed of 2 is exactly half of speed 1 for one seed."""
    client = OpenAI(base_url=f"{server}/v1", api_key="not-needed", max_retries=0)
    clip = io.BytesIO()
    sf.write(clip, (0.1 * np.random.default_rng(1).standard_normal(44100 * 2)).astype(np.float32), 44100, format="WAV")
    voice = client.audio.voices.create(
        audio_sample=("sample.wav", clip.getvalue(), "audio/wav"),
        name="Camille",
        consent="cons_1",
        extra_body={"language": "fr"},
    )
    assert voice.object == "audio.voice" and voice.name == "Camille"
    listed = requests.get(f"{server}/v1/audio/voices", timeout=30).json()["voices"]
    assert {"id": voice.id, "name": "Camille"} in listed and {"id": "alloy", "name": "alloy"} in listed
    models = [m["id"] for m in requests.get(f"{server}/v1/audio/models", timeout=30).json()["models"]]
    assert "tts-1" in models and "zonos-v0.1" in models

    def speak(voice_id: str, text: str, **extra):
        body = {"model": "tts-1", "voice": voice_id, "input": text, "response_format": "pcm", "seed": 8} | extra
        response = requests.post(f"{server}/v1/audio/speech", json=body, timeout=300)
        assert response.status_code == 200, response.text
        return response

    french = speak(voice.id, "Bonjour.")
    assert french.headers["content-language"] == "fr-fr" and french.headers["x-language-source"] == "voice"
    german = speak("alloy", "Der Hafen war vor der Morgendämmerung still, und die Boote schaukelten am Steg.")
    assert german.headers["content-language"] == "de" and german.headers["x-language-source"] == "detected"
    normal, double = speak("alloy", "Hello there.").content, speak("alloy", "Hello there.", speed=2).content
    assert len(normal) % 2 == 0 and abs(len(double) // 2 - len(normal) // 4) <= 2  # 24 kHz s16le samples
