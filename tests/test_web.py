"""The playground (GET /web) in a real browser: headless Chromium from Debian's packages, driven by
selenium, against the real Serve app (the session's `server`, tests/conftest.py) and, for the API
key box, the HTTP app over the fake backend.

Selenium never downloads anything: the browser and its driver are the system's (scripts/setup.sh
installs `chromium` and `chromium-driver`), named to it directly, so Selenium Manager is not run.
Without them the tests skip. Chromium's fake media flags give getUserMedia a test tone, so the
RECORD path (MediaRecorder's webm/opus, decoded by the server) runs end to end.

PLAYGROUND_SCREENSHOT=docs/playground.png makes the first test save its screenshot there (README's
image); otherwise it goes to the test's tmp_path.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
import uuid
import wave
from pathlib import Path

import numpy as np
import pytest
import requests
import soundfile as sf
from api.conftest import FakeBackend, key_digest, real_server
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from deployments.api import build_http_app
from deployments.config import AppConfig

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
FLAGS = (
    "--headless=new",
    "--no-sandbox",  # as root in a container
    "--disable-dev-shm-usage",
    "--use-fake-ui-for-media-stream",  # allow the microphone without asking
    "--use-fake-device-for-media-stream",  # a test tone as the microphone
    "--autoplay-policy=no-user-gesture-required",
    "--window-size=1200,1000",
)
TEXT = "The playground streams this. It has two sentences."  # two segments
WAIT_S = 120


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One headless Chromium for the module; `browser.downloads` is its download folder."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("chromium and chromedriver are not installed (scripts/setup.sh installs them)")
    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads)})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.downloads = downloads
    yield driver
    driver.quit()


def _open(browser, base: str) -> None:
    browser.get(f"{base}/web")
    _wait(browser, lambda: browser.execute_script("return document.body.dataset.ready") == "true")
    _wait(browser, lambda: _voices(browser))  # the list has loaded


def _wait(browser, condition, timeout: float = WAIT_S):
    return WebDriverWait(browser, timeout, poll_frequency=0.05).until(lambda _: condition())


def _el(browser, element_id: str):
    return browser.find_element(By.ID, element_id)


def _value(browser, element_id: str) -> str:
    return _el(browser, element_id).get_attribute("data-value")


def _voices(browser) -> dict[str, str]:
    """The voice picker's options: value (the voice id) -> label, with the optgroup: 'Library: name'."""
    return browser.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('#voice option')]"
        ".map(o => [o.value, o.parentNode.label + ': ' + o.textContent]))"
    )


def _speak(browser, button: str = "speak") -> dict[str, float]:
    """Click `button` (Speak, or Same seed again), wait for the run to end; what the page measured."""
    _el(browser, button).click()
    _wait(browser, lambda: _el(browser, "status").text in ("done", "") and _el(browser, "speak").is_enabled())
    assert _el(browser, "error").text == ""
    received = _el(browser, "bytes")
    return {
        "bytes": int(_value(browser, "bytes")),
        "chunks": int(received.get_attribute("data-chunks")),
        "end_ms": float(received.get_attribute("data-end")),
        "played_at_end_s": float(received.get_attribute("data-played-at-end")),
        "ttfa_ms": float(_value(browser, "ttfa")),
        "rtf": float(_value(browser, "rtf")),
        "seconds": float(_value(browser, "audio-seconds")),
        "samples": int(_el(browser, "audio-seconds").get_attribute("data-samples")),
        "seed": _value(browser, "seed-used"),
    }


def _set_slider(browser, element_id: str, value: float) -> None:
    browser.execute_script(
        "const input = document.getElementById(arguments[0]); input.value = arguments[1];"
        "input.dispatchEvent(new Event('input'));",
        element_id,
        value,
    )


def _timeline(browser) -> list[tuple[int, str, float, float]]:
    """The sentence track: (index, text, start s, end s) of each block, left to right."""
    blocks = browser.find_elements(By.CSS_SELECTOR, "#segments span")
    return [
        tuple(
            f(b.get_attribute(f"data-{key}"))
            for f, key in ((int, "index"), (str, "text"), (float, "from"), (float, "to"))
        )
        for b in blocks
    ]


