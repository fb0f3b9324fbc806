"""Split a long text into segments the model can speak in one call.

Zonos speaks at most 30 s per call, so a long text is cut into segments whose phoneme-id count
stays under a limit: at sentence ends first, then at clause punctuation, then between words and,
as a last resort, between characters. Very short pieces join a neighbour, because the model
speaks a lone word poorly. Every count is the true length of text_to_ids() of the segment's exact
text: espeak's reading of a phrase is not the sum of its parts (stress, liaison, number words),
so sums of parts serve only as estimates and every segment is checked.

Cleaning (pipeline.cleaning: invisible characters, layout, markup, pictographs, unreadable
scripts) is applied to each piece's text when its ids are computed, so segment offsets always
index the original text, and a segment's ids are exactly text_to_ids(segment.text). Pieces that
read as no phoneme (markup lines, punctuation, emoji) join a neighbour or are dropped; a text
with nothing to speak at all raises NothingToSpeakError.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.text import NothingToSpeakError, check_language, has_speech, phonemize, speakable, tokenize

__all__ = ["DEFAULT_MAX_TOKENS", "MIN_MAX_TOKENS", "TINY_TOKENS", "Segment", "split_text"]

# Phoneme ids are IPA characters, stress marks, spaces and punctuation included. Normal English
# speech runs at about 15-20 of them per second ("Hello, how are you today?" is 30 ids, about
# 1.7 s), so 300 ids is some 15-20 s of audio: slow speech (10 ids per second) still ends before
# the model's 30 s cap (pipeline.model.MAX_FRAMES), and segments stay sentence-sized.
DEFAULT_MAX_TOKENS = 300

# Below this even ordinary words would have to be cut between letters. (Some single symbols read
# as more ids than a small limit, e.g. a Braille cell as 46 in en-us: split_text refuses those.)
MIN_MAX_TOKENS = 16

# A piece with fewer ids (about a second of speech: "Yes.", "Thank you.", "Chapter 1") joins a
# neighbour when the joined text still fits.
TINY_TOKENS = 16

Span = tuple[int, int]  # [start, end) offsets of a stripped, non-empty piece of the input


class Segment(BaseModel):
    """A piece of the input spoken in one model call; `index` is its place in the text."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(ge=0)
    text: str = Field(min_length=1, description="The input's text[start:end]: no leading or trailing whitespace.")
    start: int = Field(ge=0)
    end: int = Field(ge=1)
    n_tokens: int = Field(ge=2, description="len(phoneme_ids), BOS and EOS included.")
    phoneme_ids: list[int]

    @model_validator(mode="after")
    def _consistent(self) -> Segment:
        if self.text != self.text.strip():
            raise ValueError("segment text must not start or end with whitespace")
        if self.end - self.start != len(self.text):
            raise ValueError(f"offsets {self.start}..{self.end} do not span the {len(self.text)} characters of text")
        if self.n_tokens != len(self.phoneme_ids):
            raise ValueError(f"n_tokens={self.n_tokens} but there are {len(self.phoneme_ids)} phoneme ids")
        return self


_SURROGATE_RE = re.compile("[\ud800-\udfff]")

# --- where the text may be cut ---------------------------------------------------------------

# str.splitlines()'s line boundaries: every line break ends a sentence.
_LINE_RE = re.compile(r"[^\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]+")

# Sentence ends that also occur inside sentences (abbreviations, decimals, URLs, "Yahoo!"): they
# end one only when a space follows and the next word does not start in lower case.
_CHECKED_ENDS = ".!?…‼⁇⁈⁉‽"
# Marks that only ever end a sentence, spaced or not: CJK full stops (fullwidth and halfwidth),
# Devanagari danda, Arabic and Urdu, Armenian, Ethiopic, Myanmar and Khmer stops, Greek question mark.
_PLAIN_ENDS = "。！？｡।॥؟۔։።፧။។៕\u037e"
# Greek writes its question mark as ";" (and its semicolon as "·"), so there ";" ends a sentence.
_GREEK = ("el", "grc")

# Closing quotes and brackets stay with the sentence or clause they close.
_CLOSERS = "\"')]}»›”’」』）］｝〉》】〕〗〙〛｣"
_OPENERS = "\"'([{«‹“‘「『（［｛〈《【〔〖〘〚｢"

