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
from collections import Counter
from importlib import resources
from typing import Annotated

from phonemizer.backend import EspeakBackend
from pydantic import AfterValidator

from pipeline.cleaning import clean_text
from pipeline.numbers import normalize_numbers as _normalize_numbers

__all__ = [
    "LANGUAGES",
    "LANGUAGE_ALIASES",
    "LANGUAGE_DESCRIPTION",
    "PHONEME_VOCAB_SIZE",
    "LanguageCode",
    "MissingExtraError",
    "NothingToSpeakError",
    "UnsupportedLanguageError",
    "check_language",
    "has_speech",
    "language_id",
    "normalize",
    "phonemize",
    "speakable",
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

LANGUAGE_ALIASES = {
    "en": "en-us",
    "fr": "fr-fr",
    "zh": "cmn",  # written Chinese, read as Mandarin (yue, Cantonese, and hak, Hakka, are codes of their own)
    "no": "nb",  # Norwegian, as written: mostly Bokmål
    "gom": "kok",  # Goan Konkani, espeak-ng's Konkani (Devanagari)
    "gug": "gn",  # Paraguayan Guarani, espeak-ng's Guarani
}
"""ISO 639 codes -> the espeak-ng code meant, where the two differ: a language with regional variants
gets the one the project defaults to (en -> en-us, fr -> fr-fr). check_language accepts them, and
pipeline.language maps the detector's labels with them (no target is itself a key or a detector
label, so that mapping stays one-to-one)."""

# How many codes of LANGUAGES each primary subtag has: "en" 6 (en-us, en-gb, ...), "de" 1.
_VARIANTS = Counter(code.split("-")[0] for code in LANGUAGES)
# A BCP 47 script (Latn, Hans) or region (BR, CN, 419) subtag, once lower-cased
_SCRIPT_OR_REGION = re.compile(r"[a-z]{4}|[a-z]{2}|[0-9]{3}")

# espeak-ng, the Sudachi tokenizer and inflect keep per-instance state that is not safe to share
# between threads, and a server calls the front end from several threads at once (the splitter's
# worker threads). Every thread therefore gets its own instances (_per_thread below; inflect's in
# pipeline.numbers) and the front end is a pure function of its input. Against one lock around
# each call, 8 threads: split_text (what the server's TextSplitter threads run) was 1.1-1.5x faster
# with per-thread instances, since the espeak-ng calls (C, GIL released; each backend has its own
# copy of the library) overlap; normalisation alone (pure Python) was as fast or faster under a
# lock. Numbers: benchmarks/frontend_threads.py. Only the first call in a thread pays for its
# instances (an espeak-ng voice ~70 ms, a Sudachi tokenizer over the shared dictionary ~0.1 ms).


def _per_thread(factory):
    """Like functools.cache, but each thread gets its own instances; cache_clear() drops all of them."""
    state = {"local": threading.local()}

    @functools.wraps(factory)
    def cached(*args):
        local = state["local"]
        instances = local.__dict__.setdefault("instances", {})
        if args not in instances:
            instances[args] = factory(*args)
        return instances[args]

    cached.cache_clear = lambda: state.update(local=threading.local())
    return cached


class UnsupportedLanguageError(ValueError):
    """The language code is not one of the model's espeak-ng codes."""


class NothingToSpeakError(ValueError):
    """After cleaning (pipeline.cleaning) the text has nothing espeak-ng would pronounce: it is
    empty, whitespace, invisible characters, markup, pictographs, punctuation or characters of a
    script espeak-ng cannot read for the language. Audio is never generated for such text."""


class MissingExtraError(RuntimeError):
    """An optional dependency group (extra) needed for this input is not installed."""


def check_language(code: str) -> str:
    """The model's espeak-ng code (one of LANGUAGES) for `code`; UnsupportedLanguageError, naming the
    code, the number of codes, a few examples and any close ones, when no single code is meant.

    Accepted, in this order, written in any case with "-" or "_" (BCP 47 is case-blind: "EN_us"):
    1. a code of LANGUAGES: "en-us", "pt-br", "cmn";
    2. an ISO 639 code of LANGUAGE_ALIASES: "en" -> "en-us", "fr" -> "fr-fr", "zh" -> "cmn";
    3. a BCP 47 tag, language then script/region subtags, whose language (by 1 or 2) is the only
       code of LANGUAGES with its primary subtag: "zh-CN", "zh-Hans" -> "cmn", "de-AT" -> "de".
       Where the language has several codes the tag is refused, not guessed: "en-AU" (en-us? en-gb?),
       "es-MX" (es? es-419?), "pt-PT" (pt? pt-br?); the error suggests them.
    """
    if code in _LANGUAGE_IDS:
        return code
    canonical = str(code).strip().lower().replace("_", "-")  # "EN-US", "en_US": BCP 47 is case-blind
    resolved = _resolve_language(canonical)
    if resolved is not None:
        return resolved
    message = (
        f"unsupported language {code!r}: give one of the model's {len(LANGUAGES)} espeak-ng codes (en-us, en-gb, "
        "de, fr-fr, es, pt-br, ja, cmn, ...: the README's Languages section lists them) or an ISO 639-1 / BCP 47 "
        "tag that names exactly one (en, fr, zh-CN)"
    )
    suggestions = _close_languages(str(code))
    if suggestions:
        message += f"; did you mean {', '.join(suggestions)}?"
    raise UnsupportedLanguageError(message)


def _resolve_language(tag: str) -> str | None:
    """check_language's rules 1-3 for a lower-case, "-"-separated tag; None when none applies."""
    if tag in _LANGUAGE_IDS:
        return tag
    if tag in LANGUAGE_ALIASES:
        return LANGUAGE_ALIASES[tag]
    primary, *subtags = tag.split("-")
    if not subtags or not all(_SCRIPT_OR_REGION.fullmatch(subtag) for subtag in subtags):
        return None
    code = primary if primary in _LANGUAGE_IDS else LANGUAGE_ALIASES.get(primary)
    if code is None or _VARIANTS[code.split("-")[0]] != 1:
        return None
    return code


LanguageCode = Annotated[str, AfterValidator(check_language)]
"""A language as every request model and stored voice takes it: check_language's canonical espeak-ng
code (its rules, its error: a ValueError, so pydantic names the field)."""
LANGUAGE_DESCRIPTION = (
    "espeak-ng language code of the text (en-us, fr-fr, cmn, ...), or an ISO 639-1 / BCP 47 tag naming exactly one "
    "(fr -> fr-fr, zh-CN -> cmn)."
)
"""The description of a `language` field in API schemas (no module names: clients read it)."""


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

_DIGIT_RUN_RE = re.compile(r"[0-9]+")
_MAX_KANJIZE_DIGITS = 72  # kanjize has no unit beyond 無量大数 (10**68)


def normalize(text: str, language: str) -> str:
    """Clean `text` (pipeline.cleaning.clean_text), then spell out what espeak-ng would misread:
    numbers (English words for every language but Japanese, as in the reference) and, for
    Japanese, Sudachi's kana readings.

    Raises UnsupportedLanguageError for an unknown language and NothingToSpeakError (a ValueError)
    when nothing speakable is left after cleaning.
    """
    return _prepare(text, language, literal=False)


def speakable(text: str, language: str, *, literal: bool = False) -> str:
    """`text` cleaned for `language` (pipeline.cleaning.clean_text; `literal` is normalize=False).

    Raises UnsupportedLanguageError for an unknown language and NothingToSpeakError when the text
    is empty, whitespace, or nothing is left after cleaning.
    """
    language = check_language(language)
    if not text.strip():
        raise NothingToSpeakError("nothing to speak: text is empty or whitespace only")
    cleaned = clean_text(text, language, literal=literal)
    if not cleaned:
        raise NothingToSpeakError(
            "nothing to speak: the text has no speakable characters after cleaning (only invisible or "
            + ("layout characters" if literal else "layout characters, markup, pictographs")
            + f" or characters espeak-ng cannot read for {language!r})"
        )
    return cleaned


def _prepare(text: str, language: str, *, literal: bool) -> str:
    """What espeak-ng reads: the cleaned text, with number reading unless `literal`. Japanese
    always gets its kana readings (espeak-ng cannot read kanji), digits as kanji numerals."""
    language = check_language(language)
    cleaned = speakable(text, language, literal=literal)
    if "ja" in language:
        readings = _normalize_japanese(cleaned)
        if not readings:
            raise NothingToSpeakError("nothing to speak: the text has no Japanese reading (only symbols)")
        return readings
    return cleaned if literal else _normalize_numbers(cleaned)


def _normalize_japanese(text: str) -> str:
    """NFKC, digits -> kanji numerals, then Sudachi's katakana reading of each token, space-joined."""
    tokenizer, number2kanji = _japanese_tools()

    def kanji(match: re.Match) -> str:
        digits = match.group(0)
        if len(digits) <= _MAX_KANJIZE_DIGITS:
            return number2kanji(int(digits))
        return "".join(number2kanji(int(digit)) for digit in digits)

    text = _DIGIT_RUN_RE.sub(kanji, unicodedata.normalize("NFKC", text))
    readings = (_japanese_reading(morpheme) for morpheme in tokenizer.tokenize(text))
    return " ".join(reading for reading in readings if reading)


# Sudachi's reading of a symbol it has no reading for is "キゴウ" ("symbol"), and it reads a space
# (part of speech 空白) the same way: spoken, both would say "kigō" where the text has a pause.
_SYMBOL_READING = "キゴウ"
_WORD_SYMBOL = frozenset({"記号", "きごう", "キゴウ"})  # the word "symbol" itself keeps its reading


def _japanese_reading(morpheme) -> str:
    """A Sudachi morpheme's katakana reading; "" for whitespace; a punctuation mark read as
    itself and any other unreadable symbol dropped, never as the word "symbol"."""
    surface = morpheme.surface()
    if morpheme.part_of_speech()[0] == "空白" or not surface.strip():
        return ""
    reading = morpheme.reading_form()
    if reading != _SYMBOL_READING or surface in _WORD_SYMBOL:
        return reading
    return surface if all(unicodedata.category(char)[0] == "P" for char in surface) else ""


@_per_thread
def _japanese_tools():
    """This thread's Sudachi tokenizer (a tokenizer keeps state per call) and kanjize's number2kanji.

    The optional 'ja' extra is imported on first use; the slow dictionary is loaded once and shared
    (it is read-only), each thread makes its own tokenizer over it.
    """
    try:
        import sudachidict_core  # noqa: F401  (the "core" dictionary sudachipy loads below)
        from kanjize import number2kanji
        from sudachipy import SplitMode
    except ImportError as exc:
        raise MissingExtraError("Japanese text needs the 'ja' extra: pip install 'zonos-serve[ja]'") from exc
    return _sudachi_dictionary().tokenizer(mode=SplitMode.A), number2kanji


@functools.cache
def _sudachi_dictionary():
    """The Sudachi "core" dictionary, loaded once for all threads (read-only once loaded)."""
    with _SUDACHI_LOAD_LOCK:  # functools.cache alone would let racing threads each load one
        from sudachipy import Dictionary

        return Dictionary(dict="core")


_SUDACHI_LOAD_LOCK = threading.Lock()


# --- phonemes and ids ------------------------------------------------------------------------


def phonemize(text: str, language: str, *, normalize: bool = True) -> str:
    """Normalise `text` (see normalize()), then phonemise it with espeak-ng (stress marks and
    punctuation kept). normalize=False reads the text literally: cleaning keeps markup and
    pictographs and numbers are left to espeak-ng (pipeline.cleaning, "literal").

    Raises UnsupportedLanguageError and NothingToSpeakError like normalize(). The result may hold
    no phoneme (text of punctuation only): text_to_ids() refuses that.
    """
    language = check_language(language)
    normalized = _prepare(text, language, literal=not normalize)
    backend = _espeak(language)  # this thread's own: no other thread touches it
    # espeak-ng keeps state between calls: some characters (Cherokee, Hangul jamo after a
    # Latin consonant, ...) switch its voice or corrupt later readings. Re-selecting the
    # voice (~0.1 ms) makes every call independent of the ones before it.
    backend._espeak.set_voice(language)
    return backend.phonemize([normalized], strip=True)[0]


@_per_thread
def _espeak(language: str) -> EspeakBackend:
    """This thread's backend for `language`: creating one loads espeak-ng and its voice (~70 ms).

    Each EspeakBackend loads its own copy of the espeak-ng library (phonemizer copies the shared
    object so that instances do not share its global state), so threads never share a voice.
    """
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


def text_to_ids(text: str, language: str, *, normalize: bool = True) -> list[int]:
    """Text to the phoneme ids the model consumes: tokenize(phonemize(text, language, normalize=...)).

    Raises UnsupportedLanguageError, and NothingToSpeakError when the ids would hold no phoneme
    between BOS and EOS (only spaces and punctuation): the model must never speak from those.
    """
    ids = tokenize(phonemize(text, language, normalize=normalize))
    if not has_speech(ids):
        raise NothingToSpeakError(
            f"nothing to speak: {_preview(text)} reads as no phonemes (only punctuation, spaces or symbols "
            "espeak-ng does not pronounce)"
        )
    return ids


# Ids of phonemes proper: IPA letters, not stress or length marks, spaces, punctuation or UNK.
_SPEECH_IDS = frozenset(
    index
    for symbol, index in _SYMBOL_TO_ID.items()
    if unicodedata.category(symbol).startswith("L") and unicodedata.category(symbol) != "Lm"
)


def has_speech(ids: list[int]) -> bool:
    """Whether phoneme ids hold at least one phoneme (a letter of the IPA vocabulary) to speak."""
    return any(index in _SPEECH_IDS for index in ids)


def _preview(text: str, limit: int = 40) -> str:
    """repr() of `text`, shortened for error messages."""
    return repr(text if len(text) <= limit else text[:limit] + "…")
