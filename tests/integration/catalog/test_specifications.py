"""Specifications: one per version, base64 or text, ≤ 5 MiB, JSON or YAML, OpenAPI 3.0/3.1 (management-api.md §4)."""

from __future__ import annotations

import base64
import json

from keystile.domain.catalog import MAX_SPEC_BYTES, read_specification
from tests.integration.catalog.helpers import product, version

OPENAPI_YAML = """openapi: 3.0.3
info:
  title: Billing
  version: "1.0"
paths:
  /invoices:
    get:
      responses:
        "200":
          description: the invoices
"""

OPENAPI_31_JSON = json.dumps(
    {
        "openapi": "3.1.0",
        "info": {"title": "Billing", "version": "2"},
        "paths": {"/invoices": {"get": {"responses": {"200": {"description": "ok"}}}}},
    }
)


async def _version(api) -> str:
    p = await product(api.client)
    v = await version(api.client, p["id"])
    return f"/v2/api-products/{p['id']}/product-versions/{v['id']}/specifications"


async def test_base64_yaml_upload_then_one_per_version(api):
    base = await _version(api)
    r = await api.client.post(
        base, json={"name": "billing.yaml", "content": base64.b64encode(OPENAPI_YAML.encode()).decode()}
    )
    assert r.status_code == 201, r.text
    spec = r.json()
    assert set(spec) == {"id", "name", "content", "created_at", "updated_at"}
    assert spec["content"] == OPENAPI_YAML
    assert r.headers["location"] == f"{base}/{spec['id']}"
    second = await api.client.post(base, json={"name": "other.json", "content": OPENAPI_31_JSON})
    assert second.status_code == 409
    listed = (await api.client.get(base)).json()
    assert [s["id"] for s in listed["data"]] == [spec["id"]]
    patched = await api.client.patch(f"{base}/{spec['id']}", json={"content": OPENAPI_31_JSON, "name": "b.json"})
    assert patched.status_code == 200 and patched.json()["content"] == OPENAPI_31_JSON
    assert (await api.client.get(f"{base}/{spec['id']}")).json()["name"] == "b.json"
    assert (await api.client.delete(f"{base}/{spec['id']}")).status_code == 204
    assert (await api.client.get(f"{base}/{spec['id']}")).status_code == 404
    again = await api.client.post(base, json={"name": "raw.json", "content": OPENAPI_31_JSON})
    assert again.status_code == 201 and again.json()["content"] == OPENAPI_31_JSON


async def test_invalid_documents_are_explained_on_content(api):
    base = await _version(api)
    r = await api.client.post(base, json={"name": "billing.txt", "content": "openapi: [unclosed"})
    assert r.status_code == 400
    items = {i["field"]: i for i in r.json()["invalid_parameters"]}
    assert items["name"]["rule"] == "matches_regex"
    assert items["content"]["rule"] == "invalid" and "line 1" in items["content"]["reason"]
    missing_info = "openapi: 3.0.3\npaths: {}\n"
    r = await api.client.post(base, json={"name": "a.yaml", "content": missing_info})
    (item,) = r.json()["invalid_parameters"]
    assert item["field"] == "content" and item["reason"].startswith("at /: ") and "info" in item["reason"]
    bad_response = OPENAPI_YAML.replace("description: the invoices", "summary: no description")
    r = await api.client.post(base, json={"name": "a.yaml", "content": bad_response})
    (item,) = r.json()["invalid_parameters"]
    assert item["reason"].startswith("at /paths/~1invoices/get/responses/200")
    swagger = json.dumps({"swagger": "2.0", "info": {"title": "x", "version": "1"}, "paths": {}})
    r = await api.client.post(base, json={"name": "a.json", "content": swagger})
    assert "Swagger 2.0 is not supported" in r.json()["invalid_parameters"][0]["reason"]
    remote = OPENAPI_YAML + "components:\n  schemas:\n    X:\n      $ref: 'http://169.254.169.254/latest'\n"
    r = await api.client.post(base, json={"name": "a.yaml", "content": remote})
    assert "only local $ref" in r.json()["invalid_parameters"][0]["reason"]
    assert (await api.client.get(base)).json()["data"] == []


def test_alias_expansion_is_capped():
    bomb = ["openapi: 3.0.3", 'a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        bomb.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]")
    _, problems = read_specification("\n".join(bomb))
    (item,) = problems
    assert "expands to more than" in item.reason
    _, problems = read_specification("a: &a [*a]\n")
    assert "expands to more than" in problems[0].reason or problems[0].rule == "invalid"


def test_size_limit_applies_to_the_decoded_document():
    big = OPENAPI_YAML + "x-pad: '" + "p" * (MAX_SPEC_BYTES) + "'\n"
    _, problems = read_specification(big)
    (item,) = problems
    assert item.rule == "max_length" and item.maximum == MAX_SPEC_BYTES
    _, problems = read_specification(base64.b64encode(OPENAPI_YAML.encode()).decode())
    assert problems == []


async def test_upload_limit_is_8_mib_of_body(api):
    base = await _version(api)
    r = await api.client.post(
        base,
        content=b'{"name": "a.yaml", "content": "' + b"a" * (8 * 1024 * 1024) + b'"}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413
