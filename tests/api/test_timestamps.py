"""Timestamps over the HTTP API (deployments/api/timestamps.py): /v1/tts's JSON answer and captions,
and speech.audio.segment SSE events, checked against the audio actually sent.

The backend here joins segments as the request graph does (pipeline.audio.SegmentJoiner: a pause of
`pause_ms` after each but the last), from signals that are never zero (0.3 +- 0.2), so the pauses are
the only runs of exact zeros in the decoded audio and can be found there independently of the bounds.
"""

from __future__ import annotations

import base64
import io
import itertools
import math
from fractions import Fraction
from typing import Annotated, Literal

import numpy as np
import pytest
import srt
import webvtt
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from api.conftest import (
    RATE,
    TEXT,
    SpeechAudioDelta,
    SpeechAudioDone,
    SpeechStreamError,
    assert_error,
    decode,
    speech,
    sse_events,
)
from pipeline.audio import SegmentJoiner
from pipeline.streaming import AudioPiece, SegmentTiming

LENGTHS = (7001, 5003, 9011)  # samples of each segment at 44.1 kHz, before pauses
TEXTS = ("First sentence here.", "A second one.", "And the third, longest sentence.")
PAUSE_MS = 50  # 2205 samples at 44.1 kHz
# torchaudio's resampling filter spreads an edge over at most this many samples at the response's
# rate (6 zero crossings of a lowpass at 0.99 of the lower rate, plus the bound's rounding)
FILTER_SPREAD = 8


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Segment(_Strict):
    index: int
    text: str
    start_s: float
    end_s: float
    start_sample: int
    end_sample: int


class TimestampedSpeech(_Strict):
    audio: str
    response_format: str
    sample_rate: int
    seed: int
    segments: list[Segment]
    captions: str | None = None


class SpeechAudioSegment(_Strict):
    type: Literal["speech.audio.segment"]
    segment: Segment


SPEECH_EVENT = TypeAdapter(
    Annotated[SpeechAudioDelta | SpeechAudioSegment | SpeechAudioDone | SpeechStreamError, Field(discriminator="type")]
)


def signal(n: int, index: int) -> np.ndarray:
    """A segment's audio: never zero (0.1 .. 0.5), a different tone per segment."""
    t = np.arange(n) / RATE
    return (0.3 + 0.2 * np.sin(2 * np.pi * (300 + 100 * index) * t)).astype(np.float32)


