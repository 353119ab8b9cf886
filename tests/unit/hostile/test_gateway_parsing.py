"""Hostile input to the gateway's pure parsers (contracts/gateway.md §4, §5.2–5.5): whatever arrives, each
parser answers a value or its documented refusal (None / MalformedPathError) and never raises anything else.

Examples are bounded (`max_examples`) so the file runs in a few seconds."""

from __future__ import annotations

import base64
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keystile.gateway.auth import _cookie, _query_values, parse_basic
from keystile.gateway.routes import MalformedPathError, Router, normalize_path
from keystile.gateway.session import decode_session, derive_session_key
from keystile.oidc.tokens import parse_unverified

FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# What a header value can hold once httptools has parsed it: any byte but CR, LF and NUL, read as latin-1.
header_text = st.text(
    alphabet=st.characters(min_codepoint=1, max_codepoint=255, exclude_characters="\r\n"), max_size=300
)
b64_of_bytes = st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode())


@FUZZ
@given(st.one_of(header_text, b64_of_bytes, b64_of_bytes.map(lambda v: v.rstrip("="))))
def test_parse_basic_answers_a_pair_or_none(value: str) -> None:
    parsed = parse_basic(value)
    if parsed is not None:
        client_id, secret = parsed
        assert client_id and secret  # an empty part is a refusal, never an empty credential


@FUZZ
@given(
    # Credentials travel as UTF-8, so lone surrogates (which no UTF-8 text can hold) are not credentials.
    st.text(alphabet=st.characters(min_codepoint=0x21, codec="utf-8"), min_size=1, max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=40),
)
def test_parse_basic_round_trips_both_encodings(client_id: str, secret: str) -> None:
    """RFC 6749 §2.3.1: the parts are form-encoded before base64; the literal form is Konnect's un-encoded one."""
    from urllib.parse import quote_plus

    encoded = base64.b64encode(f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()).decode()
    assert parse_basic(encoded) == (client_id, secret)
    assert parse_basic(encoded.rstrip("=")) == (client_id, secret)


path_chars = st.sampled_from([*"/abc.%~-_", "%2e", "%2E", "%2f", "%2F", "..", "%", "%zz", "%00", "\\", "é", "?"])


@FUZZ
@given(st.lists(path_chars, max_size=40).map("".join), st.booleans())
def test_normalize_path_answers_a_rooted_path_or_malformed(body: str, rooted: bool) -> None:
    path = ("/" if rooted else "") + body
    try:
        out = normalize_path(path)
    except MalformedPathError:
        return
    assert out.startswith("/")
    segments = out.split("/")
    assert ".." not in segments and "." not in segments  # RFC 3986 §5.2.4: no dot segment survives
    assert "%2e" not in out.lower()  # an encoded dot is unreserved: decoded, then removed as a dot segment
    assert normalize_path(out) == out  # idempotent: the router sees one canonical form


@FUZZ
@given(st.lists(path_chars, max_size=30).map(lambda parts: "/" + "".join(parts)), st.sampled_from(["GET", "POST", "X"]))
def test_router_never_matches_outside_a_route_prefix(raw: str, method: str) -> None:
    router: Router[str] = Router([("/billing/v1", None, "billing"), ("/admin", ["GET"], "admin")])
    try:
        path = normalize_path(raw)
    except MalformedPathError:
        return
    hit = router.match(path, method)
    if hit is not None:
        target, prefix = hit
        assert path == prefix or path.startswith(prefix + "/")
        assert target == {"/billing/v1": "billing", "/admin": "admin"}[prefix]


@FUZZ
@given(st.lists(header_text.map(lambda s: s.encode("latin-1")), max_size=4), st.sampled_from(["session", "s", "a=b"]))
def test_cookie_lookup_answers_text_or_none(values: list[bytes], name: str) -> None:
    found = _cookie(values, name)
    assert found is None or isinstance(found, str)


@FUZZ
@given(st.binary(max_size=300), st.sampled_from(["apikey", "x-api-key", "ä"]))
def test_query_values_never_raise(query: bytes, name: str) -> None:
    assert all(isinstance(v, str) for v in _query_values(query, name))


SESSION_KEY = derive_session_key(base64.b64encode(b"s" * 32).decode())


@FUZZ
@given(st.one_of(header_text, header_text.map(lambda s: "v1." + s), b64_of_bytes.map(lambda s: "v1." + s)))
def test_session_cookie_decodes_or_is_refused(value: str) -> None:
    assert decode_session(SESSION_KEY, "strategy-1", value) is None  # nothing forged decrypts


b64url = string.ascii_letters + string.digits + "-_"
jws_part = st.one_of(
    st.text(alphabet=b64url, max_size=60),
    st.binary(max_size=60).map(lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
        max_leaves=10,
    ).map(lambda v: base64.urlsafe_b64encode(repr(v).replace("'", '"').encode()).decode().rstrip("=")),
)


@FUZZ
@given(st.lists(jws_part, min_size=1, max_size=4).map(".".join))
def test_parse_unverified_answers_a_token_or_none(token: str) -> None:
    jwt = parse_unverified(token)
    if jwt is not None:
        assert isinstance(jwt.header, dict) and isinstance(jwt.claims, dict)


@FUZZ
@given(st.text(max_size=120))
def test_identity_headers_stay_four_lines_whatever_the_application_name(name: str) -> None:
    """§5.6: `X-Application-Name` is percent-encoded, so no name can add, split or end a header line upstream."""
    from keystile.gateway.tables import _identity_headers

    block = _identity_headers("app-1", name, "dev-1", "portal-1")
    lines = block.split(b"\r\n")
    assert lines[-1] == b"" and len(lines) == 5
    assert [line.split(b":", 1)[0] for line in lines[:4]] == [
        b"X-Application-ID",
        b"X-Application-Developer-ID",
        b"X-Application-Portal-ID",
        b"X-Application-Name",
    ]
    value = lines[3].split(b": ", 1)[1]
    assert all(0x20 <= c < 0x7F for c in value)  # visible ASCII only: no CR, LF, NUL or obs-text
    from urllib.parse import unquote

    assert unquote(value.decode("ascii")) == name
