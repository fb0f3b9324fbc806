"""Text cleaning (pipeline.cleaning) through the front end: each KIND of input issue 9 names
(decomposed Unicode, invisible characters, layout, chat markup, pictographs, characters espeak
cannot read, nothing to speak), as properties over random text and as regression examples."""

import contextlib
import threading
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.cleaning import clean_text, is_pictograph, is_unreadable
from pipeline.segment import split_text
from pipeline.text import (
    NothingToSpeakError,
    UnsupportedLanguageError,
    has_speech,
    normalize,
    phonemize,
    text_to_ids,
)

UNK = 1
FRONT_END_ERRORS = (UnsupportedLanguageError, NothingToSpeakError, ValueError)
FEW = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def ids_or_nothing(text: str, language: str = "en-us", **kwargs) -> list[int] | None:
    try:
        return text_to_ids(text, language, **kwargs)
    except NothingToSpeakError:
        return None


# --- the examples of issue 9 -----------------------------------------------------------------


def test_decomposed_unicode_reads_as_composed():
    assert phonemize("cafe\u0301", "en-us") == phonemize("café", "en-us") == "kæfˈeɪ"


@pytest.mark.parametrize("text", ["\u200b", "\ufeff", "\u200b\u200c\u200d\u2060\u00ad\u200e\u200f\u2066\u2069"])
def test_invisible_characters_alone_are_nothing_to_speak(text):
    with pytest.raises(NothingToSpeakError, match="nothing to speak"):
        text_to_ids(text, "en-us")
    with pytest.raises(NothingToSpeakError, match="nothing to speak"):
        split_text(text)


def test_line_break_in_a_joined_segment_is_a_boundary_not_unk():
    (segment,) = split_text("Yes.\nNo.")
    assert UNK not in segment.phoneme_ids
    assert segment.phoneme_ids == text_to_ids("Yes. No.", "en-us")


def test_chat_markup_and_pictographs_are_not_spoken():
    assert phonemize("### Example Heading", "en-us") == phonemize("Example Heading", "en-us")
    assert phonemize("✅ Done", "en-us") == phonemize("Done", "en-us")


def test_a_letter_espeak_cannot_read_does_not_corrupt_the_rest():
    assert phonemize("\uaa81 a, b, c, d", "en-us") == "ˈeɪ, bˈiː, sˈiː, dˈiː"


def test_literal_opt_out_reads_markup_and_pictographs():
    assert phonemize("### Example Heading", "en-us", normalize=False) != phonemize("Example Heading", "en-us")
    assert phonemize("✅ Done", "en-us", normalize=False) != phonemize("Done", "en-us")
    # ... but still composes, removes invisible characters, handles layout and unreadable scripts
    assert phonemize("cafe\u0301\u200b", "en-us", normalize=False) == "kæfˈeɪ"
    assert phonemize("\uaa81 a, b", "en-us", normalize=False) == phonemize("a, b", "en-us")
    assert UNK not in text_to_ids("Yes.\nNo.\tMaybe", "en-us", normalize=False)
    with pytest.raises(NothingToSpeakError):
        text_to_ids("\u200b", "en-us", normalize=False)


# --- nothing to speak ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", "   ", "\n\t\u2028", "\u200b\u2060", "😀👍🏽🇺🇸", "```\n```", "---", "|---|---|", "...", "?!", "\uaa81\u13a0"],
)
def test_nothing_to_speak_is_a_clear_value_error(text):
    with pytest.raises(NothingToSpeakError, match="nothing to speak") as info:
        split_text(text)
    assert isinstance(info.value, ValueError)
    with pytest.raises(NothingToSpeakError):
        text_to_ids(text, "en-us")


def test_normalize_refuses_text_that_cleans_to_nothing():
    with pytest.raises(NothingToSpeakError, match="after cleaning"):
        normalize("✅ 😀", "en-us")
    with pytest.raises(NothingToSpeakError, match="text is empty"):
        normalize(" \n", "en-us")


# --- what cleaning does to text --------------------------------------------------------------

