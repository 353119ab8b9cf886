"""Branches of the `rfc7591` adapter the real peer cannot provoke, against the in-process RFC 7592 fake."""

from __future__ import annotations

import httpx
import pytest

from keystile.dcr.base import ProviderConfig, TokenCache, read_time
from keystile.dcr.curity import CurityProvider
from keystile.dcr.rfc7591 import Rfc7591Provider
from keystile.dcr.types import ClientRef, HookEvent
from keystile.domain.errors import ProviderError
from tests.unit.dcr.helpers import NoSleep, app, build
from tests.unit.dcr.rfc7592_fake import ADMIN_ID, ADMIN_SECRET, ISSUER, Rfc7592Fake

STATIC_IAT = "static-iat-" + "x" * 20


def rfc7591(fake: Rfc7592Fake, **config):
    secrets = {"initial_access_token": STATIC_IAT} if "initial_client_id" not in config else {}
    if "initial_client_id" in config:
        secrets["initial_client_secret"] = ADMIN_SECRET
    return build("rfc7591", fake.transport(), issuer=ISSUER, dcr_config=config, secrets=secrets)


@pytest.fixture
def fake():
    server = Rfc7592Fake(static_iat=STATIC_IAT, rotate_on_put=False)
    yield server
    server.assert_clean()


async def test_a_configured_registration_endpoint_skips_discovery(fake):
    adapter = rfc7591(fake, registration_endpoint=fake.registration_endpoint)
    issued = await adapter.register(app())
    assert fake.trace() == ["POST /register"]
    assert fake.sent("POST", "/register")[0].headers["authorization"] == f"Bearer {STATIC_IAT}"
    assert issued.handles["rat_expires_at"]


async def test_secret_not_rotated_carries_the_new_rat(fake):
    adapter = rfc7591(fake, rotates_secret_on_put=True)
    new_app = app()
    issued = await adapter.register(new_app)
    ref = issued.as_ref(new_app.application_id)
    with pytest.raises(ProviderError) as caught:
        await adapter.rotate_secret(ref)
    err = caught.value
    assert (err.code, err.status, err.retryable) == ("secret_not_rotated", 200, False)
    update = err.extra["update"]
    assert (
        update.secret_handles["registration_access_token"].get_secret_value() == fake.clients[issued.client_id]["rat"]
    )
    assert fake.clients[issued.client_id]["rat"] not in str(err)
    ref = update.apply(ref)
    with pytest.raises(ProviderError) as caught:
        await adapter.on_event(ref, HookEvent("update_application", app(redirect_uri="https://x.test/cb")))
    assert caught.value.code == "secret_not_rotated"


async def test_without_registration_client_uri_nothing_can_be_managed():
    fake = Rfc7592Fake(static_iat=STATIC_IAT, give_client_uri=False)
    adapter = rfc7591(fake, rotates_secret_on_put=True)
    new_app = app()
    issued = await adapter.register(new_app)
    assert "registration_client_uri" not in issued.secret_handles
    for call in (
        adapter.deregister(issued.as_ref(new_app.application_id)),
        adapter.rotate_secret(issued.as_ref(new_app.application_id)),
    ):
        with pytest.raises(ProviderError) as caught:
            await call
        assert caught.value.code == "unsupported_operation"
        assert "registration_client_uri" in caught.value.description
    report = await adapter.verify(trial=True)
    trial = report.check("trial_registration")
    assert trial.status == "failed"
    assert "the registration answer lacks registration_client_uri" in trial.detail
    assert "could not be deleted" in trial.detail
    assert report.cleanup is not None
    assert report.cleanup_landed is False  # refused before any DELETE was sent
    fake.assert_clean()


async def test_a_failed_trial_rotation_is_reported(fake):
    adapter = rfc7591(fake, rotates_secret_on_put=True)
    report = await adapter.verify(trial=True)
    trial = report.check("trial_registration")
    assert trial.status == "failed"
    assert "the PUT did not rotate the secret" in trial.detail
    assert "secret_not_rotated" in trial.detail
    assert fake.clients == {}  # deleted with the RAT the landed PUT returned