def _form_body(browser) -> dict:
    """The request the form shows, built from its fields here (the page builds its own in app.js)."""
    config = requests.get(f"{browser.current_url}config.json", timeout=30).json()
    body = {
        "model": config["model"],
        "input": _el(browser, "text").get_attribute("value"),
        "voice": _el(browser, "voice").get_attribute("value"),
        "response_format": "pcm",
        "sample_rate": config["sample_rate"],
        "emotion": [
            float(_el(browser, f"emotion-{name}").get_attribute("value")) for name in config["emotion"]["names"]
        ],
    }
    return body | {name: float(_el(browser, name).get_attribute("value")) for name in config["sliders"]}


def _download_wav(browser) -> tuple[np.ndarray, int]:
    """Click Download (format wav: built in the browser) and read the file it saves."""
    for old in browser.downloads.iterdir():
        old.unlink()
    _el(browser, "format").send_keys("wav")
    _el(browser, "download").click()
    done = _wait(browser, lambda: [p for p in browser.downloads.glob("*.wav")], timeout=30)
    with wave.open(str(done[0])) as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2)
        return np.frombuffer(wav.readframes(wav.getnframes()), "<i2"), wav.getframerate()


def test_the_playground_plays_while_it_streams_and_measures_the_run(server, browser, tmp_path):
    """Load /web on the real Serve app, type, speak: audio bytes arrive in chunks, playback starts
    before the stream ends, time to first audio and RTF are filled and agree with the run's times; the
    WAV the browser builds from what it received is the server's audio for the seed it reported,
    sample for sample; "same seed again" repeats it. The fixture's codec is random: the banner shows."""
    _open(browser, server)
    card = next(m for m in requests.get(f"{server}/v1/models", timeout=30).json()["data"] if m["id"] == "zonos-v0.1")
    assert _el(browser, "banner").is_displayed() == (card["speech"] is False)
    assert card["note"] in _el(browser, "banner").text
    text = _el(browser, "text")
    text.clear()
    text.send_keys(TEXT)
    assert _el(browser, "count").text == f"{len(TEXT)} / 2,000 characters"  # the fixture app's max_text_chars

    _set_slider(browser, "speaking_rate", 30)  # a shorter frame budget: a quicker test
    run = _speak(browser)
    assert run["bytes"] > 0 and run["bytes"] == 2 * run["samples"]
    assert run["seconds"] == pytest.approx(run["samples"] / 44100, abs=1e-4)
    assert run["chunks"] >= 2 and 0 < run["ttfa_ms"] < run["end_ms"]
    assert 0 < run["played_at_end_s"] <= run["seconds"]  # audio was heard before its last byte arrived
    assert run["rtf"] == pytest.approx(run["end_ms"] / 1000 / run["seconds"], rel=1e-3)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chunks span")) == run["chunks"]
    frames = int(_value(browser, "usage"))  # the done event's output_tokens: codec frames of 512 samples
    assert 0 < 512 * frames <= run["samples"]  # the rest is the pauses between segments
    screenshot = Path(os.environ.get("PLAYGROUND_SCREENSHOT") or tmp_path / "playground.png")
    assert browser.save_screenshot(str(screenshot)) and screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the same request from another client: its audio and its sentence timestamps are the page's
    samples, rate = _download_wav(browser)
    body = _form_body(browser) | {"seed": int(run["seed"]), "stream_format": "sse", "timestamps": True}
    response = requests.post(f"{server}/v1/audio/speech", json=body, timeout=120)
    assert response.status_code == 200 and response.headers["x-seed"] == run["seed"]
    events = [json.loads(block.removeprefix("data: ")) for block in response.text.split("\n\n") if block]
    audio = b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta")
    assert rate == 44100 and np.array_equal(samples, np.frombuffer(audio, "<i2"))
    segments = [e["segment"] for e in events if e["type"] == "speech.audio.segment"]
    assert len(segments) >= 2 and _timeline(browser) == [
        (s["index"], s["text"], pytest.approx(s["start_s"]), pytest.approx(s["end_s"])) for s in segments
    ]

    again = _speak(browser, "same-seed")
    assert again["seed"] == run["seed"] and _el(browser, "seed").get_attribute("value") == ""  # that run only
    assert again["bytes"] == run["bytes"] and np.array_equal(_download_wav(browser)[0], samples)


