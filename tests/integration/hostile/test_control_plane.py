"""Hostile requests at the control plane (Management API, Portal API, pages): bodies over 1 MiB (8 MiB for
specification uploads) get 413, hostile JSON and OpenAPI documents get 400, path traversal gets a 404 — and each
leaves every table as it was."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keystile.api.body import MAX_BODY, MAX_SPEC_BODY
from tests.integration.hostile.dbstate import db_state
from tests.portal_helpers import approved_developer

OPENAPI = "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\n"


async def _product_version(api) -> tuple[str, str]:
    product = await api.client.post("/v2/api-products", json={"name": f"hostile-{uuid.uuid4().hex[:6]}"})
    assert product.status_code == 201, product.text
    pid = product.json()["id"]
    version = await api.client.post(f"/v2/api-products/{pid}/product-versions", json={"name": "v1"})
    assert version.status_code == 201, version.text
    return pid, version.json()["id"]


def _problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()


async def _chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def test_bodies_over_one_mib_get_413_declared_or_streamed(api) -> None:
    dev = await approved_developer(api.runtime)
    before = await db_state(api.runtime)
    big = json.dumps({"name": "x", "description": "d" * MAX_BODY}).encode()
    for method, url, headers in (
        ("POST", "/v2/api-products", {}),
        ("POST", "/v2/dcr-providers", {}),
        ("POST", "/v2/application-auth-strategies", {}),
        ("POST", "/api/v2/applications", dev.bearer),
    ):
        declared = await api.client.request(
            method, url, content=big, headers={**headers, "Content-Type": "application/json"}
        )
        assert "larger than 1048576 bytes" in _problem(declared, 413)["detail"]
        streamed = await api.client.request(
            method, url, content=_chunks(big), headers={**headers, "Content-Type": "application/json"}
        )
        _problem(streamed, 413)
    assert await db_state(api.runtime) == before


async def test_specification_uploads_over_8_mib_get_413_and_over_5_mib_400(api) -> None:
    pid, vid = await _product_version(api)
    url = f"/v2/api-products/{pid}/product-versions/{vid}/specifications"
    before = await db_state(api.runtime)
    huge = json.dumps({"name": "a.yaml", "content": "x" * MAX_SPEC_BODY}).encode()
    r = await api.client.post(url, content=huge, headers={"Content-Type": "application/json"})
    _problem(r, 413)
    six_mib = OPENAPI + "x-pad: '" + "p" * (6 * 1024 * 1024) + "'\n"
    r = await api.client.post(url, json={"name": "a.yaml", "content": six_mib})
    problem = _problem(r, 400)
    assert problem["invalid_parameters"][0]["field"] == "content"
    assert await db_state(api.runtime) == before


def _bomb() -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    return OPENAPI + "\n".join(lines) + "\n"


async def test_hostile_specifications_get_400_and_store_nothing(api) -> None:
    pid, vid = await _product_version(api)
    url = f"/v2/api-products/{pid}/product-versions/{vid}/specifications"
    before = await db_state(api.runtime)
    for content in (
        _bomb(),
        base64.b64encode(_bomb().encode()).decode(),
        OPENAPI + "x: &a [*a]\n",
        OPENAPI + "x: !!python/object/apply:os.system ['true']\n",
        OPENAPI.replace("paths: {}", "paths: {/x: {$ref: 'http://127.0.0.1:9/evil.yaml'}}"),
        "swagger: '2.0'\n",
        "{not json",
    ):
        r = await api.client.post(url, json={"name": "a.yaml", "content": content})
        problem = _problem(r, 400)
        assert [p["field"] for p in problem["invalid_parameters"]] == ["content"], problem
    assert await db_state(api.runtime) == before


yaml_text = st.text(alphabet=st.sampled_from(list("ab: -\n{}[],&*!|>'\"#%0.")), max_size=200)
# Text YAML accepts (PyYAML refuses C0/C1 controls in its reader; that case is reported, not fuzzed here).
yaml_chars = st.characters(min_codepoint=0x20, max_codepoint=0xD7FF, exclude_categories=("Cc",))
json_trees = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet=yaml_chars, max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(yaml_chars, max_size=6), inner, max_size=3),
    max_leaves=15,
)


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=st.one_of(
        yaml_text.map(lambda t: {"name": "a.yaml", "content": t}),
        json_trees.map(lambda t: {"name": "a.yaml", "content": OPENAPI + "x-f: " + json.dumps(t) + "\n"}),
        json_trees.map(lambda t: {"name": "a.yaml", "content": t}),
        json_trees,
    )
)
async def test_fuzzed_specification_uploads_never_answer_5xx(api, body) -> None:
    if not hasattr(api, "spec_url"):
        pid, vid = await _product_version(api)
        api.spec_url = f"/v2/api-products/{pid}/product-versions/{vid}/specifications"
    r = await api.client.post(api.spec_url, json=body)
    assert r.status_code in (201, 400, 409), (body, r.status_code, r.text[:300])
    if r.status_code == 201:
        assert (await api.client.delete(f"{api.spec_url}/{r.json()['id']}")).status_code == 204


async def test_deeply_nested_json_bodies_get_400(api) -> None:
    before = await db_state(api.runtime)
    for body in (
        "[" * 100_000,
        '{"a":' * 50_000 + "1" + "}" * 50_000,
        "[" * 5000 + "]" * 5000,
        '{"name": "n", "labels": ' + '{"a":' * 900 + "1" + "}" * 900 + "}",
        '{"name": ' + "[" * 900 + "]" * 900 + "}",
    ):
        r = await api.client.post("/v2/api-products", content=body, headers={"Content-Type": "application/json"})
        problem = _problem(r, 400)
        assert problem["invalid_parameters"][0]["field"] in ("body", "name", "labels"), problem
    assert await db_state(api.runtime) == before


async def test_path_traversal_at_the_control_plane_reaches_nothing(api) -> None:
    pid, _ = await _product_version(api)
    before = await db_state(api.runtime)
    for raw in (
        b"/static/../../pyproject.toml",
        b"/static/..%2f..%2fpyproject.toml",
        b"/static/%2e%2e/%2e%2e/pyproject.toml",
        b"/static/..%5c..%5cpyproject.toml",
        b"/static/style.css%00.py",
        b"/v2/api-products/%2e%2e/dcr-providers",
        b"/v2/api-products/..%2fdcr-providers",
        f"/v2/api-products/{pid}/..%2f..%2fadmin-tokens".encode(),
    ):
        for method in ("GET", "DELETE"):
            request = api.client.build_request(method, "http://testserver/")
            request.url = request.url.copy_with(raw_path=raw)
            response = await api.client.send(request)
            assert 400 <= response.status_code < 500, (raw, response.status_code)
            assert "[project]" not in response.text
    assert (await api.client.get(f"/v2/api-products/{pid}")).status_code == 200
    assert await db_state(api.runtime) == before


async def test_lone_surrogate_escapes_get_400_and_change_nothing(api) -> None:
    """JSON may spell `\\ud800` alone, but no UTF-8 text (nor PostgreSQL) can hold it: refused as the body's fault."""
    dev = await approved_developer(api.runtime)
    before = await db_state(api.runtime)
    for url, headers in (("/v2/api-products", {}), ("/api/v2/applications", dev.bearer)):
        for raw in (b'{"name": "\\ud800"}', b'{"name": "ok", "labels": {"\\udfff": "x"}}'):
            r = await api.client.post(url, content=raw, headers={**headers, "Content-Type": "application/json"})
            problem = _problem(r, 400)
            assert problem["invalid_parameters"][0]["field"] == "body"
            assert "surrogate" in problem["invalid_parameters"][0]["reason"]
    assert await db_state(api.runtime) == before
