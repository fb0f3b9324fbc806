"""Text cleaning before phonemisation: what reaches espeak-ng is text a person would read aloud.

`clean_text(text, language)` is a pure function of its arguments (no state is shared or mutated
between calls; the character tables are immutable and built once), so the server may call it
from any number of threads. `pipeline.text.normalize` runs it before number reading, so every
entry point of the front end (normalize, phonemize, text_to_ids, segment.split_text) cleans.

The steps, in order, and the rules chosen where issue 9 leaves a choice:

1. Unicode NFC (UAX #15), so decomposed input (macOS file names, web pages: "cafe" + U+0301)
   reads as the composed text. Japanese then gets NFKC in text.py's Japanese path
   (NFKC(NFC(x)) == NFKC(x)). Compatibility characters espeak cannot read but whose plain form
   it can (fullwidth "ｈｅｌｌｏ１２", mathematical "𝐁𝐨𝐥𝐝", ligatures "ﬃ", circled and squared
   "①" "㎏", Roman numerals, Arabic presentation forms) fold to NFKC, by their decomposition tag
   (see _FOLDED_TAGS); super/subscripts, fractions and punctuation keep their own reading.
2. Invisible characters are removed: format characters (category Cf: zero-width space, ZWNJ,
   ZWJ, word joiner, bidi marks, embeddings and isolates, BOM, soft hyphen, tag characters...),
   control characters other than layout (Cc), variation selectors (U+FE00-FE0F, U+E0100-E01EF,
   Mongolian U+180B-180F), the combining grapheme joiner, Hangul fillers, and code points with no
   meaning (unassigned Cn, private use Co, lone surrogates Cs, which espeak cannot even receive).
   ZWJ and ZWNJ are removed in every script too: espeak-ng 1.51 ignores ZWNJ in Persian (the
   same phonemes with and without it) and misreads Devanagari across a ZWJ ("क्\u200dष" reads as
   two syllables, "क्ष" correctly), so removal never loses a reading espeak would give.
3. Markup and pictographs (skipped when literal=True, see below):
   - Markdown/chat markup, line by line: code fence lines (``` and ~~~, with their info string)
     are dropped but the code between them is read, because dropping it would silently lose
     content the caller sent (strip code blocks before sending to skip them); ATX headings
     ("### Title" -> "Title"), setext underlines, horizontal rules and table separator rows
     (|---|:--:|) are dropped, and so is decoration standing alone inside a line ("##", "***",
     "===", "~~~"; "--" stays, espeak reads it as a dash pause); blockquote ">" markers, list
     markers ("-", "*", "+", bullets such as "•", "1." / "1)" with at most three digits) and
     task boxes ("[ ]", "[x]") are dropped;
     link reference definitions ("[id]: url") are dropped; table rows ("| a | b |") read as
     their cells with a comma pause between them, and a "|" standing alone between spaces is a
     comma pause too.
   - Inline (CommonMark's rules, simplified to what one line shows): links "[text](url)" and
     "[text][id]" read their text; images "![alt](url)" read nothing (alt text is most often a
     file name or "image"); footnote marks "[^1]" are dropped; "<https://x>" autolinks read the
     address; HTML comments and tags of known HTML elements ("<b>", "</div>", "<br/>") are
     dropped, but "a < b > c" is left alone; code backticks are dropped and the code is read;
     runs of "*", "_" and "~~" (two or more tildes) at the edge of a word are emphasis and are
     dropped, while a run with spaces on both sides ("5 * 3", "fill in ___") or letters/digits
     on both sides ("snake_case", "5*3") is kept. Backslash escapes are not interpreted.
   - Pictographs are not spoken: Extended_Pictographic (Unicode TR51) characters, the emoji
     and symbol planes U+1F000-1FBFF (flags, skin tones, mahjong, legacy computing, ...) and
     U+1FC00-1FFFD, Miscellaneous Symbols and Dingbats (U+2600-27BF), box drawing, block
     elements and geometric shapes (U+2500-25FF), keycaps ("1" U+FE0F U+20E3) and enclosing
     keycap marks. Kept: "©", "®" and "™", which read as words ("copyright", "trade mark");
     "‼" and "⁉" become "!" and "?!" (espeak would say "double exclamation mark").
4. Characters espeak-ng cannot read for the language are replaced by a space, so they cannot
   corrupt neighbouring words: espeak-ng 1.51 leaves its translator in a broken state after
   some, and the rest of the clause reads wrong ("\uaa81 a, b" reads "ʌ, bʌ" instead of
   "eɪ, biː"), and others overflow a buffer (abort) or crash the process after repeated calls.
   The table (_UNREADABLE) was learned by probing espeak-ng 1.51 through phonemizer with every
   assigned code point up to U+2FFFF, alone and before "a b c d" (corrupted when that no longer
   reads as alone), in a fresh process after each crash, in en-us, cmn, ko, hi, ar and ru (and
   repeating each character 20 times in en-us to find crashes):
   - Cherokee (U+13A0-13FF), U+A700-ABFF (Latin Extended-D .. Meetei Mayek, incl. Tai Viet) and
     Hangul Jamo Extended-B (U+D7B0-D7FF) corrupt the words after them (en-us, cmn); they are
     no language's script, so they go for every language;
   - conjoining Hangul Jamo (U+1100-11FF) crash or corrupt espeak in every language probed but
     Korean ("ko" keeps them);
   - Braille patterns (U+2800-28FF) overflow a buffer in Arabic, and English voices name each
     cell ("braille pattern dots-1") and spell out the words it touches: no language keeps them
     (U+2800, the blank cell, is a common invisible filler);
   - Malayalam letters followed by a vowel sign crash en-us after a few dozen calls: only "ml"
     keeps the block;
   - decimal digits of Gurmukhi, Gujarati, Tamil, Kannada, Malayalam and Sinhala crashed it
     outside their language: every non-ASCII decimal digit becomes the ASCII digit of the same
     value (read by the number rules) except in the languages of its script (_DIGIT_OWNERS).
   A lookup is a regex character class (no espeak call at run time): deterministic and fast.
   Tests re-probe random characters of all scripts next to words (tests/test_cleaning.py).
   Symbols and punctuation beyond Latin-1 that touch a letter or digit ("hello㈀world") make
   espeak spell the word out letter by letter: they get a space on that side (_space_symbols).
5. Layout: a line break (LF, CR, CRLF, VT, FF, U+001C-001E, NEL, U+2028, U+2029) becomes a
   sentence boundary: ". " after a line that does not already end in punctuation, else a space;
   every other whitespace (tab, NBSP, ideographic space, ...) becomes a plain space; runs of
   spaces collapse to one and the ends are stripped. A removed pictograph or unreadable
   character between two letters/digits leaves a space, so "Done✅Next" reads two words.

literal=True (the opt-out: `normalize=False` in pipeline.text) reads the text as written: step 3
is skipped (markup characters and pictographs reach espeak, which names them), and
pipeline.text also skips number reading; steps 1, 2, 4 and 5 always run, because they are
correctness (the same ids for the same visible text, no UNK from layout, no corrupted
neighbours), not interpretation.
"""

