"""Hostile requests at a real gateway on loopback (contracts/gateway.md §4–§6): fuzzed credentials (Basic in both
encodings, bearer, session cookies, API key headers and query parameters) and paths always get a clean 400/401/404
and never reach the upstream; oversized heads get 431 and bodies over --max-body-size 413; path traversal is
refused or stays below the route; CR/LF in an application name reaches the upstream percent-encoded.

Hypothesis examples are bounded and sent over one gateway per test, so the file runs in seconds."""

from __future__ import annotations

import asyncio
import base64
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.gateway.conftest import PV_A, World
from tests.integration.gateway.servers import EchoUpstream, FakeIdp, header
from tests.integration.hostile.rawhttp import send

FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Bytes a client can put in a header value (httptools refuses CR, LF and NUL itself, with a 400).
value_bytes = st.binary(max_size=200).map(lambda b: bytes(c for c in b if c not in b"\r\n\x00"))
tokenish = st.text(alphabet=string.ascii_letters + string.digits + "-_.~+/=:%", max_size=80)


def _b64(raw: bytes) -> bytes:
    return base64.b64encode(raw)


basic_values = st.one_of(
    value_bytes,
    st.tuples(tokenish, tokenish).map(lambda p: _b64(f"{p[0]}:{p[1]}".encode())),  # RFC 7617 form
    st.tuples(tokenish, tokenish).map(lambda p: _b64(f"{p[0]}:{p[1]}".encode()).rstrip(b"=")),  # padding dropped
    st.tuples(tokenish, tokenish).map(lambda p: f"{p[0]}:{p[1]}".encode()),  # Konnect's un-encoded form
    st.tuples(st.just("client-known"), tokenish).map(lambda p: _b64(f"{p[0]}:{p[1]}".encode())),  # known id
    st.binary(max_size=60).map(_b64),
)
jws_parts = st.one_of(
    tokenish,
    st.binary(max_size=80).map(lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()),
    st.sampled_from(
        ["eyJhbGciOiJub25lIn0", "eyJhbGciOiJIUzI1NiJ9", "e30", "bnVsbA", "W10"]
    ),  # none, HS256, {}, null, []
)
bearer_values = st.one_of(value_bytes, st.lists(jws_parts, min_size=1, max_size=4).map(lambda p: ".".join(p).encode()))
cookie_values = st.one_of(
    value_bytes,
    value_bytes.map(lambda v: b"session=" + v),
    value_bytes.map(lambda v: b"session=v1." + v),
    st.binary(min_size=1, max_size=120).map(lambda b: b"session=v1." + base64.urlsafe_b64encode(b).rstrip(b"=")),
)
query_values = st.binary(max_size=120).map(lambda b: bytes(c for c in b if 0x21 <= c < 0x7F and c not in b"#"))

credential = st.one_of(
    basic_values.map(lambda v: [(b"Authorization", b"Basic " + v)]),
    basic_values.map(lambda v: [(b"Authorization", b"basic   " + v)]),
    bearer_values.map(lambda v: [(b"Authorization", b"Bearer " + v)]),
    st.tuples(bearer_values, bearer_values).map(
        lambda p: [(b"Authorization", b"Bearer " + p[0]), (b"Authorization", b"Bearer " + p[1])]
    ),
    cookie_values.map(lambda v: [(b"Cookie", v)]),
    value_bytes.map(lambda v: [(b"apikey", v)]),
    value_bytes.map(lambda v: [(b"X-API-KEY", v)]),
    st.tuples(value_bytes, value_bytes).map(lambda p: [(b"x-api-key", p[0]), (b"x-api-key", p[1])]),
    value_bytes.map(lambda v: [(b"Authorization", v)]),
)


def _head(target: bytes, headers: list[tuple[bytes, bytes]], method: bytes = b"GET") -> bytes:
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: gw.test", b"Connection: close"]
    lines += [k + b": " + v for k, v in headers]
    return b"\r\n".join(lines)


@FUZZ
@given(headers=credential, query=st.one_of(st.just(b""), query_values, query_values.map(lambda q: b"apikey=" + q)))
async def test_fuzzed_credentials_get_a_clean_401(
    world: World, start_gateway, upstream: EchoUpstream, idp: FakeIdp, headers, query
) -> None:
    if not hasattr(world, "gw"):
        reg = idp.register()
        idp.clients["client-known"] = "the-right-secret"
        world.key_app("app-key", "the-real-key", [PV_A])
        world.oidc_app("app-oidc", "client-known", [PV_A])
        world.oidc_app("app-reg", reg.client_id, [PV_A])
        world.gw = await start_gateway(world.build())  # type: ignore[attr-defined]
    gw = world.gw  # type: ignore[attr-defined]
    before = len(upstream.requests)
    target = b"/a/x" + (b"?" + query if query else b"")
    response = await send(gw.node.proxy_port, _head(target, headers))
    assert response.status in (400, 401), (headers, query, response.status, response.body)
    assert response.body in (b'{"message":"Unauthorized"}', b'{"message":"Bad request"}')
    if response.status == 401:
        assert response.header("WWW-Authenticate")
    assert len(upstream.requests) == before  # nothing reached the upstream


path_atoms = st.sampled_from(
    [
        "/",
        "a",
        "b",
        "x",
        ".",
        "..",
        "%2e",
        "%2E",
        "%2e%2e",
        ".%2e",
        "%2f",
        "%2F",
        "%5c",
        "\\",
        "%",
        "%zz",
        "%00",
        "%25",
        ";",
        "~",
        "%7e",
        "//",
        "é".encode().decode("latin-1"),
    ]
)