def _create_voice(browser, name: str) -> str:
    """Type `name`, click Create voice, wait for it in the picker; its id."""
    _el(browser, "voice-name").clear()
    _el(browser, "voice-name").send_keys(name)
    _el(browser, "create-voice").click()
    found = _wait(browser, lambda: [i for i, label in _voices(browser).items() if label == f"Library: {name}"])
    assert _el(browser, "voice-error").text == ""
    return found[0]


def test_a_clip_uploaded_in_the_page_becomes_a_library_voice(server, browser, tmp_path):
    _open(browser, server)
    clip = tmp_path / "me.wav"
    sf.write(clip, 0.1 * np.random.default_rng(1).standard_normal(2 * 44100), 44100)
    _el(browser, "clip-file").send_keys(str(clip))
    assert _el(browser, "clip-status").get_attribute("data-bytes") == str(clip.stat().st_size)
    name = f"upload {uuid.uuid4().hex[:8]}"
    voice_id = _create_voice(browser, name)
    library = requests.get(f"{server}/v1/voices", timeout=30).json()["data"]
    assert {"id": voice_id, "name": name} in [{"id": v["id"], "name": v["name"]} for v in library]
    assert _el(browser, "voice").get_attribute("value") == voice_id  # the new voice is picked


def test_a_recording_made_in_the_page_becomes_a_voice_that_speaks(server, browser):
    """RECORD with Chromium's fake microphone (a tone): MediaRecorder's webm/opus, 2 s, goes to
    POST /v1/voices, the server decodes it (PyAV) and embeds it; the new voice then speaks."""
    _open(browser, server)
    _el(browser, "record").click()
    _wait(browser, lambda: _el(browser, "record").text == "Stop recording")
    time.sleep(2)
    _el(browser, "record").click()
    _wait(browser, lambda: _el(browser, "clip-status").get_attribute("data-bytes"))
    assert "audio/webm" in _el(browser, "clip-status").text
    name = f"recorded {uuid.uuid4().hex[:8]}"
    voice_id = _create_voice(browser, name)
    assert requests.get(f"{server}/v1/voices/{voice_id}", timeout=30).json()["name"] == name
    _el(browser, "text").clear()
    _el(browser, "text").send_keys("My recorded voice.")
    run = _speak(browser)
    assert run["bytes"] > 0 and _el(browser, "voice").get_attribute("value") == voice_id


def test_an_api_error_shows_the_apis_message(server, browser):
    """Every emotion slider at 0: the API refuses the request (400), and the page shows its
    error.message, the same one a plain HTTP client gets for that body."""
    _open(browser, server)
    for element in browser.find_elements(By.CSS_SELECTOR, "#emotions input"):
        _set_slider(browser, element.get_attribute("id"), 0)
    body = _form_body(browser)
    assert set(body["emotion"]) == {0.0}
    expected = requests.post(f"{server}/v1/audio/speech", json=body, timeout=60)
    assert expected.status_code == 400
    _el(browser, "speak").click()
    error = _wait(browser, lambda: _el(browser, "error").text)
    assert error == expected.json()["error"]["message"] and "Traceback" not in error
    _el(browser, "reset").click()


def test_the_page_fits_a_phone(server, browser):
    """At 390 x 844 CSS pixels (a phone) nothing is wider than the screen and the cards stack; /docs fits a
    375 px window too (its tables scroll in their own boxes)."""
    browser.set_window_size(390, 844)
    try:
        _open(browser, server)
        assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
        lefts = {_el(browser, card).rect["x"] for card in ("speak-card", "controls-card", "voice-card")}
        assert len(lefts) == 1
        assert _el(browser, "speak").is_displayed()
        browser.set_window_size(375, 812)
        browser.get(f"{server}/docs")
        assert browser.execute_script("return window.innerWidth") <= 375
        assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
        assert browser.find_elements(By.CSS_SELECTOR, ".scroll table")
    finally:
        browser.set_window_size(1200, 1000)