from __future__ import annotations

import functools
import re
import unicodedata

__all__ = ["clean_text", "is_pictograph", "is_unreadable"]


# --- character tables ------------------------------------------------------------------------

# Line boundaries of str.splitlines(): each one ends a line, and in text a sentence.
_LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
_LINE_SPLIT_RE = re.compile(r"\r\n|[" + re.escape(_LINE_BREAKS) + "]")

# Invisible characters that are not format (Cf) or control (Cc) characters.
_INVISIBLE_EXTRA = (
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x115F, 0x1160),  # Hangul choseong/jungseong fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels (invisible; "do not use")
    (0x180B, 0x180F),  # Mongolian free variation selectors (and vowel separator)
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors 1-16
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xE0100, 0xE01EF),  # variation selectors supplement
)

# Extended_Pictographic (Unicode TR51) outside the ranges that _PICTOGRAPH_BLOCKS drops whole.
_EXTENDED_PICTOGRAPHIC = (
    (0x00A9, 0x00A9),
    (0x00AE, 0x00AE),
    (0x203C, 0x203C),
    (0x2049, 0x2049),
    (0x2122, 0x2122),
    (0x2139, 0x2139),
    (0x2194, 0x2199),
    (0x21A9, 0x21AA),
    (0x231A, 0x231B),
    (0x2328, 0x2328),
    (0x2388, 0x2388),
    (0x23CF, 0x23CF),
    (0x23E9, 0x23F3),
    (0x23F8, 0x23FA),
    (0x24C2, 0x24C2),
    (0x2934, 0x2935),
    (0x2B05, 0x2B07),
    (0x2B1B, 0x2B1C),
    (0x2B50, 0x2B50),
    (0x2B55, 0x2B55),
    (0x3030, 0x3030),
    (0x303D, 0x303D),
    (0x3297, 0x3297),
    (0x3299, 0x3299),
)
# Blocks of pictographs and decoration dropped whole.
_PICTOGRAPH_BLOCKS = (
    (0x20E3, 0x20E3),  # combining enclosing keycap
    (0x2190, 0x21FF),  # arrows ("→" would read "right arrow")
    (0x2500, 0x25FF),  # box drawing, block elements, geometric shapes
    (0x2600, 0x27BF),  # miscellaneous symbols, dingbats
    (0x27F0, 0x27FF),  # supplemental arrows-A
    (0x2900, 0x297F),  # supplemental arrows-B
    (0x2B00, 0x2BFF),  # miscellaneous symbols and arrows
    (0x1F000, 0x1FBFF),  # mahjong .. symbols for legacy computing (emoji, flags, skin tones)
    (0x1FC00, 0x1FFFD),  # reserved for future pictographs
)
# Text symbols that read as words, and punctuation that gets its plain form instead.
_KEPT_SYMBOLS = frozenset("©®™")
_PUNCTUATION_FORMS = {ord("‼"): "!", ord("⁉"): "?!"}

