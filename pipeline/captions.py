"""Captions of a synthesis: one cue per segment, timed by where its audio lies in the output.

A segment's cue runs from its `start_sample` to its `end_sample` (SegmentTiming: in the joined
output, after pauses, crossfades and tempo; the pause after it is not in it). Times are those
sample positions rounded to the nearest millisecond (halves up), computed in integers, so a cue
is within 0.5 ms of the audio and touching segments (a crossfade's midpoint) get equal times.
Cue text is the segment's text on one line (runs of whitespace, newlines included, become one
space). Every segment gets a cue, numbered from 1 in text order, even one of no audio (a
zero-length cue).

- SubRip: composed by the `srt` library (`HH:MM:SS,mmm`; SRT has no escaping).
- WebVTT: written here (W3C WebVTT: a `WEBVTT` header, then cues of `HH:MM:SS.mmm --> HH:MM:SS.mmm`);
  `&`, `<` and `>` in the text are written as `&amp;`, `&lt;`, `&gt;`, as WebVTT cue text requires
  (so a text holding `-->` cannot end a cue early).
"""

from __future__ import annotations

import datetime
import html
from collections.abc import Iterable
from typing import TYPE_CHECKING

import srt

if TYPE_CHECKING:
    from pipeline.streaming import SegmentTiming

__all__ = ["to_srt", "to_webvtt"]


def _milliseconds(sample: int, sample_rate: int) -> int:
    """A sample position as whole milliseconds, rounded half up (exact integer arithmetic)."""
    return (2000 * sample + sample_rate) // (2 * sample_rate)


def _cue_text(text: str) -> str:
    return " ".join(text.split())


def _cues(timings: Iterable[SegmentTiming]) -> list[tuple[int, int, str]]:
    """(start ms, end ms, one-line text) per segment."""
    return [
        (
            _milliseconds(t.start_sample, t.sample_rate),
            _milliseconds(t.end_sample, t.sample_rate),
            _cue_text(t.text),
        )
        for t in timings
    ]


def to_srt(timings: Iterable[SegmentTiming]) -> str:
    """SubRip text (.srt, UTF-8 when stored; media type application/x-subrip): one cue per
    segment in the given (text) order, numbered from 1."""
    subtitles = [
        srt.Subtitle(
            index=number,
            start=datetime.timedelta(milliseconds=start),
            end=datetime.timedelta(milliseconds=end),
            content=text.replace("-->", "->"),  # SRT has no escape: a text's "-->" would read as a timing line
        )
        for number, (start, end, text) in enumerate(_cues(timings), start=1)
    ]
    return srt.compose(subtitles, reindex=False)


def _vtt_timestamp(ms: int) -> str:
    seconds, ms = divmod(ms, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{ms:03d}"


def to_webvtt(timings: Iterable[SegmentTiming]) -> str:
    """WebVTT text (.vtt; media type text/vtt): the header, then one cue per segment in the given
    (text) order, each with its number (from 1) as identifier."""
    blocks = ["WEBVTT\n"]
    for number, (start, end, text) in enumerate(_cues(timings), start=1):
        blocks.append(
            f"{number}\n{_vtt_timestamp(start)} --> {_vtt_timestamp(end)}\n{html.escape(text, quote=False)}\n"
        )
    return "\n".join(blocks)