async def test_missing_endpoints_and_no_initial_client():
    fake = Rfc7592Fake(announce_registration=False)
    adapter = rfc7591(fake)
    with pytest.raises(ProviderError) as caught:
        await adapter.register(app())
    assert caught.value.code == "invalid_response"
    assert "registration_endpoint" in caught.value.description
    with pytest.raises(ProviderError) as caught:
        await adapter.mint_token("verify", "dcr")
    assert caught.value.code == "unsupported_operation"

    def no_token_endpoint(request):
        return httpx.Response(200, json={"issuer": ISSUER, "registration_endpoint": "https://curity.test/register"})

    minted = build(
        "rfc7591",
        httpx.MockTransport(no_token_endpoint),
        issuer=ISSUER,
        dcr_config={"initial_client_id": ADMIN_ID},
        secrets={"initial_client_secret": ADMIN_SECRET},
    )
    with pytest.raises(ProviderError) as caught:
        await minted.register(app())
    assert caught.value.description == "the discovery document has no token_endpoint"


async def test_answer_fields_are_read_leniently(fake):
    adapter = rfc7591(fake)
    handles, secret_handles, metadata = adapter._client_state(
        {"client_id": "c", "registration_access_token": "", "registration_access_token_expires_in": True, "x": 1}
    )
    assert (handles, secret_handles, metadata) == (
        {},
        {},
        {"client_id": "c", "registration_access_token_expires_in": True, "x": 1},
    )
    assert read_time({"client_id_issued_at": "garbage"}, "client_id_issued_at") is None


async def test_update_body_drops_forbidden_fields_and_follows_the_app(fake):
    adapter = rfc7591(fake)
    new_app = app(redirect_uri="https://a.test/cb")
    ref = ClientRef(
        client_id="c-1",
        application_id=new_app.application_id,
        metadata={
            "client_id": "c-1",
            "client_name": "old",
            "redirect_uris": ["https://a.test/cb"],
            "grant_types": ["authorization_code", "client_credentials"],
            "response_types": ["code"],
            "client_id_issued_at": 1,
            "client_secret_expires_at": 0,
            "registration_access_token_expires_in": 60,
            "scope": "read",
        },
    )
    assert adapter.update_body(ref) == {
        "client_id": "c-1",
        "client_name": "old",
        "redirect_uris": ["https://a.test/cb"],
        "grant_types": ["authorization_code", "client_credentials"],
        "response_types": ["code"],
        "scope": "read",
    }
    machine = app("Orders", application_id=new_app.application_id)
    body = adapter.update_body(ref, machine)
    assert body["redirect_uris"] == []
    assert body["grant_types"] == ["client_credentials"]
    assert body["response_types"] == []
    assert body["client_name"].startswith("Orders (ks-")


async def test_other_events_and_an_unchanged_app_make_no_call(fake):
    adapter = rfc7591(fake)
    new_app = app()
    issued = await adapter.register(new_app)
    ref = issued.as_ref(new_app.application_id)
    before = len(fake.requests)
    for event_type in ("add_registration", "remove_registration", "update_application"):
        assert await adapter.on_event(ref, HookEvent(event_type, new_app)) is None
    assert len(fake.requests) == before


async def test_a_lost_put_answer_needs_attention(fake):
    adapter = rfc7591(fake)
    new_app = app()
    issued = await adapter.register(new_app)
    fake.lose_next_put_answer = True
    with pytest.raises(ProviderError) as caught:
        await adapter.on_event(
            issued.as_ref(new_app.application_id),
            HookEvent("update_application", app("Renamed", application_id=new_app.application_id)),
        )
    assert caught.value.outcome_unknown
    assert caught.value.extra["needs_attention"] is True


async def test_404_on_delete_is_gone(fake):
    adapter = rfc7591(fake)
    new_app = app()
    issued = await adapter.register(new_app)
    fake.fail_next[("DELETE", f"/register/{issued.client_id}")] = fake.error(404, "not_found", "gone")
    await adapter.deregister(issued.as_ref(new_app.application_id))
    assert issued.client_id in fake.clients
    fake.clients.clear()