# Characters that corrupt espeak-ng 1.51 or crash it (module docstring, step 4): (first, last,
# the languages that read them safely, as code prefixes: "en" is en-us, en-gb, ...).
_UNREADABLE: tuple[tuple[int, int, tuple[str, ...]], ...] = (
    (0x1100, 0x11FF, ("ko",)),  # Hangul Jamo: crashes and corrupts outside Korean
    (0x13A0, 0x13FF, ()),  # Cherokee
    (0x2800, 0x28FF, ()),  # Braille: abort in ar; English names each cell and spells the words it touches
    (0xA700, 0xABFF, ()),  # Latin Extended-D .. Meetei Mayek
    (0xD7B0, 0xD7FF, ()),  # Hangul Jamo Extended-B
    (0x0D00, 0x0D7F, ("ml",)),  # Malayalam: letters + a vowel sign crash en-us after ~25 calls
)
# Decimal digits (category Nd) are read in their own script only by the languages of that script:
# (the digit zero, those languages). Elsewhere every non-ASCII decimal digit becomes the ASCII
# digit of the same value, which the number rules read: espeak-ng crashed on Gurmukhi, Gujarati,
# Tamil, Kannada, Malayalam and Sinhala digits outside their language (and Tamil, Kannada digits
# even in "ml"), so no foreign digit reaches it.
_DIGIT_OWNERS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (0x0660, ("ar", "sd", "ku")),  # Arabic-Indic
    (0x06F0, ("fa", "ur", "sd")),  # Extended Arabic-Indic
    (0x0966, ("hi", "mr", "ne", "kok")),  # Devanagari
    (0x09E6, ("bn", "as", "bpy")),  # Bengali
    (0x0A66, ("pa",)),  # Gurmukhi
    (0x0AE6, ("gu",)),  # Gujarati
    (0x0B66, ("or",)),  # Oriya
    (0x0BE6, ("ta",)),  # Tamil
    (0x0C66, ("te",)),  # Telugu
    (0x0CE6, ("kn",)),  # Kannada
    (0x0D66, ("ml",)),  # Malayalam
    (0x0DE6, ("si",)),  # Sinhala
    (0x1040, ("my", "shn")),  # Myanmar
)


