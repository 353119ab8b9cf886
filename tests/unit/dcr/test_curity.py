"""The `curity` adapter against an in-process Curity fake (contracts/dcr-providers.md §2.3, §2.8 curity row)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from keystile.dcr.naming import client_name
from keystile.dcr.types import ClientRef, HookEvent, ProbeResult
from keystile.domain.errors import ProviderError
from tests.unit.dcr.helpers import app, build
from tests.unit.dcr.rfc7592_fake import ADMIN_ID, ADMIN_SECRET, ISSUER, Rfc7592Fake


def curity(fake: Rfc7592Fake, *, issuer: str = ISSUER, **config):
    return build(
        "curity",
        fake.transport(),
        issuer=issuer,
        dcr_config={"initial_client_id": ADMIN_ID, **config},
        secrets={"initial_client_secret": ADMIN_SECRET},
    )


@pytest.fixture
def fake():
    server = Rfc7592Fake()
    yield server
    server.assert_clean()


async def test_two_registrations_make_two_iat_requests_with_exact_bodies(fake):
    adapter = curity(fake)
    machine, web = app("Orders", scopes=("read", "openid")), app("Shop <b>", redirect_uri="https://shop.test/cb")
    fake.expected_bodies = [
        {
            "client_name": client_name("Orders", machine.application_id),
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "client_secret_basic",
            "scope": "read",
        },
        {
            "client_name": client_name("Shop b", web.application_id),
            "grant_types": ["authorization_code", "client_credentials"],
            "response_types": ["code"],
            "redirect_uris": ["https://shop.test/cb"],
            "token_endpoint_auth_method": "client_secret_basic",
            "scope": "read",
        },
    ]
    first = await adapter.register(machine)
    second = await adapter.register(web)
    token_requests = fake.sent("POST", "/token")
    assert len(token_requests) == 2
    iats = [r.headers["authorization"] for r in fake.sent("POST", "/register")]
    assert len(set(iats)) == 2
    assert all(used for used in fake.iats.values())
    assert fake.expected_bodies == []
    assert first.client_id != second.client_id
    assert first.secret_handles["registration_access_token"].get_secret_value() == fake.clients[first.client_id]["rat"]
    assert first.secret_handles["registration_client_uri"].get_secret_value().endswith(f"/register/{first.client_id}")
    assert "rat_expires_at" in first.handles
    assert "client_secret" not in first.metadata
    assert "registration_access_token" not in first.metadata
    assert first.metadata["client_name"] == client_name("Orders", machine.application_id)
    assert first.expires_at is None  # client_secret_expires_at 0 = never


async def test_a_reused_iat_is_refused_with_401(fake):
    adapter = curity(fake)
    await adapter.register(app())
    fake.replay_iat = True  # the token endpoint hands out the spent IAT again
    with pytest.raises(ProviderError) as caught:
        await adapter.register(app())
    err = caught.value
    assert (err.status, err.code, err.retryable, err.outcome_unknown) == (401, "invalid_token", False, False)
    assert str(err).startswith("Curity register failed: 401 invalid_token")


async def test_the_fake_fails_the_test_on_a_get_of_a_registration_uri():
    fake = Rfc7592Fake()
    adapter = curity(fake)
    issued = await adapter.register(app())
    uri = issued.secret_handles["registration_client_uri"].get_secret_value()
    with pytest.raises(AssertionError, match="GET on a registration URI"):
        await adapter.client.get(uri)
    assert fake.problems  # recorded, so the fixture's teardown check would fail the test


async def test_put_rotates_secret_and_rat_and_the_old_rat_is_dead(fake):
    adapter = curity(fake)
    new_app = app()
    issued = await adapter.register(new_app)
    ref = issued.as_ref(new_app.application_id)
    rotated = await adapter.rotate_secret(ref)
    put = fake.sent("PUT")[0]
    assert (
        put.headers["authorization"]
        == f"Bearer {issued.secret_handles['registration_access_token'].get_secret_value()}"
    )
    sent = adapter.update_body(ref)
    assert "client_secret" not in sent
    assert sent["client_id"] == issued.client_id
    new_rat = rotated.secret_handles["registration_access_token"]
    assert new_rat.get_secret_value() == fake.clients[issued.client_id]["rat"]
    assert new_rat.get_secret_value() != issued.secret_handles["registration_access_token"].get_secret_value()
    assert rotated.client_secret.get_secret_value() == fake.clients[issued.client_id]["secret"]
    assert rotated.client_secret.get_secret_value() != issued.client_secret.get_secret_value()
    # the old secret no longer works, the new one does
    assert await adapter.probe(issued.client_id, issued.client_secret) is ProbeResult.REJECTED
    assert await adapter.probe(issued.client_id, rotated.client_secret) is ProbeResult.OK
    # the old RAT is refused: a first DELETE with it is an error, not "gone"
    with pytest.raises(ProviderError) as caught:
        await adapter.deregister(ref)
    assert (caught.value.status, caught.value.code) == (401, "invalid_token")
    assert issued.client_id in fake.clients
    # with the stored new RAT the DELETE works
    await adapter.deregister(rotated.apply(ref))
    assert issued.client_id not in fake.clients
    assert not fake.sent("GET", f"/register/{issued.client_id}")


async def test_lost_put_answer_is_recovered_with_the_management_scope():
    fake = Rfc7592Fake(management_scope="dcrm")
    adapter = curity(fake, management_scope="dcrm")
    new_app = app()
    issued = await adapter.register(new_app)
    ref = issued.as_ref(new_app.application_id)
    fake.lose_next_put_answer = True
    rotated = await adapter.rotate_secret(ref)
    puts = fake.sent("PUT")
    assert len(puts) == 2
    assert puts[1].headers["authorization"].removeprefix("Bearer ") in fake.management_tokens
    assert rotated.client_secret.get_secret_value() == fake.clients[issued.client_id]["secret"]
    assert (
        rotated.secret_handles["registration_access_token"].get_secret_value() == fake.clients[issued.client_id]["rat"]
    )
    fake.assert_clean()


async def test_lost_put_answer_without_management_scope_needs_attention(fake):
    adapter = curity(fake)
    new_app = app()
    issued = await adapter.register(new_app)
    fake.lose_next_put_answer = True
    with pytest.raises(ProviderError) as caught:
        await adapter.rotate_secret(issued.as_ref(new_app.application_id))
    err = caught.value
    assert (err.code, err.outcome_unknown, err.retryable) == ("timeout", True, False)
    assert err.extra["needs_attention"] is True
    assert len(fake.sent("PUT")) == 1  # a PUT is never repeated blindly


async def test_stale_rat_delete_with_management_scope_uses_a_management_token():
    fake = Rfc7592Fake(management_scope="dcrm")
    adapter = curity(fake, management_scope="dcrm")
    new_app = app()
    issued = await adapter.register(new_app)
    ref = issued.as_ref(new_app.application_id)
    fake.clients[issued.client_id]["rat"] = "rotated-elsewhere"
    await adapter.deregister(ref)
    assert issued.client_id not in fake.clients
    deletes = fake.sent("DELETE")
    assert len(deletes) == 2
    assert deletes[1].headers["authorization"].removeprefix("Bearer ") in fake.management_tokens
    fake.assert_clean()


async def test_delete_204_then_404_and_repeated_401_are_gone(fake):
    adapter = curity(fake)
    new_app = app()
    issued = await adapter.register(new_app)
    ref = issued.as_ref(new_app.application_id)
    await adapter.deregister(ref)
    assert issued.client_id not in fake.clients
    # the first DELETE landed; the outbox repeats it: 401 on a repeated attempt = gone
    ref.handles["deregister_attempts"] = 1
    await adapter.deregister(ref)
    # 404 = gone
    fake.fail_next[("DELETE", f"/register/{issued.client_id}")] = fake.error(404, "not_found", "gone")
    await adapter.deregister(ref)


async def test_rename_stays_local_and_a_redirect_change_is_a_rotation(fake):
    adapter = curity(fake)
    original = app("Orders", redirect_uri="https://a.test/cb")
    issued = await adapter.register(original)
    ref = issued.as_ref(original.application_id)
    renamed = app("Orders v2", redirect_uri="https://a.test/cb", application_id=original.application_id)
    assert await adapter.on_event(ref, HookEvent("update_application", renamed)) is None
    assert not fake.sent("PUT")
    for other in ("add_registration", "remove_registration"):
        assert await adapter.on_event(ref, HookEvent(other, renamed)) is None
    moved = app("Orders v2", application_id=original.application_id)
    update = await adapter.on_event(ref, HookEvent("update_application", moved))
    assert update is not None
    assert update.client_secret is not None
    put_body = fake.clients[issued.client_id]["metadata"]
    assert put_body["redirect_uris"] == []
    assert put_body["grant_types"] == ["client_credentials"]
    assert "response_types" not in put_body
    assert update.metadata["client_name"] == client_name("Orders v2", original.application_id)
    assert (
        update.secret_handles["registration_access_token"].get_secret_value() == fake.clients[issued.client_id]["rat"]
    )
    assert adapter.capabilities.update_rotates_secret
    assert adapter.capabilities.rotate


async def test_discovery_url_issuer_is_normalised(fake):
    adapter = curity(fake, issuer=ISSUER + "/.well-known/openid-configuration")
    assert adapter.issuer == ISSUER
    report = await adapter.verify(trial=True)
    assert report.status == "success", report.errors
    assert [c.name for c in report.checks] == [
        "discovery",
        "registration_endpoint",
        "management_credentials",
        "trial_registration",
    ]
    assert fake.clients == {}  # the trial client was deleted
    assert fake.trace()[0] == "GET /oauth/v2/oauth-anonymous/.well-known/openid-configuration"


async def test_verify_without_dcr_enabled_and_with_a_rejected_admin():
    fake = Rfc7592Fake(announce_registration=False)
    fake.admin_secret = "something-else"
    report = await curity(fake).verify(trial=True)
    assert report.status == "failed"
    by_name = {c.name: c for c in report.checks}
    assert by_name["discovery"].status == "passed"
    assert by_name["registration_endpoint"].status == "failed"
    assert "registration_endpoint" in by_name["registration_endpoint"].detail
    assert by_name["management_credentials"].status == "failed"
    assert "invalid_client" in by_name["management_credentials"].detail
    assert by_name["trial_registration"].status == "skipped"
    assert fake.admin_secret not in " ".join(report.errors)
    fake.assert_clean()


async def test_verify_reports_a_trial_client_it_could_not_delete(fake):
    adapter = curity(fake)
    original_delete = fake.delete
    fake.delete = lambda request, client_id: fake.error(500, "server_error", "try later")
    report = await adapter.verify(trial=True)
    trial = report.check("trial_registration")
    assert report.status == "failed"
    assert trial is not None
    assert trial.status == "failed"
    assert report.cleanup is not None
    assert report.cleanup.client_id in fake.clients
    assert report.cleanup.client_id in trial.detail
    assert "registration_access_token" in report.cleanup.secret_handles
    assert len(fake.sent("DELETE")) == 3  # an idempotent DELETE is tried three times
    # the caller can queue it: deregistering the reported ref works
    fake.delete = original_delete
    await adapter.deregister(report.cleanup)
    assert fake.clients == {}


async def test_curity_without_admin_client_is_refused_at_build():
    from keystile.domain.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="initial_client_secret"):
        build("curity", Rfc7592Fake().transport(), issuer=ISSUER, dcr_config={"initial_client_id": ADMIN_ID})


async def test_rotate_add_is_unsupported(fake):
    adapter = curity(fake)
    ref = ClientRef(client_id="x", application_id=app().application_id)
    with pytest.raises(ProviderError) as caught:
        await adapter.rotate_secret(ref, "add")
    assert caught.value.code == "unsupported_operation"
    assert fake.requests == []


async def test_secret_values_never_reach_reprs(fake):
    adapter = curity(fake)
    issued = await adapter.register(app())
    assert issued.client_secret.get_secret_value() not in repr(issued)
    assert ADMIN_SECRET not in repr(adapter) + repr(adapter.config)
    assert isinstance(issued.client_secret, SecretStr)
