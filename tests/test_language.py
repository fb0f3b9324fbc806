"""pipeline.language.detect_language: natural sentences in many languages, the fallback for short,
unclear or unspeakable text, its contract for any Unicode text, and determinism across processes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.language import DETECT_CHARS, detect_language, guess_language
from pipeline.text import LANGUAGE_ALIASES, LANGUAGES, UnsupportedLanguageError, check_language

# Everyday sentences written for this test (not taken from the detector's training data), by the
# espeak-ng code the model should read them in.
SENTENCES = {
    "en-us": [
        "The train to Manchester was delayed by almost an hour, so we had coffee on the platform.",
        "Could you remind me to call my sister tomorrow morning before I leave for work?",
    ],
    "fr-fr": [
        "Je voudrais réserver une table pour quatre personnes samedi soir, si possible près de la fenêtre.",
        "Il a plu toute la journée, alors nous sommes restés à la maison pour lire.",
    ],
    "de": [
        "Wir haben gestern Abend im Garten gegrillt, bis es plötzlich angefangen hat zu regnen.",
        "Kannst du mir bitte sagen, wann der nächste Bus zum Hauptbahnhof fährt?",
    ],
    "es": [
        "Mañana vamos a la playa con mis primos, así que tengo que preparar los bocadillos esta noche.",
        "¿Sabes a qué hora abre la farmacia los domingos?",
    ],
    "it": [
        "Ieri sera abbiamo cenato in una piccola trattoria vicino al porto e il pesce era freschissimo.",
        "Scusi, mi sa dire dov'è la fermata dell'autobus per la stazione?",
    ],
    "pt": [
        "Ontem à noite fomos ao cinema e depois jantámos num restaurante perto do rio.",
        "A minha avó planta tomates e alfaces no quintal todos os anos.",
    ],
    "nl": [
        "Vanochtend fietste ik naar mijn werk, maar halverwege kreeg ik een lekke band.",
        "De bakker op de hoek verkoopt het lekkerste brood van de hele stad.",
    ],
    "ru": [
        "Вчера вечером мы долго гуляли по набережной и разговаривали о путешествиях.",
        "Скажите, пожалуйста, как пройти к ближайшей станции метро?",
    ],
    "pl": [
        "W sobotę pojechaliśmy nad jezioro i przez cały dzień pływaliśmy łódką.",
        "Czy mógłbyś mi pomóc przenieść te pudełka do piwnicy?",
    ],
    "sv": [
        "Vi åkte till stugan i helgen och plockade blåbär i skogen hela dagen.",
        "Min bror har precis börjat arbeta som lärare i en liten skola i norr.",
    ],
    "tr": [
        "Dün akşam arkadaşlarımla sahilde uzun bir yürüyüş yaptık ve balık yedik.",
        "Annem her sabah kahvaltıda taze ekmek ve peynir hazırlar.",
    ],
    "ja": [
        "昨日は雨が降っていたので、一日中家で本を読んでいました。",
        "来週の月曜日に友達と京都へ旅行に行く予定です。",
    ],
    "cmn": [
        "我们明天早上八点在学校门口见面，然后一起去博物馆参观。",
        "他每天下班以后都会去公园跑步，已经坚持了三年。",
    ],
    "ko": [
        "어제 친구들과 함께 한강 공원에서 자전거를 탔어요.",
        "우리 어머니는 매주 일요일마다 김치찌개를 끓여 주세요.",
    ],
    "ar": [
        "ذهبنا أمس إلى السوق القديم واشترينا الكثير من التوابل والفواكه.",
        "هل يمكنك أن تخبرني متى يغادر القطار القادم إلى المدينة؟",
    ],
    "hi": [
        "कल शाम हम सब परिवार के साथ बाज़ार गए और बहुत सारी मिठाइयाँ खरीदीं।",
        "क्या आप मुझे बता सकते हैं कि अस्पताल यहाँ से कितनी दूर है?",
    ],
    "el": [
        "Χθες το βράδυ πήγαμε στην ταβέρνα του χωριού και φάγαμε φρέσκο ψάρι.",
        "Το καλοκαίρι περνάμε πάντα δύο εβδομάδες στο νησί της γιαγιάς μου.",
    ],
    "vi": [
        "Hôm qua chúng tôi đi dạo quanh hồ và ăn phở ở một quán nhỏ gần đó.",
        "Bạn có biết mấy giờ thì siêu thị đóng cửa không?",
    ],
}
CASES = [(code, sentence) for code, sentences in SENTENCES.items() for sentence in sentences]

# Too short to tell, not language, or a language the model does not speak: the default comes back.
UNCLEAR = [
    "",
    "   ",
    "ok",
    "Paris",
    "Hello",
    "Ciao",
    "12345",
    "iPhone 15 Pro Max",
    "😀🎉👍",
    "<b>bold</b>",
    "שלום, מה שלומך היום? אני הולך לחנות לקנות לחם.",  # Hebrew: no espeak-ng voice in the model
    "สวัสดีครับ วันนี้อากาศดีมาก ผมจะไปตลาด",  # Thai: likewise
]


def test_the_table_uses_our_codes():
    assert set(SENTENCES) <= set(LANGUAGES)


@pytest.mark.parametrize(("code", "sentence"), CASES, ids=[f"{c}-{i % 2}" for i, (c, _) in enumerate(CASES)])
def test_sentences_are_detected(code, sentence):
    assert detect_language(sentence) == code
    assert guess_language(sentence) == code
    # a different default changes nothing when the text is clear
    assert detect_language(sentence, default="ja" if code != "ja" else "de") == code


@pytest.mark.parametrize("text", UNCLEAR)
@pytest.mark.parametrize("default", ["en-us", "de", "fr-fr"])
def test_unclear_text_gets_the_default(text, default):
    assert guess_language(text) is None
    assert detect_language(text, default=default) == default


def test_the_default_is_canonicalised_and_checked():
    assert detect_language("ok", default="EN_gb") == "en-gb"
    with pytest.raises(UnsupportedLanguageError, match="klingon"):
        detect_language("ok", default="klingon")


def test_only_the_first_detect_chars_are_read():
    french = " ".join(SENTENCES["fr-fr"])
    english = " ".join(SENTENCES["en-us"])
    head = (french + " ") * (DETECT_CHARS // len(french) + 1)
    assert detect_language(english * 50) == "en-us"
    assert detect_language(head[:DETECT_CHARS] + english * 50) == "fr-fr"
    assert detect_language(french * 50, default="de") == "fr-fr"
    assert detect_language("a" * DETECT_CHARS + french * 50, default="de") == "de"  # only the "a"s are read


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(codec=None, exclude_categories=()), max_size=300), st.sampled_from(LANGUAGES))
def test_any_text_gives_a_supported_code(text, default):
    """Any str (lone surrogates, emoji, controls, mixed scripts) gives one of our codes, the same twice."""
    code = detect_language(text, default=default)
    assert code in LANGUAGES
    assert detect_language(text, default=default) == code


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([s for _, s in CASES] + UNCLEAR), min_size=1, max_size=4).map(" ".join))
def test_mixtures_of_real_sentences_give_a_supported_code(text):
    assert detect_language(text) in LANGUAGES


def test_the_same_answers_in_another_process():
    """No hash-seed or load-order dependence: a fresh interpreter with another PYTHONHASHSEED agrees."""
    texts = [s for _, s in CASES] + UNCLEAR + ["你好", "Merci beaucoup", "Ik hou van jou", "Guten Tag"]
    script = (
        "import json, sys\nfrom pipeline.language import detect_language\n"
        "print(json.dumps([detect_language(t) for t in json.load(sys.stdin)]))"
    )
    answers = []
    for seed in ("1", "2"):
        env = os.environ | {"PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", script], input=json.dumps(texts), capture_output=True, text=True, env=env, check=True
        )
        answers.append(json.loads(done.stdout))
    assert answers[0] == answers[1] == [detect_language(t) for t in texts]


# --------------------------------------------------------------------------- codes a request may give


def test_what_the_detector_answers_for_an_iso_code_a_request_may_give_too():
    """One table: a request's ISO 639 code means the code the detector answers for that language."""
    assert detect_language(" ".join(SENTENCES["fr-fr"])) == check_language("fr") == "fr-fr"
    assert detect_language(" ".join(SENTENCES["cmn"])) == check_language("zh") == check_language("zh-CN") == "cmn"
    assert all(check_language(iso) == code for iso, code in LANGUAGE_ALIASES.items())