# Compatibility characters espeak-ng cannot read but whose plain form it can: fullwidth and
# halfwidth forms, mathematical letters ("𝐁𝐨𝐥𝐝"), ligatures ("ﬃ"), circled and squared forms
# ("①", "㎏"), Roman numerals, Arabic presentation forms. Espeak reads them as "letter 1D401..."
# and spells the words around them. They fold to NFKC (UAX #15) when their decomposition has one
# of these tags (the Unicode Character Database's) and they are letters, numbers or symbols;
# punctuation ("…"), spaces, super- and subscripts and fractions keep their own reading.
_FOLDED_TAGS = frozenset(
    f"<{tag}>" for tag in ("font", "wide", "narrow", "circle", "square", "small", "vertical", "compat")
) | frozenset(f"<{form}>" for form in ("initial", "medial", "final", "isolated"))
# Symbols and punctuation outside Latin-1 that make espeak-ng spell out a word they touch
# ("hello㈀world" reads "H E L L O chinese symbol W O R L D"): a space keeps them apart. Not
# the sentence and clause marks; per mille and primes only where they touch a letter.
_SPACED_KEPT = frozenset("‰‱′″‴‵‶‷")
# Below U+2000 only these: most punctuation there belongs to a script's own words (Hebrew
# geresh, Armenian marks written on a vowel), but Hebrew paseq and sof pasuq stand apart.
_SPACED_PO = frozenset("\u05c0\u05c3")


def _folds(char: str) -> bool:
    decomposition = unicodedata.decomposition(char)
    return (
        decomposition.split(" ", 1)[0] in _FOLDED_TAGS
        and unicodedata.category(char)[0] in "LNS"
        and unicodedata.category(char) != "Sk"
    )


def _spaced(char: str) -> bool:
    category = unicodedata.category(char)
    return ord(char) > 0xFF and (
        category == "So"
        or (category == "Po" and (ord(char) > 0x2000 or char in _SPACED_PO) and char not in _PAUSE_MARKS)
    )


def _reads(language: str, prefixes: tuple[str, ...]) -> bool:
    return any(language == prefix or language.startswith(prefix + "-") for prefix in prefixes)


def _class(ranges) -> str:
    """A regex character class body for inclusive code point ranges."""
    return "".join(
        re.escape(chr(first)) if first == last else f"{re.escape(chr(first))}-{re.escape(chr(last))}"
        for first, last in ranges
    )


def _ranges(predicate, codes: range) -> list[tuple[int, int]]:
    """Inclusive code point ranges of the characters in `codes` for which predicate(char) holds."""
    ranges: list[tuple[int, int]] = []
    for code in codes:
        if predicate(chr(code)):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))
    return ranges


def _is_removed_control(char: str) -> bool:
    category = unicodedata.category(char)
    if category == "Cc":
        return char not in _LINE_BREAKS and char != "\t"
    return category in ("Cf", "Cn", "Co", "Cs")


@functools.cache
def _folding() -> dict[int, str]:
    """str.translate table of the compatibility characters that fold to their NFKC form."""
    return {code: unicodedata.normalize("NFKC", chr(code)) for code in range(0x30000) if _folds(chr(code))}


@functools.cache
def _spaced_re() -> re.Pattern:
    """The symbols that get a space where they touch a letter or digit, as one character class."""
    return re.compile(f"[{_class(_ranges(_spaced, range(0x100, 0x30000)))}]+")


def _space_symbols(text: str) -> str:
    """A space between a word and a symbol that touches it (see _spaced)."""

    def spaced(match: re.Match) -> str:
        start, end = match.start(), match.end()
        # per mille and primes belong to the number before them ("5‰", "5′6″"): apart from letters only
        touches = str.isalpha if set(match.group()) <= _SPACED_KEPT else str.isalnum
        before = " " if start and touches(text[start - 1]) else ""
        after = " " if end < len(text) and touches(text[end]) else ""
        return before + match.group() + after

    return _spaced_re().sub(spaced, text)


