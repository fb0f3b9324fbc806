"""GET /openapi.json and GET /docs (deployments/api/openapi.py): a valid OpenAPI 3.1 document of
every route, its schemas pydantic's own, real answers valid against it, and a page that loads
nothing from elsewhere."""

from __future__ import annotations

import base64
import html.parser
import re

import jsonschema
import pytest
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.testclient import TestClient

from api.conftest import CLIP, FakeBackend, key_digest, make_client, speech, sse_events
from deployments.api.app import ROUTES
from deployments.api.native import TtsRequest
from deployments.api.openai import SpeechRequest
from deployments.api.openapi import OPERATIONS
from pipeline.audio import MEDIA_TYPES

REF = "#/components/schemas/{model}"


@pytest.fixture
def client():
    return make_client(FakeBackend())


@pytest.fixture
def spec(client) -> dict:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def described_routes() -> list[tuple[str, str]]:
    """(method, OpenAPI path) of every method of every Route in the app's table, and of each Mount of
    static files (the playground) GET of its page and of a file."""
    routes = [
        (method, route.path_format)
        for route in ROUTES
        if isinstance(route, Route) and route.include_in_schema
        for method in sorted(route.methods - {"HEAD"})
    ]
    for mount in ROUTES:
        if isinstance(mount, Mount) and isinstance(mount.app, StaticFiles):
            routes += [("GET", f"{mount.path}/"), ("GET", f"{mount.path}/{{path}}")]
    return routes


def test_the_document_is_valid_openapi(spec, client):
    validate(spec)  # openapi-spec-validator: OpenAPI 3.1's schema, and every $ref resolves
    assert spec["openapi"].startswith("3.1")
    keyed = make_client(FakeBackend(), api_keys=[key_digest("sk-key-for-the-spec-0")]).get("/openapi.json").json()
    validate(keyed)


def test_every_route_and_method_is_described_and_nothing_else(spec):
    listed = {(method.upper(), path) for path, methods in spec["paths"].items() for method in methods}
    assert listed == set(described_routes())
    operation_ids = [op["operationId"] for methods in spec["paths"].values() for op in methods.values()]
    assert len(operation_ids) == len(set(operation_ids))


def test_every_api_route_says_what_it_takes_and_answers():
    """Each /v1 route (and each of this module's own, and the playground's) has its entry in OPERATIONS,
    and no entry describes a route that does not exist."""
    api = {
        key for key in described_routes() if key[1].startswith(("/v1/", "/web")) or key[1] in {"/openapi.json", "/docs"}
    }
    assert api <= set(OPERATIONS), api - set(OPERATIONS)
    assert set(OPERATIONS) <= set(described_routes()), set(OPERATIONS) - set(described_routes())


def test_path_parameters_are_the_routes_own(spec):
    for route in ROUTES:
        if isinstance(route, Route):
            for op in spec["paths"][route.path_format].values():
                assert [p["name"] for p in op.get("parameters", [])] == list(route.param_convertors)


@pytest.mark.parametrize(("model", "path"), [(SpeechRequest, "/v1/audio/speech"), (TtsRequest, "/v1/tts")])
def test_body_schemas_are_pydantics_own(spec, model, path):
    """The body the route validates with, as pydantic writes its JSON Schema: generated, not written."""
    generated = model.model_json_schema(ref_template=REF)
    nested = generated.pop("$defs", {})
    schemas = spec["components"]["schemas"]
    assert schemas[model.__name__] == generated
    for name, schema in nested.items():
        assert schemas[name] == schema
    body = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": REF.format(model=model.__name__)}


def validator(spec: dict, schema: dict) -> jsonschema.Draft202012Validator:
    """A validator of `schema` whose $refs resolve in the document."""
    registry = Registry().with_resource("urn:spec", Resource(contents=spec, specification=DRAFT202012))
    return jsonschema.Draft202012Validator({"$ref": "urn:spec" + schema["$ref"]}, registry=registry)


def reply_schema(spec: dict, method: str, path: str, status: int) -> dict:
    responses = spec["paths"][path][method.lower()]["responses"]
    key = str(status) if str(status) in responses else f"{str(status)[0]}XX"
    return responses[key]["content"]["application/json"]["schema"]