async def test_verify_credentials_mode_details(fake):
    static = await rfc7591(fake).verify()
    assert static.check("management_credentials").detail.startswith("initial access token mode: a static")
    open_registration = await build("rfc7591", fake.transport(), issuer=ISSUER, dcr_config={}).verify()
    assert open_registration.check("management_credentials").detail.startswith("initial access token mode: none")


async def test_curity_built_directly_without_admin_secret_and_a_refused_put():
    fake = Rfc7592Fake()
    client = httpx.AsyncClient(transport=fake.transport())
    bare = CurityProvider(
        ProviderConfig("curity", "p", ISSUER, settings={"initial_client_id": ADMIN_ID}),
        client,
        TokenCache(),
        sleep=NoSleep(),
    )
    assert bare.iat_client is None
    with pytest.raises(ProviderError) as caught:
        await bare.register(app())
    assert caught.value.code == "unsupported_operation"

    adapter = build(
        "curity",
        fake.transport(),
        issuer=ISSUER,
        dcr_config={"initial_client_id": ADMIN_ID, "management_scope": "dcrm"},
        secrets={"initial_client_secret": ADMIN_SECRET},
    )
    new_app = app()
    issued = await adapter.register(new_app)
    fake.fail_next[("PUT", f"/register/{issued.client_id}")] = fake.error(400, "invalid_client_metadata", "bad")
    with pytest.raises(ProviderError) as caught:
        await adapter.rotate_secret(issued.as_ref(new_app.application_id))
    assert (caught.value.code, caught.value.outcome_unknown) == ("invalid_client_metadata", False)
    assert "needs_attention" not in caught.value.extra
    assert len(fake.sent("PUT")) == 1
    assert isinstance(adapter, Rfc7591Provider)
    fake.assert_clean()


async def test_a_refused_trial_rotation_keeps_the_stored_rat(fake):
    adapter = rfc7591(fake, rotates_secret_on_put=True)
    original_put = fake.put
    fake.put = lambda request, client_id: fake.error(400, "invalid_client_metadata", "nope")
    report = await adapter.verify(trial=True)
    fake.put = original_put
    trial = report.check("trial_registration")
    assert trial.status == "failed"
    assert "400 invalid_client_metadata" in trial.detail
    assert report.cleanup is None
    assert fake.clients == {}


async def test_an_answer_without_a_secret_is_compensated_with_its_rat(fake):
    adapter = rfc7591(fake)
    fake.omit_on_register = {"client_secret"}
    with pytest.raises(ProviderError) as caught:
        await adapter.register(app())
    err = caught.value
    assert (err.code, err.outcome_unknown) == ("invalid_response", False)
    assert err.extra["compensation"] == "the half-made client was deleted"
    assert fake.clients == {}
    assert [t.split(" ")[0] for t in fake.trace()][-1] == "DELETE"


async def test_a_failed_compensation_keeps_the_outcome_unknown(fake):
    adapter = rfc7591(fake)
    fake.omit_on_register = {"client_secret"}
    original = fake.delete
    fake.delete = lambda request, client_id: fake.error(500, "server_error", "later")
    with pytest.raises(ProviderError) as caught:
        await adapter.register(app())
    fake.delete = original
    assert caught.value.outcome_unknown is True
    assert caught.value.extra["compensation"].startswith("the DELETE of the half-made client failed")
    fake.clients.clear()


@pytest.mark.parametrize(
    ("answer", "omit"),
    [
        (httpx.Response(201, text="not json"), None),
        (httpx.Response(201, json=["x"]), None),
        (None, {"client_secret", "registration_access_token"}),
    ],
)
async def test_no_compensation_without_a_management_uri_and_rat(fake, answer, omit):
    adapter = rfc7591(fake)
    if answer is not None:
        fake.fail_next[("POST", "/register")] = answer
    else:
        fake.omit_on_register = omit
    with pytest.raises(ProviderError) as caught:
        await adapter.register(app())
    assert caught.value.outcome_unknown is True
    assert "compensation" not in caught.value.extra
    assert "DELETE" not in " ".join(fake.trace())
    fake.clients.clear()