@pytest.mark.parametrize(
    ("tag", "code"),
    [("en", "en-us"), ("EN", "en-us"), ("pt-BR", "pt-br"), ("zh-Hans-CN", "cmn"), ("de-AT", "de"), ("ja_JP", "ja")],
)
def test_bcp47_tags_that_name_one_code(tag, code):
    assert check_language(tag) == code


@pytest.mark.parametrize(
    ("tag", "suggested"),
    [("en-AU", "en-gb"), ("es-MX", "es-419"), ("pt-PT", "pt"), ("fr-CA", "fr-fr"), ("zh-yue", "yue"), ("de-x-y", "de")],
)
def test_tags_that_could_mean_several_codes_are_refused_with_them(tag, suggested):
    """A language with regional variants is not guessed from a region we lack; nor is a malformed tag."""
    with pytest.raises(UnsupportedLanguageError) as refused:
        check_language(tag)
    assert f"{tag!r}" in str(refused.value) and suggested in str(refused.value).split("did you mean")[1]


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(codec="ascii"), max_size=12))
def test_any_accepted_tag_gives_a_supported_code(tag):
    try:
        code = check_language(tag)
    except UnsupportedLanguageError:
        return
    assert code in LANGUAGES and check_language(code) == code


def test_the_readme_lists_every_code_the_error_message_points_to():
    """The error of an unknown language sends clients to the README's Languages section."""
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("**Languages.**")[1].split("\n\n")[0]
    assert re.findall(r"`([a-z0-9-]+)`", section.split("The codes:")[1]) == list(LANGUAGES)
    with pytest.raises(UnsupportedLanguageError, match="README's Languages section"):
        check_language("klingon")