def paused_backend(backend) -> None:
    """Make `backend` stream LENGTHS' segments joined with the request's pause_ms, each in two pieces,
    the last one carrying the segment's timing (as pipeline.streaming.stream_audio does)."""

    async def stream_audio(request, request_id):
        backend.requests.append((request, request_id))
        joiner = SegmentJoiner(len(LENGTHS), RATE, request.pause_ms, request.crossfade_ms)
        seed = request.seed or 0
        for index, n in enumerate(LENGTHS):
            audio = signal(n, index)
            for part, finished in ((audio[: n // 3], False), (audio[n // 3 :], True)):
                for i, samples, done in joiner.add(index, part, finished):
                    timing = None
                    if done:
                        start, end = joiner.bounds(i)
                        codes = np.zeros((9, 1), np.int64)
                        timing = SegmentTiming(
                            index=i, text=TEXTS[i], n_tokens=len(TEXTS[i]), codes=codes, stop_reason="eos",
                            done_s=0.0, seed=seed, start_sample=start, end_sample=end,
                        )  # fmt: skip
                    yield AudioPiece(
                        segment_index=i, n_segments=len(LENGTHS), samples=samples, segment_done=done,
                        timing=timing, seed=seed,
                    )  # fmt: skip

    backend.stream_audio = stream_audio


def expected_bounds(rate: int, pause_ms: float = PAUSE_MS) -> list[tuple[int, int]]:
    """Each segment's [start, end) at `rate`, from the lengths and the pause alone: a 44.1 kHz position
    p is ceil(p * rate / 44100) at `rate` (torchaudio's length rule)."""
    pause = round(pause_ms * RATE / 1000)
    bounds, start = [], 0
    for n in LENGTHS:
        bounds.append((start, start + n))
        start += n + pause
    return [tuple(math.ceil(Fraction(p * rate, RATE)) for p in pair) for pair in bounds]


def zero_run(audio: np.ndarray, inside: int) -> tuple[int, int]:
    """[first, last + 1) of the run of exact zeros around sample `inside`."""
    assert audio[inside] == 0
    nonzero = np.flatnonzero(audio != 0)
    return int(nonzero[nonzero < inside].max()) + 1, int(nonzero[nonzero > inside].min())


def assert_segments_match_the_audio(
    audio: np.ndarray, segments: list[Segment], rate: int, pause_ms: float = PAUSE_MS
) -> None:
    """The bounds are the expected ones, the last end is the audio's length, and each pause (a run of
    exact zeros) lies between end_i and start_i+1, to the sample without resampling, else within the
    filter's spread."""
    assert [s.index for s in segments] == list(range(len(LENGTHS)))
    assert [s.text for s in segments] == list(TEXTS)
    assert [(s.start_sample, s.end_sample) for s in segments] == expected_bounds(rate, pause_ms)
    assert segments[-1].end_sample == len(audio)
    for s in segments:
        assert (s.start_s, s.end_s) == (s.start_sample / rate, s.end_sample / rate)
    spread = 0 if rate == RATE else FILTER_SPREAD
    assert audio[0] != 0 and audio[-1] != 0
    for before, after in itertools.pairwise(segments):
        first, end = zero_run(audio, (before.end_sample + after.start_sample) // 2)
        assert before.end_sample <= first <= before.end_sample + spread, (first, before.end_sample)
        assert after.start_sample - spread <= end <= after.start_sample, (end, after.start_sample)
        assert audio[before.end_sample - 1] != 0 and audio[after.start_sample] != 0


# --------------------------------------------------------------------------- /v1/tts "timestamps": true


@pytest.mark.parametrize(
    ("fmt", "rate"), [("pcm", None), ("wav", None), ("pcm", 24000), ("wav", 16000), ("wav", 48000), ("flac", 8000)]
)
def test_tts_timestamps_are_the_bounds_of_the_audio_sent(client, backend, fmt, rate):
    paused_backend(backend)
    body = {"text": TEXT, "timestamps": True, "pause_ms": PAUSE_MS, "response_format": fmt, "seed": 5}
    if rate is not None:
        body["sample_rate"] = rate
    response = client.post("/v1/tts", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    answer = TimestampedSpeech.model_validate_json(response.content)
    rate = rate or RATE
    assert (answer.response_format, answer.sample_rate, answer.seed, answer.captions) == (fmt, rate, 5, None)
    assert response.headers["x-sample-rate"] == str(rate) and response.headers["x-seed"] == "5"
    audio, decoded_rate, _ = decode(base64.b64decode(answer.audio), fmt, rate)
    assert decoded_rate == rate
    assert_segments_match_the_audio(audio, answer.segments, rate)


@pytest.mark.parametrize("captions", ["srt", "vtt"])
def test_tts_timestamps_with_captions(client, backend, captions):
    paused_backend(backend)
    body = {"text": TEXT, "timestamps": True, "captions": captions, "pause_ms": PAUSE_MS, "response_format": "wav"}
    answer = TimestampedSpeech.model_validate_json(client.post("/v1/tts", json=body).content)
    cues = _cues(answer.captions, captions)
    assert [text for _, _, text in cues] == list(TEXTS)
    for (start, end, _), segment in zip(cues, answer.segments, strict=True):
        assert abs(start - segment.start_s) <= 0.0005 and abs(end - segment.end_s) <= 0.0005


@pytest.mark.parametrize(("fmt", "media_type"), [("srt", "application/x-subrip"), ("vtt", "text/vtt")])
def test_tts_captions_alone(client, backend, fmt, media_type):
    paused_backend(backend)
    body = {"text": TEXT, "response_format": fmt, "pause_ms": PAUSE_MS, "sample_rate": 16000}
    response = client.post("/v1/tts", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == f"{media_type}; charset=utf-8"
    assert int(response.headers["content-length"]) == len(response.content)
    cues = _cues(response.text, fmt)
    assert [text for _, _, text in cues] == list(TEXTS)
    for (start, end, _), (start_sample, end_sample) in zip(cues, expected_bounds(16000), strict=True):
        assert abs(start - start_sample / 16000) <= 0.0005 and abs(end - end_sample / 16000) <= 0.0005


def _cues(text: str, fmt: str) -> list[tuple[float, float, str]]:
    """(start s, end s, text) of each cue, as the srt and webvtt-py libraries read them."""
    if fmt == "srt":
        return [(s.start.total_seconds(), s.end.total_seconds(), s.content) for s in srt.parse(text)]
    return [(c.start_in_seconds + c.start_time.milliseconds / 1000, c.end_in_seconds + c.end_time.milliseconds / 1000,
             c.text) for c in webvtt.from_buffer(io.StringIO(text))]  # fmt: skip


def test_whole_answers_keep_their_status_on_failure(client, backend):
    backend.mode = "timeout_mid"  # after the first piece: a stream would have sent its 200 by then
    body = {"text": TEXT, "timestamps": True}
    assert_error(client.post("/v1/tts", json=body), 504, "server_error", None, "timeout")
    backend.mode = "busy"
    body = {"text": TEXT, "response_format": "vtt"}
    assert_error(client.post("/v1/tts", json=body), 503, "server_error", None, "server_busy")


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"stream": False, "stream_format": "sse"}, "stream"),
        ({"timestamps": True, "stream": True}, "stream"),
        ({"response_format": "srt", "stream": True}, "stream"),
        ({"response_format": "srt", "timestamps": True}, "response_format"),
        ({"response_format": "vtt", "stream_format": "sse"}, "response_format"),
        ({"captions": "srt"}, "captions"),
        ({"captions": "vtt", "timestamps": True, "stream_format": "sse"}, "captions"),
    ],
)
def test_tts_contradictions_are_422(client, backend, fields, param):
    error = assert_error(
        client.post("/v1/tts", json={"text": TEXT} | fields), 422, "invalid_request_error", param, "conflicting_fields"
    )
    assert error["message"].startswith(f"{param}: ")
    assert not backend.requests  # refused before any generation


def test_speech_timestamps_need_sse(client, backend):
    response = client.post("/v1/audio/speech", json=speech(timestamps=True, response_format="pcm"))
    assert_error(response, 400, "invalid_request_error", "timestamps", "conflicting_fields")


# --------------------------------------------------------------------------- SSE segment events


@pytest.mark.parametrize(
    ("route", "fmt", "rate"),
    [
        ("/v1/audio/speech", "pcm", 24000),  # OpenAI's pcm
        ("/v1/audio/speech", "wav", 44100),
        ("/v1/audio/speech", "pcm", 16000),
        ("/v1/tts", "pcm", 44100),
        ("/v1/tts", "wav", 22050),
    ],
)
def test_sse_segment_events_follow_their_audio(client, backend, route, fmt, rate):
    """Every event strictly parsed; one segment event per segment, in text order, each after all of its
    audio and before any of the next segment's (a pause follows each); the deltas decode to audio whose
    length is the last end, the bounds those of the audio sent. (The OpenAI route keeps
    SynthesisRequest's default pause, 200 ms.)"""
    paused_backend(backend)
    fields = {"response_format": fmt, "stream_format": "sse", "timestamps": True, "sample_rate": rate}
    body = {"text": TEXT, "pause_ms": PAUSE_MS} | fields if route == "/v1/tts" else speech(**fields)
    response = client.post(route, json=body)
    assert response.status_code == 200, response.text
    pause = backend.requests[-1][0].pause_ms
    events = [SPEECH_EVENT.validate_python(event) for event in sse_events(response.content)]
    assert isinstance(events[-1], SpeechAudioDone)
    sent, segments = b"", []
    header = 44 if fmt == "wav" else 0
    for event in events[:-1]:
        if isinstance(event, SpeechAudioDelta):
            sent += base64.b64decode(event.audio)
            continue
        assert isinstance(event, SpeechAudioSegment)
        n_sent = (len(sent) - header) // 2  # s16le mono: 2 bytes a sample
        assert n_sent >= event.segment.end_sample  # after all of its audio
        if event.segment.index + 1 < len(LENGTHS):  # before any of the next segment's
            assert n_sent <= expected_bounds(rate, pause)[event.segment.index + 1][0]
        segments.append(event.segment)
    audio, _, _ = decode(sent, fmt, rate)
    assert_segments_match_the_audio(audio, segments, rate, pause)


def test_sse_without_timestamps_has_no_segment_events(client, backend):
    """Default off: the stream holds only OpenAI's own event types."""
    paused_backend(backend)
    response = client.post("/v1/audio/speech", json=speech(response_format="pcm", stream_format="sse"))
    types = [event["type"] for event in sse_events(response.content)]
    assert set(types) == {"speech.audio.delta", "speech.audio.done"}


def test_sse_segment_events_without_pauses(client, backend):
    """The fake backend's segments touch (no pause): at 44.1 kHz each event comes right after its
    segment's audio, exactly; resampled, once the resampler has let all of it out."""
    for rate in (44100, 24000):
        body = speech(response_format="pcm", stream_format="sse", timestamps=True, sample_rate=rate)
        events = [
            SPEECH_EVENT.validate_python(event)
            for event in sse_events(client.post("/v1/audio/speech", json=body).content)
        ]
        n_sent, ends = 0, []
        for event in events:
            if isinstance(event, SpeechAudioDelta):
                n_sent += len(base64.b64decode(event.audio)) // 2
            elif isinstance(event, SpeechAudioSegment):
                assert n_sent >= event.segment.end_sample
                if rate == RATE:
                    assert n_sent == event.segment.end_sample
                ends.append(event.segment.end_sample)
        assert len(ends) == 3 and ends[-1] == n_sent == math.ceil(Fraction(round(0.02 * len(TEXT) * RATE) * rate, RATE))
