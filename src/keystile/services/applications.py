"""Applications (contracts/portal-api.md §4, management-api.md §5) and their IdP clients.

A DCR create is the saga of contracts/dcr-providers.md §3.1: the row is committed `provisioning`, the provider
registers a client, the client is recorded on the row (so a crash after the IdP answered leaves something the
start-up sweep can delete), then one transaction stores the rest, a credential row, `active`, the audit event and
the config-version bump; only then does the secret go back, once. A refusal removes the row (502); an unknown
outcome removes it and queues a sweep (504); a failure after the IdP answered deletes the client at once or
queues it. Deletes go IdP first (§3.2): `deleting`, out of the snapshot, hidden from the developer, then the
deregister from the outbox until it has happened exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr
from sqlalchemy import delete as sql_delete
from sqlalchemy import func, select

from keystile.dcr.base import DcrProvider as Adapter
from keystile.dcr.types import AppMetadata, ClientRef, ClientUpdate, HookEvent, ProbeResult, StrategyInfo
from keystile.domain.applications import (
    DCR_REFERENCE_REASON,
    FIXED_STRATEGY_REASON,
    MAX_APPLICATIONS,
    ApplicationCreate,
    ApplicationUpdate,
    credential_type,
    too_many,
)
from keystile.domain.errors import (
    AuthenticationError,
    ConflictError,
    InvalidParameter,
    NotFoundError,
    PermissionDeniedError,
    ProviderError,
    ValidationError,
)
from keystile.domain.listing import ListQuery, ListSpec, Page
from keystile.domain.time import rfc3339
from keystile.domain.validation import parse
from keystile.services import audit, installation, outbox
from keystile.services.context import Ctx
from keystile.store.listing import paginate
from keystile.store.models import (
    Application,
    AuthStrategy,
    Credential,
    DcrProvider,
    Developer,
    Portal,
    PortalProductVersion,
    Registration,
)

__all__ = [
    "ADMIN_LIST_SPEC",
    "LIST_SPEC",
    "MULTI_SECRET_PROVIDERS",
    "PROBE_DELAYS",
    "admin_delete",
    "admin_get",
    "admin_list",
    "app_metadata",
    "client_ref",
    "create",
    "current_developer",
    "delete",
    "delete_application",
    "get",
    "list_applications",
    "list_offered_strategies",
    "load_own",
    "offered_strategies",
    "refresh_token",
    "store_client_update",
    "strategy_view",
    "update",
]

log = logging.getLogger("keystile.applications")

TABLE = "applications"
MULTI_SECRET_PROVIDERS = frozenset({"okta", "azureAd"})
PROBE_DELAYS = (1.0, 2.0, 4.0, 8.0, 8.0)
PROBE_BUDGET = 20.0

LIST_SPEC = ListSpec(filters={"name": "string", "auth_strategy_id": "uuid"}, sorts=("created_at", "updated_at", "name"))
ADMIN_LIST_SPEC = ListSpec(
    filters={
        "developer_id": "uuid",
        "developer_name": "string",
        "developer_email": "string",
        "name": "string",
        "status": "string",
        "needs_attention": "bool",
    },
    sorts=("created_at", "developer_id", "name"),
)


def _now() -> datetime:
    return datetime.now(UTC)


# ---- who and what ---------------------------------------------------------------------------------------


async def current_developer(ctx: Ctx) -> Developer:
    """The signed-in developer of `ctx`.

    Raises:
        AuthenticationError: the context is not a developer's, or the developer no longer exists.
    """
    if ctx.actor.type != "developer" or not ctx.actor.id:
        raise AuthenticationError()
    try:
        dev_id = uuid.UUID(ctx.actor.id)
    except ValueError as exc:
        raise AuthenticationError() from exc
    dev = await ctx.session.get(Developer, dev_id)
    if dev is None:
        raise AuthenticationError()
    return dev


async def load_own(ctx: Ctx, app_id: uuid.UUID, *, ready: bool = True) -> tuple[Developer, Application]:
    """The developer's own application; another developer's, a `deleting` one or an unknown id → 404.

    Raises:
        NotFoundError: not this developer's application (never 403).
        ConflictError: `ready` and the application is still `provisioning`.
    """
    dev = await current_developer(ctx)
    app = await ctx.session.get(Application, app_id)
    if app is None or app.developer_id != dev.id or app.status == "deleting":
        raise NotFoundError()
    if ready and app.status == "provisioning":
        raise ConflictError("the application is still being provisioned at its identity provider; try again shortly")
    return dev, app


async def _strategy_and_provider(ctx: Ctx, strategy_id: uuid.UUID) -> tuple[AuthStrategy, DcrProvider | None]:
    strategy = await ctx.session.get(AuthStrategy, strategy_id)
    if strategy is None:
        raise NotFoundError()
    provider = await ctx.session.get(DcrProvider, strategy.dcr_provider_id) if strategy.dcr_provider_id else None
    return strategy, provider


async def offered_strategies(ctx: Ctx, portal: Portal) -> list[uuid.UUID]:
    """What a portal offers (portal-api.md §7): its default strategy plus those of its published,
    registration-enabled versions, default first."""
    rows = await ctx.session.execute(
        select(PortalProductVersion.auth_strategy_id)
        .where(
            PortalProductVersion.portal_id == portal.id,
            PortalProductVersion.publish_status == "published",
            PortalProductVersion.application_registration_enabled.is_(True),
            PortalProductVersion.auth_strategy_id.isnot(None),
        )
        .order_by(PortalProductVersion.created_at)
    )
    out: list[uuid.UUID] = []
    if portal.default_application_auth_strategy_id is not None:
        out.append(portal.default_application_auth_strategy_id)
    for (sid,) in rows:
        if sid is not None and sid not in out:
            out.append(sid)
    return out


def developer_managed_scopes(provider: DcrProvider | None) -> bool:
    return bool(provider is not None and provider.dcr_config.get("use_developer_managed_scopes"))


def available_scopes(strategy: AuthStrategy, provider: DcrProvider | None) -> list[str]:
    if not developer_managed_scopes(provider):
        return []
    return list(strategy.configs.get("scopes") or [])


def max_secrets(provider: DcrProvider | None) -> int:
    if provider is None or provider.provider_type not in MULTI_SECRET_PROVIDERS:
        return 1
    return int(provider.dcr_config.get("max_secrets") or 2)


def strategy_view(strategy: AuthStrategy, provider: DcrProvider | None) -> dict[str, Any]:
    """A strategy as developers see it (portal-api.md §4.1, §7): display name, never the provider."""
    ctype = credential_type(strategy.strategy_type, strategy.dcr_provider_id)
    if ctype == "key_auth":
        out: dict[str, Any] = {
            "id": str(strategy.id),
            "name": strategy.display_name,
            "credential_type": ctype,
            "key_names": list(strategy.configs.get("key_names") or ["apikey"]),
            "supports_multiple_credentials": True,
        }
        if strategy.configs.get("ttl"):
            out["ttl"] = strategy.configs["ttl"]
        return out
    top = max_secrets(provider) if ctype == "client_credentials" else 1
    return {
        "id": str(strategy.id),
        "name": strategy.display_name,
        "credential_type": ctype,
        "auth_methods": list(strategy.configs.get("auth_methods") or []),
        "available_scopes": available_scopes(strategy, provider),
        "supports_multiple_credentials": top > 1,
        "min_allowed_credentials": 1,
        "max_allowed_credentials": top,
    }


def reference_id(app: Application) -> str | None:
    """What `reference_id` shows: the stored one (the IdP client id for DCR, the developer's for others); an
    application without one (key_auth) shows its own id, as Konnect's schema has the field as a non-null string."""
    if app.reference_id is not None:
        return app.reference_id
    return str(app.id) if app.dcr_provider_id is None else None


def view(app: Application, strategy: AuthStrategy, provider: DcrProvider | None) -> dict[str, Any]:
    """The Portal API application object (portal-api.md §4.1, without `credentials`)."""
    return {
        "id": str(app.id),
        "name": app.name,
        "reference_id": reference_id(app),
        "description": app.description,
        "redirect_uri": app.redirect_uri,
        "auth_strategy": strategy_view(strategy, provider),
        "scopes": list(app.scopes or []),
        "status": app.status,
        "needs_attention": app.needs_attention,
        "created_at": rfc3339(app.created_at),
        "updated_at": rfc3339(app.updated_at),
    }


def _admin_strategy(strategy: AuthStrategy) -> dict[str, Any]:
    ctype = credential_type(strategy.strategy_type, strategy.dcr_provider_id)
    out: dict[str, Any] = {"id": str(strategy.id), "name": strategy.name, "credential_type": ctype}
    if ctype == "key_auth":
        out["key_names"] = list(strategy.configs.get("key_names") or ["apikey"])
        if strategy.configs.get("ttl"):
            out["ttl"] = strategy.configs["ttl"]
    else:
        out["auth_methods"] = list(strategy.configs.get("auth_methods") or [])
        out["available_scopes"] = list(strategy.configs.get("scopes") or [])
    return out


def admin_view(
    app: Application,
    strategy: AuthStrategy,
    developer: Developer,
    registration_count: int,
) -> dict[str, Any]:
    """The Management API application object (management-api.md §5)."""
    return {
        "id": str(app.id),
        "name": app.name,
        "description": app.description,
        "labels": dict(app.labels or {}),
        "reference_id": reference_id(app),
        "registration_count": registration_count,
        "dcr_provider": {"id": str(app.dcr_provider_id)} if app.dcr_provider_id else None,
        "portal": {"id": str(app.portal_id)},
        "developer": {"id": str(developer.id), "name": developer.full_name, "email": developer.email},
        "auth_strategy": _admin_strategy(strategy),
        "granted_scopes": None,
        "status": app.status,
        "needs_attention": app.needs_attention,
        "created_at": rfc3339(app.created_at),
        "updated_at": rfc3339(app.updated_at),
    }


# ---- the IdP client of an application -------------------------------------------------------------------


#: in `Application.handles`: the stored registration access token may be stale (read by the rfc7591 adapter).
RAT_UNCERTAIN = "rat_uncertain"


def client_ref(ctx: Ctx, app: Application) -> ClientRef:
    """The stored client of `app`, its secret handles decrypted for one call."""
    secret_handles = {
        k.split(".", 1)[1]: SecretStr(ctx.vault.decrypt(v, table=TABLE, row_id=app.id, field=k))
        for k, v in (app.secrets or {}).items()
        if k.startswith("secret_handles.")
    }
    return ClientRef(
        client_id=app.reference_id or "",
        application_id=app.id,
        created_at=app.created_at,
        handles=dict(app.handles or {}),
        secret_handles=secret_handles,
        metadata=dict(app.idp_metadata or {}),
    )


def mark_handles_uncertain(app: Application) -> None:
    """An update whose answer was lost may have rotated the secret and the registration access token at the IdP
    (RFC 7592 §2.2): the developer must refresh the secret, and a DELETE answered 401 no longer proves the client
    gone (the stored token may be the stale one), so the adapter never takes it for "already deleted"."""
    app.needs_attention = True
    app.handles = {**(app.handles or {}), RAT_UNCERTAIN: True}


def store_client_update(
    ctx: Ctx,
    app: Application,
    handles: dict[str, Any],
    secret_handles: dict[str, SecretStr],
    metadata: dict[str, Any],
) -> None:
    """Merge what the IdP returned into the row: a field absent from an answer never erases a stored one. A fresh
    registration access token ends the doubt `mark_handles_uncertain` recorded."""
    if handles:
        app.handles = {**(app.handles or {}), **handles}
    if "registration_access_token" in secret_handles and (app.handles or {}).get(RAT_UNCERTAIN):
        app.handles = {k: v for k, v in (app.handles or {}).items() if k != RAT_UNCERTAIN}
    if secret_handles:
        secrets = dict(app.secrets or {})
        for key, value in secret_handles.items():
            field = f"secret_handles.{key}"
            secrets[field] = ctx.vault.encrypt(value.get_secret_value(), table=TABLE, row_id=app.id, field=field)
        app.secrets = secrets
    if metadata:
        app.idp_metadata = {**(app.idp_metadata or {}), **metadata}


async def app_metadata(ctx: Ctx, app: Application) -> AppMetadata:
    """The application as its adapter sees it (dcr-providers.md §1.1)."""
    strategy, provider = await _strategy_and_provider(ctx, app.auth_strategy_id)
    cfg = strategy.configs
    info = StrategyInfo(
        auth_methods=tuple(cfg.get("auth_methods") or ("client_credentials",)),
        scopes=tuple(cfg.get("scopes") or ()),
        token_post_args_names=tuple(cfg.get("token_post_args_names") or ()),
        token_post_args_values=tuple(cfg.get("token_post_args_values") or ()),
    )
    scopes = tuple(app.scopes) if developer_managed_scopes(provider) and app.scopes else info.scopes
    return AppMetadata(
        application_id=app.id,
        name=app.name,
        description=app.description or "",
        redirect_uri=app.redirect_uri,
        scopes=scopes,
        developer_id=str(app.developer_id),
        portal_id=str(app.portal_id),
        auth_strategy_id=str(app.auth_strategy_id),
        dcr_provider_id=str(app.dcr_provider_id) if app.dcr_provider_id else "",
        organization_id=str(await installation.organization_id(ctx)),
        strategy=info,
        created_at=app.created_at,
    )


def _adapter(ctx: Ctx, provider: DcrProvider) -> Adapter:
    from keystile.services.verification import adapter_for  # verification imports the catalog services

    return adapter_for(ctx, provider)


async def _probe(adapter: Adapter, client_id: str, secret: SecretStr, strategy: StrategyInfo) -> bool:
    """Probe a fresh secret with backoff 1, 2, 4, 8, 8 s, at most 20 s (dcr-providers.md §3.2)."""
    started = time.monotonic()
    for delay in (0.0, *PROBE_DELAYS):
        if delay:
            if time.monotonic() - started + delay > PROBE_BUDGET:
                break
            await asyncio.sleep(delay)
        try:
            if await adapter.probe(client_id, secret, strategy) is not ProbeResult.REJECTED:
                return True
        except ProviderError as exc:
            log.info("probe of a new secret failed: %s", exc)
    return False


async def _settle_probe(ctx: Ctx, adapter: Adapter, app: Application, cred: Credential, secret: SecretStr) -> None:
    """After the secret was committed: probe it in the request, else hand it to the outbox for five minutes."""
    meta = await app_metadata(ctx, app)
    if await _probe(adapter, app.reference_id or "", secret, meta.strategy):
        cred.status = "active"
    else:
        outbox.enqueue(
            ctx,
            operation="probe",
            provider_id=app.dcr_provider_id,
            application_id=app.id,
            client_id=app.reference_id,
            payload={
                "credential_row_id": str(cred.id),
                "scopes": list(meta.strategy.scopes),
                "token_post_args_names": list(meta.strategy.token_post_args_names),
                "token_post_args_values": list(meta.strategy.token_post_args_values),
            },
            secrets={"client_secret": secret.get_secret_value()},
            delay=outbox.PROBE_INTERVAL,
        )
    await ctx.session.commit()


# ---- create ---------------------------------------------------------------------------------------------


async def _check_create(
    ctx: Ctx, dev: Developer, portal: Portal, raw: Any
) -> tuple[ApplicationCreate, AuthStrategy, DcrProvider | None]:
    items: list[InvalidParameter] = []
    body: ApplicationCreate | None = None
    try:
        body = parse(ApplicationCreate, raw)
    except ValidationError as exc:
        items.extend(exc.items)
    raw_sid: Any = raw.get("auth_strategy_id") if isinstance(raw, dict) else None
    sid: uuid.UUID | None
    if body is not None:
        sid = body.auth_strategy_id
    else:
        try:
            sid = uuid.UUID(raw_sid) if isinstance(raw_sid, str) else None
        except ValueError:
            sid = None
    if sid is None and raw_sid is None:
        sid = portal.default_application_auth_strategy_id
        if sid is None:
            items.append(
                InvalidParameter(
                    "auth_strategy_id", "required", "auth_strategy_id is required: this portal has no default strategy"
                )
            )
    strategy: AuthStrategy | None = None
    provider: DcrProvider | None = None
    if sid is not None:
        if sid not in await offered_strategies(ctx, portal):
            items.append(
                InvalidParameter(
                    "auth_strategy_id",
                    "missing_reference",
                    f"auth strategy {sid} is not offered by this portal; "
                    "GET /api/v2/applications/auth-strategies lists those that are",
                )
            )
        else:
            strategy, provider = await _strategy_and_provider(ctx, sid)
    if body is not None and strategy is not None:
        items.extend(_field_rules(strategy, provider, body.reference_id, body.scopes, body))
    if items:
        raise ValidationError(items)
    assert body is not None
    assert strategy is not None
    return body, strategy, provider


def _field_rules(
    strategy: AuthStrategy,
    provider: DcrProvider | None,
    reference_id: str | None,
    scopes: list[str] | None,
    body: ApplicationCreate | ApplicationUpdate | None,
    *,
    creating: bool = True,
) -> list[InvalidParameter]:
    items: list[InvalidParameter] = []
    ctype = credential_type(strategy.strategy_type, strategy.dcr_provider_id)
    sent = body.model_fields_set if body is not None else set()
    if ctype == "client_credentials" and "reference_id" in sent and reference_id is not None:
        items.append(InvalidParameter("reference_id", "invalid", DCR_REFERENCE_REASON))
    if ctype == "self_managed_client_credentials" and creating and not reference_id:
        items.append(
            InvalidParameter(
                "reference_id",
                "required",
                "reference_id is required: it is the client_id of your own client at the identity provider",
            )
        )
    if not creating and ctype == "key_auth" and "reference_id" in sent:
        items.append(
            InvalidParameter(
                "reference_id", "invalid", "reference_id can be changed only for self-managed client credentials"
            )
        )
    if scopes:
        allowed = available_scopes(strategy, provider)
        if not developer_managed_scopes(provider):
            items.append(
                InvalidParameter(
                    "scopes", "invalid", "this auth strategy does not let developers choose scopes; leave scopes out"
                )
            )
        else:
            for i, scope in enumerate(scopes):
                if scope not in allowed:
                    items.append(
                        InvalidParameter(
                            f"scopes[{i}]",
                            "enum",
                            f"scopes[{i}] must be one of: {', '.join(allowed)}",
                            choices=list(allowed),
                        )
                    )
    return items


async def _guard_name(ctx: Ctx, dev: Developer, name: str, exclude: uuid.UUID | None = None) -> None:
    stmt = select(Application.id).where(
        Application.developer_id == dev.id, Application.name == name, Application.status != "deleting"
    )
    if exclude is not None:
        stmt = stmt.where(Application.id != exclude)
    if (await ctx.session.execute(stmt.limit(1))).first() is not None:
        raise ConflictError(f"you already have an application named {name!r}")


async def _guard_reference(
    ctx: Ctx, strategy_id: uuid.UUID, reference_id: str, exclude: uuid.UUID | None = None
) -> None:
    stmt = select(Application.id).where(
        Application.auth_strategy_id == strategy_id,
        Application.reference_id == reference_id,
        Application.status != "deleting",
    )
    if exclude is not None:
        stmt = stmt.where(Application.id != exclude)
    if (await ctx.session.execute(stmt.limit(1))).first() is not None:
        raise ConflictError(f"an application with reference_id {reference_id!r} already exists for this auth strategy")


async def create(ctx: Ctx, raw: Any) -> dict[str, Any]:
    """Create an application for the signed-in developer (portal-api.md §4.1, §4.2).

    Returns the application object; for DCR applications with `credentials` (the only time the secret is shown).

    Raises:
        ValidationError: field rules, strategy not offered by the portal.
        PermissionDeniedError: 500 applications already.
        ConflictError: name taken, self-managed `reference_id` taken.
        ProviderError: the IdP refused (502) or did not answer (504); nothing is left behind.
    """
    dev = await current_developer(ctx)
    portal = await ctx.session.get(Portal, dev.portal_id)
    if portal is None:
        raise NotFoundError()
    body, strategy, provider = await _check_create(ctx, dev, portal, raw)
    count = (
        await ctx.session.execute(
            select(func.count(Application.id)).where(
                Application.developer_id == dev.id, Application.status != "deleting"
            )
        )
    ).scalar_one()
    if count >= MAX_APPLICATIONS:
        raise PermissionDeniedError(too_many("Applications", MAX_APPLICATIONS))
    await _guard_name(ctx, dev, body.name)
    ctype = credential_type(strategy.strategy_type, strategy.dcr_provider_id)
    if ctype == "self_managed_client_credentials" and body.reference_id:
        await _guard_reference(ctx, strategy.id, body.reference_id)
    app = Application(
        id=uuid.uuid4(),
        portal_id=portal.id,
        developer_id=dev.id,
        auth_strategy_id=strategy.id,
        dcr_provider_id=provider.id if (provider is not None and ctype == "client_credentials") else None,
        name=body.name,
        description=body.description,
        redirect_uri=body.redirect_uri,
        reference_id=body.reference_id if ctype != "client_credentials" else None,
        scopes=list(body.scopes or []),
        labels={},
        handles={},
        secrets={},
        idp_metadata={},
        created_at=_now(),
        updated_at=_now(),
    )
    if ctype != "client_credentials" or provider is None:
        app.status = "active"
        ctx.session.add(app)
        audit.record(ctx, "application.create", "application", app.id, status_code=201, changes=_changes(None, app))
        await installation.bump_config_version(ctx)
        await ctx.session.commit()
        return view(app, strategy, provider)
    return await _create_dcr(ctx, app, strategy, provider)


def _snapshot(app: Application | None) -> dict[str, Any]:
    if app is None:
        return {}
    return {
        "name": app.name,
        "description": app.description,
        "redirect_uri": app.redirect_uri,
        "reference_id": app.reference_id,
        "scopes": list(app.scopes or []),
        "status": app.status,
    }


def _changes(before: Application | None, after: Application | None) -> dict[str, Any]:
    return audit.diff(_snapshot(before), _snapshot(after))


async def _create_dcr(ctx: Ctx, app: Application, strategy: AuthStrategy, provider: DcrProvider) -> dict[str, Any]:
    adapter = _adapter(ctx, provider)
    app_id, provider_id = app.id, provider.id  # plain values: a rollback expires the rows
    app.status = "provisioning"
    ctx.session.add(app)
    await ctx.session.commit()  # step 1
    meta = await app_metadata(ctx, app)
    await ctx.before_idp_call()
    try:
        issued = await adapter.register(meta)  # step 2
    except ProviderError as exc:  # steps 4 and 5
        await ctx.session.rollback()
        await ctx.session.execute(sql_delete(Application).where(Application.id == app_id))
        if exc.outcome_unknown:
            outbox.enqueue(ctx, operation="sweep", provider_id=provider_id, application_id=app_id)
        await ctx.session.commit()
        raise
    ref = issued.as_ref(app.id, app.created_at)
    cred: Credential
    try:
        # The client is recorded on the row at once: a crash from here on leaves the start-up sweep what it needs.
        app.reference_id = issued.client_id
        store_client_update(ctx, app, issued.handles, issued.secret_handles, {})
        await ctx.session.commit()
        # Step 3: one transaction.
        store_client_update(ctx, app, {}, {}, issued.metadata)
        cred = Credential(
            id=uuid.uuid4(),
            application_id=app.id,
            type="client_secret",
            idp_credential_id=issued.credential_id,
            client_id=issued.client_id,
            status="pending" if issued.needs_probe else "active",
            expires_at=issued.expires_at,
            created_at=_now(),
        )
        ctx.session.add(cred)
        app.status = "active"
        app.updated_at = _now()
        audit.record(ctx, "application.create", "application", app.id, status_code=201, changes=_changes(None, app))
        await installation.bump_config_version(ctx)
        await ctx.session.commit()
    except Exception:  # step 6: the IdP made a client that no row will own; it must go, then the error goes on
        await _compensate(ctx, adapter, provider_id, app_id, ref)
        raise
    if issued.needs_probe:
        await _settle_probe(ctx, adapter, app, cred, issued.client_secret)
    out = view(app, strategy, provider)
    out["credentials"] = {"client_id": issued.client_id, "client_secret": issued.client_secret.get_secret_value()}
    return out


async def _compensate(ctx: Ctx, adapter: Adapter, provider_id: uuid.UUID, app_id: uuid.UUID, ref: ClientRef) -> None:
    await ctx.session.rollback()
    reason: str | None = None
    landed = False
    try:
        await adapter.deregister(ref)
    except ProviderError as exc:
        reason, landed = str(exc), outbox.may_have_landed(exc)
    async with ctx.runtime.unit(ctx.actor, ctx.trace_id, ctx.client_ip) as fresh:
        await fresh.session.execute(sql_delete(Credential).where(Credential.application_id == app_id))
        await fresh.session.execute(sql_delete(Application).where(Application.id == app_id))
        if reason is not None:
            outbox.enqueue_deregister(fresh, provider_id, ref, last_error=reason, maybe_landed=landed)
        await fresh.session.commit()


# ---- read -----------------------------------------------------------------------------------------------


async def get(ctx: Ctx, app_id: uuid.UUID) -> dict[str, Any]:
    _, app = await load_own(ctx, app_id, ready=False)
    strategy, provider = await _strategy_and_provider(ctx, app.auth_strategy_id)
    return view(app, strategy, provider)


async def list_applications(ctx: Ctx, query: ListQuery) -> Page:
    dev = await current_developer(ctx)
    cols: dict[str, Any] = {
        "name": Application.name,
        "auth_strategy_id": Application.auth_strategy_id,
        "created_at": Application.created_at,
        "updated_at": Application.updated_at,
    }
    stmt = (
        select(Application, AuthStrategy, DcrProvider)
        .join(AuthStrategy, Application.auth_strategy_id == AuthStrategy.id)
        .outerjoin(DcrProvider, AuthStrategy.dcr_provider_id == DcrProvider.id)
        .where(Application.developer_id == dev.id, Application.status != "deleting")
    )
    rows, total = await paginate(ctx.session, stmt, query, cols, Application.id)
    return Page([view(r[0], r[1], r[2]) for r in rows], query.page_number, query.page_size, total)


# ---- update ---------------------------------------------------------------------------------------------


async def update(ctx: Ctx, app_id: uuid.UUID, raw: Any) -> dict[str, Any]:
    """PATCH (portal-api.md §4.3). DCR changes go to the IdP from the outbox, except a `redirect_uri` change on a
    provider that rotates the secret on update: that runs here and the answer carries the new `credentials`.

    Raises:
        ValidationError, NotFoundError, ConflictError (name taken, `provisioning`), ProviderError (rotating update).
    """
    dev, app = await load_own(ctx, app_id)
    strategy, provider = await _strategy_and_provider(ctx, app.auth_strategy_id)
    extra: list[InvalidParameter] = []
    if isinstance(raw, dict) and "auth_strategy_id" in raw:
        raw = {k: v for k, v in raw.items() if k != "auth_strategy_id"}
        extra.append(InvalidParameter("auth_strategy_id", "unknown_property", FIXED_STRATEGY_REASON))
    items: list[InvalidParameter] = []
    body: ApplicationUpdate | None = None
    try:
        body = parse(ApplicationUpdate, raw)
    except ValidationError as exc:
        items.extend(exc.items)
    if body is not None:
        items.extend(_field_rules(strategy, provider, body.reference_id, body.scopes, body, creating=False))
        ctype = credential_type(strategy.strategy_type, strategy.dcr_provider_id)
        if ctype == "self_managed_client_credentials" and "reference_id" in sent_now(body) and not body.reference_id:
            items.append(InvalidParameter("reference_id", "invalid", "reference_id cannot be removed"))
    items.extend(extra)
    if items:
        raise ValidationError(items)
    assert body is not None
    sent = body.model_fields_set
    before = _snapshot(app)
    if "name" in sent and body.name is not None and body.name != app.name:
        await _guard_name(ctx, dev, body.name, exclude=app.id)
    if "reference_id" in sent and body.reference_id and body.reference_id != app.reference_id:
        await _guard_reference(ctx, strategy.id, body.reference_id, exclude=app.id)
    changes = body

    def apply(row: Application) -> None:
        for key in ("name", "description", "redirect_uri", "reference_id"):
            if key in sent:
                setattr(row, key, getattr(changes, key))
        if "scopes" in sent:
            row.scopes = list(changes.scopes or [])
        row.updated_at = _now()

    adapter = _adapter(ctx, provider) if app.dcr_provider_id is not None and provider is not None else None
    rotated: ClientUpdate | None = None
    redirect_changes = "redirect_uri" in sent and body.redirect_uri != app.redirect_uri
    if adapter is not None and adapter.capabilities.update_rotates_secret and redirect_changes:
        rotated = await _rotating_update(ctx, adapter, app, apply)
    apply(app)
    credentials: dict[str, str] | None = None
    if rotated is not None:
        store_client_update(ctx, app, rotated.handles, rotated.secret_handles, rotated.metadata)
        if rotated.client_secret is not None:
            await _replace_secret_records(ctx, app, None, rotated.expires_at)
            credentials = {
                "client_id": app.reference_id or "",
                "client_secret": rotated.client_secret.get_secret_value(),
            }
    elif adapter is not None and adapter.capabilities.acts_on("update_application") and _snapshot(app) != before:
        outbox.enqueue_event(ctx, app, "update_application")
    audit.record(ctx, "application.update", "application", app.id, changes=audit.diff(before, _snapshot(app)))
    await installation.bump_config_version(ctx)
    await ctx.session.commit()
    _wake(ctx)
    out = view(app, strategy, provider)
    if credentials is not None:
        out["credentials"] = credentials
    return out


async def _rotating_update(
    ctx: Ctx, adapter: Adapter, app: Application, apply: Callable[[Application], None]
) -> ClientUpdate | None:
    """The update that rotates the secret (curity; rfc7591 with `rotates_secret_on_put`), in the request. The IdP
    sees the application with the changes `apply` makes, while no change is pending and no transaction is open (a
    slow IdP must not hold the database's locks); the caller applies them again once the IdP said yes. Returns what
    the IdP answered (None: nothing to store), its `client_secret` None when nothing was rotated.

    Raises:
        ProviderError: the IdP refused or did not answer; nothing of the PATCH is kept (an unknown outcome flags
            the application, `mark_handles_uncertain`).
        ConflictError: the application was deleted while the IdP was updated (its queued deregister then takes
            what the IdP issued).
    """
    app_id = app.id
    with ctx.session.no_autoflush:
        apply(app)
        meta = await app_metadata(ctx, app)
        ref = client_ref(ctx, app)
    ctx.session.expire(app)  # the changes go; the row is read again after the IdP call
    await ctx.before_idp_call()
    try:
        result = await adapter.on_event(ref, HookEvent("update_application", meta))
    except ProviderError as exc:
        result = exc.extra.get("update")  # the PUT landed without a new secret: its new RAT is kept, the PATCH too
        if result is None:
            row = await ctx.session.get(Application, app_id, populate_existing=True)
            if row is not None and exc.extra.get("needs_attention"):
                mark_handles_uncertain(row)
                await ctx.session.commit()
            raise
    row = await ctx.session.get(Application, app_id, populate_existing=True)
    if row is None or row.status != "active":
        if row is not None and result is not None:
            store_client_update(ctx, row, result.handles, result.secret_handles, result.metadata)
            await outbox.renew_deregister(ctx, client_ref(ctx, row))
            await ctx.session.commit()
        raise ConflictError("this application was deleted while its identity provider was being updated")
    return result


async def _replace_secret_records(
    ctx: Ctx, app: Application, credential_id: str | None, expires_at: datetime | None, *, pending: bool = False
) -> Credential:
    """The old secret records end, a new one starts, and gateways drop what the old secret obtained."""
    now = _now()
    olds = await ctx.session.execute(
        select(Credential).where(
            Credential.application_id == app.id, Credential.type == "client_secret", Credential.revoked_at.is_(None)
        )
    )
    for old in olds.scalars():
        old.status = "revoked"
        old.revoked_at = now
    cred = Credential(
        id=uuid.uuid4(),
        application_id=app.id,
        type="client_secret",
        idp_credential_id=credential_id,
        client_id=app.reference_id,
        status="pending" if pending else "active",
        expires_at=expires_at,
        created_at=now,
    )
    ctx.session.add(cred)
    app.credentials_not_before = now
    return cred


def sent_now(body: ApplicationUpdate) -> set[str]:
    return set(body.model_fields_set)


def _wake(ctx: Ctx) -> None:
    runner = ctx.runtime.extras.get("outbox")
    if isinstance(runner, outbox.Runner):
        runner.wake()


# ---- refresh-token --------------------------------------------------------------------------------------


async def refresh_token(ctx: Ctx, app_id: uuid.UUID) -> dict[str, str]:
    """Replace the secret at the IdP (portal-api.md §4.3) → `{client_id, client_secret}`, shown once.

    Raises:
        ValidationError: not a DCR app, refresh disabled, or the provider cannot rotate.
        ConflictError: `provisioning`, or more than one live secret (use the credentials endpoints).
        ProviderError: the IdP failed; the old secret still works.
    """
    _, app = await load_own(ctx, app_id)
    _, provider = await _strategy_and_provider(ctx, app.auth_strategy_id)
    if app.dcr_provider_id is None or provider is None:
        raise ValidationError.single(
            "auth_strategy_id", "invalid", "refresh-token needs an application with Dynamic Client Registration"
        )
    adapter = _adapter(ctx, provider)
    if provider.dcr_config.get("disable_refresh_secret") or not adapter.capabilities.rotate:
        raise ValidationError.single(
            "auth_strategy_id", "invalid", "this application's identity provider does not let keystile rotate secrets"
        )
    live = (
        await ctx.session.execute(
            select(func.count(Credential.id)).where(
                Credential.application_id == app.id, Credential.type == "client_secret", Credential.revoked_at.is_(None)
            )
        )
    ).scalar_one()
    if live > 1:
        raise ConflictError(
            "this application holds more than one live secret; delete one with the credentials endpoints first"
        )
    ref = client_ref(ctx, app)
    app_id = app.id
    await ctx.before_idp_call()
    try:
        rotated = await adapter.rotate_secret(ref, "replace")
    except ProviderError as exc:
        update = exc.extra.get("update")
        if update is not None:  # the IdP took the PUT but sent no secret: keep the new RAT it issued
            store_client_update(ctx, app, update.handles, update.secret_handles, update.metadata)
            await ctx.session.commit()
        elif exc.extra.get("needs_attention"):
            mark_handles_uncertain(app)
            await ctx.session.commit()
        raise
    try:
        store_client_update(ctx, app, rotated.handles, rotated.secret_handles, rotated.metadata)
        cred = await _replace_secret_records(
            ctx, app, rotated.credential_id, rotated.expires_at, pending=rotated.needs_probe
        )
        app.updated_at = _now()
        app.needs_attention = False  # the developer holds the secret the IdP holds again
        audit.record(ctx, "application.refresh_token", "application", app.id, status_code=201)
        await installation.bump_config_version(ctx)
        await ctx.session.commit()
    except Exception:
        await ctx.session.rollback()
        async with ctx.runtime.unit(ctx.actor, ctx.trace_id, ctx.client_ip) as fresh:
            row = await fresh.session.get(Application, app_id)
            if row is not None:
                mark_handles_uncertain(row)  # the IdP rotated; the new secret and RAT were not stored
                await fresh.session.commit()
        raise
    if rotated.needs_probe:
        await _settle_probe(ctx, adapter, app, cred, rotated.client_secret)
    return {"client_id": app.reference_id or "", "client_secret": rotated.client_secret.get_secret_value()}


# ---- delete ---------------------------------------------------------------------------------------------


async def delete_application(ctx: Ctx, app: Application, *, status_code: int = 204) -> uuid.UUID | None:
    """Delete an application (developer, admin, developer deletion): IdP first for DCR apps (§3.2).

    Commits. Returns the id of the outbox entry that deletes the IdP client (the caller may run it at once).
    """
    if app.dcr_provider_id is None or not app.reference_id:
        await ctx.session.execute(sql_delete(Registration).where(Registration.application_id == app.id))
        await ctx.session.execute(sql_delete(Credential).where(Credential.application_id == app.id))
        await ctx.session.delete(app)
        audit.record(ctx, "application.delete", "application", app.id, status_code=status_code)
        await installation.bump_config_version(ctx)
        await ctx.session.commit()
        return None
    app.status = "deleting"
    app.updated_at = _now()
    entry = outbox.enqueue_deregister(ctx, app.dcr_provider_id, client_ref(ctx, app), finalize_application=True)
    audit.record(
        ctx,
        "application.delete",
        "application",
        app.id,
        status_code=status_code,
        changes={"status": {"from": "active", "to": "deleting"}},
    )
    await installation.bump_config_version(ctx)
    await ctx.session.commit()
    return entry.id


async def _delete_now(ctx: Ctx, app: Application) -> None:
    entry = await delete_application(ctx, app)
    if entry is not None:
        outcome = await outbox.run_one(ctx.runtime, entry)
        if outcome != "done":
            _wake(ctx)


async def delete(ctx: Ctx, app_id: uuid.UUID) -> None:
    """The developer deletes their application: 204 at once, gone for them; the IdP client follows."""
    _, app = await load_own(ctx, app_id)
    await _delete_now(ctx, app)


# ---- admin ----------------------------------------------------------------------------------------------


async def _admin_row(ctx: Ctx, app_id: uuid.UUID, portal_id: uuid.UUID | None) -> Application:
    app = await ctx.session.get(Application, app_id)
    if app is None or (portal_id is not None and app.portal_id != portal_id):
        raise NotFoundError()
    return app


async def _registration_counts(ctx: Ctx, ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    if not ids:
        return {}
    rows = await ctx.session.execute(
        select(Registration.application_id, func.count(Registration.id))
        .where(Registration.application_id.in_(ids))
        .group_by(Registration.application_id)
    )
    return {r[0]: int(r[1]) for r in rows}


async def admin_get(ctx: Ctx, app_id: uuid.UUID, portal_id: uuid.UUID | None = None) -> dict[str, Any]:
    app = await _admin_row(ctx, app_id, portal_id)
    strategy, _ = await _strategy_and_provider(ctx, app.auth_strategy_id)
    dev = await ctx.session.get(Developer, app.developer_id)
    assert dev is not None
    counts = await _registration_counts(ctx, [app.id])
    return admin_view(app, strategy, dev, counts.get(app.id, 0))


async def admin_list(ctx: Ctx, portal_id: uuid.UUID, query: ListQuery) -> Page:
    if await ctx.session.get(Portal, portal_id) is None:
        raise NotFoundError()
    cols: dict[str, Any] = {
        "developer_id": Application.developer_id,
        "developer_name": Developer.full_name,
        "developer_email": Developer.email,
        "name": Application.name,
        "status": Application.status,
        "needs_attention": Application.needs_attention,
        "created_at": Application.created_at,
    }
    stmt = (
        select(Application, AuthStrategy, Developer)
        .join(AuthStrategy, Application.auth_strategy_id == AuthStrategy.id)
        .join(Developer, Application.developer_id == Developer.id)
        .where(Application.portal_id == portal_id)
    )
    rows, total = await paginate(ctx.session, stmt, query, cols, Application.id)
    counts = await _registration_counts(ctx, [r[0].id for r in rows])
    data = [admin_view(r[0], r[1], r[2], counts.get(r[0].id, 0)) for r in rows]
    return Page(data, query.page_number, query.page_size, total)


async def admin_delete(ctx: Ctx, portal_id: uuid.UUID, app_id: uuid.UUID) -> None:
    """An admin deletes an application; a `deleting` one is already on its way (204 again)."""
    app = await _admin_row(ctx, app_id, portal_id)
    if app.status == "deleting":
        return
    if app.status == "provisioning":
        raise ConflictError("the application is still being provisioned at its identity provider; try again shortly")
    await _delete_now(ctx, app)


# ---- auth strategies offered (portal-api.md §7) ----------------------------------------------------------

STRATEGY_LIST_SPEC = ListSpec(filters={"name": "string", "credential_type": "string"}, sorts=("created_at", "name"))


async def list_offered_strategies(ctx: Ctx, query: ListQuery) -> Page:
    """What the signed-in developer's portal offers: its default strategy and those of its published,
    registration-enabled versions (filters `name`, `credential_type`, `eq`)."""
    dev = await current_developer(ctx)
    portal = await ctx.session.get(Portal, dev.portal_id)
    if portal is None:
        raise NotFoundError()
    items: list[dict[str, Any]] = []
    for sid in await offered_strategies(ctx, portal):
        strategy, provider = await _strategy_and_provider(ctx, sid)
        items.append(strategy_view(strategy, provider))
    for flt in query.filters:
        wanted = {str(v).lower() for v in flt.values}
        if flt.op in ("eq", "oeq"):
            items = [i for i in items if str(i[flt.field]).lower() in wanted]
        elif flt.op == "neq":
            items = [i for i in items if str(i[flt.field]).lower() not in wanted]
        else:
            items = [i for i in items if any(w in str(i[flt.field]).lower() for w in wanted)]
    if query.sort == "name":
        items.sort(key=lambda i: str(i["name"]), reverse=query.descending)
    start = (query.page_number - 1) * query.page_size
    return Page(items[start : start + query.page_size], query.page_number, query.page_size, len(items))