MARKDOWN = [
    ("# Title", "Title"),
    ("Step one ## step two", "Step one step two"),
    ("*** Note *** read this", "Note read this"),
    ("=== Results ===", "Results"),
    ("### Example Heading ###", "Example Heading"),
    ("Some **bold** and __strong__ text", "Some bold and strong text"),
    ("Some *italic* and _emphasised_ text", "Some italic and emphasised text"),
    ("A ~~struck~~ word", "A struck word"),
    ("Run `pip install` now", "Run pip install now"),
    ("```python\nprint(1)\n```", "print(1)"),
    ("- apples\n- pears", "apples. pears"),
    ("* apples\n+ pears", "apples. pears"),
    ("1. first\n2) second", "first. second"),
    ("• bullet point", "bullet point"),
    ("- [x] done task", "done task"),
    ("> a quoted line", "a quoted line"),
    (">> nested > quote", "nested > quote"),
    ("See [the docs](https://example.com/a_(b)) now", "See the docs now"),
    ("See [the docs][1] now", "See the docs now"),
    ("An image ![a cat](cat.png) here", "An image here"),
    ("A note[^1] here", "A note here"),
    ("<b>bold</b> and <br/> <span class='x'>span</span>", "bold and span"),
    ("| a | b |\n|---|:-:|\n| c | d |", "a, b. c, d"),
    ("Title\n=====\nText", "Title. Text"),
    ("Above\n\n---\n\nBelow", "Above. Below"),
    ("***", ""),
    ("[ref]: https://example.com", ""),
]


@pytest.mark.parametrize(("markdown", "bare"), MARKDOWN)
def test_markdown_is_not_read(markdown, bare):
    assert clean_text(markdown, "en-us") == bare
    assert ids_or_nothing(markdown) == ids_or_nothing(bare)


@pytest.mark.parametrize(
    "text",
    [
        "5 * 3 is fifteen",
        "snake_case and __ blanks ___",
        "C# and F#",
        "a - b",
        "e.g. 3.5",
        "don't, won't",
        "well-known",
        "$5 and 50%",
        "a < b > c",
        "#hashtag #1",
        "x * y",
        "~5 km",
        "© ® ™",
    ],
)
def test_ordinary_text_survives(text):
    assert clean_text(text, "en-us") == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a\tb\u00a0c\u3000d\u2003e", "a b c d e"),
        ("a\r\nb\rc\x85d\u2028e\u2029f\vg\fh", "a. b. c. d. e. f. g. h"),
        ("Hello,\nworld\n\n\nagain.\n", "Hello, world. again."),
        ('He said "hi."\nThen', 'He said "hi." Then'),
        ("  many    spaces  ", "many spaces"),
        ("wow‼ what⁉", "wow! what?!"),
        ("Done✅Next", "Done Next"),
        ("1\ufe0f\u20e3 one 🇺🇸 flag 👍🏽 ok 👨\u200d👩\u200d👧 family", "one flag ok family"),
        ("zero\u200bwidth so\u00adft", "zerowidth soft"),
        ("\ud800lone surrogate \ue000private", "lone surrogate private"),
        ("a\uaa81b", "a b"),
        # markup next to punctuation, inside words and around links (a red-team's kinds)
        ("**Note:** this is it", "Note: this is it"),
        ("**Warning!** Hot", "Warning! Hot"),
        ("It's **100%** sure", "It's 100% sure"),
        ('He said **"hi"** loudly', 'He said "hi" loudly'),
        ("*Note:* x", "Note: x"),
        ("un**bel**ievable", "unbelievable"),
        ("这是**重要**的事情", "这是重要的事情"),
        ("[![badge](https://img.shields.io/x.svg)](https://ci.org) Build ok", "Build ok"),
        ("See [docs](<https://x.com/a b>) now", "See docs now"),
        ("<script>alert(1)</script> Hi", "Hi"),
        ("a → b ⇒ c", "a b c"),
        ("Hi\u2800there", "Hi there"),
    ],
)
def test_cleaning_examples(text, expected):
    assert clean_text(text, "en-us") == expected


