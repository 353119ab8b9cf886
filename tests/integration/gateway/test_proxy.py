"""Routing and proxying through a real gateway to a real upstream, with key-auth (contracts/gateway.md §4, §5.2, §6)."""

from __future__ import annotations

import asyncio
import hashlib
import json

import httpx

from tests.integration.gateway.conftest import PV_A, PV_B, S_KEY, World, sha
from tests.integration.gateway.servers import header


async def test_key_auth_allows_a_registered_app_and_rewrites_headers(world: World, start_gateway, upstream) -> None:
    world.key_app("app-key", "k-secret", [PV_A])
    gw = await start_gateway(world.build())
    response = await gw.client.get(
        "/a/invoices/./x?page=2&apikey=k-secret&z=1".replace("apikey=k-secret&", ""),
        headers={
            "apikey": "k-secret",
            "X-Application-ID": "forged",
            "X-Credential-Identifier": "forged",
            "Connection": "keep-alive, X-Hop",
            "X-Hop": "1",
            "TE": "trailers",
            "X-Forwarded-For": "6.6.6.6",
            "X-Request-Id": "req-123",
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "req-123"
    seen = response.json()
    assert seen["path"] == "/api/invoices/x"
    assert seen["query"] == "page=2&z=1"
    assert header(seen, "apikey") == []
    assert header(seen, "X-Application-ID") == ["app-key"]
    assert header(seen, "X-Application-Developer-ID") == ["dev-app-key"]
    assert header(seen, "X-Application-Portal-ID") == ["portal-1"]
    assert header(seen, "X-Application-Name") == ["app app-key %C3%A9"]
    assert header(seen, "X-Credential-Identifier") == ["cred-app-key"]
    assert header(seen, "X-Hop") == []
    assert header(seen, "TE") == []
    assert header(seen, "X-Forwarded-For") == ["127.0.0.1"]  # the peer is not a trusted proxy
    assert header(seen, "X-Forwarded-Proto") == ["http"]
    assert header(seen, "X-Forwarded-Host") == [f"127.0.0.1:{gw.node.proxy_port}"]
    assert header(seen, "X-Request-Id") == ["req-123"]
    assert header(seen, "Host") == [f"127.0.0.1:{upstream.port}"]


async def test_key_in_query_is_removed_and_repeated_keys_refused(world: World, start_gateway) -> None:
    world.key_app("app-key", "k-secret", [PV_A])
    gw = await start_gateway(world.build())
    ok = await gw.client.get("/a/x?apikey=k-secret&keep=1")
    assert ok.status_code == 200
    assert ok.json()["query"] == "keep=1"
    for params, headers in (
        ("?apikey=k-secret&apikey=k-secret", {}),
        ("?apikey=k-secret", {"apikey": "k-secret"}),
        ("", [("apikey", "k-secret"), ("apikey", "k-secret")]),
    ):
        refused = await gw.client.get("/a/x" + params, headers=headers)
        assert refused.status_code == 401
        assert refused.json() == {"message": "Unauthorized"}


async def test_key_auth_refusals(world: World, start_gateway) -> None:
    world.key_app("app-key", "k-secret", [PV_A])
    world.key_app("app-other", "k-other", [PV_B])
    world.key_app("app-none", "k-none", [])
    world.key_app("app-old", "k-old", [PV_A], expires_at="2020-01-01T00:00:00Z")
    gw = await start_gateway(world.build())
    wrong = await gw.client.get("/a/x", headers={"apikey": "nope"})
    assert wrong.status_code == 401
    assert 'Key realm="keystile"' in wrong.headers.get_list("www-authenticate")
    assert 'Basic realm="keystile"' in wrong.headers.get_list("www-authenticate")
    none = await gw.client.get("/a/x")
    assert none.status_code == 401
    other = await gw.client.get("/a/x", headers={"x-api-key": "k-other"})
    assert other.status_code == 403
    assert other.json() == {"message": "You cannot consume this service"}
    assert (await gw.client.get("/b/x", headers={"x-api-key": "k-other"})).status_code == 200
    assert (await gw.client.get("/a/x", headers={"apikey": "k-none"})).status_code == 403
    assert (await gw.client.get("/a/x", headers={"apikey": "k-old"})).status_code == 401


async def test_gateway_answers(world: World, start_gateway, upstream) -> None:
    world.key_app("app-key", "k-secret", [PV_A])
    world.extra_routes.append(
        {
            "product_version_id": "pv-dead",
            "product_id": "p",
            "paths": ["/dead"],
            "upstream_url": "http://127.0.0.1:9/x",
            "auth_strategy_ids": [],
            "allow_anonymous": True,
        }
    )
    gw = await start_gateway(world.build(), max_body_size=1000)
    nf = await gw.client.get("/nowhere")
    assert (nf.status_code, nf.json()) == (404, {"message": "no Route matched with those values"})
    assert nf.headers["content-type"] == "application/json; charset=utf-8"
    assert (await gw.client.get("/ax", headers={"apikey": "k-secret"})).status_code == 404
    bad = await raw_request(gw.node.proxy_port, b"GET /a/../../etc HTTP/1.1\r\nHost: x\r\n\r\n")
    assert bad.startswith(b"HTTP/1.1 400 ") and bad.endswith(b'{"message":"Bad request"}')
    dots = await raw_request(gw.node.proxy_port, b"GET /b/../a/%78 HTTP/1.1\r\nHost: x\r\napikey: k-secret\r\n\r\n")
    assert dots.startswith(b"HTTP/1.1 200 ") and b'"path": "/api/x"' in dots
    garbage = await raw_request(gw.node.proxy_port, b"NOT HTTP AT ALL\r\n\r\n")
    assert garbage.startswith(b"HTTP/1.1 400 ")
    big = await gw.client.post("/a/x", headers={"apikey": "k-secret"}, content=b"x" * 2000)
    assert (big.status_code, big.json()) == (413, {"message": "Request size limit exceeded"})
    dead = await gw.client.get("/dead")
    assert (dead.status_code, dead.json()) == (
        502,
        {"message": "An invalid response was received from the upstream server"},
    )
    async with httpx.AsyncClient(base_url=str(gw.client.base_url)) as fresh:
        huge = await fresh.get("/a/x", headers={"apikey": "k-secret", "X-Big": "y" * 40000})
    assert (huge.status_code, huge.json()) == (431, {"message": "Request header or cookie too large"})


async def raw_request(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(
        next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    )
    body = await reader.readexactly(length)
    writer.close()
    return head + body


async def test_bodies_stream_both_ways(world: World, start_gateway) -> None:
    world.key_app("app-key", "k-secret", [PV_A])
    gw = await start_gateway(world.build())
    payload = bytes(range(256)) * 8192  # 2 MiB
    sent = await gw.client.post("/a/upload", headers={"apikey": "k-secret"}, content=payload)
    assert sent.status_code == 200
    assert sent.json()["body_sha256"] == hashlib.sha256(payload).hexdigest()

    async def chunks():
        for _ in range(4):
            yield b"a" * 10000
            await asyncio.sleep(0)

    chunked = await gw.client.post("/a/upload", headers={"apikey": "k-secret"}, content=chunks())
    assert chunked.json()["body_len"] == 40000
    streamed = await gw.client.get("/a/stream", headers={"apikey": "k-secret"})
    assert streamed.text == "".join(f"chunk{i}\n" for i in range(5))
    many = await asyncio.gather(*(gw.client.get(f"/a/n{i}", headers={"apikey": "k-secret"}) for i in range(50)))
    assert [r.json()["path"] for r in many] == [f"/api/n{i}" for i in range(50)]


async def test_upstream_timeout_is_504(world: World, start_gateway) -> None:
    world.key_app("app-key", "k-secret", [PV_A])
    gw = await start_gateway(world.build())
    slow = await gw.client.get("/a/slow", headers={"apikey": "k-secret"})
    assert (slow.status_code, slow.json()) == (504, {"message": "The upstream server is timing out"})


async def test_access_log_has_fields_and_no_secrets(world: World, start_gateway) -> None:
    world.key_app("app-key", "k-secret", [PV_A])
    gw = await start_gateway(world.build())
    await gw.client.get("/a/x?apikey=k-secret", headers={"Cookie": "session=zzz", "User-Agent": "t/1"})
    await gw.client.get("/a/x", headers={"apikey": "wrong-key", "Authorization": "Basic Zm9vOmJhcg=="})
    lines = gw.log_lines()
    assert len(lines) == 2
    ok, refused = lines
    assert set(ok) == {
        "ts", "request_id", "client_ip", "method", "path", "route", "status", "bytes_in", "bytes_out", "duration_ms",
        "upstream_status", "upstream_duration_ms", "application_id", "auth_method", "auth_failure", "config_version",
        "user_agent",
    }  # fmt: skip
    assert (ok["status"], ok["route"], ok["application_id"], ok["auth_method"]) == (200, PV_A, "app-key", "key_auth")
    assert ok["path"] == "/a/x" and ok["upstream_status"] == 200 and ok["user_agent"] == "t/1"
    assert (refused["status"], refused["auth_failure"]) == (401, "unknown_app")
    text = gw.log.getvalue().decode()
    for secret in ("k-secret", "wrong-key", "zzz", "Zm9vOmJhcg", sha("k-secret")):
        assert secret not in text


async def test_status_port(world: World, start_gateway) -> None:
    world.key_app("app-key", "k-secret", [PV_A])
    gw = await start_gateway(world.build())
    await gw.client.get("/a/x", headers={"apikey": "k-secret"})
    await gw.client.get("/a/x")
    status = (await gw.status.get("/status")).json()
    assert status["config_version"] == 1
    assert status["config_source"] == "file"
    assert (status["routes"], status["applications"]) == (2, 1)
    assert (await gw.status.get("/status/ready")).status_code == 200
    assert (await gw.status.get("/status/live")).status_code == 200
    metrics = (await gw.status.get("/metrics")).text
    labels = f'application_id="app-key",auth_method="key_auth",route="{PV_A}",status="200"'
    assert f"keystile_gateway_requests_total{{{labels}}} 1.0" in metrics
    assert f'keystile_gateway_auth_failures_total{{reason="no_credential",route="{PV_A}"}} 1.0' in metrics
    assert "keystile_gateway_config_version 1.0" in metrics


async def test_config_file_reload_keeps_running_config_when_invalid(world: World, start_gateway) -> None:
    world.key_app("app-key", "k-secret", [PV_A])
    gw = await start_gateway(world.build())
    assert gw.config_path is not None
    gw.config_path.write_text('{"format_version": 1, "version": 2}')
    assert gw.node.reload() is False
    assert (await gw.client.get("/a/x", headers={"apikey": "k-secret"})).status_code == 200
    world.version = 2
    world.registrations["app-key"] = []
    gw.config_path.write_text(json.dumps(world.build()))
    assert gw.node.reload() is True
    assert (await gw.client.get("/a/x", headers={"apikey": "k-secret"})).status_code == 403
    assert S_KEY in gw.config_path.read_text()


async def test_trusted_proxies_keep_the_forwarded_chain(world: World, start_gateway) -> None:
    import ipaddress

    world.key_app("app-key", "k-secret", [PV_A])
    gw = await start_gateway(world.build(), trusted_proxies=[ipaddress.ip_network("127.0.0.0/8")])
    seen = (
        await gw.client.get(
            "/a/x",
            headers={
                "apikey": "k-secret",
                "X-Forwarded-For": "203.0.113.7",
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "api.example.com",
            },
        )
    ).json()
    assert header(seen, "X-Forwarded-For") == ["203.0.113.7, 127.0.0.1"]
    assert header(seen, "X-Forwarded-Proto") == ["https"]
    assert header(seen, "X-Forwarded-Host") == ["api.example.com"]


async def test_head_http10_expect_and_pipelining(world: World, start_gateway) -> None:
    world.key_app("app-key", "k-secret", [PV_A])
    gw = await start_gateway(world.build())
    head = await gw.client.head("/a/x", headers={"apikey": "k-secret"})
    assert head.status_code == 200 and head.content == b""
    refused = await gw.client.head("/a/x", headers={"apikey": "wrong"})
    assert (refused.status_code, refused.content, refused.headers["content-length"]) == (401, b"", "26")
    assert (await gw.client.get("/a/after-head", headers={"apikey": "k-secret"})).json()["path"] == "/api/after-head"
    # HTTP/1.0 without keep-alive: answered, then closed
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.node.proxy_port)
    writer.write(b"GET /a/old HTTP/1.0\r\napikey: k-secret\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 5)  # EOF: the gateway closed the connection
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 ") and b'"path": "/api/old"' in answer
    # Expect: 100-continue gets its interim answer from the gateway, then the real one
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.node.proxy_port)
    writer.write(
        b"POST /a/up HTTP/1.1\r\nHost: x\r\napikey: k-secret\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    )
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"hello")
    final = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert final.startswith(b"HTTP/1.1 200 ")
    length = int(next(x.split(b":")[1] for x in final.split(b"\r\n") if x.lower().startswith(b"content-length")))
    assert json.loads(await reader.readexactly(length))["body_len"] == 5
    # two pipelined requests on one connection come back in order
    one_then_two = b"".join(b"GET /a/%s HTTP/1.1\r\nHost: x\r\napikey: k-secret\r\n\r\n" % p for p in (b"one", b"two"))
    writer.write(one_then_two)
    paths = []
    for _ in range(2):
        head_bytes = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        n = int(next(x.split(b":")[1] for x in head_bytes.split(b"\r\n") if x.lower().startswith(b"content-length")))
        paths.append(json.loads(await reader.readexactly(n))["path"])
    writer.close()
    assert paths == ["/api/one", "/api/two"]
