"""Captions from segment timings, read back by independent parsers: `srt` for SubRip, webvtt-py for WebVTT."""

import datetime
import html
import io
from fractions import Fraction

import numpy as np
import srt
import webvtt
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.captions import to_srt, to_webvtt
from pipeline.streaming import SegmentTiming

# Any printable text, markup-like characters and WebVTT's "-->" included (no control characters:
# a segment's text comes out of pipeline.cleaning, which drops them).
TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40).filter(str.split)


def timing(index: int, text: str, start: int, end: int, sample_rate: int = 44100) -> SegmentTiming:
    return SegmentTiming(
        index=index,
        text=text,
        n_tokens=1,
        codes=np.zeros((9, 0), np.int64),
        stop_reason="eos",
        done_s=0.0,
        seed=0,
        start_sample=start,
        end_sample=end,
        sample_rate=sample_rate,
    )


def nearest_ms(sample: int, rate: int) -> int:
    """The sample's time in whole milliseconds, halves up: the documented rounding."""
    return int(Fraction(sample * 1000, rate) + Fraction(1, 2))  # int() floors a positive Fraction


@st.composite
def timings(draw):
    rate = draw(st.sampled_from([44100, 48000, 24000]))
    edges = sorted(draw(st.lists(st.integers(0, rate * 4000), min_size=2, max_size=12)))  # up to ~1 h 7 min
    texts = draw(st.lists(TEXT, min_size=len(edges) - 1, max_size=len(edges) - 1))
    return [timing(i, text, a, b, rate) for i, (text, a, b) in enumerate(zip(texts, edges, edges[1:], strict=False))]


@settings(max_examples=80, deadline=None)
@given(segments=timings())
def test_srt_reads_back_to_the_segment_times_and_texts(segments):
    subtitles = list(srt.parse(to_srt(segments)))
    assert [s.index for s in subtitles] == list(range(1, len(segments) + 1))
    for subtitle, segment in zip(subtitles, segments, strict=True):
        assert subtitle.start == datetime.timedelta(milliseconds=nearest_ms(segment.start_sample, segment.sample_rate))
        assert subtitle.end == datetime.timedelta(milliseconds=nearest_ms(segment.end_sample, segment.sample_rate))
        assert abs(subtitle.start.total_seconds() - segment.start_s) <= 0.0005 + 1e-12  # half a millisecond
        assert subtitle.content == " ".join(segment.text.split())


@settings(max_examples=80, deadline=None)
@given(segments=timings())
def test_webvtt_reads_back_to_the_segment_times_and_texts(segments):
    text = to_webvtt(segments)
    assert text.startswith("WEBVTT\n\n")
    captions = list(webvtt.from_buffer(io.StringIO(text)))
    assert [c.identifier for c in captions] == [str(i) for i in range(1, len(segments) + 1)]
    for caption, segment in zip(captions, segments, strict=True):
        assert caption.start_time.in_milliseconds() == nearest_ms(segment.start_sample, segment.sample_rate)
        assert caption.end_time.in_milliseconds() == nearest_ms(segment.end_sample, segment.sample_rate)
        assert html.unescape(caption.raw_text) == " ".join(segment.text.split())
        assert "-->" not in caption.raw_text and "<" not in caption.raw_text


def test_a_crossfade_boundary_gives_touching_cues():
    segments = [timing(0, "Tom & Jerry.", 0, 66150), timing(1, "a --> b <i>", 66150, 22050 * 3600 * 2 + 11)]
    assert to_srt(segments) == (
        "1\n00:00:00,000 --> 00:00:01,500\nTom & Jerry.\n\n2\n00:00:01,500 --> 01:00:00,000\na -> b <i>\n\n"
    )
    assert to_webvtt(segments) == (
        "WEBVTT\n\n1\n00:00:00.000 --> 00:00:01.500\nTom &amp; Jerry.\n\n"
        "2\n00:00:01.500 --> 01:00:00.000\na --&gt; b &lt;i&gt;\n"
    )


def test_a_text_holding_an_srt_timing_line_stays_one_cue():
    """SRT has no escaping: a sentence holding "00:00:09,000 --> 00:00:20,000" must not read as a
    cue's timing line (FFmpeg's SRT demuxer dropped the cue); the arrow is written "->"."""
    text = "Then more words here. 00:00:09,000 --> 00:00:20,000 Injected cue text."
    composed = to_srt([timing(0, "First line.", 0, 44100), timing(1, text, 44100, 88200)])
    lines = composed.splitlines()
    assert sum("-->" in line for line in lines) == 2  # the two timing lines only
    cues = list(srt.parse(composed))
    assert [c.index for c in cues] == [1, 2] and cues[1].content == text.replace("-->", "->")