# Clause marks that also occur inside numbers and times ("1,000", "10:30", "1–5") cut only when a
# space follows; the others (em dash, CJK, Arabic and Ethiopic commas) cut wherever they stand.
_CHECKED_CLAUSE = ",;:–"
_PLAIN_CLAUSE = "—、，；：،؛፣፤"
_CLAUSE_RE = re.compile(f"[{re.escape(_CHECKED_CLAUSE + _PLAIN_CLAUSE)}]+[{re.escape(_CLOSERS)}]*")

# Words whose period does not end a sentence ("Mr. Smith", "etc. are"), lower case, without the dot.
_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "st", "sr", "jr", "mt", "rev", "hon", "gen", "col", "capt", "lt", "sgt"}
    | {"vs", "etc", "cf", "viz", "al", "approx", "fig", "vol", "ch", "pp", "inc", "ltd", "corp", "dept", "ave"}
    | {"bzw", "usw", "nr", "hr", "fr", "ca", "evtl", "ggf", "mme", "mlle", "sra", "srta", "dra", "ud", "uds"}
)
# Initials and dotted abbreviations: "J. R. R.", "U.S.", "e.g.", "i.e.", "a.m.", "z.B."
_INITIALS_RE = re.compile(r"(?:[^\W\d_]\.)*[^\W\d_]")
_WORD_RE = re.compile(r"\S+")
# The first character of the next word, past spaces and opening quotes.
_NEXT_LETTER_RE = re.compile(f"\\s*[{re.escape(_OPENERS)}]*(.?)")