@FUZZ
@given(st.lists(path_atoms, max_size=20).map(lambda atoms: "/" + "".join(atoms)))
async def test_fuzzed_paths_are_refused_or_stay_under_their_route(
    world: World, start_gateway, upstream: EchoUpstream, path: str
) -> None:
    if not hasattr(world, "gw"):
        world.key_app("app-key", "the-real-key", [PV_A])
        world.gw = await start_gateway(world.build())  # type: ignore[attr-defined]
    gw = world.gw  # type: ignore[attr-defined]
    before = len(upstream.requests)
    response = await send(gw.node.proxy_port, _head(path.encode("latin-1"), [(b"apikey", b"the-real-key")]))
    assert response.status in (200, 400, 403, 404), (path, response.status, response.body)
    if response.status == 200:
        [seen] = upstream.requests[before:]
        assert seen["path"].startswith("/api/") or seen["path"] == "/api", seen["path"]
        assert "/../" not in seen["path"] + "/" and "%2e%2e" not in seen["path"].lower()
    else:
        assert len(upstream.requests) == before


async def test_traversal_above_the_root_is_400_and_encoded_slashes_stay_encoded(
    world: World, start_gateway, upstream: EchoUpstream
) -> None:
    world.key_app("app-key", "the-real-key", [PV_A])  # registered for /a only
    gw = await start_gateway(world.build())
    key = [(b"apikey", b"the-real-key")]
    for target in (b"/a/../../etc/passwd", b"/a/%2e%2e/%2e%2e/etc/passwd", b"/%2E%2E/a", b"/a/.%2e/.%2E/.."):
        response = await send(gw.node.proxy_port, _head(target, key))
        assert (response.status, response.body) == (400, b'{"message":"Bad request"}'), target
    # /a/../b is /b: another route, which this application is not registered for
    response = await send(gw.node.proxy_port, _head(b"/a/%2e%2e/b/secret", key))
    assert response.status == 403
    assert upstream.requests == []
    # %2F is not a separator: the segment stays one opaque segment below the route's upstream path
    response = await send(gw.node.proxy_port, _head(b"/a/..%2F..%2Fetc%2Fpasswd", key))
    assert response.status == 200
    assert upstream.requests[-1]["path"] == "/api/..%2F..%2Fetc%2Fpasswd"


async def test_oversized_heads_get_431_and_bodies_over_the_limit_413(
    world: World, start_gateway, upstream: EchoUpstream
) -> None:
    world.key_app("app-key", "the-real-key", [PV_A])
    gw = await start_gateway(world.build(), max_body_size=64 * 1024)
    port = gw.node.proxy_port
    key = [(b"apikey", b"the-real-key")]
    for head in (
        _head(b"/a/x", [*key, (b"X-Big", b"v" * 40_000)]),
        _head(b"/a/x", key + [(b"X-Many-%d" % i, b"v" * 100) for i in range(400)]),
        _head(b"/a/x", [*key, (b"Cookie", b"session=" + b"c" * 33_000)]),
        _head(b"/a/" + b"p" * 33_000, key),
    ):
        response = await send(port, head)
        assert response.status == 431, response.body
        assert response.body == b'{"message":"Request header or cookie too large"}'
    body = b"z" * (64 * 1024 + 1)
    declared = await send(port, _head(b"/a/x", [*key, (b"Content-Length", str(len(body)).encode())], b"POST"), body)
    assert (declared.status, declared.body) == (413, b'{"message":"Request size limit exceeded"}')
    chunk = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    chunked = await send(port, _head(b"/a/x", [*key, (b"Transfer-Encoding", b"chunked")], b"POST"), chunk)
    assert chunked.status == 413
    assert upstream.requests == [] or all(r["body_len"] <= 64 * 1024 for r in upstream.requests)
    fits = await send(port, _head(b"/a/x", [*key, (b"Content-Length", b"65536")], b"POST"), b"y" * 65536)
    assert fits.status == 200


async def test_crlf_is_refused_in_requests_and_encoded_in_identity_headers(
    world: World, start_gateway, upstream: EchoUpstream
) -> None:
    world.key_app("app-key", "the-real-key", [PV_A])
    snapshot = world.build()
    snapshot["applications"][0]["name"] = 'evil\r\nX-Injected: 1\r\n\r\n<script>alert(1)</script>"><img src=x>'
    gw = await start_gateway(snapshot)
    port = gw.node.proxy_port
    # a bare CR or LF inside a header value, or a header line folded onto the next (obs-fold): 400
    for head in (
        _head(b"/a/x", [(b"apikey", b"the-real-key\rX-Injected: 1")]),
        _head(b"/a/x", [(b"apikey", b"the-real-key"), (b"X-Note", b"a\nX-Injected: 1")]),
    ):
        response = await send(port, head)
        assert response.status == 400, head
    assert upstream.requests == []
    ok = await send(port, _head(b"/a/x", [(b"apikey", b"the-real-key")]))
    assert ok.status == 200
    [seen] = upstream.requests
    assert header(seen, "X-Injected") == []
    [name] = header(seen, "X-Application-Name")
    assert "\r" not in name and "\n" not in name and "<" not in name and '"' not in name
    assert name == "evil%0D%0AX-Injected: 1%0D%0A%0D%0A%3Cscript%3Ealert(1)%3C/script%3E%22%3E%3Cimg src=x%3E"


async def test_a_400_from_the_parser_closes_the_connection(world, start_gateway):
    world.key_app("app-key", "k", [PV_A])
    gw = await start_gateway(world.build())
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.node.proxy_port)
    writer.write(b"GET /a/x HTTP/1.1\r\nHost: x\r\nX-Api-Key: a\x01b\r\n\r\n")
    data = b""
    async with asyncio.timeout(3):  # EOF arrives at once, not at the idle sweep
        while chunk := await reader.read(65536):
            data += chunk
    writer.close()
    assert data.startswith(b"HTTP/1.1 400")
