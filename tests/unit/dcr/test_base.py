"""The shared adapter machinery of `keystile.dcr.base` (contracts/dcr-providers.md §1.3, §1.4)."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
import uuid

import httpx
import pytest
from pydantic import SecretStr

from keystile.dcr.base import (
    MAX_ATTEMPTS,
    AccessToken,
    BaseProvider,
    DcrProvider,
    ProviderConfig,
    TokenCache,
    backoff_delay,
    parse_error_body,
    parse_time,
    retry_after_seconds,
    translate_transport_error,
)
from keystile.dcr.types import (
    AppMetadata,
    Capabilities,
    ClientRef,
    ClientUpdate,
    HookEvent,
    IssuedClient,
    ProbeResult,
    RotatedSecret,
    StrategyInfo,
    VerifyReport,
)
from keystile.domain.errors import ProviderError
from tests.unit.dcr.helpers import NoSleep, app

ISSUER = "https://idp.test/tenant"


class Plain(BaseProvider):
    """A provider with nothing but the base behaviour."""

    provider_type = "rfc7591"


def make(handler, *, secrets=None, deadline=30.0, sleep=None, uniform=None, discovery=None) -> Plain:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    config = ProviderConfig(
        "rfc7591", "prov-1", ISSUER, settings={}, secrets={k: SecretStr(v) for k, v in (secrets or {}).items()}
    )
    kwargs = {"deadline": deadline, "sleep": sleep or NoSleep()}
    if uniform is not None:
        kwargs["uniform"] = uniform
    return Plain(config, client, TokenCache(), discovery, **kwargs)


def discovery_doc(**extra):
    return {"issuer": ISSUER, "token_endpoint": "https://idp.test/token", **extra}


# -- the body parser ---------------------------------------------------------------------------------------------


def test_graph_shape():
    body = {
        "error": {"code": "Authorization_RequestDenied", "message": "Insufficient", "innerError": {"request-id": "r1"}}
    }
    parsed = parse_error_body(403, json.dumps(body).encode())
    assert (parsed.code, parsed.description, parsed.idp_request_id) == (
        "Authorization_RequestDenied",
        "Insufficient",
        "r1",
    )
    bare = parse_error_body(400, b'{"error": {"code": "Request_BadRequest"}}')
    assert (bare.code, bare.description, bare.idp_request_id) == ("Request_BadRequest", "", None)
    odd_inner = parse_error_body(400, b'{"error": {"code": "X", "message": "m", "innerError": "text"}}')
    assert odd_inner.idp_request_id is None


def test_okta_management_shape():
    body = {
        "errorCode": "E0000001",
        "errorSummary": "Api validation failed: secrets",
        "errorId": "oaeXYZ",
        "errorCauses": [{"errorSummary": "You've reached the maximum number of client secrets per client."}, "odd"],
    }
    parsed = parse_error_body(400, json.dumps(body).encode())
    assert parsed.code == "E0000001"
    assert parsed.description == (
        "Api validation failed: secrets: You've reached the maximum number of client secrets per client."
    )
    assert parsed.idp_request_id == "oaeXYZ"
    no_causes = parse_error_body(401, b'{"errorCode": "E0000011", "errorSummary": "Invalid token provided"}')
    assert (no_causes.code, no_causes.description, no_causes.idp_request_id) == (
        "E0000011",
        "Invalid token provided",
        None,
    )


def test_auth0_management_shape():
    with_code = (
        b'{"statusCode": 403, "error": "Forbidden", "message": "Insufficient scope", "errorCode": "insufficient_scope"}'
    )
    parsed = parse_error_body(403, with_code)
    assert (parsed.code, parsed.description) == ("insufficient_scope", "Insufficient scope")
    without = parse_error_body(400, b'{"statusCode": 400, "error": "Bad Request", "message": "Payload validation"}')
    assert (without.code, without.description) == ("Bad Request", "Payload validation")
    bare = parse_error_body(500, b'{"statusCode": 500, "message": "oops"}')
    assert (bare.code, bare.description) == ("http_500", "oops")


def test_rfc6749_shape_with_string_array_and_null_descriptions():
    parsed = parse_error_body(400, b'{"error": "invalid_client_metadata", "error_description": "client_name: taken"}')
    assert (parsed.code, parsed.description) == ("invalid_client_metadata", "client_name: taken")
    array = parse_error_body(
        400, b'{"error": "invalid_body", "error_description": [{"field": "scopes", "msg": "bad"}]}'
    )
    assert array.description == '[{"field":"scopes","msg":"bad"}]'
    none = parse_error_body(401, b'{"error": "invalid_token", "error_description": null}')
    assert (none.code, none.description) == ("invalid_token", "")
    entra = parse_error_body(401, b'{"error": "invalid_client", "correlation_id": "c-1"}')
    assert entra.idp_request_id == "c-1"


def test_fallback_for_anything_else():
    assert parse_error_body(502, b"<html>Bad gateway</html>") == (parse_error_body(502, b"<html>Bad gateway</html>"))
    html = parse_error_body(502, b"<html>Bad gateway</html>" + b"x" * 500)
    assert html.code == "http_502"
    assert html.description.startswith("<html>Bad gateway</html>")
    assert len(html.description) == 200
    assert parse_error_body(400, b'["a", "b"]').code == "http_400"
    assert parse_error_body(400, b'{"message": "no error key"}').code == "http_400"
    assert parse_error_body(400, b'{"error": ""}').code == "http_400"
    assert parse_error_body(500, b"\xff\xfe").description == "\ufffd\ufffd"


# -- Retry-After -------------------------------------------------------------------------------------------------


def test_retry_after_seconds_and_dates_and_rate_limit_resets():
    now = 1_800_000_000.0
    assert retry_after_seconds(httpx.Headers({"Retry-After": "7"}), now) == 7.0
    assert retry_after_seconds(httpx.Headers({"Retry-After": "-3"}), now) == 0.0
    future = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after_seconds(httpx.Headers({"Retry-After": future}), now) == pytest.approx(30.0)
    naive = email.utils.formatdate(now + 10).rsplit(" ", 1)[0] + " -0000"
    assert retry_after_seconds(httpx.Headers({"Retry-After": naive}), now) == pytest.approx(10.0, abs=1.0)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert retry_after_seconds(httpx.Headers({"Retry-After": past}), now) == 0.0
    assert retry_after_seconds(httpx.Headers({"Retry-After": "soon"}), now) is None
    assert retry_after_seconds(httpx.Headers({"X-Rate-Limit-Reset": str(int(now) + 12)}), now) == 12.0
    assert retry_after_seconds(httpx.Headers({"x-ratelimit-reset": str(int(now) + 5)}), now) == 5.0
    assert (
        retry_after_seconds(httpx.Headers({"X-Rate-Limit-Reset": "x", "x-ratelimit-reset": str(int(now) + 2)}), now)
        == 2.0
    )
    assert retry_after_seconds(httpx.Headers({}), now) is None
    assert retry_after_seconds(httpx.Headers({"Retry-After": "1"})) == 1.0


def test_backoff_is_full_jitter_capped_at_8_seconds():
    top = [backoff_delay(a, lambda lo, hi: hi) for a in (1, 2, 3, 4, 5)]
    assert top == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert backoff_delay(3, lambda lo, hi: lo) == 0.0
    assert 0.0 <= backoff_delay(2) <= 2.0


def test_parse_time_accepts_epochs_numeric_strings_and_rfc3339():
    assert parse_time(None) is None
    assert parse_time("") is None
    assert parse_time(0) is None
    assert parse_time("0") is None
    assert parse_time(1_700_000_000).isoformat() == "2023-11-14T22:13:20+00:00"
    assert parse_time(1_700_000_000.5).microsecond == 500000
    assert parse_time("1700000000").isoformat() == "2023-11-14T22:13:20+00:00"
    assert parse_time("2026-01-02T03:04:05Z").isoformat() == "2026-01-02T03:04:05+00:00"
    assert parse_time("2026-01-02T03:04:05").tzinfo is not None
    assert parse_time("2026-01-02T03:04:05+02:00").utcoffset().total_seconds() == 7200
    for bad in (True, [1], "not a time"):
        with pytest.raises(ValueError):
            parse_time(bad)


# -- the transport-error map -------------------------------------------------------------------------------------


def _httpx_error_classes():
    out = []
    for name in httpx.__all__:
        obj = getattr(httpx, name)
        if (
            isinstance(obj, type)
            and issubclass(obj, Exception)
            and (issubclass(obj, httpx.HTTPError) or obj is httpx.InvalidURL)
        ):
            out.append(obj)
    return out


@pytest.mark.parametrize("cls", _httpx_error_classes(), ids=lambda c: c.__name__)
def test_every_httpx_error_is_translated(cls):
    if cls is httpx.HTTPStatusError:
        exc = cls("x", request=httpx.Request("GET", "https://a.test"), response=httpx.Response(500))
    elif cls in (httpx.InvalidURL, httpx.HTTPError):
        exc = cls("x")
    else:
        exc = cls("x", request=httpx.Request("GET", "https://a.test"))
    for idempotent in (True, False):
        code, _retryable, unknown = translate_transport_error(exc, idempotent)
        assert code in {"connect_error", "timeout", "invalid_response"}
        assert not (unknown and idempotent)


@pytest.mark.parametrize(
    ("exc", "idempotent", "expected"),
    [
        (httpx.ConnectError("refused"), False, ("connect_error", True, False)),
        (httpx.ConnectTimeout("slow"), False, ("timeout", True, False)),
        (httpx.PoolTimeout("pool"), False, ("timeout", True, False)),
        (httpx.UnsupportedProtocol("ftp"), True, ("connect_error", False, False)),
        (httpx.ReadTimeout("read"), False, ("timeout", False, True)),
        (httpx.ReadTimeout("read"), True, ("timeout", True, False)),
        (httpx.RemoteProtocolError("dropped"), False, ("connect_error", False, True)),
        (httpx.RemoteProtocolError("dropped"), True, ("connect_error", True, False)),
        (httpx.DecodingError("gzip"), True, ("invalid_response", False, False)),
        (httpx.DecodingError("gzip"), False, ("invalid_response", False, True)),
        (TimeoutError(), False, ("timeout", False, True)),
    ],
)
def test_transport_error_classification(exc, idempotent, expected):
    assert translate_transport_error(exc, idempotent) == expected


def test_non_transport_errors_are_not_translated():
    with pytest.raises(TypeError):
        translate_transport_error(ValueError("x"), True)


# -- the token cache ---------------------------------------------------------------------------------------------


async def test_token_cache_single_flight_expiry_and_refresh():
    now = [1000.0]
    cache = TokenCache(clock=lambda: now[0])
    calls = []

    async def fetch():
        calls.append(1)
        await asyncio.sleep(0.01)
        return AccessToken(SecretStr(f"t{len(calls)}"), expires_in=300)

    tokens = await asyncio.gather(*(cache.get("k", fetch) for _ in range(5)))
    assert {t.value.get_secret_value() for t in tokens} == {"t1"}
    assert len(calls) == 1
    assert len(cache) == 1
    now[0] += 239
    assert (await cache.get("k", fetch)).value.get_secret_value() == "t1"
    now[0] += 2  # past expires_in - 60
    assert (await cache.get("k", fetch)).value.get_secret_value() == "t2"
    assert (await cache.get("k", fetch, force_refresh=True)).value.get_secret_value() == "t3"
    cache.drop("k")
    assert len(cache) == 0
    cache.drop("absent")

    async def short():
        return AccessToken(SecretStr("s"), expires_in=30)

    async def endless():
        return AccessToken(SecretStr("e"))

    await cache.get("short", short)
    await cache.get("endless", endless)
    assert len(cache) == 0  # neither is kept


# -- request -----------------------------------------------------------------------------------------------------


async def test_2xx_and_accepted_statuses_are_returned_with_the_attempt():
    adapter = make(lambda r: httpx.Response(404 if r.method == "DELETE" else 201, json={}))
    created = await adapter.request("register", "POST", "https://idp.test/r", idempotent=False)
    gone = await adapter.request("deregister", "DELETE", "https://idp.test/r/1", idempotent=True, accept={404})
    assert (created.status_code, gone.status_code) == (201, 404)
    assert gone.extensions["keystile_attempt"] == 1


async def test_idempotent_500_is_retried_three_times_with_jittered_backoff():
    seen = []

    def handler(request):
        seen.append(request)
        return httpx.Response(503, json={"error": "temporarily_unavailable"}, headers={"x-request-id": "req-9"})

    sleep = NoSleep()
    adapter = make(handler, sleep=sleep, uniform=lambda lo, hi: hi)
    with pytest.raises(ProviderError) as caught:
        await adapter.request("deregister", "DELETE", "https://idp.test/c/1?x=secretq", idempotent=True)
    err = caught.value
    assert len(seen) == MAX_ATTEMPTS
    assert sleep.delays == [1.0, 2.0]
    assert (err.status, err.code, err.retryable, err.outcome_unknown) == (503, "temporarily_unavailable", True, False)
    assert err.idp_request_id == "req-9"
    assert err.provider_id == "prov-1"
    assert isinstance(err.__cause__, httpx.HTTPStatusError)


async def test_then_success_after_a_transient_error():
    answers = iter([httpx.Response(502), httpx.Response(200, json={"ok": True})])
    adapter = make(lambda r: next(answers))
    response = await adapter.request("list_clients", "GET", "https://idp.test/c", idempotent=True)
    assert response.json() == {"ok": True}
    assert response.extensions["keystile_attempt"] == 2


async def test_non_idempotent_500_is_not_retried_and_outcome_unknown():
    seen = []
    adapter = make(lambda r: seen.append(r) or httpx.Response(500, text="boom"))
    with pytest.raises(ProviderError) as caught:
        await adapter.request("register", "POST", "https://idp.test/r", idempotent=False)
    assert len(seen) == 1
    err = caught.value
    assert (err.code, err.retryable, err.outcome_unknown, err.description) == ("http_500", False, True, "boom")


async def test_429_is_retried_even_for_creates_after_retry_after():
    seen = []
    adapter = make(lambda r: seen.append(r) or httpx.Response(429, headers={"Retry-After": "0"}))
    sleep = adapter._sleep
    with pytest.raises(ProviderError) as caught:
        await adapter.request("register", "POST", "https://idp.test/r", idempotent=False)
    assert len(seen) == 3
    assert sleep.delays == [0.0, 0.0]
    assert (caught.value.retryable, caught.value.outcome_unknown, caught.value.retry_after) == (True, False, 0.0)


async def test_429_whose_retry_after_passes_the_deadline_ends_the_loop_retryable():
    seen = []
    adapter = make(lambda r: seen.append(r) or httpx.Response(429, headers={"Retry-After": "120"}))
    with pytest.raises(ProviderError) as caught:
        await adapter.request("register", "POST", "https://idp.test/r", idempotent=False)
    assert len(seen) == 1
    assert (caught.value.retryable, caught.value.retry_after) == (True, 120.0)


async def test_429_without_retry_after_uses_the_backoff():
    adapter = make(lambda r: httpx.Response(429), uniform=lambda lo, hi: hi / 4)
    with pytest.raises(ProviderError):
        await adapter.request("probe", "POST", "https://idp.test/token", idempotent=True)
    assert adapter._sleep.delays == [0.25, 0.5]


async def test_4xx_and_unaccepted_3xx_are_final():
    seen = []
    adapter = make(lambda r: seen.append(r) or httpx.Response(302 if r.method == "GET" else 409, json={"error": "x"}))
    with pytest.raises(ProviderError) as caught:
        await adapter.request("deregister", "DELETE", "https://idp.test/c/1", idempotent=True)
    assert (caught.value.status, caught.value.retryable, caught.value.outcome_unknown) == (409, False, False)
    with pytest.raises(ProviderError) as caught:
        await adapter.request("list_clients", "GET", "https://idp.test/c", idempotent=True)
    assert (caught.value.status, caught.value.retryable) == (302, False)
    assert len(seen) == 2


async def test_connect_errors_are_retried_for_creates_and_chained():
    seen = []

    def refuse(request):
        seen.append(request)
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    adapter = make(refuse)
    with pytest.raises(ProviderError) as caught:
        await adapter.request("register", "POST", "https://idp.test/r", idempotent=False)
    err = caught.value
    assert len(seen) == 3
    assert (err.status, err.code, err.retryable, err.outcome_unknown) == (None, "connect_error", True, False)
    assert isinstance(err.__cause__, httpx.ConnectError)
    assert str(err) == "the RFC 7591 server register failed: connect_error: could not reach the IdP (ConnectError)"


async def test_read_timeout_on_a_create_is_outcome_unknown_and_not_retried():
    seen = []

    def slow(request):
        seen.append(request)
        raise httpx.ReadTimeout("timed out", request=request)

    adapter = make(slow)
    with pytest.raises(ProviderError) as caught:
        await adapter.request("register", "POST", "https://idp.test/r", idempotent=False)
    assert len(seen) == 1
    assert (caught.value.code, caught.value.retryable, caught.value.outcome_unknown) == ("timeout", False, True)
    assert caught.value.timed_out


async def test_a_refusal_after_an_attempt_that_may_have_landed_still_may_have_landed():
    """A DELETE whose first attempt timed out (it may have been carried out) and whose retry was refused (403):
    the error says it may have landed, so a later 401 can be read as "already gone"; a refusal alone does not."""
    answers = iter([httpx.ReadTimeout("timed out"), httpx.Response(403, json={"error": "access_denied"})])

    def flaky(request):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise httpx.ReadTimeout("timed out", request=request)
        return answer

    adapter = make(flaky)
    with pytest.raises(ProviderError) as caught:
        await adapter.request("deregister", "DELETE", "https://idp.test/r/1", idempotent=True)
    assert (caught.value.status, caught.value.may_have_landed) == (403, True)

    adapter = make(lambda request: httpx.Response(403, json={"error": "access_denied"}))
    with pytest.raises(ProviderError) as caught:
        await adapter.request("deregister", "DELETE", "https://idp.test/r/1", idempotent=True)
    assert (caught.value.status, caught.value.may_have_landed) == (403, False)


async def test_decoding_errors_are_invalid_responses():
    def garbled(request):
        raise httpx.DecodingError("bad gzip", request=request)

    adapter = make(garbled)
    with pytest.raises(ProviderError) as caught:
        await adapter.request("deregister", "DELETE", "https://idp.test/r/1", idempotent=True)
    assert (caught.value.code, caught.value.retryable) == ("invalid_response", False)
    assert "unreadable answer" in caught.value.description


async def test_the_operation_deadline_cuts_a_hanging_request():
    async def hang(request):
        await asyncio.sleep(5)
        return httpx.Response(200)  # pragma: no cover - never reached

    adapter = make(hang, deadline=0.05)
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        await adapter.request("deregister", "DELETE", "https://idp.test/r/1", idempotent=True)
    assert time.monotonic() - started < 1.0
    assert caught.value.code == "timeout"
    assert isinstance(caught.value.__cause__, TimeoutError)


async def test_retries_stop_when_the_backoff_would_pass_the_deadline():
    seen = []
    adapter = make(lambda r: seen.append(r) or httpx.Response(500), deadline=0.5, uniform=lambda lo, hi: hi)
    with pytest.raises(ProviderError) as caught:
        await adapter.request("deregister", "DELETE", "https://idp.test/r/1", idempotent=True)
    assert len(seen) == 1
    assert caught.value.retryable
    seen.clear()

    def refuse(request):
        seen.append(request)
        raise httpx.ConnectError("refused", request=request)

    adapter = make(refuse, deadline=0.5, uniform=lambda lo, hi: hi)
    with pytest.raises(ProviderError):
        await adapter.request("register", "POST", "https://idp.test/r", idempotent=False)
    assert len(seen) == 1


async def test_one_log_line_per_attempt_without_query_headers_or_bodies(caplog):
    answers = iter([httpx.Response(500, json={"error": "x", "error_description": "y"}), httpx.Response(204)])
    adapter = make(lambda r: next(answers), secrets={"initial_access_token": "iat-secret-value"})
    caplog.set_level(logging.DEBUG)
    await adapter.request(
        "deregister",
        "DELETE",
        "https://idp.test/c/1?token=query-secret",
        idempotent=True,
        headers={"Authorization": "Bearer header-secret"},
        json_body={"client_secret": "body-secret"},
    )
    lines = [r for r in caplog.records if r.name == "keystile.dcr"]
    assert len(lines) == 2
    assert lines[0].getMessage().startswith("idp request rfc7591 prov-1 deregister DELETE /c/1 -> 500 in ")
    assert "attempt=1" in lines[0].getMessage()
    assert lines[1].http_status == 204
    assert lines[1].attempt == 2
    assert lines[1].url_path == "/c/1"
    text = "\n".join(r.getMessage() + repr(vars(r)) for r in caplog.records)
    for secret in ("query-secret", "header-secret", "body-secret", "iat-secret-value"):
        assert secret not in text


async def test_errors_redact_known_and_configured_secrets():
    body = {"error": "invalid_client", "error_description": "secret iat-secret-value and call-secret and Bearer abc"}
    adapter = make(lambda r: httpx.Response(400, json=body), secrets={"initial_access_token": "iat-secret-value"})
    with pytest.raises(ProviderError) as caught:
        await adapter.request(
            "register", "POST", "https://idp.test/r", idempotent=False, known=[SecretStr("call-secret")]
        )
    message = str(caught.value)
    assert "iat-secret-value" not in message
    assert "call-secret" not in message
    assert "abc" not in message
    assert message.startswith("the RFC 7591 server register failed: 400 invalid_client: secret [REDACTED]")


# -- json_object -------------------------------------------------------------------------------------------------


def test_json_object_checks_shape_and_required_fields():
    adapter = make(lambda r: httpx.Response(200))
    ok = adapter.json_object(httpx.Response(200, json={"client_id": "a"}), "register", required=("client_id",))
    assert ok == {"client_id": "a"}
    with pytest.raises(ProviderError) as caught:
        adapter.json_object(httpx.Response(201, text="<html>"), "register", outcome_unknown=True)
    assert (caught.value.code, caught.value.outcome_unknown, caught.value.status) == ("invalid_response", True, 201)
    assert isinstance(caught.value.__cause__, ValueError)
    with pytest.raises(ProviderError) as caught:
        adapter.json_object(httpx.Response(200, json=[1]), "register")
    assert caught.value.description == "the answer is not a JSON object"
    with pytest.raises(ProviderError) as caught:
        adapter.json_object(
            httpx.Response(201, json={"client_id": "c-1", "client_secret": ""}),
            "register",
            required=("client_id", "client_secret"),
            outcome_unknown=True,
        )
    assert caught.value.description == "the answer lacks client_secret"
    assert caught.value.extra == {"client_id": "c-1"}
    with pytest.raises(ProviderError) as caught:
        adapter.json_object(httpx.Response(201, json={"client_id": 5}), "register", required=("client_secret",))
    assert caught.value.extra == {}


# -- tokens ------------------------------------------------------------------------------------------------------


async def test_client_credentials_basic_form_and_cache():
    seen = []

    def token(request):
        seen.append(request)
        return httpx.Response(
            200, json={"access_token": f"tok-{len(seen)}", "expires_in": 3600, "scope": "dcr", "id_token": "x"}
        )

    adapter = make(token)
    first = await adapter.client_credentials(
        "verify", "https://idp.test/token", "admin", SecretStr("pw"), scope="dcr", extra={"audience": "a"}, cache=True
    )
    second = await adapter.client_credentials(
        "verify", "https://idp.test/token", "admin", SecretStr("pw"), scope="dcr", extra={"audience": "a"}, cache=True
    )
    assert first is second
    assert len(seen) == 1
    request = seen[0]
    assert request.headers["authorization"] == "Basic YWRtaW46cHc="
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.content == b"grant_type=client_credentials&scope=dcr&audience=a"
    assert (first.scope, first.expires_in, first.token_type) == ("dcr", 3600.0, "Bearer")
    assert "id_token" not in first.extra
    assert "tok-1" not in repr(first)
    refreshed = await adapter.client_credentials(
        "verify",
        "https://idp.test/token",
        "admin",
        SecretStr("pw"),
        scope="dcr",
        extra={"audience": "a"},
        cache=True,
        force_refresh=True,
    )
    assert refreshed.value.get_secret_value() == "tok-2"
    other_secret = await adapter.client_credentials(
        "verify", "https://idp.test/token", "admin", SecretStr("pw2"), scope="dcr", extra={"audience": "a"}, cache=True
    )
    assert other_secret.value.get_secret_value() == "tok-3"


async def test_client_credentials_json_request_and_bad_answers():
    answers = iter(
        [
            httpx.Response(200, json={"access_token": "t", "token_type": "bearer"}),
            httpx.Response(200, json={"token_type": "bearer"}),
            httpx.Response(200, json={"access_token": 42}),
        ]
    )
    seen = []
    adapter = make(lambda r: seen.append(r) or next(answers))
    token = await adapter.client_credentials(
        "register",
        "https://idp.test/oauth/token",
        "mgmt",
        SecretStr("pw"),
        extra={"audience": "https://idp.test/api/v2/"},
        json_request=True,
    )
    assert json.loads(seen[0].content) == {
        "grant_type": "client_credentials",
        "audience": "https://idp.test/api/v2/",
        "client_id": "mgmt",
        "client_secret": "pw",
    }
    assert "authorization" not in seen[0].headers
    assert (token.expires_in, token.scope, token.token_type) == (None, None, "bearer")
    for _ in range(2):
        with pytest.raises(ProviderError) as caught:
            await adapter.client_credentials("register", "https://idp.test/token", "a", SecretStr("pw"))
        assert caught.value.code == "invalid_response"


# -- discovery and probe -----------------------------------------------------------------------------------------


def idp(token_answer=None, *, doc=None):
    def handler(request):
        if request.url.path.endswith("/.well-known/openid-configuration"):
            return httpx.Response(200, json=doc if doc is not None else discovery_doc())
        if request.url.path == "/token":
            return token_answer(request)
        return httpx.Response(404)  # pragma: no cover - unexpected

    return handler


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (httpx.Response(200, json={"access_token": "t"}), ProbeResult.OK),
        (httpx.Response(401, json={"error": "invalid_client"}), ProbeResult.REJECTED),
        (httpx.Response(400, json={"error": "invalid_client"}), ProbeResult.REJECTED),
        (httpx.Response(400, json={"error": "unauthorized_client"}), ProbeResult.REJECTED),
        (httpx.Response(400, json={"error": "invalid_scope"}), ProbeResult.DENIED),
        (httpx.Response(403, json={"error": "access_denied"}), ProbeResult.DENIED),
    ],
)
async def test_probe_outcomes(answer, expected):
    seen = []
    adapter = make(idp(lambda r: seen.append(r) or answer))
    strategy = StrategyInfo(
        scopes=("openid", "read"), token_post_args_names=("audience",), token_post_args_values=("api",)
    )
    assert await adapter.probe("c-1", SecretStr("s-1"), strategy) is expected
    assert seen[0].content == b"grant_type=client_credentials&scope=read&audience=api"


async def test_probe_without_strategy_and_its_failures():
    adapter = make(idp(lambda r: httpx.Response(200, json={"access_token": "t"})))
    assert await adapter.probe("c", SecretStr("s")) is ProbeResult.OK
    assert adapter.probe_params(StrategyInfo(scopes=("openid",))) == {"grant_type": "client_credentials"}
    broken = make(idp(lambda r: httpx.Response(500)))
    with pytest.raises(ProviderError) as caught:
        await broken.probe("c", SecretStr("s"))
    assert caught.value.status == 500
    no_token = make(idp(None, doc={"issuer": ISSUER}))
    with pytest.raises(ProviderError) as caught:
        await no_token.probe("c", SecretStr("s"))
    assert caught.value.description == "discovery has no token_endpoint"
    wrong_issuer = make(idp(None, doc={"issuer": "https://other.test"}))
    with pytest.raises(ProviderError) as caught:
        await wrong_issuer.probe("c", SecretStr("s"))
    assert caught.value.code == "issuer_mismatch"
    assert caught.value.operation == "probe"


# -- defaults, identity, verify helpers --------------------------------------------------------------------------


async def test_unsupported_defaults_make_no_call():
    seen = []
    adapter = make(lambda r: seen.append(r) or httpx.Response(500))
    ref = ClientRef(client_id="c", application_id=uuid.uuid4())
    calls = [
        adapter.register(app()),
        adapter.deregister(ref),
        adapter.rotate_secret(ref),
        adapter.revoke_secret(ref, "cred"),
        adapter.verify(),
    ]
    for call in calls:
        with pytest.raises(ProviderError) as caught:
            await call
        assert caught.value.code == "unsupported_operation"
    with pytest.raises(ProviderError) as caught:
        adapter.list_clients()
    assert caught.value.description == "this IdP cannot list clients"
    assert await adapter.on_event(ref, HookEvent("update_application", app())) is None
    assert seen == []


def test_identity_and_protocol():
    adapter = make(lambda r: httpx.Response(200), secrets={"initial_access_token": "hidden-value"})
    assert isinstance(adapter, DcrProvider)
    assert adapter.origin == "https://idp.test"
    assert adapter.display_name == "the RFC 7591 server"
    assert repr(adapter) == "<Plain rfc7591 prov-1>"
    assert "hidden-value" not in repr(adapter.config)
    assert adapter.capabilities == Capabilities()
    assert SecretStr("hidden-value") in adapter.known_secrets()
    assert adapter.config.setting("absent", 5) == 5
    trial = adapter.trial_app()
    assert trial.dcr_provider_id == "prov-1"
    assert trial.created_at is not None


class Trial(Plain):
    """Register/deregister scripted for the trial helper."""

    def __init__(self, *args, register_error=None, deregister_error=None, needs_probe=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_error = register_error
        self.deregister_error = deregister_error
        self.needs_probe = needs_probe
        self.deleted = []

    async def register(self, app: AppMetadata) -> IssuedClient:
        if self.register_error:
            raise self.register_error
        return IssuedClient("c-1", SecretStr("s-1"), needs_probe=self.needs_probe, handles={"h": 1})

    async def deregister(self, ref: ClientRef) -> None:
        if self.deregister_error:
            raise self.deregister_error
        self.deleted.append(ref.client_id)


def trial(token_answer, **kwargs):
    client = httpx.AsyncClient(transport=httpx.MockTransport(idp(token_answer)))
    return Trial(ProviderConfig("rfc7591", "prov-1", ISSUER), client, TokenCache(), sleep=NoSleep(), **kwargs)


async def test_verify_trial_outcomes():
    ok = trial(lambda r: httpx.Response(200, json={"access_token": "t"}))
    report = VerifyReport()
    await ok.verify_trial(report, None)
    assert report.as_dict() == {
        "status": "success",
        "errors": [],
        "checks": [
            {"name": "trial_registration", "status": "passed", "detail": "client c-1 registered, checked and deleted"}
        ],
    }
    assert ok.deleted == ["c-1"]

    rejected = trial(lambda r: httpx.Response(401, json={"error": "invalid_client"}))
    report = VerifyReport()
    await rejected.verify_trial(report, app())
    assert report.errors == ["the new client's credentials were rejected at the token endpoint"]

    broken = trial(lambda r: httpx.Response(500))
    report = VerifyReport()
    await broken.verify_trial(report, app())
    assert report.errors[0].startswith("the new client's token request failed: the RFC 7591 server probe failed: 500")

    slow = trial(lambda r: httpx.Response(500), needs_probe=True)
    report = VerifyReport()
    await slow.verify_trial(report, app())
    assert report.status == "success"

    failing = trial(
        None,
        register_error=ProviderError(
            provider_type="rfc7591", operation="register", status=400, code="invalid_client_metadata"
        ),
    )
    report = VerifyReport()
    await failing.verify_trial(report, app())
    assert report.errors == [
        "trial registration failed: the RFC 7591 server register failed: 400 invalid_client_metadata"
    ]

    stuck = trial(
        lambda r: httpx.Response(200, json={"access_token": "t"}),
        deregister_error=ProviderError(provider_type="rfc7591", operation="deregister", status=503, code="http_503"),
    )
    report = VerifyReport()
    await stuck.verify_trial(report, app())
    assert report.cleanup is not None
    assert report.cleanup.client_id == "c-1"
    assert report.cleanup.handles == {"h": 1}
    assert "the trial client c-1 could not be deleted" in report.errors[0]


async def test_verify_discovery_check():
    bad = make(idp(None, doc={"issuer": "https://other.test"}))
    report = VerifyReport()
    assert await bad.verify_discovery(report) is None
    assert report.checks[0].status == "failed"
    assert "the discovery document names issuer 'https://other.test'" in report.errors[0]
    good = make(idp(None))
    report = VerifyReport()
    assert (await good.verify_discovery(report)).issuer == ISSUER
    assert report.check("discovery").status == "passed"
    assert report.check("absent") is None


def test_data_types():
    app_id = uuid.uuid4()
    ref = ClientRef("c", app_id, handles={"a": 1}, secret_handles={"rat": SecretStr("r1")}, metadata={"x": 1, "y": 2})
    update = ClientUpdate(handles={"b": 2}, secret_handles={"rat": SecretStr("r2")}, metadata={"y": 3})
    merged = update.apply(ref)
    assert merged.handles == {"a": 1, "b": 2}
    assert merged.secret_handles["rat"].get_secret_value() == "r2"
    assert merged.metadata == {"x": 1, "y": 3}
    rotated = RotatedSecret(SecretStr("new"), metadata={"z": 1}).apply(ref)
    assert rotated.metadata == {"x": 1, "y": 2, "z": 1}
    assert rotated.secret_handles["rat"].get_secret_value() == "r1"
    issued = IssuedClient("c", SecretStr("s"))
    assert issued.as_ref(app_id).client_id == "c"
    strategy = StrategyInfo(token_post_args_names=("audience", "resource"), token_post_args_values=("aud", "res"))
    assert strategy.audience == "aud"
    assert StrategyInfo().audience is None
    caps = Capabilities(events=frozenset({"add_registration", "update_application"}))
    assert caps.acts_on("add_registration")
    assert not caps.acts_on("remove_registration")
    assert caps.as_dict()["events"] == ["add_registration", "update_application"]
    report = VerifyReport()
    report.warning("discovery", "slow")
    report.skipped("trial_registration", "not requested")
    assert report.status == "success"
    assert [c["status"] for c in report.as_dict()["checks"]] == ["warning", "skipped"]


class TwoSteps(Plain):
    """An operation of two requests, for the operation deadline."""

    async def register(self, app: AppMetadata) -> IssuedClient:
        await self.request("register", "POST", "https://idp.test/one", idempotent=False)
        await self.request("register", "POST", "https://idp.test/two", idempotent=False)
        return IssuedClient("c", SecretStr("s"))

    async def deregister(self, ref: ClientRef) -> None:
        await self.register(app())  # nested: shares the outer deadline


def two_steps(deadline: float, delay: float) -> tuple[TwoSteps, list[str]]:
    seen: list[str] = []

    async def slow(request):
        seen.append(request.url.path)
        await asyncio.sleep(delay)
        return httpx.Response(201, json={})

    client = httpx.AsyncClient(transport=httpx.MockTransport(slow))
    adapter = TwoSteps(
        ProviderConfig("rfc7591", "prov-1", ISSUER), client, TokenCache(), deadline=deadline, sleep=NoSleep()
    )
    return adapter, seen


async def test_one_deadline_covers_all_requests_of_an_operation():
    adapter, seen = two_steps(deadline=1.0, delay=0.6)
    with pytest.raises(ProviderError) as caught:
        await adapter.register(app())
    assert seen == ["/one", "/two"]
    assert (caught.value.code, caught.value.outcome_unknown) == ("timeout", True)
    assert type(adapter).register.__wrapped__ is not None  # wrapped by __init_subclass__


async def test_an_operation_out_of_time_sends_nothing_more():
    adapter, seen = two_steps(deadline=1.0, delay=0)

    async def late(request):
        seen.append(request.url.path)
        return httpx.Response(201, json={})

    adapter.client = httpx.AsyncClient(transport=httpx.MockTransport(late))
    from keystile.dcr import base

    token = base._OPERATION_DEADLINE.set(time.monotonic() - 1)
    try:
        with pytest.raises(ProviderError) as caught:
            await adapter.request("deregister", "DELETE", "https://idp.test/x", idempotent=True)
    finally:
        base._OPERATION_DEADLINE.reset(token)
    assert seen == []
    assert (caught.value.code, caught.value.retryable, caught.value.outcome_unknown) == ("timeout", True, False)


async def test_nested_operations_share_the_outer_deadline():
    adapter, seen = two_steps(deadline=1.0, delay=0.6)
    with pytest.raises(ProviderError):
        await adapter.deregister(ClientRef("c", uuid.uuid4()))
    assert seen == ["/one", "/two"]
    fast, seen = two_steps(deadline=5, delay=0)
    await fast.deregister(ClientRef("c", uuid.uuid4()))
    await fast.register(app())
    assert seen == ["/one", "/two", "/one", "/two"]