@functools.cache
def _tables() -> tuple[re.Pattern, re.Pattern]:
    """(invisible characters, pictographs) as compiled character classes. Built on first use
    (about 0.3 s: every code point's category) and immutable afterwards."""
    # Planes 4-13 are unassigned and planes 15-16 private use (or noncharacters): no need to look.
    meaningless = [*_ranges(_is_removed_control, range(0x40000)), (0x40000, 0xDFFFF), (0xF0000, 0x10FFFF)]
    meaningless += _ranges(_is_removed_control, range(0xE0000, 0xF0000))
    invisible = re.compile(f"[{_class(meaningless)}{_class(_INVISIBLE_EXTRA)}]+")
    pictographic = [
        (first, last)
        for first, last in _EXTENDED_PICTOGRAPHIC
        if not (first == last and (chr(first) in _KEPT_SYMBOLS or first in _PUNCTUATION_FORMS))
    ]
    # A keycap is a digit, "#" or "*" (its VS16 already removed) before U+20E3.
    pictographs = re.compile(f"(?:[0-9#*]\u20e3|[{_class(pictographic)}{_class(_PICTOGRAPH_BLOCKS)}])+")
    return invisible, pictographs


@functools.cache
def _unreadable_re(language: str) -> re.Pattern:
    """The characters espeak-ng cannot safely read for `language`, as one character class."""
    ranges = [(first, last) for first, last, readers in _UNREADABLE if not _reads(language, readers)]
    return re.compile(f"[{_class(ranges)}]+")


@functools.cache
def _all_digit_forms() -> dict[int, str]:
    """Every non-ASCII decimal digit (category Nd) -> the ASCII digit of the same value."""
    return {
        code: str(unicodedata.decimal(chr(code)))
        for code in range(0x80, 0x30000)
        if unicodedata.category(chr(code)) == "Nd"
    }


@functools.cache
def _digit_forms(language: str) -> dict[int, str]:
    """str.translate table: non-ASCII decimal digits not of `language`'s script -> ASCII digits."""
    own = {zero + value for zero, owners in _DIGIT_OWNERS if _reads(language, owners) for value in range(10)}
    return {code: digit for code, digit in _all_digit_forms().items() if code not in own}


def is_pictograph(char: str) -> bool:
    """Whether the (non-literal) cleaning drops `char` as a pictograph (module docstring, step 3)."""
    return bool(_tables()[1].fullmatch(char))


def is_unreadable(char: str, language: str) -> bool:
    """Whether espeak-ng cannot safely read `char` for `language` (module docstring, step 4)."""
    return bool(_unreadable_re(language).fullmatch(char))


# --- markup ----------------------------------------------------------------------------------

_FENCE_RE = re.compile(r"\s*(?:`{3,}|~{3,}).*")
_RULE_RE = re.compile(r"\s*(?:(?:-\s*){3,}|(?:\*\s*){3,}|(?:_\s*){3,}|=+\s*)")
_TABLE_SEPARATOR_RE = re.compile(r"\s*\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)*\|?\s*")
_REFERENCE_DEFINITION_RE = re.compile(r"\s*\[[^\]]+\]:\s*\S+.*")
_HEADING_RE = re.compile(r"\s*#{1,6}(?:\s+(.*?))?(?:\s+#+)?\s*")
_BLOCK_PREFIX_RE = re.compile(r"\s*(?:>\s*)+")
_LIST_MARKER_RE = re.compile(r"\s*(?:[-+*•◦‣⁃∙·]|\d{1,3}[.)])\s+(?:\[[ xX]\]\s+)?")

