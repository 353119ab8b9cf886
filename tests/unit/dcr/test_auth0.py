"""Contract tests of the `auth0` adapter against the Auth0 fake (contracts/dcr-providers.md §2.2, §2.8, §4.2)."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from keystile.dcr.auth0 import Auth0Provider
from keystile.dcr.base import TokenCache
from keystile.dcr.registry import build_adapter
from keystile.dcr.types import ClientRef, HookEvent, ProbeResult, StrategyInfo
from keystile.domain.errors import ProviderError

from .fakes.auth0 import (
    ADMIN_CLIENT_ID,
    ADMIN_CLIENT_SECRET,
    API_AUDIENCE,
    ISSUER,
    MGMT_AUDIENCE,
    TENANT,
    FakeAuth0,
    FakeClock,
    mgmt_error,
)
from .fakes.support import (
    DEVELOPER_ID,
    PORTAL_ID,
    PROVIDER_ID,
    SleepRecorder,
    assert_no_secret_logged,
    capture_dcr_logs,
    make_app,
)

AUDIENCE_STRATEGY = StrategyInfo(
    scopes=("openid", "orders:read"), token_post_args_names=("audience",), token_post_args_values=(API_AUDIENCE,)
)
TOKEN = "/oauth/token"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock):
    auth0 = FakeAuth0(clock)
    yield auth0
    auth0.assert_clean()


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


def build(client: httpx.AsyncClient, clock: FakeClock, sleeps: SleepRecorder, **config) -> Auth0Provider:
    adapter = build_adapter(
        provider_type="auth0",
        provider_id=PROVIDER_ID,
        issuer=ISSUER,
        dcr_config={"initial_client_id": ADMIN_CLIENT_ID, **config},
        secrets={"initial_client_secret": ADMIN_CLIENT_SECRET},
        client=client,
        token_cache=TokenCache(clock=clock),
        sleep=sleeps,
        uniform=lambda low, high: high,
    )
    assert isinstance(adapter, Auth0Provider)
    return adapter


@pytest.fixture
async def auth0(fake: FakeAuth0, clock: FakeClock, sleeps: SleepRecorder):
    async with fake.client() as client:
        yield build(client, clock, sleeps)


def app_with_audience(**kwargs):
    return make_app(strategy=AUDIENCE_STRATEGY, **kwargs)


def body_of(request: httpx.Request):
    return json.loads(request.content)


# -- Management token -------------------------------------------------------------------------------------------


async def test_one_management_token_serves_many_calls(auth0: Auth0Provider, fake: FakeAuth0) -> None:
    app = app_with_audience()
    issued = await auth0.register(app)
    ref = issued.as_ref(app.application_id)
    await auth0.on_event(ref, HookEvent("update_application", app))
    await auth0.rotate_secret(ref)
    await auth0.deregister(ref)

    assert fake.tokens_issued == 1
    (token_call,) = fake.sent("POST", TOKEN)
    assert token_call.headers["content-type"] == "application/json"
    assert "authorization" not in token_call.headers
    assert body_of(token_call) == {
        "grant_type": "client_credentials",
        "client_id": ADMIN_CLIENT_ID,
        "client_secret": ADMIN_CLIENT_SECRET,
        "audience": MGMT_AUDIENCE,
    }
    management = [r for r in fake.requests if r.url.path.startswith("/api/v2/")]
    assert len(management) == 7
    assert {r.headers["authorization"] for r in management} == {f"Bearer {next(iter(fake.mgmt_tokens))}"}


async def test_a_new_management_token_after_expiry(auth0: Auth0Provider, fake: FakeAuth0, clock: FakeClock) -> None:
    await auth0.register(app_with_audience())
    clock.advance(86400 - 61)  # still inside expires_in − 60 s: cached
    await auth0.register(app_with_audience())
    assert fake.tokens_issued == 1
    clock.advance(2)  # past expires_in − 60 s: a new token before Auth0 would refuse the old one
    await auth0.register(app_with_audience())
    assert fake.tokens_issued == 2
    assert [r.url.path for r in fake.requests].count(TOKEN) == 2


async def test_a_401_drops_the_token_and_the_call_is_repeated_once(auth0: Auth0Provider, fake: FakeAuth0) -> None:
    await auth0.register(app_with_audience())
    fake.revoke_management_tokens()
    start = len(fake.requests)

    issued = await auth0.register(app_with_audience())

    assert fake.trace()[start:] == [
        "POST /api/v2/clients",
        f"POST {TOKEN}",
        "POST /api/v2/clients",
        "POST /api/v2/client-grants",
    ]
    assert fake.tokens_issued == 2
    assert issued.client_id in fake.clients


async def test_only_one_refetch_when_the_new_token_is_refused_too(
    fake: FakeAuth0, clock: FakeClock, sleeps: SleepRecorder
) -> None:
    fake.token_lifetime = 0  # every token is expired when it arrives
    async with fake.client() as client:
        auth0 = build(client, clock, sleeps)
        with pytest.raises(ProviderError) as info:
            await auth0.register(app_with_audience())
    assert fake.trace() == [f"POST {TOKEN}", "POST /api/v2/clients", f"POST {TOKEN}", "POST /api/v2/clients"]
    err = info.value
    assert (err.status, err.code, err.retryable) == (401, "invalid_token", False)
    assert err.description == "Expired token received for JSON Web Token validation"


# -- register ---------------------------------------------------------------------------------------------------


async def test_register_sends_the_client_body_with_the_four_metadata_keys_then_the_grant(
    auth0: Auth0Provider, fake: FakeAuth0
) -> None:
    app = app_with_audience(name="Orders")
    issued = await auth0.register(app)

    assert fake.trace() == [f"POST {TOKEN}", "POST /api/v2/clients", "POST /api/v2/client-grants"]
    client_call, grant_call = fake.requests[1], fake.requests[2]
    assert str(client_call.url) == f"{TENANT}/api/v2/clients"
    assert body_of(client_call) == {
        "name": f"Orders (ks-{app.application_id.hex[-12:]})",
        "description": "Order lookups for the shop",
        "app_type": "non_interactive",
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "client_secret_basic",
        "oidc_conformant": True,
        "jwt_configuration": {"alg": "RS256"},
        "client_metadata": {
            "keystile_application_id": str(app.application_id),
            "keystile_developer_id": DEVELOPER_ID,
            "keystile_portal_id": PORTAL_ID,
            "keystile_provider_id": PROVIDER_ID,
        },
    }
    # grant audience from token_post_args; scope = strategy scopes minus the OpenID ones
    assert body_of(grant_call) == {"client_id": issued.client_id, "audience": API_AUDIENCE, "scope": ["orders:read"]}
    (grant,) = fake.grants_of(issued.client_id)
    assert issued.handles == {"grant_ids": [grant["id"]]}
    assert issued.client_secret.get_secret_value() == fake.secrets[issued.client_id]
    assert issued.needs_probe is False
    assert "client_secret" not in issued.metadata
    assert issued.metadata["client_metadata"]["keystile_application_id"] == str(app.application_id)
    assert await auth0.probe(issued.client_id, issued.client_secret, app.strategy) is ProbeResult.OK


async def test_register_with_a_redirect_uri_makes_a_regular_web_client(auth0: Auth0Provider, fake: FakeAuth0) -> None:
    app = app_with_audience(redirect_uri="https://shop.example/cb", description="d" * 200)
    await auth0.register(app)
    sent = body_of(fake.requests[1])
    assert sent["app_type"] == "regular_web"
    assert sent["grant_types"] == ["authorization_code", "client_credentials"]
    assert sent["callbacks"] == ["https://shop.example/cb"]
    assert sent["description"] == "d" * 140


async def test_missing_audience_is_refused_before_any_call(auth0: Auth0Provider, fake: FakeAuth0) -> None:
    with pytest.raises(ProviderError) as info:
        await auth0.register(make_app(strategy=StrategyInfo(scopes=("orders:read",))))
    assert (info.value.code, info.value.status, info.value.retryable) == ("missing_audience", None, False)
    assert fake.requests == []


async def test_developer_managed_scopes_are_granted(fake: FakeAuth0, clock: FakeClock, sleeps: SleepRecorder) -> None:
    async with fake.client() as client:
        auth0 = build(client, clock, sleeps, use_developer_managed_scopes=True)
        app = make_app(scopes=("orders:write", "openid"), strategy=AUDIENCE_STRATEGY)
        await auth0.register(app)
    assert body_of(fake.sent("POST", "/api/v2/client-grants")[0])["scope"] == ["orders:write"]


async def test_409_on_the_grant_is_success(auth0: Auth0Provider, fake: FakeAuth0) -> None:
    fake.inject(
        "POST", "/api/v2/client-grants", "status", status=409, body=mgmt_error(409, "Conflict", "exists", "conflict")
    )
    issued = await auth0.register(app_with_audience())
    assert issued.handles == {"grant_ids": []}
    assert issued.client_id in fake.clients


async def test_a_failed_grant_deletes_the_client_before_raising(auth0: Auth0Provider, fake: FakeAuth0) -> None:
    fake.resource_servers.clear()  # the audience names no API
    with pytest.raises(ProviderError) as info:
        await auth0.register(app_with_audience())
    err = info.value
    assert (err.status, err.code, err.outcome_unknown) == (404, "inexistent_resource_server", False)
    assert fake.clients == {}
    assert fake.trace()[-1].startswith("DELETE /api/v2/clients/")


async def test_a_failed_grant_whose_cleanup_fails_is_outcome_unknown(auth0: Auth0Provider, fake: FakeAuth0) -> None:
    fake.resource_servers.clear()
    fake.inject("DELETE", "*", "status", status=403, body=mgmt_error(403, "Forbidden", "no", "insufficient_scope"))
    with pytest.raises(ProviderError) as info:
        await auth0.register(app_with_audience())
    err = info.value
    assert err.outcome_unknown is True
    assert err.extra["client_id"] in fake.clients


async def test_a_client_answer_without_secret_is_an_invalid_response(auth0: Auth0Provider, fake: FakeAuth0) -> None:
    fake.inject("POST", "/api/v2/clients", "status", status=201, body={"client_id": "abc"})
    with pytest.raises(ProviderError) as info:
        await auth0.register(app_with_audience())
    assert (info.value.code, info.value.outcome_unknown, info.value.extra) == (
        "invalid_response",
        True,
        {"client_id": "abc"},
    )


# -- deregister -------------------------------------------------------------------------------------------------


async def test_grants_are_deleted_before_the_client(auth0: Auth0Provider, fake: FakeAuth0) -> None:
    app = app_with_audience()
    issued = await auth0.register(app)
    ref = issued.as_ref(app.application_id)
    fake.resource_servers["https://api.billing.example"] = ["orders:read"]
    update = await auth0.on_event(ref, HookEvent("add_registration", app, "v3", "https://api.billing.example"))
    assert update is not None
    grant_ids = [g["id"] for g in fake.grants_of(issued.client_id)]
    start = len(fake.requests)

    await auth0.deregister(ref)

    assert fake.trace()[start:] == [
        "GET /api/v2/client-grants",
        f"DELETE /api/v2/client-grants/{grant_ids[0]}",
        f"DELETE /api/v2/client-grants/{grant_ids[1]}",
        f"DELETE /api/v2/clients/{issued.client_id}",
    ]
    assert dict(fake.requests[start].url.params) == {"client_id": issued.client_id}
    assert fake.clients == {}
    assert fake.grants == {}


async def test_404_on_delete_is_already_gone(auth0: Auth0Provider, fake: FakeAuth0) -> None:
    await auth0.deregister(ClientRef(client_id="gone", application_id=uuid.uuid4()))
    assert fake.trace()[-1] == "DELETE /api/v2/clients/gone"


async def test_404_on_a_grant_delete_is_already_gone(auth0: Auth0Provider, fake: FakeAuth0) -> None:
    app = app_with_audience()
    issued = await auth0.register(app)
    fake.inject(
        "DELETE", "*", "status", status=404, body=mgmt_error(404, "Not Found", "gone", "inexistent_client_grant")
    )
    await auth0.deregister(issued.as_ref(app.application_id))
    assert fake.clients == {}


async def test_a_grant_list_that_is_not_an_array_is_invalid(auth0: Auth0Provider, fake: FakeAuth0) -> None:
    fake.inject("GET", "/api/v2/client-grants", "status", status=200, body={"client_grants": []})
    with pytest.raises(ProviderError) as info:
        await auth0.deregister(ClientRef(client_id="x", application_id=uuid.uuid4()))
    assert info.value.code == "invalid_response"


# -- rotate and probe -------------------------------------------------------------------------------------------


async def test_rotation_needs_a_probe_retried_until_auth0_accepts(auth0: Auth0Provider, fake: FakeAuth0) -> None:
    app = app_with_audience()
    issued = await auth0.register(app)
    fake.rotation_delay = 2

    rotated = await auth0.rotate_secret(issued.as_ref(app.application_id), "replace")

    assert rotated.needs_probe is True
    assert "client_secret" not in rotated.metadata
    rotate_call = fake.sent("POST", f"/api/v2/clients/{issued.client_id}/rotate-secret")[0]
    assert rotate_call.content == b""
    assert await auth0.probe(issued.client_id, issued.client_secret, app.strategy) is ProbeResult.REJECTED
    outcomes = [await auth0.probe(issued.client_id, rotated.client_secret, app.strategy) for _ in range(3)]
    assert outcomes == [ProbeResult.REJECTED, ProbeResult.REJECTED, ProbeResult.OK]
    probe = fake.sent("POST", TOKEN)[-1]
    assert probe.content == b"grant_type=client_credentials&audience=https%3A%2F%2Fapi.orders.example"
    assert probe.headers["authorization"].startswith("Basic ")


async def test_probe_without_a_grant_for_the_audience_is_denied(auth0: Auth0Provider, fake: FakeAuth0) -> None:
    app = app_with_audience()
    issued = await auth0.register(app)
    other = StrategyInfo(token_post_args_names=("audience",), token_post_args_values=("https://api.other.example",))
    assert await auth0.probe(issued.client_id, issued.client_secret, other) is ProbeResult.DENIED


async def test_add_rotation_is_unsupported(auth0: Auth0Provider, fake: FakeAuth0) -> None:
    with pytest.raises(ProviderError) as info:
        await auth0.rotate_secret(ClientRef(client_id="x", application_id=uuid.uuid4()), "add")
    assert info.value.code == "unsupported_operation"
    assert fake.requests == []


# -- events -----------------------------------------------------------------------------------------------------


async def test_update_application_patches_name_description_callbacks(auth0: Auth0Provider, fake: FakeAuth0) -> None:
    app = app_with_audience(redirect_uri="https://shop.example/cb")
    issued = await auth0.register(app)
    renamed = app_with_audience(name="Orders v2", description="new", application_id=app.application_id)

    update = await auth0.on_event(issued.as_ref(app.application_id), HookEvent("update_application", renamed))

    patch = fake.requests[-1]
    assert (patch.method, patch.url.path) == ("PATCH", f"/api/v2/clients/{issued.client_id}")
    assert body_of(patch) == {
        "name": f"Orders v2 (ks-{app.application_id.hex[-12:]})",
        "description": "new",
        "callbacks": [],
    }
    assert update is not None
    assert update.metadata["name"].startswith("Orders v2")


async def test_add_registration_grants_the_audience_and_409_is_success(auth0: Auth0Provider, fake: FakeAuth0) -> None:
    app = make_app(strategy=StrategyInfo(scopes=("orders:read",)))  # no audience in the strategy
    fake.resource_servers["https://api.billing.example"] = ["orders:read"]
    registered = await auth0.register(app_with_audience())
    ref = ClientRef(client_id=registered.client_id, application_id=app.application_id, handles={"grant_ids": ["g0"]})
    billing = HookEvent("add_registration", app, "v1", "https://api.billing.example")

    update = await auth0.on_event(ref, billing)
    assert update is not None
    grant = next(g for g in fake.grants_of(ref.client_id) if g["audience"] == "https://api.billing.example")
    assert update.handles == {"grant_ids": ["g0", grant["id"]]}
    assert body_of(fake.requests[-1]) == {
        "client_id": ref.client_id,
        "audience": "https://api.billing.example",
        "scope": ["orders:read"],
    }

    assert await auth0.on_event(ref, billing) is None  # the second time Auth0 answers 409: success, nothing new
    assert fake.requests[-1].url.path == "/api/v2/client-grants"
    assert await auth0.on_event(ref, HookEvent("add_registration", app, "v1")) is None  # no audience anywhere
    assert await auth0.on_event(ref, HookEvent("remove_registration", app, "v1", "aud")) is None
    assert fake.trace().count("POST /api/v2/client-grants") == 3


# -- list -------------------------------------------------------------------------------------------------------


async def test_list_clients_pages_and_keeps_this_providers_clients(auth0: Auth0Provider, fake: FakeAuth0) -> None:
    ours = set()
    for i in range(130):
        client_id = f"c{i:04d}"
        provider = PROVIDER_ID if i % 2 == 0 else "another-provider"
        metadata = {"keystile_provider_id": provider, "keystile_application_id": f"app-{i}"}
        fake.clients[client_id] = {"client_id": client_id, "name": f"App {i}", "client_metadata": metadata}
        if i % 2 == 0:
            ours.add((client_id, f"app-{i}"))
    fake.clients["plain"] = {"client_id": "plain", "name": "Default App"}

    listed = [c async for c in auth0.list_clients()]

    assert {(c.client_id, c.application_id) for c in listed} == ours
    pages = fake.sent("GET", "/api/v2/clients")
    assert [dict(p.url.params) for p in pages] == [
        {"fields": "client_id,name,client_metadata", "include_fields": "true", "per_page": "100", "page": "0"},
        {"fields": "client_id,name,client_metadata", "include_fields": "true", "per_page": "100", "page": "1"},
    ]


async def test_list_clients_skips_unreadable_rows(auth0: Auth0Provider, fake: FakeAuth0) -> None:
    rows = ["x", {"name": "no id"}, {"client_id": "a", "client_metadata": {"keystile_provider_id": PROVIDER_ID}}]
    fake.inject("GET", "/api/v2/clients", "status", status=200, body=rows)
    listed = [c async for c in auth0.list_clients()]
    assert [(c.client_id, c.name, c.application_id) for c in listed] == [("a", "", None)]
    fake.inject("GET", "/api/v2/clients", "malformed")
    with pytest.raises(ProviderError):
        _ = [c async for c in auth0.list_clients()]


# -- verify -----------------------------------------------------------------------------------------------------


async def test_verify_success_with_a_trial(auth0: Auth0Provider, fake: FakeAuth0) -> None:
    report = await auth0.verify(trial=True, app=app_with_audience())
    assert report.status == "success", report.as_dict()
    assert [(c.name, c.status) for c in report.checks] == [
        ("discovery", "passed"),
        ("management_credentials", "passed"),
        ("management_api", "passed"),
        ("trial_registration", "passed"),
    ]
    assert fake.clients == {}


async def test_verify_names_missing_permissions(fake: FakeAuth0, clock: FakeClock, sleeps: SleepRecorder) -> None:
    fake.permissions = "read:clients create:clients delete:clients"
    async with fake.client() as client:
        report = await build(client, clock, sleeps, use_developer_managed_scopes=True).verify()
    assert report.errors == [
        "the Auth0 Management API token lacks update:clients, update:client_keys, read:client_grants,"
        " create:client_grants, update:client_grants, delete:client_grants, read:resource_servers"
    ]


async def test_verify_reports_an_admin_app_without_its_management_grant(auth0: Auth0Provider, fake: FakeAuth0) -> None:
    fake.admin_authorized = False
    report = await auth0.verify(trial=True)
    assert report.errors[0].startswith(
        f'Auth0 refused the Management API token (access_denied: Client is not authorized to access "{MGMT_AUDIENCE}"'
    )
    assert report.check("trial_registration").status == "failed"
    assert ADMIN_CLIENT_SECRET not in json.dumps(report.as_dict())


async def test_verify_reports_a_refused_management_read(auth0: Auth0Provider, fake: FakeAuth0) -> None:
    fake.inject(
        "GET",
        "/api/v2/clients",
        "status",
        status=403,
        body=mgmt_error(403, "Forbidden", "Insufficient scope", "insufficient_scope"),
    )
    report = await auth0.verify()
    assert report.errors == ["the Auth0 Management API refused a read (insufficient_scope: Insufficient scope)"]


async def test_custom_domain_uses_the_configured_management_audience(clock: FakeClock, sleeps: SleepRecorder) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600, "token_type": "Bearer"})
        return httpx.Response(200, json=[])

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        adapter = build_adapter(
            provider_type="auth0",
            provider_id=PROVIDER_ID,
            issuer="https://login.shop.example/",
            dcr_config={"initial_client_id": ADMIN_CLIENT_ID, "initial_client_audience": MGMT_AUDIENCE},
            secrets={"initial_client_secret": ADMIN_CLIENT_SECRET},
            client=client,
            token_cache=TokenCache(clock=clock),
        )
        _ = [c async for c in adapter.list_clients()]
    assert str(seen[0].url) == "https://login.shop.example/oauth/token"
    assert json.loads(seen[0].content)["audience"] == MGMT_AUDIENCE
    assert str(seen[1].url).startswith(f"{TENANT}/api/v2/clients?")


# -- the shared failure classes (§1.3, §4.3) --------------------------------------------------------------------

FAILURES = [
    pytest.param("connect", None, {}, (True, False), (True, False), id="connection-refused"),
    pytest.param("read_timeout", None, {}, (False, True), (True, False), id="read-timeout"),
    pytest.param("status", 429, {"Retry-After": "2"}, (True, False), (True, False), id="429-retry-after"),
    pytest.param("status", 500, {}, (False, True), (True, False), id="500"),
    pytest.param("malformed", None, {}, (False, True), (False, False), id="malformed-json"),
]


@pytest.mark.parametrize(("kind", "status", "headers", "on_register", "on_deregister"), FAILURES)
async def test_failure_classes(
    auth0: Auth0Provider,
    fake: FakeAuth0,
    sleeps: SleepRecorder,
    caplog: pytest.LogCaptureFixture,
    kind,
    status,
    headers,
    on_register,
    on_deregister,
) -> None:
    capture_dcr_logs(caplog)
    body = (
        mgmt_error(429, "Too Many Requests", "Global limit has been reached", "too_many_requests")
        if status == 429
        else "x"
    )
    fake.inject("POST", "/api/v2/clients", kind, status=status or 500, headers=headers, body=body, times=3)
    with pytest.raises(ProviderError) as info:
        await auth0.register(app_with_audience())
    err = info.value
    assert (err.retryable, err.outcome_unknown) == on_register
    assert err.__cause__ is not None or kind == "malformed"
    if status == 429:
        assert (err.code, err.retry_after) == ("too_many_requests", 2.0)
        assert sleeps.delays == [2.0, 2.0]

    fake.inject("GET", "/api/v2/client-grants", kind, status=status or 500, headers=headers, body=body, times=3)
    with pytest.raises(ProviderError) as info:
        await auth0.deregister(ClientRef(client_id="x", application_id=uuid.uuid4()))
    assert (info.value.retryable, info.value.outcome_unknown) == on_deregister
    assert_no_secret_logged(caplog, [ADMIN_CLIENT_SECRET, *fake.mgmt_tokens])


async def test_no_secret_in_logs_over_a_lifecycle(
    auth0: Auth0Provider, fake: FakeAuth0, caplog: pytest.LogCaptureFixture
) -> None:
    capture_dcr_logs(caplog)
    app = app_with_audience()
    issued = await auth0.register(app)
    ref = issued.as_ref(app.application_id)
    rotated = await auth0.rotate_secret(ref)
    await auth0.probe(issued.client_id, rotated.client_secret, app.strategy)
    fake.revoke_management_tokens()
    await auth0.deregister(ref)
    assert_no_secret_logged(
        caplog, [ADMIN_CLIENT_SECRET, issued.client_secret, rotated.client_secret, *fake.mgmt_tokens]
    )


def test_capabilities_follow_the_contract() -> None:
    caps = Auth0Provider.CAPABILITIES
    assert (caps.rotate, caps.overlap, caps.needs_probe_on_rotate, caps.list_clients) == (True, False, True, True)
    assert caps.needs_probe_on_register is False
    assert caps.events == frozenset({"update_application", "add_registration"})


def test_probe_params_carry_only_the_grant_type_and_token_post_args(auth0: Auth0Provider) -> None:
    assert auth0.probe_params(None) == {"grant_type": "client_credentials"}
    assert auth0.probe_params(AUDIENCE_STRATEGY) == {"grant_type": "client_credentials", "audience": API_AUDIENCE}
