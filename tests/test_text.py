"""Text front end: golden reference outputs, number reading rules, ids and error messages."""

import contextlib
import json
import string
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import text
from pipeline.text import (
    LANGUAGES,
    PHONEME_VOCAB_SIZE,
    MissingExtraError,
    NothingToSpeakError,
    UnsupportedLanguageError,
    check_language,
    language_id,
    normalize,
    phonemize,
    text_to_ids,
    tokenize,
)

GOLDEN = json.loads((Path(__file__).parent / "data" / "frontend.json").read_text(encoding="utf-8"))


# Where pipeline.numbers deliberately reads a number differently from the reference normaliser
# (README, "Numbers"), the normalised text differs but espeak-ng reads both alike, so the phonemes
# and ids must still match the reference exactly. Each entry: reference text -> ours.
NORMALIZED_DIFFERENCES = {
    "three point five% more": "three point five percent more",  # "%" after a number is spelled out
}


def _our_normalized(case: dict) -> str:
    expected = case["normalized"]
    for reference, ours in NORMALIZED_DIFFERENCES.items():
        expected = expected.replace(reference, ours)
    return expected


# Golden texts whose pictographs the reference reads aloud ("grinning face") and we, by default,
# do not (pipeline.cleaning). Read literally (normalize=False) they give the reference's phonemes
# and ids exactly; by default they read as the text without the pictograph. Reference text -> ours.
PICTOGRAPHS_UNSPOKEN = {"Emoji 😀 and symbols © ™ stay unknown.": "Emoji and symbols © ™ stay unknown."}


@pytest.mark.parametrize("case", GOLDEN, ids=[f"{c['language']}-{i}" for i, c in enumerate(GOLDEN)])
def test_matches_reference_front_end(case):
    if case["text"] in PICTOGRAPHS_UNSPOKEN:
        ours = PICTOGRAPHS_UNSPOKEN[case["text"]]
        assert phonemize(case["text"], case["language"], normalize=False) == case["phonemes"]
        assert text_to_ids(case["text"], case["language"], normalize=False) == case["ids"]
        assert normalize(case["text"], case["language"]) == ours
        assert phonemize(case["text"], case["language"]) == phonemize(ours, case["language"]) != case["phonemes"]
        return
    assert normalize(case["text"], case["language"]) == _our_normalized(case)
    assert phonemize(case["text"], case["language"]) == case["phonemes"]
    assert tokenize(case["phonemes"]) == case["ids"]
    assert text_to_ids(case["text"], case["language"]) == case["ids"]


def test_golden_set_covers_nine_cases():
    assert len(GOLDEN) == 9


def test_documented_differences_from_the_reference_keep_its_phonemes():
    for reference, ours in NORMALIZED_DIFFERENCES.items():
        cases = [case for case in GOLDEN if reference in case["normalized"]]
        assert cases, f"{reference!r} is in no golden case: drop it from NORMALIZED_DIFFERENCES"
        for case in cases:
            assert normalize(case["text"], case["language"]) != case["normalized"]
            assert ours in normalize(case["text"], case["language"])
            assert phonemize(case["text"], case["language"]) == case["phonemes"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("$1.01", "one dollar, one cent"),
        ("$0", "zero dollars"),
        ("$1", "one dollar"),
        ("$0.50", "fifty cents"),
        ("$2.01", "two dollars, one cent"),
        ("£5", "five pounds"),
        ("2000", "two thousand"),
        ("2005", "two thousand five"),
        ("2100", "twenty-one hundred"),
        ("1999", "nineteen ninety-nine"),
        ("1905", "nineteen oh five"),
        ("2024", "twenty twenty-four"),
        ("1000", "one thousand"),
        ("3000", "three thousand"),
        ("103", "one hundred three"),
        ("1,000,000", "one million"),
        ("3.5", "three point five"),
        ("1st", "first"),
        ("22nd", "twenty-second"),
        ("103rd", "one hundred and third"),
        # rules that differ from the reference normaliser (see pipeline/numbers.py)
        ("$0.5", "fifty cents"),
        ("$5.3 billion", "five point three billion dollars"),
        ("£1", "one pound"),
        ("3.14", "three point one four"),
        ("0.05", "zero point zero five"),
        ("1,234", "one thousand, two hundred thirty-four"),
        ("1,2", "one,two"),
        ("50%", "fifty percent"),
        ("5kg", "five kg"),
    ],
)
def test_english_number_rules(raw, expected):
    assert normalize(raw, "en-us") == expected


def test_numbers_use_english_words_in_other_languages():
    assert normalize("Ich habe 42 Bücher.", "de") == "Ich habe forty-two Bücher."


