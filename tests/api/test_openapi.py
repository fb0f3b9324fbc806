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
from starlette.routing import Route

from api.conftest import CLIP, FakeBackend, make_client, speech, sse_events
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
    """(method, OpenAPI path) of every method of every Route in the app's table."""
    return [
        (method, route.path_format)
        for route in ROUTES
        if isinstance(route, Route) and route.include_in_schema
        for method in sorted(route.methods - {"HEAD"})
    ]


def test_the_document_is_valid_openapi(spec, client):
    validate(spec)  # openapi-spec-validator: OpenAPI 3.1's schema, and every $ref resolves
    assert spec["openapi"].startswith("3.1")
    keyed = make_client(FakeBackend(), api_keys=["sk-key-for-the-spec-0"]).get("/openapi.json").json()
    validate(keyed)


def test_every_route_and_method_is_described_and_nothing_else(spec):
    listed = {(method.upper(), path) for path, methods in spec["paths"].items() for method in methods}
    assert listed == set(described_routes())
    operation_ids = [op["operationId"] for methods in spec["paths"].values() for op in methods.values()]
    assert len(operation_ids) == len(set(operation_ids))


def test_every_api_route_says_what_it_takes_and_answers():
    """Each /v1 route (and each of this module's own) has its entry in OPERATIONS, and no entry
    describes a route that does not exist."""
    api = {key for key in described_routes() if key[1].startswith("/v1/") or key[1] in {"/openapi.json", "/docs"}}
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
    assert set(forms["VoiceForm"]["properties"]) == {"file", "name"}
    created = client.post("/v1/voices", files={"file": ("me.wav", CLIP)}, data={"name": "me"})
    audio_form = {"name": "them", "consent": "cons_1", "type": "audio_sample"}
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
    spec = make_client(FakeBackend(), api_keys=["sk-key-for-the-spec-0"]).get("/openapi.json").json()
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
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._in_style = tag == "style"
        for name, value in attrs:
            if name in {"href", "src", "srcset", "action", "data", "poster", "formaction"}:
                self.references.append(value or "")
            if name == "id":
                self.ids.add(value or "")

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data


def test_docs_renders_every_operation_from_nothing_but_the_server(client, spec):
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = Page()
    page.feed(response.text)
    # nothing loaded from anywhere: no script, stylesheet, image or frame, no absolute URL, no url() in CSS
    assert not {"script", "link", "img", "iframe", "object", "embed", "base"} & set(page.tags)
    assert not re.search(r"url\(|@import", page.style)
    for reference in page.references:
        assert not re.match(r"[a-z][a-z0-9+.-]*:|//", reference, re.IGNORECASE), reference
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
