"""Text segmentation: where texts are cut, true id counts under the limit, nothing lost."""

import random
import unicodedata

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pipeline.cleaning import clean_text
from pipeline.segment import (
    DEFAULT_MAX_TOKENS,
    MIN_MAX_TOKENS,
    TINY_TOKENS,
    Segment,
    split_text,
)
from pipeline.text import NothingToSpeakError, UnsupportedLanguageError, has_speech, phonemize, text_to_ids, tokenize


def texts(segments: list[Segment]) -> list[str]:
    return [segment.text for segment in segments]


def without_whitespace(text: str) -> str:
    return "".join(text.split())


def is_silent(text: str, language: str) -> bool:
    """Whether text reads as no phoneme (split_text may drop such pieces)."""
    try:
        return not has_speech(tokenize(phonemize(text, language)))
    except NothingToSpeakError:
        return True


def check_segments(text: str, language: str, max_tokens: int, segments: list[Segment]) -> None:
    """The invariants every split must keep: all text with speech, in order, exact counts under the
    limit, offsets into the original text, a phoneme in every segment."""
    assert segments
    assert [segment.index for segment in segments] == list(range(len(segments)))
    previous_end = 0
    for segment in segments:
        assert segment.text == text[segment.start : segment.end] == segment.text.strip() != ""
        assert segment.start >= previous_end
        gap = text[previous_end : segment.start]
        assert not gap.strip() or is_silent(gap, language)  # only pieces without speech are left out
        previous_end = segment.end
        assert segment.phoneme_ids == text_to_ids(segment.text, language)
        assert has_speech(segment.phoneme_ids)
        assert segment.n_tokens == len(segment.phoneme_ids) <= max_tokens
    assert not text[previous_end:].strip() or is_silent(text[previous_end:], language)


# --- sentence ends ---------------------------------------------------------------------------


def test_splits_at_sentence_ends():
    text = "The weather was lovely this morning. Did you see the sunrise over the hills? What a sight it was!"
    assert texts(split_text(text)) == [
        "The weather was lovely this morning.",
        "Did you see the sunrise over the hills?",
        "What a sight it was!",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Mr. Smith and Mrs. Jones met Dr. Brown on Main St. at noon today.",
        "Fruit, e.g. apples, i.e. the red ones, etc. are healthy vs. sweets.",
        "She works for the U.S. Department of State in the capital city.",
        "The rate rose to 3.5 percent, and J. R. R. Tolkien wrote about it.",
        '"Stop!" she shouted, and then... well, nobody moved at all.',
    ],
)
def test_abbreviations_decimals_and_lower_case_continuations_do_not_split(text):
    assert texts(split_text(text)) == [text]


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        (
            "今天天气很好，我们去公园散步吧。明天会下雨吗？我不知道！",
            "cmn",
            ["今天天气很好，我们去公园散步吧。", "明天会下雨吗？", "我不知道！"],
        ),
        ("मैं आज बाज़ार जा रहा हूँ। क्या तुम मेरे साथ चलोगे?", "hi", ["मैं आज बाज़ार जा रहा हूँ।", "क्या तुम मेरे साथ चलोगे?"]),
        (
            "كيف حالك اليوم يا صديقي العزيز؟ أنا بخير، شكرا جزيلا.",
            "ar",
            ["كيف حالك اليوم يا صديقي العزيز؟", "أنا بخير، شكرا جزيلا."],
        ),
        (
            "Բարև ձեզ, ինչպես եք այսօր։ Ես լավ եմ, շնորհակալություն։",
            "hy",
            ["Բարև ձեզ, ինչպես եք այսօր։", "Ես լավ եմ, շնորհակալություն։"],
        ),
        ("ሰላም እንዴት ነህ ዛሬ። እኔ ደህና ነኝ አመሰግናለሁ።", "am", ["ሰላም እንዴት ነህ ዛሬ።", "እኔ ደህና ነኝ አመሰግናለሁ።"]),
        (
            "Τι κάνεις σήμερα το πρωί; Είμαι πολύ καλά, ευχαριστώ.",
            "el",
            ["Τι κάνεις σήμερα το πρωί;", "Είμαι πολύ καλά, ευχαριστώ."],
        ),
    ],
)
def test_sentence_ends_of_other_scripts(text, language, expected):
    assert texts(split_text(text, language)) == expected


def test_greek_question_mark_is_only_a_sentence_end_in_greek():
    text = "Τι κάνεις σήμερα το πρωί; Είμαι πολύ καλά, ευχαριστώ."
    assert texts(split_text(text, "en-us")) == [text]


def test_line_breaks_end_sentences():
    text = "The first line has no full stop\n\n  the second line has none either\r\nAnd a third one follows here"
    assert texts(split_text(text)) == [
        "The first line has no full stop",
        "the second line has none either",
        "And a third one follows here",
    ]


# --- over-long sentences ---------------------------------------------------------------------


