"""The API describes itself: a valid OpenAPI 3 document generated from the code, and
browsable docs at /api/v1/docs that load only the portal's own files, so the Content
Security Policy holds (no CDN, no inline script or style)."""

import re

from openapi_spec_validator import validate

from tests.api_clients import API


def test_the_openapi_document_is_valid_openapi_3(client):
    response = client.get(f"{API}/openapi.json")
    assert response.status_code == 200
    document = response.json()
    validate(document)
    assert document["openapi"].startswith("3.")
    assert document["components"]["securitySchemes"]["TokenAuth"]["scheme"] == "bearer"
    start = document["paths"]["/api/v1/environments/{slug}/operations"]["post"]
    assert "202" in start["responses"]


def test_the_docs_page_loads_only_the_portals_own_files(client):
    response = client.get(f"{API}/docs")
    assert response.status_code == 200
    page = response.content.decode()
    urls = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert urls and all(url.startswith("/static/") for url in urls), urls
    for url in urls:
        assert client.get(url).status_code == 200, url
    # Its only script without a source is data, which a browser does not run.
    inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", page)
    assert inline == [' type="application/json" id="swagger-settings"']
    assert "style=" not in page


def test_the_docs_page_is_under_the_portals_policy(client):
    policy = client.get(f"{API}/docs")["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'"  # the page fetches openapi.json
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy


def test_the_docs_describe_every_endpoint(client):
    from django.conf import settings

    docs = (settings.BASE_DIR / "docs" / "api.md").read_text()
    for path in client.get(f"{API}/openapi.json").json()["paths"]:
        assert f"`{path.removeprefix('/api/v1')}`" in docs, path
