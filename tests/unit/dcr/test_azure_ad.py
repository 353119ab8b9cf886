"""Contract tests of the `azureAd` adapter against the Entra ID fake (contracts/dcr-providers.md §2.4, §2.8, §4.2)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from keystile.dcr.azure_ad import PROBE_SCHEDULE, AzureAdProvider
from keystile.dcr.base import TokenCache
from keystile.dcr.registry import build_adapter
from keystile.dcr.types import ClientRef, HookEvent, ProbeResult, StrategyInfo
from keystile.domain.errors import ProviderError

from .fakes.entra import (
    ADMIN_CLIENT_ID,
    ADMIN_CLIENT_SECRET,
    API_SCOPE,
    GRAPH_DEFAULT,
    ISSUER,
    TENANT_ID,
    FakeEntra,
    graph_error,
)
from .fakes.support import PROVIDER_ID, SleepRecorder, assert_no_secret_logged, capture_dcr_logs, make_app

TOKEN = f"/{TENANT_ID}/oauth2/v2.0/token"
APPS = "/v1.0/applications"
SPS = "/v1.0/servicePrincipals"
API_STRATEGY = StrategyInfo(scopes=(API_SCOPE,))


@pytest.fixture
def fake():
    entra = FakeEntra()
    yield entra
    entra.assert_clean()


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


def build(client: httpx.AsyncClient, sleeps: SleepRecorder, *, issuer: str = ISSUER, **config) -> AzureAdProvider:
    secret = config.pop("secret", ADMIN_CLIENT_SECRET)
    adapter = build_adapter(
        provider_type="azureAd",
        provider_id=PROVIDER_ID,
        issuer=issuer,
        dcr_config={"initial_client_id": ADMIN_CLIENT_ID, **config},
        secrets={"initial_client_secret": secret},
        client=client,
        token_cache=TokenCache(),
        sleep=sleeps,
        uniform=lambda low, high: high,
    )
    assert isinstance(adapter, AzureAdProvider)
    return adapter


@pytest.fixture
async def entra(fake: FakeEntra, sleeps: SleepRecorder):
    async with fake.client() as client:
        yield build(client, sleeps)


def body_of(request: httpx.Request):
    return json.loads(request.content)


def graph_calls(fake: FakeEntra) -> list[str]:
    return [t for t in fake.trace() if not t.endswith(TOKEN)]


# -- register ---------------------------------------------------------------------------------------------------


async def test_register_makes_application_service_principal_and_password(
    entra: AzureAdProvider, fake: FakeEntra
) -> None:
    app = make_app("Orders", strategy=API_STRATEGY)
    issued = await entra.register(app)

    application = fake.by_app_id(issued.client_id)
    assert application is not None
    object_id = application["id"]
    assert object_id != issued.client_id
    assert graph_calls(fake) == [f"POST {APPS}", f"POST {SPS}", f"POST {APPS}/{object_id}/addPassword"]
    create = fake.sent("POST", APPS)[0]
    assert body_of(create) == {
        "displayName": f"Orders (ks-{app.application_id.hex[-12:]})",
        "signInAudience": "AzureADMyOrg",
        "notes": f"Managed by keystile for application {app.application_id}",
        "tags": ["keystile", f"keystile:app:{app.application_id}", f"keystile:provider:{PROVIDER_ID}"],
    }
    assert body_of(fake.sent("POST", SPS)[0]) == {"appId": issued.client_id}
    password_call = fake.requests[-1]
    sent = body_of(password_call)["passwordCredential"]
    assert set(sent) == {"displayName", "endDateTime"}
    assert sent["displayName"] == f"keystile {datetime.now(UTC).date().isoformat()}"
    end = datetime.fromisoformat(sent["endDateTime"].replace("Z", "+00:00"))
    assert abs(end - (datetime.now(UTC) + timedelta(days=365))) < timedelta(minutes=1)

    (password,) = fake.passwords[object_id]
    assert issued.client_secret.get_secret_value() == password["secretText"]  # addPassword is the only source
    assert issued.credential_id == password["keyId"]
    assert issued.expires_at is not None
    assert abs(issued.expires_at - end) < timedelta(seconds=1)
    assert issued.needs_probe is True
    assert issued.handles == {
        "object_id": object_id,
        "service_principal_id": fake.sp_of(issued.client_id)["id"],
    }
    assert "passwordCredentials" not in issued.metadata
    assert issued.metadata["appId"] == issued.client_id
    assert issued.issued_at is not None
    for request in fake.requests:
        if request.url.host == "graph.microsoft.com":
            assert request.headers["authorization"].startswith("Bearer ")
    assert len(fake.sent("POST", TOKEN)) == 1  # one Graph token for the three calls


async def test_register_with_a_redirect_uri_sends_web_redirect_uris(entra: AzureAdProvider, fake: FakeEntra) -> None:
    await entra.register(make_app(redirect_uri="https://shop.example/cb"))
    assert body_of(fake.sent("POST", APPS)[0])["web"] == {"redirectUris": ["https://shop.example/cb"]}


async def test_secret_lifetime_is_configurable(fake: FakeEntra, sleeps: SleepRecorder) -> None:
    async with fake.client() as client:
        issued = await build(client, sleeps, secret_lifetime_days=30).register(make_app())
    assert issued.expires_at is not None
    assert abs(issued.expires_at - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=1)


async def test_the_service_principal_is_made_after_one_transient_does_not_exist(
    entra: AzureAdProvider, fake: FakeEntra, sleeps: SleepRecorder
) -> None:
    fake.sp_lag_failures = 1
    issued = await entra.register(make_app())
    assert graph_calls(fake)[:3] == [f"POST {APPS}", f"POST {SPS}", f"POST {SPS}"]
    assert sleeps.delays == [1.0]
    assert fake.sp_of(issued.client_id) is not None


async def test_replication_lag_past_15_seconds_deletes_the_application(
    entra: AzureAdProvider, fake: FakeEntra, sleeps: SleepRecorder
) -> None:
    fake.sp_lag_failures = 10
    with pytest.raises(ProviderError) as info:
        await entra.register(make_app())
    err = info.value
    assert (err.status, err.code, err.outcome_unknown) == (400, "Request_BadRequest", False)
    assert "does not reference a valid application object" in err.description
    assert sum(sleeps.delays) <= 15.0
    assert sleeps.delays == [1.0, 2.0, 4.0, 8.0]
    assert fake.applications == {}
    assert fake.trace()[-1].startswith(f"DELETE {APPS}/")


async def test_an_already_existing_service_principal_on_a_retry_is_read_back(
    entra: AzureAdProvider, fake: FakeEntra
) -> None:
    fake.inject("POST", SPS, "read_timeout", after_effect=True)  # made, but the answer was lost: retried
    issued = await entra.register(make_app())
    sp = fake.sp_of(issued.client_id)
    assert sp is not None
    assert issued.handles["service_principal_id"] == sp["id"]
    assert graph_calls(fake)[1:4] == [f"POST {SPS}", f"POST {SPS}", f"GET {SPS}(appId='{issued.client_id}')"]


async def test_a_failing_password_step_deletes_the_application(entra: AzureAdProvider, fake: FakeEntra) -> None:
    denied = graph_error("Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
    fake.add_password_error = (403, denied)
    with pytest.raises(ProviderError) as info:
        await entra.register(make_app())
    err = info.value
    assert (err.status, err.code, err.operation, err.outcome_unknown) == (
        403,
        "Authorization_RequestDenied",
        "register",
        False,
    )
    assert err.idp_request_id == denied["error"]["innerError"]["request-id"]
    assert fake.applications == {}
    assert len(fake.deleted) == 1
    (object_id,) = fake.deleted
    assert graph_calls(fake)[-2:] == [f"POST {APPS}/{object_id}/addPassword", f"DELETE {APPS}/{object_id}"]


async def test_a_failed_cleanup_makes_the_outcome_unknown(entra: AzureAdProvider, fake: FakeEntra) -> None:
    fake.sp_lag_failures = 10
    fake.inject("DELETE", "*", "status", status=403, body=graph_error("Authorization_RequestDenied", "no"))
    with pytest.raises(ProviderError) as info:
        await entra.register(make_app())
    err = info.value
    assert err.outcome_unknown is True
    assert fake.by_app_id(err.extra["client_id"]) is not None


async def test_password_credentials_are_never_sent_on_create(entra: AzureAdProvider, fake: FakeEntra) -> None:
    await entra.register(make_app())
    assert "passwordCredentials" not in body_of(fake.sent("POST", APPS)[0])


# -- id versus appId --------------------------------------------------------------------------------------------


async def test_graph_urls_use_the_object_id_and_the_app_id_is_404(entra: AzureAdProvider, fake: FakeEntra) -> None:
    app = make_app()
    issued = await entra.register(app)
    wrong = ClientRef(
        client_id=issued.client_id, application_id=app.application_id, handles={"object_id": issued.client_id}
    )
    with pytest.raises(ProviderError) as info:
        await entra.on_event(wrong, HookEvent("update_application", app))
    assert (info.value.status, info.value.code) == (404, "Request_ResourceNotFound")

    right = issued.as_ref(app.application_id)
    assert (
        await entra.on_event(
            right, HookEvent("update_application", make_app("Renamed", application_id=app.application_id))
        )
        is None
    )
    patch = fake.requests[-1]
    assert patch.url.path == f"{APPS}/{issued.handles['object_id']}"
    assert body_of(patch) == {
        "displayName": f"Renamed (ks-{app.application_id.hex[-12:]})",
        "web": {"redirectUris": []},
    }
    assert fake.applications[issued.handles["object_id"]]["displayName"].startswith("Renamed")


async def test_without_a_stored_object_id_the_app_id_alternate_key_is_used(
    entra: AzureAdProvider, fake: FakeEntra
) -> None:
    app = make_app()
    issued = await entra.register(app)
    bare = ClientRef(client_id=issued.client_id, application_id=app.application_id)
    rotated = await entra.rotate_secret(bare, "add")
    await entra.revoke_secret(bare, rotated.credential_id)
    await entra.deregister(bare)
    assert graph_calls(fake)[-3:] == [
        f"POST {APPS}(appId='{issued.client_id}')/addPassword",
        f"POST {APPS}(appId='{issued.client_id}')/removePassword",
        f"DELETE {APPS}(appId='{issued.client_id}')",
    ]
    assert fake.applications == {}


async def test_registration_events_are_not_pushed(entra: AzureAdProvider, fake: FakeEntra) -> None:
    ref = ClientRef(client_id="x", application_id=uuid.uuid4())
    assert await entra.on_event(ref, HookEvent("add_registration", make_app(), "v1", "aud")) is None
    assert fake.requests == []


# -- secrets and probing ----------------------------------------------------------------------------------------


async def test_the_token_endpoint_refuses_a_new_secret_n_times_then_accepts(
    entra: AzureAdProvider, fake: FakeEntra, sleeps: SleepRecorder
) -> None:
    fake.propagation_refusals = 3
    issued = await entra.register(make_app(strategy=API_STRATEGY))

    result = await entra.probe_until_active(issued.client_id, issued.client_secret, API_STRATEGY)

    assert result is ProbeResult.OK  # → active
    assert sleeps.delays == [1.0, 2.0, 4.0]
    probes = [r for r in fake.sent("POST", TOKEN) if b"client_id=" + issued.client_id.encode() in r.content]
    assert len(probes) == 4
    form = dict(httpx.QueryParams(probes[-1].content.decode()))
    assert form == {
        "client_id": issued.client_id,
        "client_secret": issued.client_secret.get_secret_value(),
        "scope": API_SCOPE,
        "grant_type": "client_credentials",
    }


async def test_a_secret_never_accepted_within_the_budget_stays_pending(
    entra: AzureAdProvider, fake: FakeEntra, sleeps: SleepRecorder
) -> None:
    fake.propagation_refusals = None
    issued = await entra.register(make_app())
    result = await entra.probe_until_active(issued.client_id, issued.client_secret, None)
    assert result is ProbeResult.REJECTED  # → pending
    assert sleeps.delays == [1.0, 2.0, 4.0, 8.0]  # the next 8 s would pass the 20 s budget
    assert sum(sleeps.delays) <= 20
    assert PROBE_SCHEDULE == (1.0, 2.0, 4.0, 8.0, 8.0)


async def test_probe_outcomes(entra: AzureAdProvider, fake: FakeEntra) -> None:
    issued = await entra.register(make_app())
    wrong = type(issued.client_secret)("not-the-secret")
    assert await entra.probe(issued.client_id, wrong) is ProbeResult.REJECTED
    assert (
        await entra.probe("00000000-0000-0000-0000-000000000000", wrong) is ProbeResult.REJECTED
    )  # unauthorized_client
    assert (
        await entra.probe(issued.client_id, issued.client_secret, StrategyInfo(scopes=("orders:read",)))
        is ProbeResult.OK
    )
    assert fake.sent("POST", TOKEN)[-1].content.endswith(
        b"scope=https%3A%2F%2Fgraph.microsoft.com%2F.default&grant_type=client_credentials"
    )
    fake.inject("POST", TOKEN, "status", status=400, body={"error": "invalid_scope", "error_description": "bad"})
    assert await entra.probe(issued.client_id, issued.client_secret) is ProbeResult.DENIED


async def test_rotation_adds_a_password_and_revoke_removes_one(entra: AzureAdProvider, fake: FakeEntra) -> None:
    app = make_app()
    issued = await entra.register(app)
    ref = issued.as_ref(app.application_id)
    object_id = issued.handles["object_id"]

    added = await entra.rotate_secret(ref, "add")
    assert added.replaced_credential_ids == []
    replaced = await entra.rotate_secret(ref, "replace")
    # replace names the passwords to revoke once the new one is active; nothing is revoked yet
    assert sorted(replaced.replaced_credential_ids) == sorted([issued.credential_id, added.credential_id])
    get = fake.sent("GET", f"{APPS}/{object_id}")[0]
    assert dict(get.url.params) == {"$select": "passwordCredentials"}

    assert added.needs_probe is True
    assert replaced.needs_probe is True
    assert len(fake.passwords[object_id]) == 3
    assert {added.credential_id, replaced.credential_id, issued.credential_id} == {
        p["keyId"] for p in fake.passwords[object_id]
    }
    assert added.expires_at is not None

    await entra.revoke_secret(ref, issued.credential_id)
    assert body_of(fake.requests[-1]) == {"keyId": issued.credential_id}
    assert fake.requests[-1].url.path == f"{APPS}/{object_id}/removePassword"
    assert issued.client_secret.get_secret_value() not in fake.live_secrets(object_id)
    await entra.revoke_secret(ref, issued.credential_id)  # 404: already gone


async def test_an_unreadable_end_date_is_unknown(entra: AzureAdProvider, fake: FakeEntra) -> None:
    app = make_app()
    issued = await entra.register(app)
    fake.inject(
        "POST",
        f"{APPS}/{issued.handles['object_id']}/addPassword",
        "status",
        status=200,
        body={"keyId": "k1", "secretText": "s3cret-text-value", "endDateTime": "someday"},
    )
    rotated = await entra.rotate_secret(issued.as_ref(app.application_id))
    assert (rotated.credential_id, rotated.expires_at) == ("k1", None)


# -- delete -----------------------------------------------------------------------------------------------------


async def test_deregister_soft_deletes_by_default(entra: AzureAdProvider, fake: FakeEntra) -> None:
    app = make_app()
    issued = await entra.register(app)
    await entra.deregister(issued.as_ref(app.application_id))
    object_id, sp_id = issued.handles["object_id"], issued.handles["service_principal_id"]
    assert graph_calls(fake)[-2:] == [f"DELETE {SPS}/{sp_id}", f"DELETE {APPS}/{object_id}"]
    assert object_id in fake.deleted  # restorable for 30 days
    await entra.deregister(issued.as_ref(app.application_id))  # 404s: already gone


async def test_deregister_purges_when_set(fake: FakeEntra, sleeps: SleepRecorder) -> None:
    async with fake.client() as client:
        entra = build(client, sleeps, purge_on_delete=True)
        app = make_app()
        issued = await entra.register(app)
        await entra.deregister(issued.as_ref(app.application_id))
        object_id = issued.handles["object_id"]
        assert graph_calls(fake)[-1] == f"DELETE /v1.0/directory/deletedItems/{object_id}"
        assert fake.deleted == {}
        await entra.deregister(issued.as_ref(app.application_id))  # every 404 = gone


# -- list -------------------------------------------------------------------------------------------------------


async def test_list_clients_filters_on_the_provider_tag_and_follows_next_links(
    entra: AzureAdProvider, fake: FakeEntra
) -> None:
    fake.page_size = 2
    apps = [make_app(f"App {i}") for i in range(5)]
    issued = [await entra.register(a) for a in apps]
    async with fake.client() as client:
        other = build_adapter(
            provider_type="azureAd",
            provider_id="another-provider",
            issuer=ISSUER,
            dcr_config={"initial_client_id": ADMIN_CLIENT_ID},
            secrets={"initial_client_secret": ADMIN_CLIENT_SECRET},
            client=client,
            token_cache=TokenCache(),
        )
        await other.register(make_app("Not ours"))

    listed = [c async for c in entra.list_clients()]

    assert sorted((c.client_id, c.application_id) for c in listed) == sorted(
        (i.client_id, str(a.application_id)) for i, a in zip(issued, apps, strict=True)
    )
    assert all(c.created_at is not None for c in listed)
    pages = fake.sent("GET", APPS)
    assert len(pages) == 3
    assert dict(pages[0].url.params) == {
        "$filter": f"tags/any(t:t eq 'keystile:provider:{PROVIDER_ID}')",
        "$select": "id,appId,displayName,tags,createdDateTime",
        "$count": "true",
    }
    assert all(p.headers["consistencylevel"] == "eventual" for p in pages)


async def test_list_clients_guards_its_input(entra: AzureAdProvider, fake: FakeEntra) -> None:
    rows = [
        "x",
        {"id": "1"},
        {"appId": "a", "tags": "keystile", "createdDateTime": "never"},
        {"appId": "b", "displayName": "B", "tags": ["keystile", 7, "keystile:app:app-b"]},
    ]
    fake.inject("GET", APPS, "status", status=200, body={"value": rows})
    listed = [(c.client_id, c.name, c.application_id, c.created_at) async for c in entra.list_clients()]
    assert listed == [("a", "", None, None), ("b", "B", "app-b", None)]

    fake.inject("GET", APPS, "status", status=200, body={"value": [], "@odata.nextLink": "https://evil.example/x"})
    with pytest.raises(ProviderError) as info:
        _ = [c async for c in entra.list_clients()]
    assert info.value.code == "invalid_response"

    fake.inject("GET", APPS, "status", status=200, body={"items": []})
    with pytest.raises(ProviderError) as info:
        _ = [c async for c in entra.list_clients()]
    assert info.value.code == "invalid_response"


# -- Graph token ------------------------------------------------------------------------------------------------


async def test_the_graph_token_request_and_a_refetch_after_401(entra: AzureAdProvider, fake: FakeEntra) -> None:
    app = make_app()
    issued = await entra.register(app)
    (token_call,) = fake.sent("POST", TOKEN)
    assert dict(httpx.QueryParams(token_call.content.decode())) == {
        "client_id": ADMIN_CLIENT_ID,
        "client_secret": ADMIN_CLIENT_SECRET,
        "scope": GRAPH_DEFAULT,
        "grant_type": "client_credentials",
    }
    fake.graph_tokens.clear()  # Graph no longer accepts the cached token
    await entra.on_event(issued.as_ref(app.application_id), HookEvent("update_application", app))
    assert fake.trace()[-3:] == [
        f"PATCH {APPS}/{issued.handles['object_id']}",
        f"POST {TOKEN}",
        f"PATCH {APPS}/{issued.handles['object_id']}",
    ]


async def test_tenant_and_endpoints_come_from_either_issuer_form() -> None:
    async with httpx.AsyncClient() as client:
        check_endpoints(client)


def check_endpoints(client: httpx.AsyncClient) -> None:
    v1 = build(client, SleepRecorder(), issuer=f"https://sts.windows.net/{TENANT_ID}/")
    assert v1.token_url == f"https://login.microsoftonline.com/{TENANT_ID}/oauth2/v2.0/token"
    custom = build(
        client,
        SleepRecorder(),
        login_base_url="https://login.microsoftonline.us/",
        graph_base_url="https://graph.microsoft.us/v1.0/",
        max_secrets=4,
    )
    assert custom.token_url == f"https://login.microsoftonline.us/{TENANT_ID}/oauth2/v2.0/token"
    assert custom.graph == "https://graph.microsoft.us/v1.0"
    assert custom.capabilities.max_secrets == 4
    caps = v1.capabilities
    assert (caps.rotate, caps.overlap, caps.needs_probe_on_register, caps.needs_probe_on_rotate) == (
        True,
        True,
        True,
        True,
    )
    assert (caps.list_clients, caps.max_secrets, caps.events) == (True, 2, frozenset({"update_application"}))


# -- verify -----------------------------------------------------------------------------------------------------


async def test_verify_success_with_a_trial_that_waits_for_the_secret(
    entra: AzureAdProvider, fake: FakeEntra, sleeps: SleepRecorder
) -> None:
    fake.propagation_refusals = 2
    report = await entra.verify(trial=True, app=make_app(strategy=API_STRATEGY))
    assert report.status == "success", report.as_dict()
    assert [(c.name, c.status) for c in report.checks] == [
        ("discovery", "passed"),
        ("management_credentials", "passed"),
        ("trial_registration", "passed"),
    ]
    assert sleeps.delays == [1.0, 2.0]
    assert fake.applications == {}


async def test_verify_reports_a_secret_never_accepted_and_a_failed_cleanup(
    entra: AzureAdProvider, fake: FakeEntra
) -> None:
    fake.propagation_refusals = None
    fake.inject("DELETE", "*", "status", status=403, body=graph_error("Authorization_RequestDenied", "no"), times=9)
    report = await entra.verify(trial=True)
    detail = report.check("trial_registration").detail
    assert "still rejected after the probe budget" in detail
    assert "could not be deleted" in detail
    assert report.cleanup is not None
    assert report.cleanup_landed is False  # Graph refused the DELETE (403): nothing was carried out


async def test_verify_reports_missing_roles_refused_credentials_and_failed_trials(
    fake: FakeEntra, sleeps: SleepRecorder
) -> None:
    fake.roles = ["User.Read.All"]
    async with fake.client() as client:
        report = await build(client, sleeps).verify()
        assert report.errors == [
            "the Graph token lacks the application permission Application.ReadWrite.OwnedBy (roles: User.Read.All);"
            " grant it and give admin consent"
        ]
        fake.roles = ["Application.ReadWrite.All"]
        assert (await build(client, sleeps).verify()).status == "success"

        bad = build(client, sleeps, secret="wrong-admin-secret")
        report = await bad.verify(trial=True)
    assert report.errors[0].startswith(
        "Entra ID refused keystile's client credentials (invalid_client: AADSTS7000215: Invalid client secret provided."
    )
    assert report.check("trial_registration").status == "failed"
    assert "wrong-admin-secret" not in json.dumps(report.as_dict())


async def test_verify_trial_reports_a_probe_without_an_answer(entra: AzureAdProvider, fake: FakeEntra) -> None:
    fake.app_token_outage = True
    report = await entra.verify(trial=True, app=make_app())
    detail = report.check("trial_registration").detail
    assert detail.startswith("the new client's token request failed: Entra ID probe failed: 503")
    assert fake.applications == {}


def test_roles_are_read_only_from_a_jwt() -> None:
    from keystile.dcr.azure_ad import _jwt_claims

    assert _jwt_claims("opaque") == {}
    assert _jwt_claims("a.%%%.b") == {}
    assert _jwt_claims("a.W10.b") == {}
    assert _jwt_claims("a.eyJyb2xlcyI6WyJ4Il19.b") == {"roles": ["x"]}


# -- the shared failure classes (§1.3, §4.3) --------------------------------------------------------------------

FAILURES = [
    pytest.param("connect", None, {}, (True, False), (True, False), id="connection-refused"),
    pytest.param("read_timeout", None, {}, (False, True), (True, False), id="read-timeout"),
    pytest.param("status", 429, {"Retry-After": "3"}, (True, False), (True, False), id="429-retry-after"),
    pytest.param("status", 500, {}, (False, True), (True, False), id="500"),
    pytest.param("malformed", None, {}, (False, True), None, id="malformed-json"),
]


@pytest.mark.parametrize(("kind", "status", "headers", "on_register", "on_deregister"), FAILURES)
async def test_failure_classes(
    entra: AzureAdProvider,
    fake: FakeEntra,
    sleeps: SleepRecorder,
    caplog: pytest.LogCaptureFixture,
    kind,
    status,
    headers,
    on_register,
    on_deregister,
) -> None:
    capture_dcr_logs(caplog)
    body = graph_error("TooManyRequests", "Too many requests") if status == 429 else "upstream failure"
    fake.inject("POST", APPS, kind, status=status or 500, headers=headers, body=body, times=3)
    with pytest.raises(ProviderError) as info:
        await entra.register(make_app())
    err = info.value
    assert (err.retryable, err.outcome_unknown) == on_register
    if status == 429:
        assert (err.code, err.retry_after, sleeps.delays) == ("TooManyRequests", 3.0, [3.0, 3.0])
    if on_deregister is None:
        assert err.code == "invalid_response"
        return
    ref = ClientRef(
        client_id="x", application_id=uuid.uuid4(), handles={"service_principal_id": "sp", "object_id": "o"}
    )
    fake.inject("DELETE", "*", kind, status=status or 500, headers=headers, body=body, times=3)
    with pytest.raises(ProviderError) as info:
        await entra.deregister(ref)
    assert (info.value.retryable, info.value.outcome_unknown) == on_deregister
    assert len(fake.sent("DELETE")) == 3
    assert_no_secret_logged(caplog, [ADMIN_CLIENT_SECRET])


async def test_no_secret_in_logs_over_a_lifecycle(
    entra: AzureAdProvider, fake: FakeEntra, caplog: pytest.LogCaptureFixture
) -> None:
    capture_dcr_logs(caplog)
    app = make_app()
    issued = await entra.register(app)
    ref = issued.as_ref(app.application_id)
    rotated = await entra.rotate_secret(ref)
    await entra.probe(issued.client_id, rotated.client_secret)
    await entra.deregister(ref)
    assert_no_secret_logged(
        caplog, [ADMIN_CLIENT_SECRET, issued.client_secret, rotated.client_secret, *fake.graph_tokens]
    )


async def test_probing_stops_when_the_schedule_ends(
    entra: AzureAdProvider, fake: FakeEntra, sleeps: SleepRecorder
) -> None:
    fake.propagation_refusals = None
    fake.created_date_time = "not a date"
    issued = await entra.register(make_app())
    assert issued.issued_at is None
    result = await entra.probe_until_active(issued.client_id, issued.client_secret, schedule=(0.5, 0.5), budget=5)
    assert result is ProbeResult.REJECTED
    assert sleeps.delays == [0.5, 0.5]


async def test_token_endpoint_errors_carry_the_correlation_id(fake: FakeEntra, sleeps: SleepRecorder) -> None:
    async with fake.client() as client:
        with pytest.raises(ProviderError) as info:
            await build(client, sleeps, secret="wrong-admin-secret").register(make_app())
    err = info.value
    assert (err.status, err.code) == (401, "invalid_client")
    assert err.idp_request_id == fake.correlation_ids[-1]
    assert "wrong-admin-secret" not in str(err)


async def test_replace_without_an_object_id_reads_the_passwords_by_app_id(
    entra: AzureAdProvider, fake: FakeEntra
) -> None:
    app = make_app()
    issued = await entra.register(app)
    bare = ClientRef(client_id=issued.client_id, application_id=app.application_id)
    rotated = await entra.rotate_secret(bare, "replace")
    assert rotated.replaced_credential_ids == [issued.credential_id]
    assert graph_calls(fake)[-2] == f"GET {APPS}(appId='{issued.client_id}')"
    fake.inject("GET", "*", "status", status=200, body={"passwordCredentials": None})
    assert (await entra.rotate_secret(bare, "replace")).replaced_credential_ids == []
    wrong = ClientRef(
        client_id=issued.client_id, application_id=app.application_id, handles={"object_id": issued.client_id}
    )
    with pytest.raises(ProviderError) as info:
        await entra.rotate_secret(wrong, "replace")
    assert (info.value.status, info.value.code) == (404, "Request_ResourceNotFound")
