"""`GET /v2/data-plane/config` and the data-plane tokens and nodes API (gateway.md §2), on the test runtime."""

from __future__ import annotations

import gzip
import time
import uuid

from keystile.domain.snapshot import parse_snapshot


async def make_token(api, name: str | None = None) -> dict:
    r = await api.client.post("/v2/data-plane/tokens", json={"name": name or f"gw-{uuid.uuid4().hex[:6]}"})
    assert r.status_code == 201, r.text
    return r.json()


def feed_headers(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


async def test_tokens_create_list_unique_delete(api):
    made = await make_token(api, "edge-1")
    assert made["token"].startswith("kdp_") and len(made["token"]) == 4 + 43
    assert set(made) == {"id", "name", "token", "created_at"}
    again = await api.client.post("/v2/data-plane/tokens", json={"name": "edge-1"})
    assert again.status_code == 409
    bad = await api.client.post("/v2/data-plane/tokens", json={"name": ""})
    assert bad.status_code == 400 and bad.json()["invalid_parameters"][0]["rule"] == "min_length"
    listed = (await api.client.get("/v2/data-plane/tokens")).json()
    (row,) = listed["data"]
    assert row == {"id": made["id"], "name": "edge-1", "created_at": made["created_at"], "last_used_at": None}
    assert made["token"] not in str(listed)
    assert (await api.client.delete(f"/v2/data-plane/tokens/{made['id']}")).status_code == 204
    assert (await api.client.get("/v2/data-plane/tokens")).json()["data"] == []
    assert (await api.client.delete(f"/v2/data-plane/tokens/{made['id']}")).status_code == 404


async def test_feed_authentication(api):
    made = await make_token(api)
    anonymous = await api.client.get("/v2/data-plane/config", headers={"Authorization": ""})
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == 'Bearer realm="keystile"'
    unknown = await api.client.get("/v2/data-plane/config", headers=feed_headers("kdp_" + "x" * 43))
    assert unknown.status_code == 401
    admin = await api.client.get("/v2/data-plane/config")
    assert admin.status_code == 403
    bare = await api.client.get("/v2/data-plane/config", headers={"Authorization": made["token"]})
    assert bare.status_code == 200
    # a data-plane token is refused on admin routes
    other = await api.client.get("/v2/api-products", headers=feed_headers(made["token"]))
    assert other.status_code == 403
    await api.client.delete(f"/v2/data-plane/tokens/{made['id']}")
    revoked = await api.client.get("/v2/data-plane/config", headers=feed_headers(made["token"]))
    assert revoked.status_code == 401


async def test_etag_304_and_gzip(api):
    token = (await make_token(api))["token"]
    r = await api.client.get("/v2/data-plane/config", headers=feed_headers(token, **{"Accept-Encoding": "identity"}))
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.headers["cache-control"] == "no-store"
    assert "content-encoding" not in r.headers
    snap = parse_snapshot(r.content)
    assert r.headers["etag"] == f'"{snap.version}"'
    same = await api.client.get(
        "/v2/data-plane/config", headers=feed_headers(token, **{"If-None-Match": r.headers["etag"]})
    )
    assert same.status_code == 304 and same.content == b"" and same.headers["etag"] == r.headers["etag"]
    zero = await api.client.get(
        "/v2/data-plane/config?wait=0", headers=feed_headers(token, **{"If-None-Match": r.headers["etag"]})
    )
    assert zero.status_code == 304
    stale = await api.client.get("/v2/data-plane/config", headers=feed_headers(token, **{"If-None-Match": '"0"'}))
    assert stale.status_code == 200
    raw = await api.client.send(
        api.client.build_request(
            "GET", "/v2/data-plane/config", headers=feed_headers(token, **{"Accept-Encoding": "gzip"})
        ),
        stream=True,
    )
    assert raw.headers["content-encoding"] == "gzip"
    compressed = b"".join([chunk async for chunk in raw.aiter_raw()])
    await raw.aclose()
    assert gzip.decompress(compressed) == r.content


async def test_wait_is_validated(api):
    token = (await make_token(api))["token"]
    r = await api.client.get("/v2/data-plane/config?wait=soon", headers=feed_headers(token))
    assert r.status_code == 400
    assert r.json()["invalid_parameters"] == [
        {"field": "wait", "rule": "is_integer", "reason": "wait must be an integer 0–60", "source": "query"}
    ]
    r = await api.client.get("/v2/data-plane/config?wait=61", headers=feed_headers(token))
    assert r.json()["invalid_parameters"][0] == {
        "field": "wait",
        "rule": "max",
        "reason": "wait must be 0–60 seconds",
        "source": "query",
        "maximum": 60,
    }
    r = await api.client.get("/v2/data-plane/config?wait=-1", headers=feed_headers(token))
    assert r.status_code == 400 and r.json()["invalid_parameters"][0]["rule"] == "min"


async def test_long_poll_without_change_answers_304_after_wait(api):
    token = (await make_token(api))["token"]
    first = await api.client.get("/v2/data-plane/config", headers=feed_headers(token))
    started = time.monotonic()
    r = await api.client.get(
        "/v2/data-plane/config?wait=1", headers=feed_headers(token, **{"If-None-Match": first.headers["etag"]})
    )
    elapsed = time.monotonic() - started
    assert r.status_code == 304
    assert 0.9 <= elapsed < 3


async def test_nodes_are_tracked(api):
    made = await make_token(api)
    node = str(uuid.uuid4())
    r = await api.client.get(
        "/v2/data-plane/config",
        headers=feed_headers(
            made["token"],
            **{"X-Keystile-Node-Id": node, "X-Keystile-Node-Hostname": "gw-a", "User-Agent": "keystile-gateway/0.1.0"},
        ),
    )
    assert r.status_code == 200
    version = parse_snapshot(r.content).version
    nodes = (await api.client.get("/v2/data-plane/nodes")).json()
    (entry,) = [n for n in nodes["data"] if n["id"] == node]
    assert entry["hostname"] == "gw-a" and entry["version"] == "0.1.0"
    assert entry["config_version"] == version and entry["token_id"] == made["id"]
    assert entry["last_seen_at"].endswith("Z")
    bad = await api.client.get(
        "/v2/data-plane/config", headers=feed_headers(made["token"], **{"X-Keystile-Node-Id": "nope"})
    )
    assert bad.status_code == 400 and bad.json()["invalid_parameters"][0]["source"] == "header"


async def test_token_create_replay_does_not_return_the_token_again(api):
    headers = {"Idempotency-Key": "edge-token-1"}
    first = await api.client.post("/v2/data-plane/tokens", json={"name": "edge-9"}, headers=headers)
    assert first.status_code == 201
    again = await api.client.post("/v2/data-plane/tokens", json={"name": "edge-9"}, headers=headers)
    assert again.status_code == 409
    assert again.headers["location"] == f"/v2/data-plane/tokens/{first.json()['id']}"
    assert first.json()["token"] not in again.text
    assert "shown once" in again.json()["detail"]