def test_cleaning_is_the_same_in_every_thread():
    text = "## Title\n- **cafe\u0301** ✅ \u200b\uaa81 | x | y |\r\nEnd"
    expected = clean_text(text, "en-us")
    results = []
    threads = [threading.Thread(target=lambda: results.append(clean_text(text, "en-us"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected] * 8


def test_korean_keeps_hangul_jamo_and_gujarati_keeps_its_digits():
    assert is_unreadable("\u1100", "en-us") and not is_unreadable("\u1100", "ko")
    assert clean_text("\u0ae8\u0ae6", "en-us") == "20"
    assert clean_text("\u0ae8\u0ae6", "gu") == "\u0ae8\u0ae6"


# --- properties ------------------------------------------------------------------------------

INVISIBLE = (
    "\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u200e\u200f\u061c\u180e\u034f"
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufe00\ufe0e\ufe0f\U000e0001\U000e0041\U000e0100\x00\x07\x7f"
)
LATIN_LETTERS = st.characters(
    codec="utf-8", categories=["Lu", "Ll"], max_codepoint=0x17F, exclude_characters="ĸŉſ"
)  # Basic Latin, Latin-1, Latin Extended-A (three letters espeak spells out: not words)
WORD = st.text(LATIN_LETTERS, min_size=1, max_size=8)
WORDS = st.lists(WORD, min_size=1, max_size=6)
LAYOUT = st.sampled_from([" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u2028", "\u3000", ", ", ". ", "! ", "? ", "; "])
EMOJI = st.sampled_from(
    [
        "😀",
        "✅",
        "👍🏽",
        "🇺🇸",
        "1\ufe0f\u20e3",
        "#\u20e3",
        "👨\u200d👩\u200d👧",
        "❤\ufe0f",
        "☀",
        "✔",
        "⭐",
        "🏳\ufe0f\u200d🌈",
    ]
) | st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF).filter(is_pictograph)
LANGUAGES = st.sampled_from(["en-us", "en-gb", "de", "fr-fr", "es", "ru", "cmn", "hi", "ar", "ko", "ja", "el", "vi"])


@FEW
@given(st.text(st.characters(codec="utf-8") | st.characters(categories=["Cs"]), max_size=40), LANGUAGES)
def test_front_end_raises_only_documented_errors_on_random_unicode(text, language):
    for call in (normalize, phonemize, text_to_ids):
        with contextlib.suppress(FRONT_END_ERRORS):
            call(text, language)
    try:
        segments = split_text(text, language, 64)
    except FRONT_END_ERRORS:
        return
    assert all(has_speech(segment.phoneme_ids) for segment in segments)


@FEW
@given(st.lists(st.tuples(WORD, LAYOUT, st.text(st.sampled_from(INVISIBLE), max_size=2)), min_size=1, max_size=8))
def test_latin_text_with_layout_and_invisible_characters_has_no_unk(parts):
    text = "".join(word + invisible + layout for word, layout, invisible in parts)
    ids = ids_or_nothing(text)
    assert ids is None or UNK not in ids
    for segment in split_text(text, "en-us", 48):
        assert UNK not in segment.phoneme_ids
        assert segment.text == text[segment.start : segment.end]


@FEW
@given(WORDS, st.sampled_from(["en-us", "de", "fr-fr", "cs"]))
def test_nfc_and_nfd_give_the_same_ids(words, language):
    text = " ".join(words)
    expected = ids_or_nothing(unicodedata.normalize("NFC", text), language)
    assert ids_or_nothing(unicodedata.normalize("NFD", text), language) == expected


@FEW
@given(WORDS, st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(INVISIBLE)), min_size=1, max_size=6))
def test_invisible_characters_anywhere_do_not_change_ids(words, insertions):
    text = " ".join(words)
    noisy = text
    for position, char in insertions:
        position %= len(noisy) + 1
        noisy = noisy[:position] + char + noisy[position:]
    assert ids_or_nothing(noisy) == ids_or_nothing(text)


@FEW
@given(WORDS, st.lists(st.tuples(st.integers(0, 10), EMOJI, st.sampled_from(["{} ", " {}", " {} "])), max_size=4))
def test_emoji_between_words_do_not_change_ids(words, insertions):
    noisy = list(words)
    for position, emoji, form in insertions:
        position %= len(noisy)
        word = noisy[position]
        noisy[position] = form.format(emoji) + word if form.startswith("{") else word + form.format(emoji)
    assert ids_or_nothing(" ".join(noisy)) == ids_or_nothing(" ".join(words))


# Characters from every block of the BMP and the supplementary letter plane, letters and symbols.
ANY_CHARACTER = st.characters(codec="utf-8", categories=["L", "M", "N", "S", "P"], max_codepoint=0x2FFFF)


@settings(max_examples=400, deadline=None)
@given(ANY_CHARACTER, st.sampled_from(["en-us", "en-us", "de", "ru", "cmn", "hi", "ar"]))
def test_a_character_next_to_words_does_not_change_their_reading(char, language):
    words = "a, b, c, d"
    alone = phonemize(words, language)
    try:
        reading = phonemize(f"{char} {words}", language)
    except NothingToSpeakError:
        return
    assert reading.endswith(alone), (hex(ord(char)), unicodedata.name(char, "?"))


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([(0x13A0, 0x13F5), (0xA720, 0xA7FF), (0xA840, 0xA877), (0xAA80, 0xAADF), (0xD7B0, 0xD7FB)]))
def test_unreadable_blocks_are_isolated(block):
    # every character of the blocks espeak-ng 1.51 cannot read, before and between words
    for code in range(*block):
        char = chr(code)
        if unicodedata.category(char) == "Cn":
            continue
        assert is_unreadable(char, "en-us")
        assert phonemize(f"{char} a, b{char}c", "en-us") == phonemize("a, b c", "en-us")


