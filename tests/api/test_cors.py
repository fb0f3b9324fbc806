"""CORS (deployments/api/cors.py): preflights from allowed and other origins, actual requests,
the headers a page may read, and CORS outside the API key check."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from api.conftest import FakeBackend, assert_error, key_digest, make_client, speech
from deployments.config import AppConfig

ORIGIN = "https://app.example.com"
# Response headers a page's script may read without Access-Control-Expose-Headers (Fetch standard:
# the CORS-safelisted response-header names)
SAFELISTED = {
    "cache-control",
    "content-language",
    "content-length",
    "content-type",
    "expires",
    "last-modified",
    "pragma",
}
# Headers that CORS itself or the transport sets, not the API's
NOT_THE_APIS = {"vary", "access-control-allow-origin", "access-control-expose-headers", "date", "server"}


def preflight(client, origin: str, method: str = "POST", headers: str = "authorization, content-type"):
    return client.options(
        "/v1/audio/speech",
        headers={"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers},
    )


def exposed(response) -> set[str]:
    return {name.strip().lower() for name in response.headers["access-control-expose-headers"].split(",")}


def test_a_preflight_from_an_allowed_origin():
    client = make_client(
        FakeBackend(), cors_allowed_origins=[ORIGIN, "http://localhost:3000"], api_keys=[key_digest("sk-k" * 4)]
    )
    for origin in (ORIGIN, "http://localhost:3000"):
        response = preflight(client, origin, headers="authorization, content-type, x-stainless-retry-count")
        assert response.status_code == 200  # answered before the key check: a preflight carries no key
        assert response.headers["access-control-allow-origin"] == origin
        assert {"GET", "POST", "DELETE"} <= set(response.headers["access-control-allow-methods"].split(", "))
        allowed = set(response.headers["access-control-allow-headers"].split(", "))
        assert {"authorization", "content-type", "x-stainless-retry-count"} <= allowed
        assert int(response.headers["access-control-max-age"]) > 0
        assert "origin" in response.headers["vary"].lower()
        assert "access-control-allow-credentials" not in response.headers


def test_a_preflight_from_another_origin_or_for_another_method_is_refused():
    client = make_client(FakeBackend(), cors_allowed_origins=[ORIGIN])
    for origin, method in (
        ("https://evil.example.com", "POST"),
        ("https://app.example.com.evil.com", "POST"),
        ("http://app.example.com", "POST"),  # another scheme is another origin
        ("null", "POST"),
        (ORIGIN, "PUT"),
    ):
        response = preflight(client, origin, method)
        error = assert_error(response, 400, "invalid_request_error", None, "cors_not_allowed")
        assert "access-control-allow-origin" not in response.headers
        assert ("origin" if origin != ORIGIN else "method") in error["message"]


def test_an_actual_request_from_an_allowed_origin_may_read_the_apis_headers():
    """The origin is echoed, and every header the API put on a real answer that a script could not
    read by default is exposed: audio, an error with retry hints, a created voice, a 401."""
    client = make_client(FakeBackend(), cors_allowed_origins=[ORIGIN])
    audio = client.post("/v1/audio/speech", json=speech(response_format="wav"), headers={"Origin": ORIGIN})
    assert audio.status_code == 200
    assert audio.headers["access-control-allow-origin"] == ORIGIN
    assert "origin" in audio.headers["vary"].lower()
    backend = FakeBackend()
    backend.mode = "busy"
    busy = make_client(backend, cors_allowed_origins=[ORIGIN]).post(
        "/v1/audio/speech", json=speech(), headers={"Origin": ORIGIN}
    )
    assert busy.status_code == 503
    keyed = make_client(FakeBackend(), cors_allowed_origins=[ORIGIN], api_keys=[key_digest("sk-k" * 4)])
    refused = keyed.get("/v1/models", headers={"Origin": ORIGIN})
    assert refused.status_code == 401
    for response in (audio, busy, refused):
        assert response.headers["access-control-allow-origin"] == ORIGIN  # so the page can read the error too
        apis = {name.lower() for name in response.headers} - SAFELISTED - NOT_THE_APIS
        assert apis, response.headers
        assert apis <= exposed(response), apis - exposed(response)
    assert {"x-request-id", "x-sample-rate", "x-audio-format", "x-seed"} <= exposed(audio)
    assert {"retry-after", "x-should-retry"} <= exposed(busy)


def test_another_origin_gets_no_allow_origin():
    client = make_client(FakeBackend(), cors_allowed_origins=[ORIGIN])
    response = client.get("/v1/models", headers={"Origin": "https://evil.example.com"})
    assert response.status_code == 200  # CORS is the browser's to enforce: it keeps the answer from the page
    assert "access-control-allow-origin" not in response.headers


def test_no_origins_configured_means_no_cors_headers():
    client = make_client(FakeBackend())
    response = client.get("/v1/models", headers={"Origin": ORIGIN})
    assert not [name for name in response.headers if name.lower().startswith("access-control-")]
    refused = preflight(client, ORIGIN)
    assert_error(refused, 405, "invalid_request_error", None, "method_not_allowed")
    assert not [name for name in refused.headers if name.lower().startswith("access-control-")]


def test_any_origin():
    client = make_client(FakeBackend(), cors_allowed_origins=["*"])
    assert preflight(client, "https://anywhere.example").headers["access-control-allow-origin"] == "*"
    response = client.get("/v1/models", headers={"Origin": "https://anywhere.example"})
    assert response.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize(
    "origin",
    [
        "https://app.example.com/",
        "https://app.example.com/web",
        "HTTPS://App.Example.com",
        "app.example.com",
        "",
        "null",
    ],
)
def test_an_origin_must_be_written_as_browsers_send_it(origin):
    with pytest.raises(ValidationError, match="cors_allowed_origins"):
        AppConfig(cors_allowed_origins=[origin])