def _strip(text: str, start: int, end: int) -> Span | None:
    """The span without its surrounding whitespace, or None when nothing else is left."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def _cut(text: str, start: int, cuts: Iterator[int], end: int) -> list[Span]:
    """The stripped, non-empty pieces of text[start:end] between the cut offsets (ascending)."""
    pieces = []
    for cut in [*cuts, end]:
        piece = _strip(text, start, cut)
        if piece:
            pieces.append(piece)
        start = cut
    return pieces


def _sentence_end_re(language: str) -> re.Pattern:
    ends = _CHECKED_ENDS + _PLAIN_ENDS + (";" if language in _GREEK else "")
    return re.compile(f"[{re.escape(ends)}]+[{re.escape(_CLOSERS)}]*")


def _sentences(text: str, language: str) -> list[Span]:
    """Sentence spans in text order: cut at every line break and at every sentence end."""
    end_re = _sentence_end_re(language)
    sentences = []
    for line in _LINE_RE.finditer(text):
        cuts = (m.end() for m in end_re.finditer(text, line.start(), line.end()) if _ends_sentence(text, m, line.end()))
        sentences += _cut(text, line.start(), cuts, line.end())
    return sentences


def _ends_sentence(text: str, match: re.Match, line_end: int) -> bool:
    """Whether a run of sentence-end marks (with its closing quotes) really ends the sentence."""
    marks = match.group().rstrip(_CLOSERS)
    if any(mark not in _CHECKED_ENDS for mark in marks):
        return True
    after = match.end()
    if after < line_end and not text[after].isspace():
        return False  # "3.5", "U.S.A", "example.com", "Yahoo!Inc"
    if _NEXT_LETTER_RE.match(text, after, line_end).group(1).islower():
        return False  # "etc. and so on", "Wait... what", "'Stop!' she said"
    if marks != ".":
        return True
    word_start = match.start()
    while word_start > 0 and not text[word_start - 1].isspace():
        word_start -= 1
    word = text[word_start : match.start()].lstrip(_OPENERS)
    return not (word.lower() in _ABBREVIATIONS or _INITIALS_RE.fullmatch(word))


def _clauses(text: str, span: Span) -> list[Span]:
    """Cut after clause punctuation that a space follows (or that needs none)."""
    start, end = span
    cuts = (
        m.end()
        for m in _CLAUSE_RE.finditer(text, start, end)
        if m.end() == end or text[m.end()].isspace() or any(c in _PLAIN_CLAUSE for c in m.group())
    )
    return _cut(text, start, cuts, end)


def _words(text: str, span: Span) -> list[Span]:
    """Cut at every run of whitespace."""
    return [m.span() for m in _WORD_RE.finditer(text, *span)]


def _joins_previous(text: str, offset: int) -> bool:
    """Whether a character-level cut before text[offset] would break a character apart
    (combining marks, vowel signs, emoji joined by ZWJ)."""
    return unicodedata.category(text[offset])[0] == "M" or "\u200d" in text[offset - 1 : offset + 1]


# --- fitting pieces under the limit ----------------------------------------------------------


class _Fitter:
    """Cuts spans of one text until each fits max_tokens, counting ids once per distinct piece."""

    def __init__(self, text: str, language: str, max_tokens: int, normalize: bool = True):
        self.text, self.language, self.max_tokens, self.normalize = text, language, max_tokens, normalize
        self._ids: dict[str, list[int]] = {}
        self._splitters: tuple[Callable[[str, Span], list[Span]], ...] = (_clauses, _words)

    def ids(self, span: Span) -> list[int]:
        """tokenize(phonemize(piece)): text_to_ids(piece) where the piece has speech; [BOS, EOS] when
        cleaning leaves nothing, and the punctuation's ids when it reads as no phoneme."""
        piece = self.text[span[0] : span[1]]
        if piece not in self._ids:
            try:
                self._ids[piece] = tokenize(phonemize(piece, self.language, normalize=self.normalize))
            except NothingToSpeakError:
                self._ids[piece] = tokenize("")
        return self._ids[piece]

    def speaks(self, span: Span) -> bool:
        return has_speech(self.ids(span))

    def n(self, span: Span) -> int:
        return len(self.ids(span))

    def fits(self, span: Span) -> bool:
        # Real text has far more than one id per four characters, so a longer span is taken not to
        # fit and is cut without being phonemised: phonemizer's punctuation pass is quadratic in
        # a line's length, and an over-long sentence would cost seconds.
        return span[1] - span[0] <= 4 * self.max_tokens and self.n(span) <= self.max_tokens

    def fit(self, span: Span, level: int = 0) -> list[Span]:
        """`span` if it fits; else its pieces at the coarsest cut level that works, packed back together."""
        if self.fits(span):
            return [span]
        if level == len(self._splitters):
            return self._hard_split(span)
        parts = self._splitters[level](self.text, span)
        if len(parts) == 1:
            return self.fit(span, level + 1)
        return self._pack([piece for part in parts for piece in self.fit(part, level + 1)])

    def _pack(self, pieces: list[Span]) -> list[Span]:
        """Join consecutive pieces greedily into spans that fit: extend by the estimated count (the
        parts' ids less one BOS/EOS pair, plus a space), then check the true count and back off."""
        ends = [end for _, end in pieces]
        packed = []
        first = 0
        while first < len(pieces):
            start, last, size = pieces[first][0], first, self.n(pieces[first])  # pieces[first:last+1] fit
            while True:
                stop, estimate = last, size
                while stop + 1 < len(pieces):
                    gap = int(ends[stop] < pieces[stop + 1][0])
                    estimate += self.n(pieces[stop + 1]) - 2 + gap
                    if estimate > self.max_tokens:
                        break
                    stop += 1
                if stop == last:
                    break
                if not self.fits((start, ends[stop])):
                    last = self._furthest(start, ends, last, stop, stop - last - 1)
                    break
                last, size = stop, self.n((start, ends[stop]))
            packed.append((start, ends[last]))
            first = last + 1
        return packed

    def _hard_split(self, span: Span) -> list[Span]:
        """Cut a span without spaces (a very long word, unspaced CJK) into the longest prefixes that
        fit, between whole characters where possible."""
        start, end = span
        whole_characters = [i for i in range(start + 1, end) if not _joins_previous(self.text, i)] + [end]
        pieces = []
        guess = self.max_tokens // 4  # characters; then the previous piece's length, as the text goes on alike
        while start < end:
            ends: Sequence[int] = whole_characters
            first = bisect.bisect_right(ends, start)
            if not self.fits((start, ends[first])):
                ends, first = range(start + 1, end + 1), 0
                if not self.fits((start, start + 1)):
                    raise ValueError(
                        f"the character {self.text[start]!r} alone reads as {self.n((start, start + 1))} phoneme ids, "
                        f"more than max_tokens={self.max_tokens}"
                    )
            cut = ends[self._furthest(start, ends, first, len(ends), guess)]
            pieces.append((start, cut))
            guess, start = bisect.bisect_left(ends, cut) - first, cut
        return pieces

    def _furthest(self, start: int, ends: Sequence[int], lo: int, hi: int, guess: int) -> int:
        """The largest k in [lo, hi) whose text[start:ends[k]] fits, given that ends[lo]'s does and
        ends[hi]'s (if any) does not. Probes lo + guess first, then gallops from there by 1, 2, 4...
        and bisects once the answer is bracketed: a good guess costs two or three phonemisations."""
        probe, step = min(lo + max(1, guess), hi - 1), 1
        while lo + 1 < hi:
            if self.fits((start, ends[probe])):
                lo, probe = probe, probe + step
            else:
                hi, probe = probe, probe - step
            step *= 2
            if not lo < probe < hi:
                probe = (lo + hi) // 2
        return lo

    def merge_tiny(self, spans: list[Span]) -> list[Span]:
        """Join each piece under TINY_TOKENS to its shorter neighbour (else the other) when the
        joined text fits. After a join the piece before it is looked at again, since its neighbour
        changed: in the end no tiny piece can join either neighbour."""
        spans = list(spans)
        i = 0
        while i < len(spans):
            if self.n(spans[i]) < TINY_TOKENS:
                for j in sorted((j for j in (i - 1, i + 1) if 0 <= j < len(spans)), key=lambda j: self.n(spans[j])):
                    low, high = min(i, j), max(i, j)
                    joined = (spans[low][0], spans[high][1])
                    if self.fits(joined):
                        spans[low : high + 1] = [joined]
                        i = max(low - 1, 0)
                        break
                else:
                    i += 1
            else:
                i += 1
        return spans

    def drop_silent(self, spans: list[Span]) -> list[Span]:
        """Join each piece that reads as no phoneme to a neighbour with speech (the shorter first)
        when the joined text fits; drop it otherwise. No silent piece is left."""
        spans = list(spans)
        i = 0
        while i < len(spans):
            if self.speaks(spans[i]):
                i += 1
                continue
            neighbours = [j for j in (i - 1, i + 1) if 0 <= j < len(spans) and self.speaks(spans[j])]
            for j in sorted(neighbours, key=lambda j: self.n(spans[j])):
                low, high = min(i, j), max(i, j)
                joined = (spans[low][0], spans[high][1])
                if self.fits(joined) and self.speaks(joined):
                    spans[low : high + 1] = [joined]
                    i = low
                    break
            else:
                del spans[i]
        return spans