# --- kinds a red-team review found (compatibility forms, symbols against words, emphasis next to
# punctuation or inside words, spaces in Japanese, Braille and arrows) -------------------------


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(char) + 0xFEE0) if "!" <= char <= "~" else char for char in text)


def _math_bold(text: str) -> str:
    bold = {**{chr(65 + i): chr(0x1D400 + i) for i in range(26)}, **{chr(97 + i): chr(0x1D41A + i) for i in range(26)}}
    return "".join(bold.get(char, char) for char in text)


ASCII_WORDS = st.lists(
    st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"), min_size=1, max_size=8),
    min_size=1,
    max_size=5,
)


@FEW
@given(ASCII_WORDS, st.integers(0, 10**6))
def test_compatibility_forms_read_as_their_plain_letters_and_digits(words, number):
    text = f"{' '.join(words)} {number}"
    plain = ids_or_nothing(text)
    assert ids_or_nothing(_fullwidth(text)) == plain
    assert ids_or_nothing(_math_bold(text)) == plain


@pytest.mark.parametrize(
    ("compat", "plain"),
    [
        ("oﬃce", "office"),
        ("Chapter Ⅳ", "Chapter IV"),
        ("70㎏", "70kg"),
        ("Pay $１２", "Pay $12"),
        ("① first", "1 first"),
    ],
)
def test_compatibility_examples(compat, plain):
    assert phonemize(compat, "en-us") == phonemize(plain, "en-us")


SYMBOLS = st.characters(categories=["So", "Po"], min_codepoint=0x2001, max_codepoint=0x2FFFF).filter(
    lambda char: clean_text(char, "en-us") == char  # a symbol the cleaning keeps (not a pictograph)
)


@settings(max_examples=150, deadline=None)
@given(SYMBOLS, st.sampled_from([("hello", "world"), ("good", "morning"), ("Zonos", "speaks")]))
def test_a_symbol_pressed_against_words_does_not_make_espeak_spell_them(symbol, words):
    first, second = words
    pressed = phonemize(f"{first}{symbol}{second}", "en-us").replace(" ", "")
    assert pressed == phonemize(f"{first} {symbol} {second}", "en-us").replace(" ", "")


@pytest.mark.parametrize("kept", ["5 * 3", "x**2", "5*3", "snake_case", "x_1", "fill in ___ here"])
def test_symbols_that_are_not_emphasis_stay(kept):
    assert clean_text(kept, "en-us") == kept


@pytest.mark.parametrize(
    "text", ["今日は\n晴れ", "東京\u3000タワー", "Hello world", "テスト✅完了", "- 項目一\n- 項目二", "**重要**です"]
)
def test_japanese_never_reads_a_space_or_a_removed_symbol_as_the_word_symbol(text):
    assert "キゴウ" not in normalize(text, "ja")
    assert normalize("記号です", "ja").startswith("キゴウ")  # the word "symbol" itself keeps its reading


@pytest.mark.parametrize("text", ["⠁⠃⠉", "\u2800\u2800\u2800", "→ ⇒ ⟶"])
def test_braille_and_arrows_alone_are_nothing_to_speak(text):
    with pytest.raises(NothingToSpeakError):
        split_text(text)


def test_a_lone_surrogate_is_a_clear_error():
    with pytest.raises(ValueError, match="lone UTF-16 surrogate"):
        split_text("a\ud800b")


_CRASHERS = """
import sys
from pipeline.text import NothingToSpeakError, phonemize
for text, language in [("ൕൗ", "en-us"), ("ൕാ", "en-gb"), ("൚ാ", "en-us"), ("௦ a", "en-us"), ("௦ a", "ml"), ("೦ a", "ml")]:
    for _ in range(60):
        try:
            phonemize(text, language)
        except NothingToSpeakError:
            pass
print("survived")
"""


def test_sequences_that_crashed_espeak_ng_are_kept_from_it():
    """Malayalam letter + vowel sign in en-us and foreign digits crashed espeak-ng 1.51 (SIGSEGV)
    after a few dozen calls: the process must survive them (a fresh interpreter, so a crash is seen)."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", _CRASHERS], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "survived" in result.stdout, result.returncode


@pytest.mark.parametrize(("digits", "language"), [("௧௨", "en-us"), ("೧೨", "ml"), ("੧੨", "hi"), ("١٢", "en-us")])
def test_foreign_digits_read_as_numbers(digits, language):
    assert phonemize(digits, language) == phonemize("12", language)


def test_a_scripts_own_language_keeps_its_digits():
    assert clean_text("२०२५", "hi") == "२०२५"
    assert clean_text("२०२५", "en-us") == "2025"
