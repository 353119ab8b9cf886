"""Contract tests of the `okta` adapter against the Okta fake (contracts/dcr-providers.md §2.1, §2.8, §4.2).

Every request the adapter sends and every answer the fake gives is validated against Okta's published OpenAPI
documents, read in place from `../shared/specs/okta/` (`fakes/okta_spec.py`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from keystile.dcr.base import TokenCache
from keystile.dcr.okta import OktaProvider
from keystile.dcr.registry import build_adapter
from keystile.dcr.types import ClientRef, HookEvent, ProbeResult, StrategyInfo
from keystile.domain.errors import ProviderError
from tests.conftest import missing_service

from .fakes.okta import API_TOKEN, AUTH_SERVER_ID, FORBIDDEN_ON_PUT, ISSUER, ORG, FakeOkta, okta_error
from .fakes.okta_spec import SPEC_DIR, OktaValidator, load_okta_specs
from .fakes.support import PROVIDER_ID, SleepRecorder, assert_no_secret_logged, capture_dcr_logs, make_app

CLIENTS = "/oauth2/v1/clients"


@pytest.fixture(scope="session")
def okta_validator() -> OktaValidator | None:
    return load_okta_specs()


@pytest.fixture
def fake(okta_validator: OktaValidator | None):
    if okta_validator is None:
        missing_service(f"Okta's OpenAPI documents are not in {SPEC_DIR} (see ../shared/specs/okta/SOURCE.md)")
    assert okta_validator is not None
    okta = FakeOkta(okta_validator)
    yield okta
    okta.assert_clean()


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


def build(
    fake: FakeOkta, client: httpx.AsyncClient, sleeps: SleepRecorder, *, issuer: str = ISSUER, token: str = API_TOKEN
):
    adapter = build_adapter(
        provider_type="okta",
        provider_id=PROVIDER_ID,
        issuer=issuer,
        dcr_config={},
        secrets={"dcr_token": token},
        client=client,
        token_cache=TokenCache(),
        sleep=sleeps,
        uniform=lambda low, high: high,
    )
    assert isinstance(adapter, OktaProvider)
    return adapter


@pytest.fixture
async def okta(fake: FakeOkta, sleeps: SleepRecorder):
    async with fake.client() as client:
        yield build(fake, client, sleeps)


def h12(app) -> str:
    return app.application_id.hex[-12:]


def body_of(request: httpx.Request):
    import json

    return json.loads(request.content)


# -- register ---------------------------------------------------------------------------------------------------


async def test_register_sends_the_service_body_and_returns_the_client(okta: OktaProvider, fake: FakeOkta) -> None:
    app = make_app("Orders")
    issued = await okta.register(app)

    sent = fake.requests[0]
    assert fake.trace() == [f"POST {CLIENTS}", f"GET /api/v1/apps/{issued.client_id}/credentials/secrets"]
    assert (sent.method, str(sent.url)) == ("POST", f"{ORG}{CLIENTS}")
    assert sent.headers["authorization"] == f"SSWS {API_TOKEN}"
    assert sent.headers["accept"] == "application/json"
    assert sent.headers["content-type"] == "application/json"
    assert body_of(sent) == {
        "client_name": f"Orders (ks-{h12(app)})",
        "application_type": "service",
        "grant_types": ["client_credentials"],
        "response_types": ["token"],
        "token_endpoint_auth_method": "client_secret_basic",
    }
    stored = fake.clients[issued.client_id]
    assert issued.client_secret.get_secret_value() == fake.active_secrets(issued.client_id)[0]
    assert issued.issued_at == datetime.fromtimestamp(stored["client_id_issued_at"], UTC)
    assert issued.expires_at is None  # client_secret_expires_at 0 = never
    assert issued.credential_id == fake.secrets[issued.client_id][0]["id"]  # the ocs… id, read after the POST
    assert issued.needs_probe is False
    assert "client_secret" not in issued.metadata
    assert issued.metadata["client_name"] == f"Orders (ks-{h12(app)})"
    assert issued.metadata["application_type"] == "service"


async def test_register_sends_the_web_body_with_a_redirect_uri(okta: OktaProvider, fake: FakeOkta) -> None:
    app = make_app("Shop UI", redirect_uri="https://shop.example/callback")
    issued = await okta.register(app)

    assert body_of(fake.requests[0]) == {
        "client_name": f"Shop UI (ks-{h12(app)})",
        "application_type": "web",
        "grant_types": ["authorization_code", "client_credentials"],
        "response_types": ["code"],
        "redirect_uris": ["https://shop.example/callback"],
        "token_endpoint_auth_method": "client_secret_basic",
    }
    assert fake.clients[issued.client_id]["redirect_uris"] == ["https://shop.example/callback"]


async def test_client_name_carries_the_suffix_cut_to_100_without_angle_brackets(
    okta: OktaProvider, fake: FakeOkta
) -> None:
    app = make_app("<b>" + "x" * 200 + "</b>")
    await okta.register(app)

    name = body_of(fake.requests[0])["client_name"]
    assert len(name) == 100
    assert name.endswith(f" (ks-{h12(app)})")
    assert "<" not in name
    assert ">" not in name


async def test_duplicate_name_from_an_earlier_attempt_is_deleted_and_the_post_repeated(
    okta: OktaProvider, fake: FakeOkta
) -> None:
    app = make_app("Orders", created_at=datetime.now(UTC) - timedelta(seconds=30))
    name = f"Orders (ks-{h12(app)})"
    earlier = fake.add_client(name, issued_at=(app.created_at - timedelta(seconds=10)).timestamp())
    fake.add_client("Orders (ks-000000000000)")  # same prefix, another application: left alone

    issued = await okta.register(app)

    assert fake.trace() == [
        f"POST {CLIENTS}",
        f"GET {CLIENTS}",
        f"DELETE {CLIENTS}/{earlier['client_id']}",
        f"POST {CLIENTS}",
        f"GET /api/v1/apps/{issued.client_id}/credentials/secrets",
    ]
    assert dict(fake.requests[1].url.params) == {"q": name, "limit": "200"}
    assert earlier["client_id"] not in fake.clients
    assert issued.client_id in fake.clients
    assert issued.client_id != earlier["client_id"]
    assert len(fake.clients) == 2


async def test_duplicate_name_is_refused_when_the_match_predates_the_application(
    okta: OktaProvider, fake: FakeOkta
) -> None:
    app = make_app("Orders", created_at=datetime.now(UTC))
    older = fake.add_client(f"Orders (ks-{h12(app)})", issued_at=(app.created_at - timedelta(hours=1)).timestamp())

    with pytest.raises(ProviderError) as info:
        await okta.register(app)

    err = info.value
    assert (err.status, err.code, err.operation) == (400, "invalid_client_metadata", "register")
    assert "already exists" in err.description
    assert "predates the application" in err.description
    assert (err.retryable, err.outcome_unknown) == (False, False)
    assert older["client_id"] in fake.clients
    assert fake.trace() == [f"POST {CLIENTS}", f"GET {CLIENTS}"]


async def test_duplicate_name_is_refused_without_the_application_creation_time(
    okta: OktaProvider, fake: FakeOkta
) -> None:
    from dataclasses import replace

    app = replace(make_app("Orders"), created_at=None)
    fake.add_client(f"Orders (ks-{h12(app)})")

    with pytest.raises(ProviderError) as info:
        await okta.register(app)
    assert info.value.code == "invalid_client_metadata"
    assert "DELETE" not in " ".join(fake.trace())


async def test_duplicate_name_without_an_exact_match_raises_the_refusal(okta: OktaProvider, fake: FakeOkta) -> None:
    refusal = {
        "error": "invalid_client_metadata",
        "error_description": "client_name: An object with this field already exists in the current organization",
    }
    fake.inject("POST", CLIENTS, "status", status=400, body=refusal)

    with pytest.raises(ProviderError) as info:
        await okta.register(make_app("Orders"))
    assert str(info.value) == (
        "Okta register failed: 400 invalid_client_metadata: client_name: An object with this field already exists"
        " in the current organization"
    )
    assert fake.trace() == [f"POST {CLIENTS}", f"GET {CLIENTS}"]


# -- the two error families -------------------------------------------------------------------------------------


async def test_dcr_error_family_is_parsed(okta: OktaProvider, fake: FakeOkta) -> None:
    fake.inject(
        "POST",
        CLIENTS,
        "status",
        status=400,
        body={"error": "invalid_client_metadata", "error_description": "`client_name`: The field can't be left blank."},
    )
    with pytest.raises(ProviderError) as info:
        await okta.register(make_app())
    err = info.value
    assert (err.provider_type, err.status, err.code) == ("okta", 400, "invalid_client_metadata")
    assert err.description == "`client_name`: The field can't be left blank."
    assert (
        str(err) == "Okta register failed: 400 invalid_client_metadata: `client_name`: The field can't be left blank."
    )


async def test_management_error_family_is_parsed_with_causes_and_error_id(okta: OktaProvider, fake: FakeOkta) -> None:
    body = okta_error("E0000006", "You don't have permission to perform the requested action.", ["no apps admin"])
    fake.inject("POST", CLIENTS, "status", status=403, body=body)
    with pytest.raises(ProviderError) as info:
        await okta.register(make_app())
    err = info.value
    assert (err.status, err.code, err.idp_request_id) == (403, "E0000006", body["errorId"])
    assert err.description == "You don't have permission to perform the requested action.: no apps admin"
    assert (err.retryable, err.outcome_unknown) == (False, False)


# -- deregister -------------------------------------------------------------------------------------------------


async def test_deregister_deletes_the_client(okta: OktaProvider, fake: FakeOkta) -> None:
    app = make_app()
    issued = await okta.register(app)
    await okta.deregister(issued.as_ref(app.application_id))
    assert issued.client_id not in fake.clients
    assert fake.trace()[-1] == f"DELETE {CLIENTS}/{issued.client_id}"


async def test_deregister_404_E0000007_is_already_gone(okta: OktaProvider, fake: FakeOkta) -> None:
    await okta.deregister(ClientRef(client_id="0oaGONE", application_id=uuid.uuid4()))
    assert fake.trace() == [f"DELETE {CLIENTS}/0oaGONE"]


async def test_deregister_401_invalid_client_is_gone_but_401_E0000011_is_an_error(
    fake: FakeOkta, sleeps: SleepRecorder
) -> None:
    fake.unknown_client = "invalid_client"
    async with fake.client() as client:
        okta = build(fake, client, sleeps)
        await okta.deregister(ClientRef(client_id="0oaGONE", application_id=uuid.uuid4()))

        bad = build(fake, client, sleeps, token="00wrong-token")
        with pytest.raises(ProviderError) as info:
            await bad.deregister(ClientRef(client_id="0oaGONE", application_id=uuid.uuid4()))
    err = info.value
    assert (err.status, err.code, err.description) == (401, "E0000011", "Invalid token provided")
    assert (err.retryable, err.outcome_unknown) == (False, False)
    assert "00wrong-token" not in str(err)
    assert isinstance(err.__cause__, httpx.HTTPStatusError)


# -- secrets ----------------------------------------------------------------------------------------------------


async def test_new_secret_kills_the_old_secret_at_the_token_endpoint(okta: OktaProvider, fake: FakeOkta) -> None:
    app = make_app()
    issued = await okta.register(app)
    strategy = StrategyInfo(scopes=("openid", "orders:read"))
    assert await okta.probe(issued.client_id, issued.client_secret, strategy) is ProbeResult.OK

    rotated = await okta.rotate_secret(issued.as_ref(app.application_id), "replace")

    new_secret_call = fake.sent("POST", f"{CLIENTS}/{issued.client_id}/lifecycle/newSecret")[0]
    assert new_secret_call.content == b""
    assert rotated.client_secret.get_secret_value() != issued.client_secret.get_secret_value()
    assert rotated.needs_probe is False
    assert "client_secret" not in rotated.metadata
    assert await okta.probe(issued.client_id, issued.client_secret, strategy) is ProbeResult.REJECTED
    assert await okta.probe(issued.client_id, rotated.client_secret, strategy) is ProbeResult.OK
    token_call = fake.sent("POST", f"/oauth2/{AUTH_SERVER_ID}/v1/token")[-1]
    assert token_call.content == b"grant_type=client_credentials&scope=orders%3Aread"  # OpenID scopes left out
    assert token_call.headers["authorization"].startswith("Basic ")


async def test_probe_with_a_scope_the_server_lacks_is_denied(okta: OktaProvider, fake: FakeOkta) -> None:
    issued = await okta.register(make_app())
    result = await okta.probe(issued.client_id, issued.client_secret, StrategyInfo(scopes=("payments:write",)))
    assert result is ProbeResult.DENIED


async def test_add_creates_a_second_live_secret_and_a_third_is_refused_with_its_cause(
    okta: OktaProvider, fake: FakeOkta
) -> None:
    app = make_app()
    issued = await okta.register(app)
    ref = issued.as_ref(app.application_id)
    (first_id,) = [s["id"] for s in fake.secrets[issued.client_id]]

    added = await okta.rotate_secret(ref, "add")

    assert fake.trace()[-2:] == [
        f"GET /api/v1/apps/{issued.client_id}/credentials/secrets",
        f"POST /api/v1/apps/{issued.client_id}/credentials/secrets",
    ]
    assert body_of(fake.requests[-1]) == {}
    assert added.credential_id is not None
    assert added.credential_id.startswith("ocs")
    assert added.handles == {"credential_ids": [first_id, added.credential_id]}
    assert sorted(fake.active_secrets(issued.client_id)) == sorted(
        [issued.client_secret.get_secret_value(), added.client_secret.get_secret_value()]
    )
    assert await okta.probe(issued.client_id, issued.client_secret, app.strategy) is ProbeResult.OK
    assert await okta.probe(issued.client_id, added.client_secret, app.strategy) is ProbeResult.OK

    with pytest.raises(ProviderError) as info:
        await okta.rotate_secret(ref, "add")
    err = info.value
    assert (err.status, err.code) == (400, "E0000001")
    assert "You've reached the maximum number of client secrets per client." in err.description
    assert (err.retryable, err.outcome_unknown) == (False, False)


async def test_revoke_deactivates_before_deleting(okta: OktaProvider, fake: FakeOkta) -> None:
    app = make_app()
    issued = await okta.register(app)
    ref = issued.as_ref(app.application_id)
    added = await okta.rotate_secret(ref, "add")
    old_id = added.handles["credential_ids"][0]

    await okta.revoke_secret(ref, old_id)

    base = f"/api/v1/apps/{issued.client_id}/credentials/secrets/{old_id}"
    assert fake.trace()[-2:] == [f"POST {base}/lifecycle/deactivate", f"DELETE {base}"]
    assert [s["id"] for s in fake.secrets[issued.client_id]] == [added.credential_id]
    assert await okta.probe(issued.client_id, issued.client_secret, app.strategy) is ProbeResult.REJECTED
    assert await okta.probe(issued.client_id, added.client_secret, app.strategy) is ProbeResult.OK


async def test_the_only_active_secret_cannot_be_deactivated(okta: OktaProvider, fake: FakeOkta) -> None:
    app = make_app()
    issued = await okta.register(app)
    (only_id,) = [s["id"] for s in fake.secrets[issued.client_id]]

    with pytest.raises(ProviderError) as info:
        await okta.revoke_secret(issued.as_ref(app.application_id), only_id)

    err = info.value
    assert (err.status, err.code) == (400, "E0000001")
    assert err.description.endswith("You can't deactivate the only active client secret.")
    assert not fake.sent("DELETE")
    assert fake.active_secrets(issued.client_id) == [issued.client_secret.get_secret_value()]


async def test_revoking_an_unknown_secret_is_already_gone(okta: OktaProvider, fake: FakeOkta) -> None:
    app = make_app()
    issued = await okta.register(app)
    await okta.revoke_secret(issued.as_ref(app.application_id), "ocsUNKNOWN")
    assert fake.trace()[-1].endswith("/credentials/secrets/ocsUNKNOWN/lifecycle/deactivate")


# -- events -----------------------------------------------------------------------------------------------------


async def test_update_application_puts_the_metadata_without_the_forbidden_fields(
    okta: OktaProvider, fake: FakeOkta
) -> None:
    app = make_app("Orders", redirect_uri="https://shop.example/cb")
    issued = await okta.register(app)
    ref = issued.as_ref(app.application_id)
    renamed = make_app("Orders v2", redirect_uri="https://shop.example/cb2", application_id=app.application_id)

    update = await okta.on_event(ref, HookEvent("update_application", renamed))

    put = fake.requests[-1]
    assert (put.method, put.url.path) == ("PUT", f"{CLIENTS}/{issued.client_id}")
    sent = body_of(put)
    for key in (*FORBIDDEN_ON_PUT, "client_id"):
        assert key not in sent
    expected = {k: v for k, v in issued.metadata.items() if k not in (*FORBIDDEN_ON_PUT, "client_id")}
    expected.update(client_name=f"Orders v2 (ks-{h12(app)})", redirect_uris=["https://shop.example/cb2"])
    assert sent == expected
    assert update is not None
    assert update.metadata["client_name"] == f"Orders v2 (ks-{h12(app)})"
    assert "client_secret" not in update.metadata
    assert fake.clients[issued.client_id]["redirect_uris"] == ["https://shop.example/cb2"]


async def test_update_without_stored_metadata_reads_the_client_first(okta: OktaProvider, fake: FakeOkta) -> None:
    app = make_app("Orders")
    issued = await okta.register(app)
    ref = ClientRef(client_id=issued.client_id, application_id=app.application_id)  # nothing stored
    await okta.on_event(ref, HookEvent("update_application", make_app("Renamed", application_id=app.application_id)))
    assert fake.trace()[-2:] == [f"GET {CLIENTS}/{issued.client_id}", f"PUT {CLIENTS}/{issued.client_id}"]
    sent = body_of(fake.requests[-1])
    assert sent["application_type"] == "service"
    assert sent["redirect_uris"] == []
    assert sent["client_name"] == f"Renamed (ks-{h12(app)})"


async def test_registration_events_are_not_pushed_to_okta(okta: OktaProvider, fake: FakeOkta) -> None:
    ref = ClientRef(client_id="0oaX", application_id=uuid.uuid4())
    assert await okta.on_event(ref, HookEvent("add_registration", make_app(), "v1", "aud")) is None
    assert await okta.on_event(ref, HookEvent("remove_registration", make_app(), "v1")) is None
    assert fake.requests == []


# -- list -------------------------------------------------------------------------------------------------------


async def test_list_clients_follows_link_pagination(fake: FakeOkta, sleeps: SleepRecorder) -> None:
    fake.page_size = 2
    apps = [make_app(f"App {i}") for i in range(5)]
    for app in apps:
        fake.add_client(f"App (ks-{h12(app)})")
    fake.add_client("Someone else's client")
    async with fake.client() as client:
        okta = build(fake, client, sleeps)
        listed = [c async for c in okta.list_clients()]

    assert sorted(c.application_id for c in listed) == sorted(h12(a) for a in apps)
    assert all(c.created_at is not None and c.name.startswith("App (ks-") for c in listed)
    gets = fake.sent("GET", CLIENTS)
    assert len(gets) == 3
    assert dict(gets[0].url.params) == {"limit": "200"}
    assert "after" in dict(gets[1].url.params)
    assert "after" in dict(gets[2].url.params)


async def test_list_clients_refuses_a_next_link_to_another_origin(okta: OktaProvider, fake: FakeOkta) -> None:
    fake.inject(
        "GET", CLIENTS, "status", status=200, body=[], headers={"Link": '<https://evil.example/steal>; rel="next"'}
    )
    with pytest.raises(ProviderError) as info:
        _ = [c async for c in okta.list_clients()]
    assert info.value.code == "invalid_response"
    assert len(fake.requests) == 1


async def test_list_clients_skips_rows_it_cannot_read(okta: OktaProvider, fake: FakeOkta) -> None:
    rows = [
        "not an object",
        {"client_name": "No id (ks-0123456789ab)"},
        {"client_id": "0oa1", "client_name": "Bad time (ks-0123456789ab)", "client_id_issued_at": "yesterday"},
    ]
    fake.inject("GET", CLIENTS, "status", status=200, body=rows)
    listed = [c async for c in okta.list_clients()]
    assert [(c.client_id, c.application_id, c.created_at) for c in listed] == [("0oa1", "0123456789ab", None)]


async def test_a_list_answer_that_is_not_an_array_is_invalid(okta: OktaProvider, fake: FakeOkta) -> None:
    fake.inject("GET", CLIENTS, "status", status=200, body={"clients": []})
    with pytest.raises(ProviderError) as info:
        _ = [c async for c in okta.list_clients()]
    assert info.value.code == "invalid_response"
    fake.inject("GET", CLIENTS, "malformed")
    with pytest.raises(ProviderError) as info:
        _ = [c async for c in okta.list_clients()]
    assert info.value.code == "invalid_response"


# -- traffic against the document ------------------------------------------------------------------------------


async def test_a_whole_lifecycle_is_valid_against_okta_openapi(okta: OktaProvider, fake: FakeOkta) -> None:
    before = fake.validator.validated
    app = make_app(redirect_uri="https://shop.example/cb")
    issued = await okta.register(app)
    ref = issued.as_ref(app.application_id)
    await okta.probe(issued.client_id, issued.client_secret, app.strategy)
    added = await okta.rotate_secret(ref, "add")
    await okta.revoke_secret(ref, added.handles["credential_ids"][0])
    await okta.rotate_secret(ref, "replace")
    await okta.on_event(ref, HookEvent("update_application", app))
    _ = [c async for c in okta.list_clients()]
    await okta.deregister(ref)
    await okta.deregister(ref)
    # each request and each answer checked against the document: two validations per request
    assert fake.validator.validated - before == 2 * len(fake.requests) == 2 * 13


# -- verify -----------------------------------------------------------------------------------------------------


async def test_verify_reports_success_and_a_trial_with_the_client_id_claim(okta: OktaProvider, fake: FakeOkta) -> None:
    report = await okta.verify(trial=True, app=make_app(scopes=("orders:read",)))
    assert report.as_dict()["status"] == "success", report.as_dict()
    assert [(c.name, c.status) for c in report.checks] == [
        ("discovery", "passed"),
        ("authorization_server", "passed"),
        ("management_credentials", "passed"),
        ("token_claims", "passed"),
        ("trial_registration", "passed"),
    ]
    assert fake.clients == {}  # the trial client was deleted
    assert fake.sent("GET", CLIENTS)[0].url.params["limit"] == "1"


async def test_verify_warns_when_tokens_lack_the_client_id_claim(okta: OktaProvider, fake: FakeOkta) -> None:
    fake.token_claim = None
    report = await okta.verify(trial=True, app=make_app())
    assert report.status == "success"
    check = report.check("token_claims")
    assert check is not None
    assert check.status == "warning"
    assert "cid" in check.detail


async def test_verify_names_the_rejected_api_token(fake: FakeOkta, sleeps: SleepRecorder) -> None:
    async with fake.client() as client:
        okta = build(fake, client, sleeps, token="00revoked-token")
        report = await okta.verify()
    assert report.as_dict() == {
        "status": "failed",
        "errors": ["the Okta API token was rejected (E0000011: Invalid token provided)"],
        "checks": [
            {"name": "discovery", "status": "passed", "detail": "issuer metadata fetched; issuer matches"},
            {
                "name": "authorization_server",
                "status": "passed",
                "detail": f"custom authorization server {AUTH_SERVER_ID}",
            },
            {
                "name": "management_credentials",
                "status": "failed",
                "detail": "the Okta API token was rejected (E0000011: Invalid token provided)",
            },
            {"name": "trial_registration", "status": "skipped", "detail": "not requested"},
        ],
    }


async def test_verify_reports_other_management_failures(okta: OktaProvider, fake: FakeOkta) -> None:
    fake.inject("GET", CLIENTS, "status", status=403, body=okta_error("E0000006", "You don't have permission."))
    report = await okta.verify()
    assert report.errors == ["the Okta API token could not be checked (E0000006: You don't have permission.)"]


async def test_verify_refuses_the_org_authorization_server(fake: FakeOkta, sleeps: SleepRecorder) -> None:
    fake.inject("GET", "/.well-known/openid-configuration", "status", status=404, body=okta_error("E0000022", "nf"))
    fake.inject(
        "GET", "/.well-known/oauth-authorization-server", "status", status=404, body=okta_error("E0000022", "x")
    )
    async with fake.client() as client:
        okta = build(fake, client, sleeps, issuer=ORG)
        report = await okta.verify()
    assert report.status == "failed"
    assert report.check("authorization_server").status == "failed"
    assert report.check("discovery").status == "failed"
    assert "not an Okta custom authorization server" in report.errors[1]


async def test_verify_does_not_pass_an_authorization_server_it_could_not_reach(
    okta: OktaProvider, fake: FakeOkta
) -> None:
    fake.inject("GET", "*", "connect", times=50)  # the org is unreachable
    report = await okta.verify()
    assert report.status == "failed"
    assert report.check("discovery").status == "failed"
    assert report.check("management_credentials").status == "failed"
    check = report.check("authorization_server")
    assert (check.status, check.detail) == (
        "skipped",
        f"the issuer names custom authorization server {AUTH_SERVER_ID}, but its metadata could not be read"
        " (see discovery)",
    )


async def test_verify_trial_reports_registration_token_and_cleanup_failures(okta: OktaProvider, fake: FakeOkta) -> None:
    fake.inject("POST", CLIENTS, "status", status=403, body=okta_error("E0000006", "denied"))
    report = await okta.verify(trial=True)
    assert report.check("trial_registration").status == "failed"
    assert "trial registration failed: Okta register failed: 403 E0000006" in report.errors[0]

    fake.inject("DELETE", "*", "status", status=403, body=okta_error("E0000006", "denied"))
    report = await okta.verify(trial=True, app=make_app(scopes=("openid",)))
    detail = report.check("trial_registration").detail
    assert "token request failed" in detail
    assert "could not be deleted" in detail
    assert report.cleanup is not None
    assert report.cleanup.client_id in fake.clients


# -- the shared failure classes (§1.3, §4.3) --------------------------------------------------------------------

FAILURES = [
    # kind, status, headers, register (retryable, outcome_unknown), deregister (retryable, outcome_unknown)
    pytest.param("connect", None, {}, (True, False), (True, False), id="connection-refused"),
    pytest.param("read_timeout", None, {}, (False, True), (True, False), id="read-timeout"),
    pytest.param("status", 429, {"Retry-After": "1"}, (True, False), (True, False), id="429-retry-after"),
    pytest.param("status", 500, {}, (False, True), (True, False), id="500"),
    pytest.param("malformed", None, {}, (False, True), None, id="malformed-json"),
]


@pytest.mark.parametrize(("kind", "status", "headers", "on_register", "on_deregister"), FAILURES)
async def test_failure_classes(
    okta: OktaProvider,
    fake: FakeOkta,
    sleeps: SleepRecorder,
    caplog: pytest.LogCaptureFixture,
    kind,
    status,
    headers,
    on_register,
    on_deregister,
) -> None:
    capture_dcr_logs(caplog)
    body = okta_error("E0000047", "You exceeded the maximum number of requests.") if status == 429 else "oops"
    fake.inject("POST", CLIENTS, kind, status=status or 500, headers=headers, body=body, times=3)
    with pytest.raises(ProviderError) as info:
        await okta.register(make_app())
    err = info.value
    assert (err.retryable, err.outcome_unknown) == on_register
    assert err.__cause__ is not None
    if status == 429:
        assert err.retry_after == 1.0
        assert err.code == "E0000047"
        assert len(fake.sent("POST", CLIENTS)) == 3
        assert sleeps.delays == [1.0, 1.0]
    if kind == "malformed":
        assert err.code == "invalid_response"
        return
    if kind == "connect":
        assert err.code == "connect_error"
        assert err.status is None
    if kind == "read_timeout":
        assert err.code == "timeout"
        assert len(fake.sent("POST", CLIENTS)) == 1

    fake.inject("DELETE", "*", kind, status=status or 500, headers=headers, body=body, times=3)
    with pytest.raises(ProviderError) as info:
        await okta.deregister(ClientRef(client_id="0oaX", application_id=uuid.uuid4()))
    assert (info.value.retryable, info.value.outcome_unknown) == on_deregister
    assert len(fake.sent("DELETE")) == 3  # idempotent: retried up to three attempts
    assert_no_secret_logged(caplog, [API_TOKEN])


async def test_no_secret_in_logs_over_a_lifecycle(
    okta: OktaProvider, fake: FakeOkta, caplog: pytest.LogCaptureFixture
) -> None:
    capture_dcr_logs(caplog)
    app = make_app()
    issued = await okta.register(app)
    ref = issued.as_ref(app.application_id)
    added = await okta.rotate_secret(ref, "add")
    rotated = await okta.rotate_secret(ref, "replace")
    await okta.probe(issued.client_id, rotated.client_secret, app.strategy)
    await okta.deregister(ref)
    assert_no_secret_logged(caplog, [API_TOKEN, issued.client_secret, added.client_secret, rotated.client_secret])
    assert len([r for r in caplog.records if r.name == "keystile.dcr"]) == len(fake.requests)


def test_capabilities_follow_the_contract() -> None:
    caps = OktaProvider.CAPABILITIES
    assert (caps.rotate, caps.overlap, caps.list_clients, caps.max_secrets) == (True, True, True, 2)
    assert (caps.needs_probe_on_register, caps.needs_probe_on_rotate, caps.update_rotates_secret) == (
        False,
        False,
        False,
    )
    assert caps.events == frozenset({"update_application"})


async def test_register_with_an_unreadable_time_is_an_invalid_response_with_the_client_id(
    okta: OktaProvider, fake: FakeOkta
) -> None:
    answer = {"client_id": "0oaNEW", "client_secret": "s3cr3t-value-xyz", "client_id_issued_at": "soon"}
    fake.inject("POST", CLIENTS, "status", status=201, body=answer)
    with pytest.raises(ProviderError) as info:
        await okta.register(make_app())
    err = info.value
    assert (err.code, err.outcome_unknown, err.extra) == ("invalid_response", True, {"client_id": "0oaNEW"})
    assert "s3cr3t-value-xyz" not in str(err)


async def test_duplicate_name_match_with_an_unreadable_time_is_left_alone(okta: OktaProvider, fake: FakeOkta) -> None:
    app = make_app("Orders")
    name = f"Orders (ks-{h12(app)})"
    refusal = {
        "error": "invalid_client_metadata",
        "error_description": "client_name: An object with this field already exists",
    }
    fake.inject("POST", CLIENTS, "status", status=400, body=refusal)
    fake.inject(
        "GET",
        CLIENTS,
        "status",
        status=200,
        body=[{"client_id": "0oaOLD", "client_name": name, "client_id_issued_at": "?"}],
    )
    with pytest.raises(ProviderError) as info:
        await okta.register(app)
    assert "predates the application" in info.value.description
    assert fake.trace() == [f"POST {CLIENTS}", f"GET {CLIENTS}"]


def test_jwt_claims_reads_only_well_formed_payloads() -> None:
    from keystile.dcr.okta import _jwt_claims

    assert _jwt_claims("opaque-token") is None
    assert _jwt_claims("a.%%%.b") is None
    assert _jwt_claims("a.W10.b") is None  # "[]": not an object
    assert _jwt_claims("a.eyJjaWQiOiJ4In0.b") == {"cid": "x"}


async def test_okta_rate_limit_reset_header_gives_the_wait(okta: OktaProvider, fake: FakeOkta) -> None:
    import time

    reset = str(int(time.time()) + 40)
    limited = okta_error("E0000047", "You exceeded the maximum number of requests. Try again in a while.")
    fake.inject("POST", CLIENTS, "status", status=429, headers={"X-Rate-Limit-Reset": reset}, body=limited)
    with pytest.raises(ProviderError) as info:
        await okta.register(make_app())
    err = info.value
    assert (err.code, err.retryable, err.outcome_unknown) == ("E0000047", True, False)
    assert err.retry_after is not None
    assert 35 <= err.retry_after <= 40  # past the 30 s deadline: not waited for, left to the caller
    assert len(fake.sent("POST", CLIENTS)) == 1


async def test_credential_ids_come_with_register_and_replace_so_the_first_secret_can_be_revoked(
    okta: OktaProvider, fake: FakeOkta
) -> None:
    app = make_app()
    issued = await okta.register(app)
    ref = issued.as_ref(app.application_id)
    added = await okta.rotate_secret(ref, "add")
    await okta.revoke_secret(ref, issued.credential_id)  # what services do when the first secret is deleted
    assert fake.active_secrets(issued.client_id) == [added.client_secret.get_secret_value()]

    replaced = await okta.rotate_secret(ref, "replace")
    assert replaced.credential_id == fake.secrets[issued.client_id][0]["id"]
    assert replaced.credential_id not in (issued.credential_id, added.credential_id)


async def test_an_unreadable_secret_id_leaves_the_credential_without_one(
    okta: OktaProvider, fake: FakeOkta, caplog: pytest.LogCaptureFixture
) -> None:
    capture_dcr_logs(caplog)
    fake.inject("GET", "*", "status", status=500, body="down", times=3)
    issued = await okta.register(make_app())
    assert issued.credential_id is None
    assert issued.client_id in fake.clients
    assert any("could not be read" in r.getMessage() for r in caplog.records)
    assert_no_secret_logged(caplog, [API_TOKEN, issued.client_secret])

    two = [{"id": "ocs1", "status": "ACTIVE"}, {"id": "ocs2", "status": "ACTIVE"}]
    fake.inject("GET", "*", "status", status=200, body=two)
    assert (await okta.register(make_app())).credential_id is None  # ambiguous: no id rather than a wrong one
