"""Text front end: normalise text, phonemise it with espeak-ng and map phonemes to model ids.

Zonos v0.1 was trained on espeak-ng phonemes of normalised text, so the steps and their quirks
(English number words for every language but Japanese, espeak language-switch markers such as
"(en)", the character-level vocabulary) must match the reference front end exactly.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
import threading
import unicodedata
from importlib import resources

from phonemizer.backend import EspeakBackend

__all__ = [
    "LANGUAGES",
    "PHONEME_VOCAB_SIZE",
    "MissingExtraError",
    "UnsupportedLanguageError",
    "check_language",
    "language_id",
    "normalize",
    "phonemize",
    "text_to_ids",
    "tokenize",
]


def _load_json(name: str) -> dict:
    """Read package data, so it works from a wheel as well as from a checkout."""
    return json.loads(resources.files(__package__).joinpath("data", name).read_text(encoding="utf-8"))


_VOCAB = _load_json("phoneme_vocab.json")
_SYMBOL_TO_ID: dict[str, int] = _VOCAB["symbol_to_id"]
_UNK, _BOS, _EOS = (_VOCAB["special"][name] for name in ("UNK", "BOS", "EOS"))
_PUNCTUATION_MARKS: str = _VOCAB["punctuation_marks"]

PHONEME_VOCAB_SIZE: int = _VOCAB["vocab_size"]
"""Size of the phoneme embedding table (189): ids are always below this."""

LANGUAGES: tuple[str, ...] = tuple(_load_json("languages.json")["codes"])
"""The espeak-ng language codes the model knows; a code's index is its language id."""

_LANGUAGE_IDS = {code: index for index, code in enumerate(LANGUAGES)}

# espeak-ng and the Sudachi tokenizer keep per-instance state that is not safe to share between
# threads, and a server may call the front end from several threads at once.
_TOOLS_LOCK = threading.Lock()


class UnsupportedLanguageError(ValueError):
    """The language code is not one of the model's espeak-ng codes."""


class MissingExtraError(RuntimeError):
    """An optional dependency group (extra) needed for this input is not installed."""


def check_language(code: str) -> str:
    """Return `code` if the model supports it; otherwise raise UnsupportedLanguageError with hints."""
    if code in _LANGUAGE_IDS:
        return code
    message = (
        f"unsupported language {code!r}: see pipeline.text.LANGUAGES "
        f"({len(LANGUAGES)} espeak-ng codes such as en-us, de, fr-fr, ja, cmn)"
    )
    suggestions = _close_languages(str(code))
    if suggestions:
        message += f"; did you mean {', '.join(suggestions)}?"
    raise UnsupportedLanguageError(message)


def _close_languages(code: str) -> list[str]:
    """Codes a user probably meant: spelling neighbours, then regional variants ("en" -> en-us...)."""
    wanted = code.strip().lower().replace("_", "-")
    primary = wanted.split("-")[0]
    variants = sorted((c for c in LANGUAGES if c.split("-")[0] == primary), key=lambda c: (len(c), c))
    fuzzy = difflib.get_close_matches(wanted, LANGUAGES, n=3)
    return list(dict.fromkeys(fuzzy + variants))[:5]


def language_id(code: str) -> int:
    """Index of `code` in LANGUAGES, the id the model's language embedding expects."""
    return _LANGUAGE_IDS[check_language(code)]


# --- normalisation ---------------------------------------------------------------------------

_THOUSANDS_RE = re.compile(r"[0-9][0-9,]+[0-9]")
_DIGIT_RUN_RE = re.compile(r"[0-9]+")
_POUNDS_RE = re.compile(r"£([0-9]+)")
_DOLLARS_RE = re.compile(r"\$([0-9.]*[0-9]+)")
_DECIMAL_RE = re.compile(r"[0-9]+\.[0-9]+")
_ORDINAL_RE = re.compile(r"([0-9]+)(?:st|nd|rd|th)")

_MAX_INFLECT_DIGITS = 36  # inflect cannot name numbers of 10**36 and above
_MAX_KANJIZE_DIGITS = 72  # kanjize has no unit beyond 無量大数 (10**68)


def normalize(text: str, language: str) -> str:
    """Spell out what espeak-ng would misread: numbers (and, for Japanese, kanji readings)."""
    check_language(language)
    if not text.strip():
        raise ValueError("text is empty or whitespace only: there is nothing to speak")
    if "ja" in language:
        return _normalize_japanese(text)
    return _normalize_numbers(text)


def _normalize_numbers(text: str) -> str:
    """English number reading, applied to every non-Japanese language as in the reference."""
    text = _THOUSANDS_RE.sub(lambda m: m.group(0).replace(",", ""), text)
    text = _DIGIT_RUN_RE.sub(_spell_long_digit_run, text)
    text = _POUNDS_RE.sub(r"\1 pounds", text)
    text = _DOLLARS_RE.sub(_expand_dollars, text)
    text = _DECIMAL_RE.sub(lambda m: m.group(0).replace(".", " point "), text)
    text = _ORDINAL_RE.sub(_ordinal, text)
    return _DIGIT_RUN_RE.sub(lambda m: _cardinal(int(m.group(0))), text)


