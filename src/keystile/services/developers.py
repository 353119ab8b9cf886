"""Developer accounts of a portal (portal-api.md §1, §2): sign-up, e-mail verification, passwords (argon2id),
sessions (opaque 256-bit access and refresh tokens stored as SHA-256, refresh rotation with reuse detection),
throttling, and the admin view of developers (management-api.md §5, portal-api.md §2.2).

Token kinds in `developer_tokens`: `access` (1 h), `refresh` (14 days, rotates on use; a family id ties one
session's tokens together), `verify` (e-mail verification, 24 h), `reset` (sets a password: 24 h after
verification, 1 h after forgot-password). Every token is stored only as its SHA-256 hex digest.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from pydantic import field_validator
from sqlalchemy import delete, exists, func, select, update

from keystile.domain.errors import (
    AuthenticationError,
    GoneError,
    NotFoundError,
    PermissionDeniedError,
    ThrottledError,
    VaultError,
)
from keystile.domain.listing import ListQuery, ListSpec, Page
from keystile.domain.time import rfc3339
from keystile.domain.validation import StrictModel, parse, rule_error
from keystile.services import applications, audit, installation, mail, outbox, registrations, throttle
from keystile.services.context import Actor, Ctx, Runtime
from keystile.store.listing import paginate
from keystile.store.models import (
    Application,
    AuthStrategy,
    Developer,
    DeveloperToken,
    Portal,
    PortalProductVersion,
    Registration,
)
from keystile.store.types import utcnow

__all__ = [
    "ACCESS_TTL",
    "DEVELOPER_LIST_SPEC",
    "REFRESH_REUSE_GRACE",
    "REFRESH_TTL",
    "PortalInfo",
    "SessionTokens",
    "SignedIn",
    "admin_delete",
    "admin_get",
    "admin_list",
    "admin_update",
    "authenticate",
    "create_approved_developer",
    "developer_actor",
    "end_sessions",
    "forgot_password",
    "logout",
    "me",
    "portal_by_host",
    "portal_view",
    "purge_deleted",
    "refresh",
    "require_accounts",
    "reset_password",
    "session_for_token",
    "sign_up",
    "verify_email",
]

ACCESS_TTL = timedelta(hours=1)
REFRESH_TTL = timedelta(days=14)
VERIFY_TTL = timedelta(hours=24)
FIRST_PASSWORD_TTL = timedelta(hours=24)
FORGOT_TTL = timedelta(hours=1)
SESSION_KINDS = ("access", "refresh")
#: a rotated refresh token presented again this soon after its rotation gets the same new session back (restored
#: tabs, several replicas), not the reuse rule; Okta and Auth0 call this a grace period / reuse interval
REFRESH_REUSE_GRACE = timedelta(seconds=30)
TOKENS_TABLE = "developer_tokens"
STATUSES = ("approved", "pending", "revoked", "rejected")
UNVERIFIED = "unverified"
DELETED = "deleted"  # deleted by an admin; the row goes once their applications are gone
HIDDEN = (UNVERIFIED, DELETED)

LOGIN_WINDOW = timedelta(minutes=15)
LOGIN_ACCOUNT_LIMIT = 10
LOGIN_IP_LIMIT = 50
HOURLY_WINDOW = timedelta(hours=1)
SIGNUP_IP_LIMIT = 10
FORGOT_IP_LIMIT = 10

INVALID_CREDENTIALS = ("Invalid Credentials", "You have entered an invalid email or password.")
APPROVAL_REQUIRED = ("Approval Required", "Your account is pending approval for access.")
PUBLIC_PORTAL = "This portal is public and has no developer accounts"

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DEFAULT_HASHER = PasswordHasher()  # argon2id, argon2-cffi's defaults (RFC 9106 second recommended option)
_DUMMY_HASHES: dict[tuple[int, int, int, int, int], str] = {}


# ---- portals ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PortalInfo:
    """The portal a Portal API request is for (picked by `Host`), detached from any session."""

    id: uuid.UUID
    name: str
    display_name: str
    is_public: bool
    auto_approve_developers: bool
    custom_domain: str | None
    custom_client_domain: str | None
    revoke_on_developer_revoke: bool

    @classmethod
    def of(cls, row: Portal) -> PortalInfo:
        return cls(
            id=row.id,
            name=row.name,
            display_name=row.display_name,
            is_public=row.is_public,
            auto_approve_developers=row.auto_approve_developers,
            custom_domain=row.custom_domain,
            custom_client_domain=row.custom_client_domain,
            revoke_on_developer_revoke=row.revoke_on_developer_revoke,
        )


def _host_only(host: str | None) -> str | None:
    if not host:
        return None
    host = host.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def portal_by_host(runtime: Runtime, host: str | None) -> PortalInfo:
    """The portal whose `custom_domain` is `host` (port ignored), else the portal named `default`.

    Raises:
        NotFoundError: no portal matches and there is no `default` portal.
    """
    name = _host_only(host)
    async with runtime.sessions() as session:
        row = None
        if name:
            row = (
                await session.execute(select(Portal).where(func.lower(Portal.custom_domain) == name))
            ).scalar_one_or_none()
        if row is None:
            row = (await session.execute(select(Portal).where(Portal.name == "default"))).scalar_one_or_none()
        if row is None:
            raise NotFoundError()
        return PortalInfo.of(row)


async def portal_view(ctx: Ctx, portal: PortalInfo) -> dict[str, Any]:
    """`GET /api/v2/portal` (Konnect's `PortalContext`). keystile has no feature sets, analytics or RBAC, so
    those fields are empty or false; `dcr_provider_ids` are the providers behind the strategies this portal
    offers (ids only: names and types are never shown to developers)."""
    offered = select(PortalProductVersion.auth_strategy_id).where(
        PortalProductVersion.portal_id == portal.id,
        PortalProductVersion.publish_status == "published",
        PortalProductVersion.application_registration_enabled.is_(True),
    )
    default_strategy = select(Portal.default_application_auth_strategy_id).where(Portal.id == portal.id)
    rows = await ctx.session.execute(
        select(AuthStrategy.dcr_provider_id)
        .where(
            AuthStrategy.dcr_provider_id.isnot(None),
            (AuthStrategy.id.in_(offered)) | (AuthStrategy.id.in_(default_strategy)),
        )
        .distinct()
    )
    provider_ids = sorted(str(r[0]) for r in rows if r[0] is not None)
    return {
        "portal_id": str(portal.id),
        "org_id": str(await installation.organization_id(ctx)),
        "name": portal.display_name,
        "canonical_domain": portal.custom_domain or (urlsplit(ctx.runtime.settings.public_url).netloc),
        "is_public": portal.is_public,
        "basic_auth_enabled": True,
        "oidc_auth_enabled": False,
        "rbac_enabled": False,
        "featureset_id": "",
        "allowed_time_period": "",
        "dcr_provider_ids": provider_ids,
    }


def require_accounts(portal: PortalInfo) -> None:
    """Raises PermissionDeniedError on a public portal (no developer accounts there)."""
    if portal.is_public:
        raise PermissionDeniedError(PUBLIC_PORTAL)


def portal_base_url(runtime: Runtime, portal: PortalInfo) -> str:
    """Where links in mails point: the portal's custom domain, else `KEYSTILE_PUBLIC_URL`."""
    if portal.custom_domain:
        scheme = "http" if runtime.settings.dev_mode and portal.custom_domain.endswith("localhost") else "https"
        return f"{scheme}://{portal.custom_domain}"
    return runtime.settings.public_url


# ---- tokens ----------------------------------------------------------------------------------------------


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _new_session_token() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


def _new_one_time_token() -> str:
    return str(uuid.uuid4())  # portal-api.md §2.1: verify and reset tokens are UUIDs (122 random bits)


def _add_token(ctx: Ctx, developer_id: uuid.UUID, kind: str, ttl: timedelta, family: uuid.UUID | None = None) -> str:
    token = _new_one_time_token() if kind in ("verify", "reset") else _new_session_token()
    ctx.session.add(
        DeveloperToken(
            developer_id=developer_id,
            kind=kind,
            token_sha256=sha256_hex(token),
            family_id=family,
            expires_at=utcnow() + ttl,
        )
    )
    return token


@dataclass(frozen=True)
class SessionTokens:
    """A new session's tokens (the cookie values); shown to the caller once."""

    access_token: str
    refresh_token: str
    developer_id: uuid.UUID


@dataclass(frozen=True)
class SignedIn:
    """A developer authenticated by an access token."""

    developer_id: uuid.UUID
    portal_id: uuid.UUID
    email: str
    full_name: str


def _new_session(ctx: Ctx, developer_id: uuid.UUID, family: uuid.UUID | None = None) -> SessionTokens:
    family = family or uuid.uuid4()
    access = _add_token(ctx, developer_id, "access", ACCESS_TTL, family)
    refresh_token = _add_token(ctx, developer_id, "refresh", REFRESH_TTL, family)
    return SessionTokens(access, refresh_token, developer_id)


async def _lock_developer(ctx: Ctx, developer_id: uuid.UUID) -> None:
    """Lock the developer row for the caller's transaction on PostgreSQL (SQLite writers hold the database lock
    already). Every change to a developer's sessions (`refresh`, `end_sessions`) takes this lock first, so a
    rotation and a sign-out queue on one row instead of locking token rows in opposite orders (a deadlock). Only
    the id is selected: a Developer the caller holds keeps its unsaved changes."""
    await ctx.session.execute(select(Developer.id).where(Developer.id == developer_id).with_for_update())


async def end_sessions(ctx: Ctx, developer_id: uuid.UUID) -> None:
    """Delete every access and refresh token of a developer, in the caller's transaction."""
    await _lock_developer(ctx, developer_id)
    await ctx.session.execute(
        delete(DeveloperToken).where(
            DeveloperToken.developer_id == developer_id, DeveloperToken.kind.in_(SESSION_KINDS)
        )
    )


async def _token_row(ctx: Ctx, token: str, kind: str, *, fresh: bool = False) -> DeveloperToken | None:
    """The token's row; `fresh` reads it again from the database even when this session holds it already."""
    digest = sha256_hex(token)
    query = select(DeveloperToken).where(DeveloperToken.token_sha256 == digest, DeveloperToken.kind == kind)
    if fresh:
        query = query.execution_options(populate_existing=True)
    row = (await ctx.session.execute(query)).scalar_one_or_none()
    # looked up by hash; compared again in constant time so timing says nothing about near misses
    if row is None or not hmac.compare_digest(row.token_sha256, digest):
        return None
    return row


async def session_for_token(runtime: Runtime, portal: PortalInfo, token: str) -> SignedIn:
    """The approved developer of this portal an access token belongs to.

    Raises:
        AuthenticationError: unknown or expired token, another portal's developer, or not `approved`.
    """
    async with runtime.sessions() as session:
        digest = sha256_hex(token)
        found = (
            await session.execute(
                select(DeveloperToken, Developer)
                .join(Developer, Developer.id == DeveloperToken.developer_id)
                .where(DeveloperToken.token_sha256 == digest, DeveloperToken.kind == "access")
            )
        ).one_or_none()
        if found is None:
            raise AuthenticationError()
        row, dev = found
        if (
            not hmac.compare_digest(row.token_sha256, digest)
            or row.expires_at <= utcnow()
            or dev.portal_id != portal.id
            or dev.status != "approved"
        ):
            raise AuthenticationError()
        return SignedIn(dev.id, dev.portal_id, dev.email, dev.full_name)


def developer_actor(dev: Developer | SignedIn) -> Actor:
    if isinstance(dev, SignedIn):
        return Actor("developer", str(dev.developer_id), dev.full_name)
    return Actor("developer", str(dev.id), dev.full_name)


# ---- passwords -------------------------------------------------------------------------------------------


def password_hasher(runtime: Runtime) -> PasswordHasher:
    """The argon2id hasher: `runtime.extras["password_hasher"]` when set (tests use cheaper parameters), else
    the default."""
    custom = runtime.extras.get("password_hasher")
    return custom if isinstance(custom, PasswordHasher) else DEFAULT_HASHER


def _dummy_hash(hasher: PasswordHasher) -> str:
    """A hash with the hasher's parameters, verified against when the email is unknown or has no password, so
    both paths cost one argon2 verification (no timing difference to enumerate accounts with)."""
    key = (hasher.time_cost, hasher.memory_cost, hasher.parallelism, hasher.hash_len, hasher.salt_len)
    if key not in _DUMMY_HASHES:
        _DUMMY_HASHES[key] = hasher.hash(secrets.token_urlsafe(16))
    return _DUMMY_HASHES[key]


def _verify_password(hasher: PasswordHasher, stored: str | None, password: str) -> bool:
    dummy = _dummy_hash(hasher)  # made on the first attempt whatever the email, so even that one times alike
    try:
        return hasher.verify(stored or dummy, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# ---- request bodies --------------------------------------------------------------------------------------


def _check_email(value: str) -> str:
    value = value.strip()
    if not _EMAIL.match(value):
        raise rule_error("invalid", "email must be an email address such as jane@example.com")
    return value.lower()


class SignUp(StrictModel):
    email: str
    full_name: str

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        if len(v) > 255:
            raise rule_error("max_length", "email must be at most 255 characters", maximum=255)
        return _check_email(v)

    @field_validator("full_name")
    @classmethod
    def _name(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise rule_error("min_length", "full_name must be at least 1 character", minimum=1)
        if len(v) > 256:
            raise rule_error("max_length", "full_name must be at most 256 characters", maximum=256)
        return v


def _check_uuid_token(v: str) -> str:
    try:
        return str(uuid.UUID(v))
    except ValueError:
        raise rule_error("is_uuid", "token must be a UUID (copy it from the link in the mail)") from None


class VerifyEmail(StrictModel):
    token: str

    @field_validator("token")
    @classmethod
    def _token(cls, v: str) -> str:
        return _check_uuid_token(v)


class ResetPassword(StrictModel):
    token: str
    password: str

    @field_validator("token")
    @classmethod
    def _token(cls, v: str) -> str:
        return _check_uuid_token(v)

    @field_validator("password")
    @classmethod
    def _password(cls, v: str) -> str:
        if len(v) < 12:
            raise rule_error("min_length", "password must be at least 12 characters", minimum=12)
        if len(v) > 256:
            raise rule_error("max_length", "password must be at most 256 characters", maximum=256)
        return v


class Authenticate(StrictModel):
    username: str
    password: str

    @field_validator("username")
    @classmethod
    def _username(cls, v: str) -> str:
        if not v.strip():
            raise rule_error("min_length", "username (your email) is required", minimum=1)
        return v.strip().lower()[:320]

    @field_validator("password")
    @classmethod
    def _password(cls, v: str) -> str:
        if not v:
            raise rule_error("min_length", "password is required", minimum=1)
        return v[:1024]


class ForgotPassword(StrictModel):
    email: str

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        if len(v) > 255:
            raise rule_error("max_length", "email must be at most 255 characters", maximum=255)
        return _check_email(v)


class DeveloperUpdate(StrictModel):
    status: str

    @field_validator("status")
    @classmethod
    def _status(cls, v: str) -> str:
        if v not in STATUSES:
            raise rule_error("enum", f"status must be one of: {', '.join(STATUSES)}", choices=list(STATUSES))
        return v


# ---- account flows ---------------------------------------------------------------------------------------


async def _developer_by_email(ctx: Ctx, portal_id: uuid.UUID, email: str) -> Developer | None:
    return (
        await ctx.session.execute(select(Developer).where(Developer.portal_id == portal_id, Developer.email == email))
    ).scalar_one_or_none()


async def sign_up(ctx: Ctx, portal: PortalInfo, raw: Any) -> None:
    """`POST /api/v2/developer`: 201 whether or not the email is known (no enumeration).

    A new address gets a verification mail; an unverified one a fresh verification mail; a verified one a
    "you already have an account" mail.

    Raises:
        PermissionDeniedError: public portal. ValidationError: bad body. ThrottledError: 10 per hour per IP.
    """
    require_accounts(portal)
    body = parse(SignUp, raw)
    await throttle.check(ctx, f"signup:ip:{ctx.client_ip}", SIGNUP_IP_LIMIT, HOURLY_WINDOW)
    await throttle.hit(ctx, f"signup:ip:{ctx.client_ip}")
    dev = await _developer_by_email(ctx, portal.id, body.email)
    base = portal_base_url(ctx.runtime, portal)
    message: mail.Mail
    if dev is None:
        dev = Developer(id=uuid.uuid4(), portal_id=portal.id, email=body.email, full_name=body.full_name)
        dev.status = UNVERIFIED
        ctx.session.add(dev)
        await ctx.session.flush()
        token = _add_token(ctx, dev.id, "verify", VERIFY_TTL)
        message = mail.verification_mail(portal.display_name, base, dev.email, dev.full_name, token)
        ctx.actor = developer_actor(dev)
        audit.record(ctx, "developer.register", "developer", dev.id, status_code=201)
    elif dev.status == UNVERIFIED:
        await ctx.session.execute(
            delete(DeveloperToken).where(DeveloperToken.developer_id == dev.id, DeveloperToken.kind == "verify")
        )
        token = _add_token(ctx, dev.id, "verify", VERIFY_TTL)
        message = mail.verification_mail(portal.display_name, base, dev.email, dev.full_name, token)
    else:
        message = mail.existing_account_mail(portal.display_name, base, dev.email, dev.full_name)
    await ctx.session.commit()
    await mail.send(ctx.runtime, message)


async def verify_email(ctx: Ctx, portal: PortalInfo, raw: Any) -> dict[str, Any]:
    """`POST /api/v2/developer/verify-email` → `{email, token}`: a one-time token that sets the first password.

    Raises:
        PermissionDeniedError: public portal. ValidationError: bad body. NotFoundError: unknown token.
        GoneError: used or expired token.
    """
    require_accounts(portal)
    body = parse(VerifyEmail, raw)
    row = await _token_row(ctx, body.token, "verify")
    dev = await ctx.session.get(Developer, row.developer_id) if row is not None else None
    if row is None or dev is None or dev.portal_id != portal.id:
        raise NotFoundError()
    now = utcnow()
    if row.used_at is not None or row.expires_at <= now:
        raise GoneError("This verification link was already used or has expired; sign up again for a new one")
    row.used_at = now
    before = dev.status
    if dev.status == UNVERIFIED:
        dev.status = "approved" if portal.auto_approve_developers else "pending"
    dev.email_verified_at = now
    token = _add_token(ctx, dev.id, "reset", FIRST_PASSWORD_TTL)
    ctx.actor = developer_actor(dev)
    audit.record(
        ctx,
        "developer.verify_email",
        "developer",
        dev.id,
        status_code=202,
        changes=audit.diff({"status": before}, {"status": dev.status}),
    )
    await ctx.session.commit()
    return {"email": dev.email, "token": token}


async def reset_password(ctx: Ctx, portal: PortalInfo, raw: Any) -> None:
    """`POST /api/v2/developer/reset-password`: sets the password and ends every session.

    Raises:
        PermissionDeniedError: public portal. ValidationError: bad body or password length.
        NotFoundError: unknown token. GoneError: used or expired token.
    """
    require_accounts(portal)
    body = parse(ResetPassword, raw)
    row = await _token_row(ctx, body.token, "reset")
    dev = await ctx.session.get(Developer, row.developer_id) if row is not None else None
    if row is None or dev is None or dev.portal_id != portal.id:
        raise NotFoundError()
    now = utcnow()
    if row.used_at is not None or row.expires_at <= now:
        raise GoneError("This password link was already used or has expired; ask for a new one")
    dev.password_hash = await asyncio.to_thread(password_hasher(ctx.runtime).hash, body.password)
    dev.updated_at = now
    await ctx.session.execute(
        update(DeveloperToken)
        .where(DeveloperToken.developer_id == dev.id, DeveloperToken.kind == "reset", DeveloperToken.used_at.is_(None))
        .values(used_at=now)
    )
    await end_sessions(ctx, dev.id)
    ctx.actor = developer_actor(dev)
    audit.record(ctx, "developer.reset_password", "developer", dev.id, status_code=204)
    await ctx.session.commit()


async def authenticate(ctx: Ctx, portal: PortalInfo, raw: Any) -> SessionTokens:
    """`POST /api/v2/developer/authenticate`: a new session for the right email and password.

    Failed logins count per account (10 / 15 min) and per IP (50 / 15 min); every outcome is audited.

    Raises:
        PermissionDeniedError: public portal. ValidationError: bad body. ThrottledError: too many failures.
        AuthenticationError: `Invalid Credentials`, `Approval Required` or `Account Disabled`.
    """
    require_accounts(portal)
    body = parse(Authenticate, raw)
    account_key = f"login:account:{portal.id}:{body.username}"
    ip_key = f"login:ip:{ctx.client_ip}"
    dev = await _developer_by_email(ctx, portal.id, body.username)
    try:
        await throttle.check(ctx, ip_key, LOGIN_IP_LIMIT, LOGIN_WINDOW)
        await throttle.check(ctx, account_key, LOGIN_ACCOUNT_LIMIT, LOGIN_WINDOW)
    except ThrottledError:
        await _login_failure(ctx, dev, 429, "throttled")
        raise
    hasher = password_hasher(ctx.runtime)
    ok = await asyncio.to_thread(_verify_password, hasher, dev.password_hash if dev else None, body.password)
    if dev is None or not ok:
        await throttle.hit(ctx, account_key)
        await throttle.hit(ctx, ip_key)
        await ctx.session.commit()
        await _login_failure(ctx, dev, 401, "invalid_credentials")
        raise AuthenticationError(INVALID_CREDENTIALS[1], INVALID_CREDENTIALS[0])
    if dev.status != "approved":
        status = dev.status
        await _login_failure(ctx, dev, 401, f"status_{status}")
        if status == "pending":
            raise AuthenticationError(APPROVAL_REQUIRED[1], APPROVAL_REQUIRED[0])
        raise AuthenticationError(f"Your account has been {status}.", "Account Disabled")
    now = utcnow()
    await ctx.session.execute(
        delete(DeveloperToken).where(DeveloperToken.developer_id == dev.id, DeveloperToken.expires_at <= now)
    )
    if hasher.check_needs_rehash(dev.password_hash or ""):
        dev.password_hash = await asyncio.to_thread(password_hasher(ctx.runtime).hash, body.password)
    tokens = _new_session(ctx, dev.id)
    ctx.actor = developer_actor(dev)
    audit.record(ctx, "developer.authenticate", "developer", dev.id, status_code=204)
    await ctx.session.commit()
    return tokens


async def _login_failure(ctx: Ctx, dev: Developer | None, status: int, reason: str) -> None:
    """Audit a refused login in a transaction of its own, after ending the attempt's (it keeps nothing)."""
    actor = developer_actor(dev) if dev else Actor("developer", None, None)
    dev_id = dev.id if dev else None
    await ctx.session.rollback()
    await audit.record_failure(
        ctx.runtime,
        actor,
        "developer.authenticate",
        "developer",
        dev_id,
        status_code=status,
        trace_id=ctx.trace_id,
        client_ip=ctx.client_ip,
        changes={"reason": {"from": None, "to": reason}},
    )


async def refresh(ctx: Ctx, portal: PortalInfo, token: str | None) -> SessionTokens:
    """`POST /api/v2/developer/refresh`: rotate the refresh token; a rotated one presented again ends every
    session of its developer, except within `REFRESH_REUSE_GRACE` of its rotation, when it gets the same new
    session back (tabs and replicas racing on one cookie are not a stolen token).

    Raises:
        PermissionDeniedError: public portal. AuthenticationError: missing, unknown, expired or reused token.
    """
    require_accounts(portal)
    if not token:
        raise AuthenticationError()
    found = await _token_row(ctx, token, "refresh")
    if found is None:
        raise AuthenticationError()
    # the developer's lock: replicas presenting one token together rotate it once, the others wait and share it;
    # the token is read again under it (a sign-out or another rotation may have committed meanwhile)
    await _lock_developer(ctx, found.developer_id)
    dev = await ctx.session.get(Developer, found.developer_id)
    if dev is None or dev.portal_id != portal.id:
        raise AuthenticationError()
    row = await _token_row(ctx, token, "refresh", fresh=True)
    if row is None or dev.status != "approved":
        raise AuthenticationError()
    now = utcnow()
    if row.used_at is not None:
        again = await _successor(ctx, row, now)
        if again is not None:
            await ctx.session.commit()
            return again
        await end_sessions(ctx, dev.id)
        await ctx.session.commit()
        await audit.record_failure(
            ctx.runtime,
            developer_actor(dev),
            "developer.refresh",
            "developer",
            dev.id,
            status_code=401,
            trace_id=ctx.trace_id,
            client_ip=ctx.client_ip,
            changes={"reason": {"from": None, "to": "refresh_token_reused"}},
        )
        raise AuthenticationError()
    if row.expires_at <= now:
        raise AuthenticationError()
    family = row.family_id or uuid.uuid4()
    # the old access token of this session dies with the rotation
    await ctx.session.execute(
        delete(DeveloperToken).where(
            DeveloperToken.developer_id == dev.id,
            DeveloperToken.family_id == family,
            DeveloperToken.kind == "access",
        )
    )
    # successors kept past their grace by earlier rotations of this developer go now (housekeeping sweeps the rest)
    await ctx.session.execute(
        update(DeveloperToken)
        .where(
            DeveloperToken.developer_id == dev.id,
            DeveloperToken.secrets.is_not(None),
            DeveloperToken.used_at < now - REFRESH_REUSE_GRACE,
        )
        .values(secrets=None)
    )
    tokens = _new_session(ctx, dev.id, family)
    row.used_at = now
    sealed = ctx.vault.encrypt(
        f"{tokens.access_token} {tokens.refresh_token}", table=TOKENS_TABLE, row_id=row.id, field="successor"
    )
    row.secrets = {"successor": sealed}
    await ctx.session.commit()
    return tokens


async def _successor(ctx: Ctx, row: DeveloperToken, now: datetime) -> SessionTokens | None:
    """The session a rotation of `row` made, when the rotation is within the grace and that session is intact
    (its refresh token unused and unexpired, its access token alive); else None (the caller ends every session)."""
    if row.used_at is None or now - row.used_at > REFRESH_REUSE_GRACE or not row.secrets:
        return None
    sealed = row.secrets.get("successor")
    if not isinstance(sealed, str):
        return None
    try:
        plain = ctx.vault.decrypt(sealed, table=TOKENS_TABLE, row_id=row.id, field="successor")
    except VaultError:
        # sealed under a key this replica does not have yet (a `keys rotate` ahead of its redeploy): no session,
        # but no sign of a stolen token either
        raise AuthenticationError() from None
    access, refresh_token = plain.split()
    following = await _token_row(ctx, refresh_token, "refresh")
    if following is None or following.used_at is not None or following.expires_at <= now:
        return None
    if await _token_row(ctx, access, "access") is None:
        return None
    return SessionTokens(access, refresh_token, row.developer_id)


async def logout(ctx: Ctx, portal: PortalInfo, access_token: str | None, refresh_token: str | None) -> None:
    """`POST /api/v2/developer/logout`: ends every session of the developer the tokens name (if any)."""
    require_accounts(portal)
    dev_id: uuid.UUID | None = None
    for value, kind in ((access_token, "access"), (refresh_token, "refresh")):
        if value and dev_id is None:
            row = await _token_row(ctx, value, kind)
            if row is not None:
                dev_id = row.developer_id
    if dev_id is None:
        return
    dev = await ctx.session.get(Developer, dev_id)
    if dev is None or dev.portal_id != portal.id:
        return
    await end_sessions(ctx, dev.id)
    ctx.actor = developer_actor(dev)
    audit.record(ctx, "developer.logout", "developer", dev.id, status_code=204)
    await ctx.session.commit()


async def me(ctx: Ctx, who: SignedIn) -> dict[str, Any]:
    """`GET /api/v2/developer/me`."""
    dev = await ctx.session.get(Developer, who.developer_id)
    if dev is None:
        raise AuthenticationError()
    return {
        "id": str(dev.id),
        "email": dev.email,
        "full_name": dev.full_name,
        "created_at": rfc3339(dev.created_at),
        "updated_at": rfc3339(dev.updated_at),
    }


async def forgot_password(ctx: Ctx, portal: PortalInfo, raw: Any) -> None:
    """`POST /api/v2/developer/forgot-password`: always 200; a known, verified address gets a 1 h reset link.

    Raises:
        PermissionDeniedError: public portal. ValidationError: bad body. ThrottledError: 10 per hour per IP.
    """
    require_accounts(portal)
    body = parse(ForgotPassword, raw)
    await throttle.check(ctx, f"forgot:ip:{ctx.client_ip}", FORGOT_IP_LIMIT, HOURLY_WINDOW)
    await throttle.hit(ctx, f"forgot:ip:{ctx.client_ip}")
    dev = await _developer_by_email(ctx, portal.id, body.email)
    message: mail.Mail | None = None
    if dev is not None and dev.status != UNVERIFIED:
        token = _add_token(ctx, dev.id, "reset", FORGOT_TTL)
        message = mail.reset_mail(
            portal.display_name, portal_base_url(ctx.runtime, portal), dev.email, dev.full_name, token
        )
        ctx.actor = developer_actor(dev)
        audit.record(ctx, "developer.forgot_password", "developer", dev.id, status_code=200)
    await ctx.session.commit()
    if message is not None:
        await mail.send(ctx.runtime, message)


async def create_approved_developer(
    runtime: Runtime,
    portal_id: uuid.UUID,
    email: str,
    full_name: str = "Test Developer",
    password: str | None = None,
) -> SessionTokens:
    """An `approved`, verified developer with a live session, created directly (tests, demo seeding).

    Returns the session's tokens; `developer_id` is on the result.
    """
    async with runtime.unit(Actor("system", None, "keystile")) as ctx:
        dev = Developer(
            id=uuid.uuid4(),
            portal_id=portal_id,
            email=email.strip().lower(),
            full_name=full_name,
            status="approved",
            email_verified_at=utcnow(),
            password_hash=await asyncio.to_thread(password_hasher(runtime).hash, password) if password else None,
        )
        ctx.session.add(dev)
        await ctx.session.flush()
        tokens = _new_session(ctx, dev.id)
        await ctx.session.commit()
        return tokens


# ---- admin (management-api.md §5) -----------------------------------------------------------------------

DEVELOPER_LIST_SPEC = ListSpec(
    filters={"name": "string", "email": "string", "status": "string"},
    sorts=("created_at", "updated_at", "email", "name", "status"),
)


async def _portal_row(ctx: Ctx, portal_id: uuid.UUID) -> Portal:
    row = await ctx.session.get(Portal, portal_id)
    if row is None:
        raise NotFoundError()
    return row


async def _admin_row(ctx: Ctx, portal_id: uuid.UUID, developer_id: uuid.UUID) -> Developer:
    await _portal_row(ctx, portal_id)
    dev = await ctx.session.get(Developer, developer_id)
    if dev is None or dev.portal_id != portal_id or dev.status in HIDDEN:
        raise NotFoundError()
    return dev


def _app_count_subquery() -> Any:
    return (
        select(func.count(Application.id))
        .where(Application.developer_id == Developer.id, Application.status != "deleting")
        .correlate(Developer)
        .scalar_subquery()
    )


def admin_view(dev: Developer, application_count: int) -> dict[str, Any]:
    return {
        "id": str(dev.id),
        "email": dev.email,
        "full_name": dev.full_name,
        "status": dev.status,
        "application_count": application_count,
        "created_at": rfc3339(dev.created_at),
        "updated_at": rfc3339(dev.updated_at),
    }


async def admin_list(ctx: Ctx, portal_id: uuid.UUID, query: ListQuery) -> Page:
    """`GET /v2/portals/{portalId}/developers` (unverified sign-ups are not developers yet)."""
    await _portal_row(ctx, portal_id)
    if await purge_deleted(ctx):
        await ctx.session.commit()
    count = _app_count_subquery()
    stmt = select(Developer, count).where(Developer.portal_id == portal_id, Developer.status.notin_(HIDDEN))
    cols: dict[str, Any] = {
        "name": Developer.full_name,
        "email": Developer.email,
        "status": Developer.status,
        "created_at": Developer.created_at,
        "updated_at": Developer.updated_at,
    }
    rows, total = await paginate(ctx.session, stmt, query, cols, Developer.id)
    return Page([admin_view(r[0], int(r[1])) for r in rows], query.page_number, query.page_size, total)


async def _application_count(ctx: Ctx, developer_id: uuid.UUID) -> int:
    return int(
        (
            await ctx.session.execute(
                select(func.count(Application.id)).where(
                    Application.developer_id == developer_id, Application.status != "deleting"
                )
            )
        ).scalar_one()
    )


async def admin_get(ctx: Ctx, portal_id: uuid.UUID, developer_id: uuid.UUID) -> dict[str, Any]:
    dev = await _admin_row(ctx, portal_id, developer_id)
    return admin_view(dev, await _application_count(ctx, dev.id))


async def _revoke_registrations(ctx: Ctx, developer_id: uuid.UUID) -> int:
    """Set every `approved` or `pending` registration of the developer's applications to `revoked`, in the
    caller's transaction: the config version moves (gateways stop the traffic) and providers that act on
    registration events get `remove_registration` from the outbox, as an admin revoking each one would."""
    rows = (
        await ctx.session.execute(
            select(Registration, Application)
            .join(Application, Application.id == Registration.application_id)
            .where(Application.developer_id == developer_id, Registration.status.in_(("approved", "pending")))
        )
    ).all()
    now = utcnow()
    for reg, app in rows:
        was = reg.status
        reg.status = "revoked"
        reg.updated_at = now
        # registrations owns what a registration status change sets off (config version, provider event)
        await registrations._approval_changed(ctx, app, reg, was, "revoked")
    if rows:
        await installation.bump_config_version(ctx)
    return len(rows)


async def admin_update(ctx: Ctx, portal_id: uuid.UUID, developer_id: uuid.UUID, raw: Any) -> dict[str, Any]:
    """PATCH `{status}` (portal-api.md §2.2): leaving `approved` ends every session; `revoked`/`rejected` with
    the portal's `revoke_on_developer_revoke` revokes the developer's approved and pending registrations and
    bumps the config version, all in one transaction.
    """
    dev = await _admin_row(ctx, portal_id, developer_id)
    body = parse(DeveloperUpdate, raw)
    portal = await _portal_row(ctx, portal_id)
    before = dev.status
    changes = audit.diff({"status": before}, {"status": body.status})
    if body.status != before:
        dev.status = body.status
        dev.updated_at = utcnow()
        if before == "approved":
            await end_sessions(ctx, dev.id)
        if body.status in ("revoked", "rejected") and portal.revoke_on_developer_revoke:
            revoked = await _revoke_registrations(ctx, dev.id)
            if revoked:
                changes["registrations_revoked"] = {"from": None, "to": revoked}
    audit.record(ctx, "developer.update", "developer", dev.id, changes=changes)
    await ctx.session.commit()
    runner = ctx.runtime.extras.get("outbox")
    if isinstance(runner, outbox.Runner):
        runner.wake()  # provider events queued above go out now
    return admin_view(dev, await _application_count(ctx, dev.id))


async def purge_deleted(ctx: Ctx) -> int:
    """Remove developers deleted by an admin once none of their applications remains (DCR applications stay
    `deleting` until the IdP client is gone). In the caller's transaction; returns how many went."""
    has_apps = exists().where(Application.developer_id == Developer.id)
    result = await ctx.session.execute(
        delete(Developer).where(Developer.status == DELETED, ~has_apps).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def admin_delete(ctx: Ctx, portal_id: uuid.UUID, developer_id: uuid.UUID) -> None:
    """DELETE a developer: their sessions end and they disappear at once (404, the address is free to sign up
    again); their applications are deleted the way an application DELETE does it
    (`services.applications.delete_application`: DCR applications stay `deleting` until the IdP client is
    gone, retried from the outbox); the developer row goes with the last of them.
    """
    dev = await _admin_row(ctx, portal_id, developer_id)
    email = dev.email
    dev.status = DELETED
    dev.email = f"deleted-{dev.id}@invalid"
    dev.password_hash = None
    dev.updated_at = utcnow()
    await ctx.session.execute(delete(DeveloperToken).where(DeveloperToken.developer_id == dev.id))
    audit.record(
        ctx, "developer.delete", "developer", dev.id, status_code=204, changes={"email": {"from": email, "to": None}}
    )
    await ctx.session.commit()
    apps = (
        (
            await ctx.session.execute(
                select(Application).where(
                    Application.developer_id == dev.id, Application.status.notin_(("deleting", "provisioning"))
                )
            )
        )
        .scalars()
        .all()
    )
    entries: list[uuid.UUID] = []
    for app in apps:
        entry = await applications.delete_application(ctx, app, status_code=204)
        if entry is not None:
            entries.append(entry)
    runner = ctx.runtime.extras.get("outbox")
    if isinstance(runner, outbox.Runner):
        if entries:
            runner.wake()  # the IdP deletes run in the background, retried with backoff
    else:
        for entry in entries:
            # no runner in this process: try each IdP delete now; what fails stays queued for the next runner
            await outbox.run_one(ctx.runtime, entry)
    await purge_deleted(ctx)
    await ctx.session.commit()
