"""The playground's files and settings over the fake backend (the page itself runs in a browser: tests/test_web.py)."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from api.conftest import MAX_TEXT, assert_error, key_digest, make_client, speech
from deployments.api.web import WEB_DIR

ROOT = Path(__file__).resolve().parents[2]
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


class _Links(HTMLParser):
    """Every URL an HTML page loads or links to (src and href attributes)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def _loaded_files(client) -> dict[str, str]:
    """path -> text of every file the page loads, following index.html's links and the modules' imports."""
    base = "http://testserver/web/"
    index = client.get("/web/")
    parser = _Links()
    parser.feed(index.text)
    found = {"/web/index.html": index.text}
    pending = [urljoin(base, url) for url in parser.urls]
    while pending:
        url = pending.pop()
        assert not url.startswith("data:") or url == "data:,", url  # only the empty favicon, no inlined assets
        if url.startswith("data:"):
            continue
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc) == ("http", "testserver"), f"the page loads {url} from elsewhere"
        if parts.path in found:
            continue
        response = client.get(parts.path)
        assert response.status_code == 200, parts.path
        assert response.headers["content-type"].startswith(CONTENT_TYPES[Path(parts.path).suffix]), parts.path
        found[parts.path] = response.text
        pending += [urljoin(url, name) for name in re.findall(r'^import .* from "([^"]+)";', response.text, re.M)]
    return found


def test_web_redirects_to_the_page_and_serves_every_file_it_loads_from_this_server(client):
    redirect = client.get("/web", follow_redirects=False)
    assert redirect.status_code == 307 and urlsplit(redirect.headers["location"]).path == "/web/"
    page = client.get("/web")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    files = _loaded_files(client)
    assert set(files) == {"/web/index.html", "/web/style.css", "/web/app.js", "/web/player.js"}
    # no URL of another host anywhere in the page's code (fetches included)
    for path, text in files.items():
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), path
    on_disk = {f"/web/{p.name}" for p in WEB_DIR.iterdir()}
    assert on_disk == set(files)  # nothing shipped that the page does not use


def test_the_web_files_are_package_data():
    """A wheel holds them: pyproject's package-data for deployments.api matches every file of web/."""
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = package_data["deployments.api"]
    for path in WEB_DIR.rglob("*"):
        relative = path.relative_to(WEB_DIR.parent).as_posix()
        assert path.is_dir() or any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative


def test_unknown_web_files_and_methods_are_openai_errors(client):
    assert_error(client.get("/web/missing.js"), 404, "invalid_request_error", None, "not_found")
    assert_error(client.get("/web/%2e%2e/web.py"), 404, "invalid_request_error", None, "not_found")
    response = client.post("/web/app.js")
    assert_error(response, 405, "invalid_request_error", None, "method_not_allowed")


def test_config_json_is_what_the_api_enforces(client):
    """The page's limits are the API's: each slider's ends are accepted and a step past them is
    refused naming the field; the text limit is the last length accepted; as many emotion weights
    as names, and one more is refused."""
    config = client.get("/web/config.json").json()
    assert config["model"] == "zonos-v0.1" and config["sample_rate"] == 44100
    assert config["max_text_chars"] == MAX_TEXT
    assert client.get("/v1/models/" + config["model"]).status_code == 200
    assert config["default_response_format"] in config["formats"]

    def status(**fields):
        return client.post(
            "/v1/audio/speech", json=speech(model=config["model"], response_format="pcm", **fields)
        ).status_code

    assert status(input="a" * config["max_text_chars"]) == 200
    assert_error(
        client.post("/v1/audio/speech", json=speech(input="a" * (config["max_text_chars"] + 1))),
        413,
        "invalid_request_error",
        "input",
        "input_too_long",
    )
    for name, slider in config["sliders"].items():
        assert slider["minimum"] <= slider["default"] <= slider["maximum"], name
        for value in (slider["minimum"], slider["maximum"], slider["default"]):
            assert status(**{name: value}) == 200, (name, value)
        for value in (slider["minimum"] - 0.01, slider["maximum"] + 0.01):
            response = client.post("/v1/audio/speech", json=speech(**{name: value}))
            assert response.status_code == 400 and response.json()["error"]["param"] == name, (name, value)
    emotion = config["emotion"]
    assert len(emotion["names"]) == len(emotion["default"]) == len(set(emotion["names"]))
    assert status(emotion=[emotion["maximum"]] * len(emotion["names"])) == 200
    assert status(emotion=emotion["default"]) == 200
    assert status(emotion=emotion["default"] + [0.1]) == 400
    for fmt in config["formats"]:
        assert client.post("/v1/audio/speech", json=speech(response_format=fmt)).status_code == 200, fmt


@pytest.mark.parametrize("path", ["/web", "/web/", "/web/app.js", "/web/config.json"])
def test_the_page_needs_no_key_and_its_api_calls_do(backend, path):
    """With API keys on, the page and its settings load without one (the page asks for the key);
    the API it calls does not."""
    client = make_client(backend, api_keys=[key_digest("sk-test-1")])
    assert client.get(path).status_code == 200
    assert_error(client.get("/v1/audio/voices"), 401, "invalid_request_error", None, "invalid_api_key")
    assert client.get("/v1/audio/voices", headers={"Authorization": "Bearer sk-test-1"}).status_code == 200


def test_config_json_carries_the_model_card_without_a_key(backend):
    """The random-weights banner needs the model card before any key is typed: config.json (public) has
    its `speech` and `note`, the same as GET /v1/models (keyed) shows."""
    client = make_client(backend, api_keys=[key_digest("sk-test-1")])
    config = client.get("/web/config.json").json()
    models = client.get("/v1/models", headers={"Authorization": "Bearer sk-test-1"}).json()["data"]
    card = next(model for model in models if model["id"] == config["model"])
    assert (config["speech"], config["note"]) == (card["speech"], card["note"]) == (False, backend.model_card().note)