@functools.cache
def _inflect():
    """The inflect engine, made on first use because importing inflect takes about a second."""
    import inflect

    return inflect.engine()


def _spell_long_digit_run(match: re.Match) -> str:
    """Read digit runs too long for a number name digit by digit (and keep int() within limits)."""
    digits = match.group(0)
    if len(digits) <= _MAX_INFLECT_DIGITS:
        return digits
    return " ".join(_inflect().number_to_words(int(digit)) for digit in digits)


def _expand_dollars(match: re.Match) -> str:
    """`$D.C` -> "D dollars, C cents" with singular units for 1; the numbers are spelled later."""
    amount = match.group(1)
    parts = amount.split(".")
    if len(parts) > 2:
        return f"{amount} dollars"  # not a money amount; leave the digits to the other rules
    dollars = int(parts[0] or 0)
    cents = int(parts[1] or 0) if len(parts) == 2 else 0
    dollar_words = f"{dollars} {'dollar' if dollars == 1 else 'dollars'}"
    cent_words = f"{cents} {'cent' if cents == 1 else 'cents'}"
    if dollars and cents:
        return f"{dollar_words}, {cent_words}"
    if dollars:
        return dollar_words
    if cents:
        return cent_words
    return "zero dollars"


def _ordinal(match: re.Match) -> str:
    """1st -> "first", 103rd -> "one hundred and third" (inflect's default keeps the "and")."""
    return _inflect().ordinal(_inflect().number_to_words(int(match.group(1))))


def _cardinal(number: int) -> str:
    """Numbers 1001..2999 are read as years; the rest as plain words without "and"."""
    words = _inflect().number_to_words
    if not 1000 < number < 3000:
        return words(number, andword="")
    if number == 2000:
        return "two thousand"
    if 2000 < number < 2010:
        return f"two thousand {words(number - 2000)}"
    century, rest = divmod(number, 100)
    if rest == 0:
        return f"{words(century)} hundred"
    if rest < 10:
        return f"{words(century)} oh {words(rest)}"
    return f"{words(century)} {words(rest)}"


def _normalize_japanese(text: str) -> str:
    """NFKC, digits -> kanji numerals, then Sudachi's katakana reading of each token, space-joined."""
    tokenizer, number2kanji = _japanese_tools()

    def kanji(match: re.Match) -> str:
        digits = match.group(0)
        if len(digits) <= _MAX_KANJIZE_DIGITS:
            return number2kanji(int(digits))
        return "".join(number2kanji(int(digit)) for digit in digits)

    text = _DIGIT_RUN_RE.sub(kanji, unicodedata.normalize("NFKC", text))
    with _TOOLS_LOCK:
        return " ".join(morpheme.reading_form() for morpheme in tokenizer.tokenize(text))


@functools.cache
def _japanese_tools():
    """Import the optional 'ja' extra on first use and load the Sudachi dictionary only once (slow)."""
    try:
        import sudachidict_core  # noqa: F401  (the "core" dictionary sudachipy loads below)
        from kanjize import number2kanji
        from sudachipy import Dictionary, SplitMode
    except ImportError as exc:
        raise MissingExtraError("Japanese text needs the 'ja' extra: pip install 'zonos-serve[ja]'") from exc
    return Dictionary(dict="core").tokenizer(mode=SplitMode.A), number2kanji


# --- phonemes and ids ------------------------------------------------------------------------


def phonemize(text: str, language: str) -> str:
    """Normalise `text`, then phonemise it with espeak-ng (stress marks, punctuation kept)."""
    normalized = normalize(text, language)
    with _TOOLS_LOCK:
        backend = _espeak(language)
        # espeak-ng keeps state between calls: some characters (Cherokee, Hangul jamo after a
        # Latin consonant, ...) switch its voice or corrupt later readings. Re-selecting the
        # voice (~0.1 ms) makes every call independent of the ones before it.
        backend._espeak.set_voice(language)
        return backend.phonemize([normalized], strip=True)[0]


@functools.cache
def _espeak(language: str) -> EspeakBackend:
    """One backend per language: creating one loads espeak-ng and its voice, which is slow."""
    if not EspeakBackend.is_available():
        raise RuntimeError(
            "the espeak-ng library was not found: install the system package espeak-ng "
            "(e.g. apt-get install espeak-ng), or point PHONEMIZER_ESPEAK_LIBRARY at libespeak-ng"
        )
    return EspeakBackend(
        language,
        punctuation_marks=_PUNCTUATION_MARKS,
        preserve_punctuation=True,
        with_stress=True,
    )


def tokenize(phonemes: str) -> list[int]:
    """One id per character, framed by BOS and EOS; characters outside the vocabulary become UNK."""
    return [_BOS, *(_SYMBOL_TO_ID.get(char, _UNK) for char in phonemes), _EOS]


def text_to_ids(text: str, language: str) -> list[int]:
    """Text to the phoneme ids the model consumes: tokenize(phonemize(text, language))."""
    return tokenize(phonemize(text, language))