def test_numbers_beyond_inflect_are_read_digit_by_digit():
    assert normalize("1" * 40, "en-us") == " ".join(["one"] * 40)


def test_japanese_numbers_become_kanji_readings():
    assert normalize("２０２５年", "ja") == "ニセンニジュウゴ ネン"


@pytest.mark.parametrize("blank", ["", "   ", "\n\t"])
def test_empty_text_is_rejected(blank):
    with pytest.raises(ValueError, match="text is empty"):
        normalize(blank, "en-us")
    with pytest.raises(ValueError, match="text is empty"):
        text_to_ids(blank, "en-us")


def test_languages_table():
    assert len(LANGUAGES) == 109
    assert PHONEME_VOCAB_SIZE == 189
    assert {code: language_id(code) for code in ("en-us", "de", "fr-fr", "ja", "cmn")} == {
        "en-us": 24,
        "de": 16,
        "fr-fr": 35,
        "ja": 52,
        "cmn": 12,
    }
    assert all(language_id(code) == index for index, code in enumerate(LANGUAGES))
    assert check_language("en-gb") == "en-gb"


def test_language_codes_are_case_and_separator_blind():
    assert [check_language(code) for code in ("EN-US", "en_US", " De ", "fr_FR")] == ["en-us", "en-us", "de", "fr-fr"]
    assert text_to_ids("Hello", "EN_us") == text_to_ids("Hello", "en-us")
    assert normalize("２０２５年", "JA") == normalize("２０２５年", "ja")  # the Japanese path, not English numbers


def test_unknown_language_error_names_code_and_suggests():
    with pytest.raises(UnsupportedLanguageError) as info:
        check_language("en_USA")
    message = str(info.value)
    assert "'en_USA'" in message
    assert "pipeline." not in message  # clients read it: no module of ours
    assert "109" in message
    assert "did you mean en-us" in message
    assert isinstance(info.value, ValueError)


def test_unknown_language_without_close_match_has_no_suggestion():
    with pytest.raises(UnsupportedLanguageError) as info:
        language_id("klingon")
    assert "'klingon'" in str(info.value)
    assert "did you mean" not in str(info.value)


def test_unknown_language_is_rejected_before_any_work():
    with pytest.raises(UnsupportedLanguageError, match="'xx'"):
        text_to_ids("hello", "xx")


def test_tokenize_frames_with_bos_eos_and_maps_unknown_to_unk():
    assert tokenize("") == [2, 3]
    ids = tokenize("a😀™b")
    assert ids[0] == 2 and ids[-1] == 3
    assert ids[2:4] == [1, 1]
    assert 1 not in (ids[1], ids[4])


def test_missing_japanese_extra(monkeypatch):
    text._japanese_tools.cache_clear()
    monkeypatch.setitem(sys.modules, "sudachipy", None)  # makes "import sudachipy" fail
    try:
        with pytest.raises(MissingExtraError, match=r"pip install 'zonos-serve\[ja\]'"):
            normalize("今日は", "ja")
    finally:
        text._japanese_tools.cache_clear()


def test_missing_espeak_library(monkeypatch):
    text._espeak.cache_clear()
    monkeypatch.setattr(text.EspeakBackend, "is_available", classmethod(lambda cls: False))
    try:
        with pytest.raises(RuntimeError, match="apt-get install espeak-ng"):
            phonemize("hello", "en-us")
    finally:
        text._espeak.cache_clear()


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=string.ascii_letters + string.digits + " .,;:!?-$£%'", min_size=1, max_size=60))
def test_english_normalisation_leaves_no_digits(raw):
    with contextlib.suppress(NothingToSpeakError):  # e.g. "- ": a list marker and nothing else
        assert not any(char in string.digits for char in normalize(raw, "en-us"))


@given(st.text(max_size=50))
def test_tokenize_is_framed_and_in_vocabulary(phonemes):
    ids = tokenize(phonemes)
    assert ids[0] == 2 and ids[-1] == 3
    assert len(ids) == len(phonemes) + 2
    assert all(0 <= i < PHONEME_VOCAB_SIZE for i in ids)


@pytest.mark.parametrize("poison", ["ꮔ", "Bა", "Ꭰ"])
def test_a_strange_request_does_not_change_later_readings(poison):
    before = phonemize("hello there", "en-us")
    with contextlib.suppress(NothingToSpeakError):  # cleaning may take the whole poison away
        phonemize(poison, "en-us")
    phonemize(f"{poison} a", "en-us")
    assert phonemize("hello there", "en-us") == before