def test_real_answers_are_valid_against_the_document(spec, client):
    """Each JSON route's real answer over the fake backend, a success and an error, validates against
    the schema the document gives for its status; the forms are sent with exactly the document's fields."""
    forms = spec["components"]["schemas"]
    assert set(forms["VoiceForm"]["properties"]) == {"file", "name", "language"}
    created = client.post("/v1/voices", files={"file": ("me.wav", CLIP)}, data={"name": "me", "language": "fr"})
    audio_form = {"name": "them", "consent": "cons_1", "type": "audio_sample", "language": "de"}
    assert set(forms["AudioVoiceForm"]["properties"]) == {"audio_sample", *audio_form}
    made = client.post("/v1/audio/voices", files={"audio_sample": ("x.wav", CLIP)}, data=audio_form)
    voice_id = created.json()["id"]
    answers = [
        ("POST", "/v1/voices", created),
        ("POST", "/v1/audio/voices", made),
        ("GET", "/v1/models", client.get("/v1/models")),
        ("GET", "/v1/models/{model_id}", client.get("/v1/models/zonos-v0.1")),
        ("GET", "/v1/models/{model_id}", client.get("/v1/models/tts-1-2025-12-15")),
        ("GET", "/v1/models/{model_id}", client.get("/v1/models/nothing")),
        ("GET", "/v1/voices", client.get("/v1/voices")),
        ("GET", "/v1/voices/{voice_id}", client.get(f"/v1/voices/{voice_id}")),
        ("GET", "/v1/audio/voices", client.get("/v1/audio/voices")),
        ("GET", "/v1/audio/models", client.get("/v1/audio/models")),
        ("DELETE", "/v1/voices/{voice_id}", client.delete(f"/v1/voices/{voice_id}")),
        ("DELETE", "/v1/audio/voices/{voice_id}", client.delete(f"/v1/audio/voices/{made.json()['id']}")),
        ("DELETE", "/v1/audio/voices/{voice_id}", client.delete("/v1/audio/voices/gone")),
        ("GET", "/healthz", client.get("/healthz")),
        ("GET", "/readyz", client.get("/readyz")),
        ("POST", "/v1/audio/speech", client.post("/v1/audio/speech", json=speech(speed=9))),
        ("POST", "/v1/tts", client.post("/v1/tts", json={"text": "hi", "bogus": 1})),
        ("GET", "/web/config.json", client.get("/web/config.json")),
    ]
    statuses = set()
    for method, path, response in answers:
        assert response.headers["content-type"].startswith("application/json"), (path, response.status_code)
        validator(spec, reply_schema(spec, method, path, response.status_code)).validate(response.json())
        statuses.add(response.status_code)
    assert {200, 201, 400, 404, 422} <= statuses
    for method, path, status in (("GET", "/v1/models", 200), ("GET", "/healthz", 200), ("POST", "/v1/voices", 201)):
        with pytest.raises(jsonschema.ValidationError):  # the schemas do constrain
            validator(spec, reply_schema(spec, method, path, status)).validate({"object": "nonsense"})


def test_audio_answers_have_the_documented_media_types_and_events(spec, client):
    ok = spec["paths"]["/v1/audio/speech"]["post"]["responses"]["200"]
    for fmt in MEDIA_TYPES:
        response = client.post("/v1/audio/speech", json=speech(response_format=fmt))
        assert response.headers["content-type"].split(";")[0] in ok["content"]
        assert {name.lower() for name in ok["headers"]} <= {name.lower() for name in response.headers}
    events = client.post("/v1/audio/speech", json=speech(stream_format="sse", response_format="wav"))
    event_schema = ok["content"]["text/event-stream"]["x-event-schema"]
    registry = Registry().with_resource("urn:spec", Resource(contents=spec, specification=DRAFT202012))
    check = jsonschema.Draft202012Validator(
        {"oneOf": [{"$ref": "urn:spec" + option["$ref"]} for option in event_schema["oneOf"]]}, registry=registry
    )
    parsed = sse_events(events.content)
    assert [event["type"] for event in parsed][-1] == "speech.audio.done"
    for event in parsed:
        check.validate(event)
    base64.b64decode(parsed[0]["audio"], validate=True)


