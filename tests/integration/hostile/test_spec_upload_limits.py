"""Specification uploads that used to escape as 500s (found by the hostile-input review): deep nesting and
control characters are a 400 on `content`, and nothing is stored."""


async def test_spec_content_nested_deeply_or_with_control_characters_is_400(api):
    p = (await api.client.post("/v2/api-products", json={"name": "f"})).json()["id"]
    v = (await api.client.post(f"/v2/api-products/{p}/product-versions", json={"name": "v1"})).json()["id"]
    url = f"/v2/api-products/{p}/product-versions/{v}/specifications"
    cases = {
        "deep-json": "[" * 5000,
        "deep-yaml": "a: " + "[" * 5000,
        "nul": "openapi: 3.0.3\n\x00",
        "us": "\x1f",
    }
    for name, content in cases.items():
        r = await api.client.post(url, json={"name": "a.yaml", "content": content})
        assert r.status_code == 400, (name, r.text)
        assert r.json()["invalid_parameters"][0]["field"] == "content", name
    assert (await api.client.get(url)).json()["data"] == []