def test_long_sentence_is_cut_at_clause_punctuation():
    clauses = [
        "the quiet river wandered slowly through the valley",
        "past the mill where the children used to play",
        "under the old bridge that nobody remembers building",
        "and out towards the grey and restless sea",
    ]
    text = ", ".join(clauses) + "."
    segments = split_text(text, max_tokens=64)
    assert len(segments) > 1
    assert all(segment.text.endswith(",") for segment in segments[:-1])
    check_segments(text, "en-us", 64, segments)


def test_cjk_clauses_need_no_space():
    text = "我们今天早上去了公园，" * 12 + "然后回家了。"
    segments = split_text(text, "cmn", max_tokens=120)
    assert len(segments) > 1
    assert all(segment.text.endswith("，") for segment in segments[:-1])
    check_segments(text, "cmn", 120, segments)


def test_sentence_without_punctuation_is_cut_between_words():
    text = " ".join(["many small words follow each other without any punctuation at all"] * 8)
    segments = split_text(text, max_tokens=40)
    assert len(segments) > 1
    assert all(text[segment.end].isspace() for segment in segments[:-1])
    check_segments(text, "en-us", 40, segments)


def test_text_without_spaces_is_cut_between_characters():
    text = "supercalifragilisticexpialidocious" * 6
    segments = split_text(text, max_tokens=32)
    assert len(segments) > 1
    check_segments(text, "en-us", 32, segments)


def test_hard_cuts_keep_combining_marks_with_their_letter():
    text = "e\u0301" * 150  # "é" spelled as e + combining acute accent
    segments = split_text(text, max_tokens=16)
    assert len(segments) > 1
    assert not any(unicodedata.combining(segment.text[0]) for segment in segments)
    check_segments(text, "en-us", 16, segments)


def test_character_that_alone_exceeds_the_limit_is_an_error():
    assert len(text_to_ids("⨌", "en-us")) > MIN_MAX_TOKENS  # espeak names the symbol in a phrase
    with pytest.raises(ValueError, match="alone reads as"):
        split_text("⨌", max_tokens=MIN_MAX_TOKENS)


# --- tiny pieces -----------------------------------------------------------------------------


def test_tiny_sentences_join_a_neighbour():
    assert len(text_to_ids("Yes.", "en-us")) < TINY_TOKENS
    assert len(text_to_ids("Thanks.", "en-us")) < TINY_TOKENS
    text = "Yes. The meeting will start at nine in the morning tomorrow. Thanks."
    assert texts(split_text(text)) == [text]


def test_tiny_sentence_stays_alone_when_joining_would_exceed_the_limit():
    long_sentence = "The meeting will start at nine in the morning tomorrow."
    limit = len(text_to_ids(long_sentence, "en-us"))
    assert texts(split_text(f"Yes. {long_sentence}", max_tokens=limit)) == ["Yes.", long_sentence]


def test_tiny_pieces_choose_the_shorter_neighbour():
    text = "I walked all the way down to the harbour this morning. Yes. It was fine."
    assert texts(split_text(text)) == ["I walked all the way down to the harbour this morning.", "Yes. It was fine."]


# --- odd inputs and validation ---------------------------------------------------------------


@pytest.mark.parametrize("blank", ["", " ", "\n\t \u2028 \u3000"])
def test_empty_or_blank_text_is_nothing_to_speak(blank):
    with pytest.raises(NothingToSpeakError, match="nothing to speak: text is empty"):
        split_text(blank)


@pytest.mark.parametrize(
    "text",
    [
        "...",
        "?!",
        "  ---  ",
        "\u200b",
        "\u200b\u200d\ufeff\u2060\u00ad",
        "😀 ✅ 👍🏽",
        "```\n```",
        "|---|---|",
        "\uaa81",
    ],
)
def test_text_without_speech_is_nothing_to_speak(text):
    with pytest.raises(NothingToSpeakError, match="nothing to speak") as info:
        split_text(text)
    assert isinstance(info.value, ValueError)


def test_pieces_without_speech_join_a_neighbour_or_are_dropped():
    text = "### Title\n\n---\n\nThe body of the text is here.\n\n```\n"
    segments = split_text(text)
    check_segments(text, "en-us", DEFAULT_MAX_TOKENS, segments)
    assert "".join(texts(segments)).startswith("### Title")
    limit = len(text_to_ids("The body of the text is here.", "en-us"))
    segments = split_text("...\nThe body of the text is here.\n...", max_tokens=limit)
    assert texts(segments) == ["The body of the text is here."]  # joining would not fit: dropped


def test_line_breaks_in_joined_segments_are_not_unknown_ids():
    (segment,) = split_text("Yes.\nNo.")
    assert segment.text == "Yes.\nNo."
    assert 1 not in segment.phoneme_ids
    assert segment.phoneme_ids == text_to_ids("Yes. No.", "en-us")


def test_markup_pictographs_and_invisible_characters_reach_no_segment_ids():
    text = "## Shopping list\n\n- **eggs** ✅\n- *milk* \u200b😀\n\n| item | price |\n|---|---|\n| bread | cheap |"
    segments = split_text(text)
    check_segments(text, "en-us", DEFAULT_MAX_TOKENS, segments)
    ids = [i for segment in segments for i in segment.phoneme_ids]
    assert 1 not in ids
    cleaned = ". ".join(clean_text(segment.text, "en-us") for segment in segments)
    assert cleaned == "Shopping list. eggs. milk. item, price. bread, cheap"