_COMMENT_RE = re.compile(r"<!--.*?(?:-->|$)")
# <script> and <style> hold code, not text: their content goes with them.
_CODE_ELEMENT_RE = re.compile(r"<(script|style)\b[^>]*>.*?(?:</\1\s*>|$)", re.IGNORECASE)
# A link destination: <anything but angle brackets> or a run with balanced parentheses; then a title.
_DESTINATION = r"\((?:<[^<>]*>|(?:[^()\s]|\([^()]*\))*)(?:\s+\"[^\"]*\")?\)"
_IMAGE_RE = re.compile(rf"!\[[^\]]*\]{_DESTINATION}")
# Link text may be empty once an image inside it is gone ("[![badge](x.svg)](ci-url)").
_LINK_RE = re.compile(rf"\[([^\]]*)\]{_DESTINATION}|\[([^\]^][^\]]*)\]\[[^\]]*\]")
_FOOTNOTE_RE = re.compile(r"\[\^[^\]\s]+\]")
_AUTOLINK_RE = re.compile(r"<((?:https?|ftp|mailto):[^<>\s]+|[^<>\s@]+@[^<>\s@]+\.[^<>\s@]+)>", re.IGNORECASE)
_HTML_ELEMENTS = (
    "a|abbr|address|article|aside|b|bdi|bdo|big|blockquote|body|br|caption|center|cite|code|col|colgroup|dd|del|"
    "details|dfn|div|dl|dt|em|figcaption|figure|font|footer|h[1-6]|head|header|hr|html|i|img|ins|kbd|li|main|mark|"
    "nav|ol|p|pre|q|s|samp|section|small|span|strike|strong|sub|summary|sup|table|tbody|td|tfoot|th|thead|tr|tt|u|"
    "ul|var|wbr"
)
_HTML_TAG_RE = re.compile(rf"</?(?:{_HTML_ELEMENTS})(?:\s[^<>]*)?/?>", re.IGNORECASE)
_CODE_RE = re.compile(r"(`+)(.+?)\1")
_EMPHASIS_RE = re.compile(r"\*+|_+|~~+")
_PIPE_RE = re.compile(r"(?:\s+|^)\|(?=\s|$)")
# Decoration standing alone between spaces: two or more "#" (an empty heading mark, "##"), or three
# or more of "*", "~", "=", "#" ("***", "===", "~~~"), which espeak would name ("hash hash").
# "--" and "---" stay: espeak reads them as a dash pause. "==" stays: in code it means "equals";
# "___" stays: a blank to fill in.
_DECORATION_RE = re.compile(r"(?<!\S)(?:#{2,}|[*~=#]{3,})(?!\S)")


# Scripts written without spaces between words (Han, kana, Thai, Lao, Khmer, Myanmar, Tibetan):
# there "**" between two letters is still emphasis, since no space can mark the word's edge.
_SPACELESS_RE = re.compile(
    "[\u0e00-\u0eff\u0f00-\u0fff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf"
    "\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f]"
)


def _emphasis(match: re.Match) -> str:
    """Drop a run of "*", "_" or "~~" that is emphasis; keep it where it is a symbol of the text.

    Kept: a run with whitespace (or the line's edge) on both sides ("5 * 3", "fill in ___") and a
    run inside a word or number ("snake_case", "x_1", "5*3", "x**2"). Dropped: every other run,
    i.e. one touching a word on one side ("**bold**", "**Note:**", '**"hi"**', "*Note:*"), and
    inside a word "**"/"*" between two letters of a script written without spaces ("重要**です")
    or two or more "*" between letters ("un**bel**ievable": CommonMark allows "*" emphasis there).
    """
    run, line, start, end = match.group(), match.string, match.start(), match.end()
    before = line[start - 1] if start else ""
    after = line[end] if end < len(line) else ""
    if (not before or before.isspace()) and (not after or after.isspace()):
        return run
    if before.isalnum() and after.isalnum():
        spaceless = bool(_SPACELESS_RE.match(before) or _SPACELESS_RE.match(after))
        bold_in_word = run[0] == "*" and len(run) >= 2 and before.isalpha() and after.isalpha()
        return "" if spaceless or bold_in_word else run
    return ""