def test_with_keys_the_document_says_which_operations_need_one():
    spec = make_client(FakeBackend(), api_keys=[key_digest("sk-key-for-the-spec-0")]).get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "One of the server's API keys.",
    }
    for path, methods in spec["paths"].items():
        for op in methods.values():
            public = path in {"/healthz", "/readyz", "/openapi.json", "/docs"} or path.startswith("/web/")
            assert op["security"] == ([] if public else [{"bearer": []}]), path


class Page(html.parser.HTMLParser):
    """Every tag, the attributes naming another resource, the ids and the style text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.references: list[str] = []
        self.ids: set[str] = set()
        self.links: list[dict[str, str | None]] = []
        self.tables_outside_a_scroll_box = 0
        self.style = ""
        self._in_style = False
        self._open: list[tuple[str, str | None]] = []  # (tag, class) of the open elements

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._in_style = tag == "style"
        if tag == "link":
            self.links.append(dict(attrs))
        if tag == "table" and (not self._open or self._open[-1] != ("div", "scroll")):
            self.tables_outside_a_scroll_box += 1
        if tag not in {"meta", "link", "br", "hr", "img", "input"}:
            self._open.append((tag, dict(attrs).get("class")))
        for name, value in attrs:
            if name in {"href", "src", "srcset", "action", "data", "poster", "formaction"}:
                self.references.append(value or "")
            if name == "id":
                self.ids.add(value or "")

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False
        while self._open and self._open.pop()[0] != tag:
            pass  # an element closed implicitly (</p> left out)

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data


def test_docs_renders_every_operation_from_nothing_but_the_server(client, spec):
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = Page()
    page.feed(response.text)
    # nothing loaded from anywhere: no script, stylesheet, image or frame, no absolute URL, no url() in CSS;
    # the one link is an empty data: icon, so that the browser asks for no /favicon.ico either
    assert not {"script", "img", "iframe", "object", "embed", "base"} & set(page.tags)
    assert page.links == [{"rel": "icon", "href": "data:,"}]
    assert not re.search(r"url\(|@import", page.style)
    for reference in page.references:
        assert reference == "data:," or not re.match(r"[a-z][a-z0-9+.-]*:|//", reference, re.IGNORECASE), reference
    # every table scrolls in its own box: the page fits a phone (tests/test_web.py measures it in a browser)
    assert "table" in page.tags and page.tables_outside_a_scroll_box == 0
    assert re.search(r"\.scroll\s*\{[^}]*overflow-x:\s*auto", page.style)
    assert "openapi.json" in page.references
    for reference in page.references:  # every link within the page lands somewhere
        if reference.startswith("#"):
            assert reference[1:] in page.ids, reference
    text = response.text
    for path, methods in spec["paths"].items():
        assert f"<code>{path}</code>" in text
        for op in methods.values():
            assert f'id="op-{op["operationId"]}"' in text
    for name in spec["components"]["schemas"]:
        assert f'id="schema-{name}"' in text
    for field in SpeechRequest.model_fields:  # the body's fields are on the page
        assert f"<code>{field}</code>" in text


def test_servers_is_the_route_prefix_the_request_came_under():
    """Under Serve's route_prefix (Starlette's root_path) a client generated from the document must call
    /tts/v1/...: `servers` says so, per request (the document itself is built once), and /docs too."""
    app = make_client(FakeBackend()).app
    assert TestClient(app).get("/openapi.json").json()["servers"] == [{"url": "/"}]
    prefixed = TestClient(app, root_path="/tts")
    spec = prefixed.get("/tts/openapi.json").json()
    validate(spec)
    assert spec["servers"] == [{"url": "/tts"}]
    assert TestClient(app, root_path="/other").get("/other/openapi.json").json()["servers"] == [{"url": "/other"}]
    assert TestClient(app).get("/openapi.json").json()["servers"] == [{"url": "/"}]
    assert "<code>/tts</code>" in prefixed.get("/tts/docs").text
    # what a client does with it: the server URL joined with a path is a route of the app under the prefix
    url = spec["servers"][0]["url"].rstrip("/") + "/v1/models"
    assert prefixed.get(url).status_code == 200


def test_the_playground_is_described_as_a_page_and_its_files(spec, client):
    page = spec["paths"]["/web/"]["get"]
    assert set(page["responses"]["200"]["content"]) == {"text/html"}
    assert client.get("/web/").headers["content-type"].startswith("text/html")
    files = spec["paths"]["/web/{path}"]["get"]
    for name in ("app.js", "player.js", "style.css"):
        media = client.get(f"/web/{name}").headers["content-type"].split(";")[0]
        assert media in files["responses"]["200"]["content"], name


# Extension and native fields: (route, fields, valid). The server's answer (200, or 400 on OpenAI's route,
# 422 on /v1/tts) and the document's request schema must agree on each.
SPEECH, TTS = "/v1/audio/speech", "/v1/tts"
BODY_CASES = [
    (SPEECH, {"seed": 0}, True),
    (SPEECH, {"seed": 2**63 - 1}, True),
    (SPEECH, {"seed": -1}, False),
    (SPEECH, {"seed": 2**63}, False),
    (SPEECH, {"seed": 1.5}, False),
    (SPEECH, {"speaking_rate": 0}, True),
    (SPEECH, {"speaking_rate": 40}, True),
    (SPEECH, {"speaking_rate": 40.5}, False),
    (SPEECH, {"speaking_rate": -1}, False),
    (SPEECH, {"pitch_std": 0}, True),
    (SPEECH, {"pitch_std": 400}, True),
    (SPEECH, {"pitch_std": 401}, False),
    (SPEECH, {"pitch_std": -0.5}, False),
    (SPEECH, {"cfg_scale": 1}, True),
    (SPEECH, {"cfg_scale": 20}, True),
    (SPEECH, {"cfg_scale": 0.9}, False),
    (SPEECH, {"cfg_scale": 21}, False),
    (SPEECH, {"emotion": [0.5] * 8}, True),
    (SPEECH, {"emotion": [0, 0, 0, 0, 0, 0, 0, 1]}, True),
    (SPEECH, {"emotion": [0.5] * 7}, False),
    (SPEECH, {"emotion": [0.5] * 9}, False),
    (SPEECH, {"emotion": [-0.1] + [0.5] * 7}, False),
    (SPEECH, {"emotion": ["a"] * 8}, False),
    (SPEECH, {"sample_rate": 16000}, True),
    (SPEECH, {"sample_rate": 12345}, False),
    (SPEECH, {"speed": 0.25}, True),
    (SPEECH, {"speed": 4.5}, False),
    (SPEECH, {"timestamps": "yes"}, False),
    (SPEECH, {"volume": 1}, False),
    (TTS, {"speaker": [0.1] * 128}, True),
    (TTS, {"speaker": [0.1] * 127}, False),
    (TTS, {"speaker": [0.1] * 129}, False),
    (TTS, {"emotion": [0.2] * 8}, True),
    (TTS, {"emotion": [0.2] * 7}, False),
    (TTS, {"emotion": [0.2] * 8 + [0.2]}, False),
    (TTS, {"emotion": [0.2] * 7 + [-1]}, False),
    (TTS, {"seed": 2**63}, False),
    (TTS, {"pitch_std": 500}, False),
]


@pytest.mark.parametrize(("path", "fields", "valid"), BODY_CASES, ids=[f"{p[4:]}-{f}"[:60] for p, f, _ in BODY_CASES])
def test_the_schema_refuses_what_the_server_refuses(spec, client, path, fields, valid):
    """The request schema of /openapi.json (jsonschema, draft 2020-12) and the server agree: a valid body
    passes both, an invalid one is refused by both (the bounds, lengths and item ranges are in the schema)."""
    body = (speech(response_format="pcm") if path == SPEECH else {"text": "hi", "response_format": "pcm"}) | fields
    schema = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    errors = list(validator(spec, schema).iter_errors(body))
    response = client.post(path, json=body)
    if valid:
        assert errors == [] and response.status_code == 200, (errors, response.text)
    else:
        assert errors, "the schema lets it through"
        assert response.status_code == (400 if path == SPEECH else 422), response.text
        assert response.json()["error"]["param"].split(".")[0] == next(iter(fields))