def test_literal_split_reads_markup():
    (segment,) = split_text("## Heading", normalize=False)
    assert segment.phoneme_ids == text_to_ids("## Heading", "en-us", normalize=False) != text_to_ids("Heading", "en-us")


def test_max_tokens_must_be_at_least_the_minimum():
    with pytest.raises(ValueError, match=f"at least {MIN_MAX_TOKENS}"):
        split_text("Hello there.", max_tokens=MIN_MAX_TOKENS - 1)
    assert texts(split_text("Hello there.", max_tokens=MIN_MAX_TOKENS)) == ["Hello there."]


def test_unknown_language_is_rejected_even_for_empty_text():
    with pytest.raises(UnsupportedLanguageError, match="'xx'"):
        split_text("", "xx")
    with pytest.raises(UnsupportedLanguageError):
        split_text("Hello there.", "english")


def test_segment_model_is_frozen_and_consistent():
    segment = Segment(index=0, text="Hi.", start=4, end=7, n_tokens=5, phoneme_ids=[2, 50, 60, 4, 3])
    with pytest.raises(ValidationError):
        segment.index = 1
    with pytest.raises(ValidationError, match="n_tokens"):
        Segment(index=0, text="Hi.", start=0, end=3, n_tokens=4, phoneme_ids=[2, 50, 60, 4, 3])
    with pytest.raises(ValidationError, match="whitespace"):
        Segment(index=0, text="Hi. ", start=0, end=4, n_tokens=5, phoneme_ids=[2, 50, 60, 4, 3])
    with pytest.raises(ValidationError, match="offsets"):
        Segment(index=0, text="Hi.", start=0, end=5, n_tokens=5, phoneme_ids=[2, 50, 60, 4, 3])


# --- properties ------------------------------------------------------------------------------


# Characters that break espeak-ng 1.51 (Cherokee, U+A700-ABFF, Hangul jamo...) are included on
# purpose: cleaning replaces them (pipeline.cleaning), so they cannot disturb later tests.
@settings(max_examples=150, deadline=None)
@given(st.text(st.characters(codec="utf-8")), st.sampled_from([64, 100, DEFAULT_MAX_TOKENS]))
def test_random_unicode_text_keeps_every_invariant(text, max_tokens):
    try:
        segments = split_text(text, max_tokens=max_tokens)
    except NothingToSpeakError:
        assert is_silent(text, "en-us")
        return
    check_segments(text, "en-us", max_tokens, segments)


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet="今天气很好我们去公园散步吧明会下雨吗不知道，。！？、 \n", max_size=300), st.integers(32, 200))
def test_random_chinese_text_keeps_every_invariant(text, max_tokens):
    try:
        segments = split_text(text, "cmn", max_tokens)
    except NothingToSpeakError:
        assert is_silent(text, "cmn")
        return
    check_segments(text, "cmn", max_tokens, segments)


WORDS = [
    *["the", "a", "river", "of", "light", "over", "quiet", "mountains", "and", "we", "said", "hello", "to", "everyone"],
    *["who", "came", "by", "yesterday", "supercalifragilisticexpialidocious", "I'm", "fine", "naïve", "café"],
    *["Mr.", "Smith", "e.g.", "U.S.", "3.5", "42", "1st", "$5"],
]
SEPARATORS = [" "] * 30 + [", ", ". ", "! ", "? ", "; ", " — ", "\n", "\n\n", "... ", "。", ": "]


def long_text(rng: random.Random, n_chars: int) -> str:
    """Random words and punctuation, sometimes a long run without spaces or stops."""
    parts = []
    length = 0
    while length < n_chars:
        if rng.random() < 0.002:
            part = "".join(rng.choices(WORDS, k=rng.randint(20, 200)))
        else:
            part = rng.choice(WORDS) + rng.choice(SEPARATORS)
        parts.append(part)
        length += len(part)
    return "".join(parts)[:n_chars]


# Shrinking a seed teaches nothing and each example takes a second or two: generate only.
@settings(max_examples=4, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(st.integers(0, 2**32 - 1), st.sampled_from([MIN_MAX_TOKENS, 50, DEFAULT_MAX_TOKENS]))
def test_long_texts_keep_every_invariant(seed, max_tokens):
    text = long_text(random.Random(seed), 20_000)
    segments = split_text(text, max_tokens=max_tokens)
    check_segments(text, "en-us", max_tokens, segments)
    for i, segment in enumerate(segments):
        if segment.n_tokens < TINY_TOKENS:  # a tiny segment is alone only because it could not join
            for low, high in [(i - 1, i), (i, i + 1)]:
                if low >= 0 and high < len(segments):
                    joined = text[segments[low].start : segments[high].end]
                    assert len(text_to_ids(joined, "en-us")) > max_tokens


def test_default_limit_on_long_english_text():
    text = long_text(random.Random(7), 20_000)
    segments = split_text(text)
    assert max(segment.n_tokens for segment in segments) <= DEFAULT_MAX_TOKENS