def test_the_key_box_sends_the_api_key(browser):
    """With API keys on, the page loads, shows the API's 401 message, and works once the key is typed;
    the fake backend's model card says random weights, and the banner says so."""
    app = build_http_app(FakeBackend(), AppConfig(api_keys=[key_digest("sk-playground")]))
    with real_server(app) as base:
        browser.get(f"{base}/web")
        _wait(browser, lambda: browser.execute_script("return document.body.dataset.ready") == "true")
        # before any key: the banner (the card comes with the public config.json), the 401 with a hint
        assert _el(browser, "banner").is_displayed()
        assert "this is noise, not speech" in _el(browser, "banner").text  # the fake's card: random weights
        unauthorised = requests.get(f"{base}/v1/audio/voices", timeout=30)
        assert unauthorised.status_code == 401
        message, hint = _el(browser, "error").text.split("\n")
        assert message == unauthorised.json()["error"]["message"] and "API key box" in hint
        assert "wanted" in _el(browser, "api-key").get_attribute("class")
        _el(browser, "api-key").send_keys("sk-playground\n")  # Enter commits the field: its change event
        _wait(browser, lambda: "alloy" in _voices(browser))
        assert _el(browser, "error").text == ""
        assert "wanted" not in _el(browser, "api-key").get_attribute("class")
        assert _el(browser, "banner").is_displayed()
        assert _speak(browser)["bytes"] > 0
        browser.execute_script("sessionStorage.clear()")


def test_a_failure_after_the_audio_began_shows_the_error_event(browser):
    """The fake backend fails after its first segment: the page keeps what arrived and shows the
    SSE error event's message (the API's words), not a stack."""
    backend = FakeBackend()
    with real_server(build_http_app(backend, AppConfig())) as base:
        _open(browser, base)
        backend.mode = "fail_mid"
        _el(browser, "speak").click()
        error = _wait(browser, lambda: _el(browser, "error").text)
        received = int(_value(browser, "bytes"))
        sse = requests.post(f"{base}/v1/audio/speech", json=_form_body(browser) | {"stream_format": "sse"}, timeout=30)
        event = json.loads(sse.text.strip().split("\n\n")[-1].removeprefix("data: "))
        assert event["type"] == "error" and received > 0
        assert error == f"the audio stream broke off after {received} bytes: {event['error']['message']}"


def test_a_run_clears_the_last_ones_results_and_same_seed_is_for_one_run(browser):
    """Over the fake backend: an error (the API's, or a bad seed typed) leaves nothing of the run before it
    (numbers, seed, "Same seed again", download); "Same seed again" repeats the seed for that run only,
    so the next Speak, the seed box empty, gets a new random seed."""
    with real_server(build_http_app(FakeBackend(), AppConfig())) as base:
        _open(browser, base)
        first = _speak(browser)
        again = _speak(browser, "same-seed")
        assert again["seed"] == first["seed"] and _el(browser, "seed").get_attribute("value") == ""
        assert _speak(browser)["seed"] != first["seed"]  # random again: 1 chance in 2**63 to fail

        def cleared() -> None:
            for element_id in ("ttfa", "rtf", "seed-used", "audio-seconds", "bytes"):
                assert _el(browser, element_id).text == "–", element_id
            assert not _el(browser, "same-seed").is_enabled() and not _el(browser, "download").is_enabled()
            assert _el(browser, "status").text == ""

        for element in browser.find_elements(By.CSS_SELECTOR, "#emotions input"):
            _set_slider(browser, element.get_attribute("id"), 0)  # refused by the API: 400
        _el(browser, "speak").click()
        _wait(browser, lambda: _el(browser, "error").text and _el(browser, "speak").is_enabled())
        cleared()
        _el(browser, "reset").click()
        _speak(browser)
        _el(browser, "seed").send_keys("not a seed")  # refused by the page itself
        _el(browser, "speak").click()
        assert _wait(browser, lambda: _el(browser, "error").text).startswith("seed:")
        cleared()
        _el(browser, "seed").clear()