def _table_row(line: str) -> str:
    """Cells of "| a | b |" joined by comma pauses (no pause after a cell ending in punctuation)."""
    cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
    out = ""
    for cell in filter(None, cells):
        if out:
            out += " " if unicodedata.category(out[-1])[0] == "P" else ", "
        out += cell
    return out


def _strip_line_markup(line: str) -> str:
    """One line without its markdown/HTML markup (module docstring, step 3)."""
    if (
        _FENCE_RE.fullmatch(line)
        or _RULE_RE.fullmatch(line)
        or ("|" in line and _TABLE_SEPARATOR_RE.fullmatch(line))
        or _REFERENCE_DEFINITION_RE.fullmatch(line)
    ):
        return ""
    heading = _HEADING_RE.fullmatch(line)
    if heading:
        line = heading.group(1) or ""
    line = line[_BLOCK_PREFIX_RE.match(line).end() :] if line.lstrip().startswith(">") else line
    while marker := _LIST_MARKER_RE.match(line):  # nested markers too: "- 1. item", "* - item"
        line = line[marker.end() :]
    line = _CODE_ELEMENT_RE.sub("", _COMMENT_RE.sub("", line))
    line = _IMAGE_RE.sub("", line)
    line = _LINK_RE.sub(lambda m: m.group(1) or m.group(2) or "", line)
    line = _FOOTNOTE_RE.sub("", line)
    line = _AUTOLINK_RE.sub(r"\1", line)
    line = _HTML_TAG_RE.sub(" ", line)
    line = _CODE_RE.sub(r"\2", line).replace("`", "")
    line = _DECORATION_RE.sub("", line)
    line = _EMPHASIS_RE.sub(_emphasis, line)
    if line.lstrip().startswith("|"):
        return _table_row(line)
    return _PIPE_RE.sub(",", line)


# --- the whole pipeline ----------------------------------------------------------------------


def _drop(pattern: re.Pattern, text: str) -> str:
    """Remove pattern's matches; a space stands in for one that stood between two letters/digits."""

    def replacement(match: re.Match) -> str:
        start, end = match.start(), match.end()
        between_words = start and end < len(text) and text[start - 1].isalnum() and text[end].isalnum()
        return " " if between_words else ""

    return pattern.sub(replacement, text)


# Marks after which a line break needs no added full stop (sentence and clause ends of many
# scripts, as in pipeline.segment), and the closing quotes and brackets that may follow them.
_PAUSE_MARKS = frozenset(".,;:!?…‼⁇⁈⁉‽。！？｡।॥؟۔։።፧။។៕\u037e—、，；：،؛፣፤")
_CLOSERS = "\"')]}»›”’」』）］｝〉》】〕〗〙〛｣"


def _join_lines(lines: list[str]) -> str:
    """Lines joined by sentence boundaries: ". " unless the line already ends in punctuation."""
    out = ""
    for line in lines:
        line = " ".join(line.split())
        if not line:
            continue
        if out:
            out += " " if out.rstrip(_CLOSERS)[-1:] in _PAUSE_MARKS else ". "
        out += line
    return out


def clean_text(text: str, language: str, *, literal: bool = False) -> str:
    """`text` as espeak-ng should read it: NFC, no invisible characters, markup or pictographs
    (unless `literal`), no characters espeak cannot read for `language`, and single spaces and
    sentence boundaries for all layout. The result may be empty (nothing to speak).

    Pure and thread-safe; `language` is an espeak-ng code (not checked here: pipeline.text does).
    The rules and their sources are in this module's docstring.
    """
    invisible, pictographs = _tables()
    text = unicodedata.normalize("NFC", invisible.sub("", text)).translate(_digit_forms(language))
    lines = _LINE_SPLIT_RE.split(text.translate(_folding()))
    if not literal:
        lines = [_drop(pictographs, _strip_line_markup(line)).translate(_PUNCTUATION_FORMS) for line in lines]
    unreadable = _unreadable_re(language)
    lines = [_space_symbols(_drop(unreadable, line)) for line in lines]
    return unicodedata.normalize("NFC", _join_lines(lines))
