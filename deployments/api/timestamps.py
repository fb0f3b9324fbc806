"""Timestamps: where each segment (a sentence, or a piece of a long one) lies in the audio actually sent.

The request graph knows each segment's exact span in its 44.1 kHz output: SegmentTiming's
`start_sample` / `end_sample` (pipeline.audio.segment_bounds: after tempo, pauses and crossfades;
the pause after a segment is not in it; where a crossfade overlaps two segments, the overlap's
midpoint; the last end is the audio's length). The API states them in the samples of the response:

- At the response's rate (X-Sample-Rate: 44100, a `sample_rate`, pcm's 24000 on OpenAI's route,
  opus's 48000), a position p at 44.1 kHz becomes pipeline.resample.resampled_length(p, 44100,
  rate) = ceil(p * rate / 44100): the resampler's own length rule, so the last end is the length
  of the resampled audio, and output sample j is inside a segment exactly when its time j / rate
  is inside the segment's 44.1 kHz span. Bounds stay increasing and never overlap. The resampling
  filter (torchaudio's windowed sinc: 6 zero crossings of a lowpass at 0.99 of the lower rate, so
  ceil(6 / 0.99) = 7 samples of that rate either side; its `width` is 12 input samples for 44.1 ->
  24 kHz) spreads a segment's edge over at most 8 samples at the response's rate: a pause's samples
  further than that from both neighbours are exactly silent (tests/api/test_timestamps.py). Without
  resampling (44.1 kHz) the bounds are exact to the sample.
- Seconds are those samples divided by the rate (`start_s = start_sample / sample_rate`), not rounded.
- pcm, wav and flac decode to exactly these samples. The lossy codecs may shift them by their
  codec delay where a decoder does not remove it (a whole mp3 file carries a gapless tag; streamed
  mp3 and aac, and opus, can start up to ~50 ms late: tests/api/conftest.py's EXTRA_SAMPLES), and
  opus is converted to 48 kHz by FFmpeg on the way into libopus, not by our resampler: there the
  bounds follow the same rule and are exact only to within that converter's delay.

The fields of one segment (SegmentBounds; the same in every answer, stable for clients such as the
playground's timeline): `index` (0-based, text order), `text` (the segment's text as split),
`start_s`, `end_s`, `start_sample`, `end_sample` ([start, end): end is one past the last sample).

Where they are offered (each choice documented here, the routes' docstrings point back):
- POST /v1/tts `"timestamps": true`: one JSON answer (TimestampedSpeech), sent once all is
  generated (with Content-Length; any failure keeps its status, as `"stream": false`):
  {"audio": base64 of the whole file in `response_format`, "response_format", "sample_rate",
  "seed", "segments": [...], "captions": the SRT or WebVTT text, only when `"captions": "srt" |
  "vtt"` asks}. JSON with base64 rather than multipart/mixed: every HTTP client and browser reads
  it without a multipart parser; the cost is 4/3 the bytes of the audio.
- POST /v1/tts `"response_format": "srt" | "vtt"`: the captions alone (application/x-subrip or
  text/vtt, UTF-8; pipeline.captions: one cue per segment, times in whole milliseconds), sent once
  all is generated; the audio is generated to time them and not sent. On the same route rather
  than a /v1/audio/captions route: the request is the same one that makes the audio (same fields,
  same seed -> cues that match that audio), so one more format is all a client has to learn.
- SSE (`stream_format: "sse"` with `"timestamps": true`, on /v1/audio/speech as an extension and
  on /v1/tts): `{"type": "speech.audio.segment", "segment": {...}}` (SpeechAudioSegment) as soon as
  every sample of the segment before its `end_sample` has gone out in the deltas before it: at 44.1
  kHz and whenever a pause follows (the pause travels with a segment's last piece and is longer than
  the resampler's 3.6 ms lookahead), right after the segment's last delta and before the next
  segment's; with no pause (pause_ms 0, crossfades) the delta that completes a segment may also
  begin the next. For the codecs (mp3, aac, opus, flac) "gone out" means handed to the encoder,
  which may hold back up to a frame of it (pipeline.audio.StreamingEncoder). Off by default: a strict
  OpenAI client never sees an event type it does not know.
- The handle API: `Ingress.synthesize` returns pipeline's SynthesisResult, whose `segments`
  (SegmentTiming) carry the 44.1 kHz bounds of its `audio` directly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, Field

from pipeline.audio import AudioFormat
from pipeline.captions import to_srt, to_webvtt
from pipeline.resample import resampled_length
from pipeline.streaming import SegmentTiming

CaptionFormat = Literal["srt", "vtt"]
CAPTION_MEDIA_TYPES: dict[str, str] = {
    "srt": "application/x-subrip; charset=utf-8",  # SubRip has no registered type; this is the common one
    "vtt": "text/vtt; charset=utf-8",  # W3C WebVTT's registered type
}


class SegmentBounds(BaseModel):
    """Where one segment lies in the audio sent (module docstring): samples at the response's rate."""

    index: int = Field(ge=0, description="The segment's position in the text, from 0.")
    text: str = Field(description="The segment's text, as the splitter cut it.")
    start_s: float = Field(ge=0, description="start_sample / sample_rate, in seconds.")
    end_s: float = Field(ge=0, description="end_sample / sample_rate, in seconds.")
    start_sample: int = Field(ge=0, description="The segment's first sample at the response's rate.")
    end_sample: int = Field(ge=0, description="One past its last sample (the pause after it excluded).")


class TimestampedSpeech(BaseModel):
    """POST /v1/tts with `"timestamps": true`: the whole audio file and where each segment lies in it."""

    audio: str = Field(description="Base64 of the whole audio file in `response_format`.")
    response_format: AudioFormat
    sample_rate: int = Field(description="The rate the audio decodes to (X-Sample-Rate), in Hz.")
    seed: int = Field(description="The request's seed (X-Seed): sent back as `seed`, it repeats the audio.")
    segments: list[SegmentBounds]
    captions: str | None = Field(None, description='SRT or WebVTT text, only when `"captions"` asked for it.')


class SpeechAudioSegment(BaseModel):
    """An SSE event (only with `"timestamps": true`): a segment all of whose audio has been sent."""

    type: Literal["speech.audio.segment"] = "speech.audio.segment"
    segment: SegmentBounds


def at_rate(timing: SegmentTiming, rate: int) -> SegmentTiming:
    """`timing` with its bounds in samples at `rate` (the resampler's length rule, module docstring)."""
    if rate == timing.sample_rate:
        return timing
    start, end = (resampled_length(n, timing.sample_rate, rate) for n in (timing.start_sample, timing.end_sample))
    return timing.model_copy(update={"start_sample": start, "end_sample": end, "sample_rate": rate})


def segment_bounds(timing: SegmentTiming, rate: int) -> SegmentBounds:
    """The JSON fields of one segment, at `rate`."""
    timing = at_rate(timing, rate)
    return SegmentBounds(
        index=timing.index,
        text=timing.text,
        start_s=timing.start_s,
        end_s=timing.end_s,
        start_sample=timing.start_sample,
        end_sample=timing.end_sample,
    )


def segment_event(timing: SegmentTiming, rate: int) -> dict:
    """The SSE event of one segment, at `rate`."""
    return SpeechAudioSegment(segment=segment_bounds(timing, rate)).model_dump()


def captions(timings: Iterable[SegmentTiming], fmt: str, rate: int) -> str:
    """SRT or WebVTT text (pipeline.captions) of the segments, timed at `rate`."""
    timed = [at_rate(timing, rate) for timing in timings]
    return to_srt(timed) if fmt == "srt" else to_webvtt(timed)