def split_text(
    text: str, language: str = "en-us", max_tokens: int = DEFAULT_MAX_TOKENS, *, normalize: bool = True
) -> list[Segment]:
    """Cut `text` into segments of at most `max_tokens` phoneme ids each, in text order.

    Each segment's `text` is the input's text[start:end] (offsets index the ORIGINAL text) and its
    ids are text_to_ids(segment.text, language, normalize=normalize): cleaning (pipeline.cleaning)
    applies to each segment's text, so line breaks, markup, pictographs and invisible characters
    may stand in a segment's text but never reach its ids as such. normalize=False reads the text
    literally (see pipeline.text.phonemize).

    Every segment has at least one phoneme between BOS and EOS. A piece that reads as none (a
    markup line such as "```" or "|---|", punctuation, emoji, invisible characters) joins a
    neighbour when the joined text fits, and is dropped otherwise; so joined, the segments' texts
    are the input less whitespace and less such dropped pieces.

    Raises NothingToSpeakError (a ValueError) when the whole text has nothing to speak: empty,
    whitespace, invisible characters, markup, pictographs, punctuation, or only characters espeak
    cannot read for the language; UnsupportedLanguageError for an unknown language; ValueError for
    max_tokens below MIN_MAX_TOKENS, a lone UTF-16 surrogate (no character, so no Segment can hold
    it) or a single character that alone reads as more than max_tokens ids.
    """
    language = check_language(language)
    surrogate = _SURROGATE_RE.search(text)
    if surrogate:
        raise ValueError(
            f"text holds a lone UTF-16 surrogate (U+{ord(surrogate.group()):04X}) at offset {surrogate.start()}, "
            "which is not a character (half of a split emoji?): remove it"
        )
    if max_tokens < MIN_MAX_TOKENS:
        raise ValueError(f"max_tokens must be at least {MIN_MAX_TOKENS}, got {max_tokens}")
    speakable(text, language, literal=not normalize)  # refuses text that cleans to nothing, before any cut
    fitter = _Fitter(text, language, max_tokens, normalize)
    spans = fitter.merge_tiny([piece for sentence in _sentences(text, language) for piece in fitter.fit(sentence)])
    spans = fitter.drop_silent(spans)
    if not spans:
        raise NothingToSpeakError(
            "nothing to speak: the text reads as no phonemes (only punctuation, spaces or symbols espeak-ng "
            "does not pronounce)"
        )
    segments = []
    for index, (start, end) in enumerate(spans):
        ids = fitter.ids((start, end))
        segments.append(
            Segment(index=index, text=text[start:end], start=start, end=end, n_tokens=len(ids), phoneme_ids=ids)
        )
    return segments
