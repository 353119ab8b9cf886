"""Developer portal pages (`/`): account flows, catalog, product pages, My Apps (portal-api.md §8)."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from keystile.domain import errors as e
from keystile.domain.listing import ListSpec, Page
from keystile.services import applications, credentials, developers, portal_catalog, registrations
from keystile.services.context import Actor, Ctx
from keystile.services.developers import PortalInfo, SignedIn
from keystile.web import openapi, security
from keystile.web.common import form_text, list_query, once, page_number, parse_id, read_form, runtime, unit
from keystile.web.rendering import Form, LoginRequired, comma_list, page, redirect, render, strip_indices

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

ACCESS_COOKIE = security.DEV_ACCESS_COOKIE
REFRESH_COOKIE = security.DEV_REFRESH_COOKIE
CREDENTIAL_LIST_SPEC = ListSpec(filters={}, sorts=("created_at",))
PUBLIC = "This portal is public and has no developer accounts"

CREDENTIAL_TYPES = {
    "client_credentials": "OAuth client (client ID and secret, issued by the identity provider)",
    "self_managed_client_credentials": "Your own OAuth client (you give its client ID)",
    "key_auth": "API key",
}
CREDENTIAL_SHORT = {
    "client_credentials": "OAuth client",
    "self_managed_client_credentials": "your own OAuth client",
    "key_auth": "API key",
}
METHOD_HELP = {
    "client_credentials": "send your client ID and secret as HTTP Basic credentials (Authorization: Basic …)",
    "bearer": "send an access token from the identity provider (Authorization: Bearer …)",
    "session": "a browser session cookie set by the gateway after you authenticate",
    "introspection": "send an access token the gateway checks with the identity provider",
}


# ---- who is this -----------------------------------------------------------------------------------------


async def _portal(request: Request) -> PortalInfo:
    portal = await developers.portal_by_host(runtime(request), request.headers.get("host"))
    # the portal made at first start is called `default`; until an admin names it, say what it is
    request.state.portal_name = "Developer Portal" if portal.display_name == "default" else portal.display_name
    request.state.portal = portal
    return portal


async def _developer(request: Request, portal: PortalInfo) -> SignedIn | None:
    """The signed-in developer of this request, renewing an expired (or missing) access token from the refresh
    cookie the way `POST /api/v2/developer/refresh` does (the new cookies go on this request's response).

    When a session cookie was sent but no session can be had from it, `request.state.session_ended` is set and the
    cookies are cleared, so the sign-in page can say why the developer is there.
    """
    if portal.is_public:
        return None
    rt = runtime(request)
    token = request.cookies.get(ACCESS_COOKIE)
    if token:
        try:
            who = await developers.session_for_token(rt, portal, token)
        except e.AuthenticationError:
            pass
        else:
            request.state.developer = who
            return who
    refresh_token = request.cookies.get(REFRESH_COOKIE)
    if not refresh_token:
        if token:
            _session_ended(request, portal)
        return None

    try:
        # pages opened together with one refresh cookie get one new session between them, on any replica (the
        # rotation's reuse grace in `services.developers.refresh`), not the reuse rule
        async with unit(request, _anon()) as ctx:
            tokens = await developers.refresh(ctx, portal, refresh_token)
        who = await developers.session_for_token(rt, portal, tokens.access_token)
    except e.AuthenticationError:
        _session_ended(request, portal)
        return None
    security.set_developer_session(request, portal, tokens)
    security.renew_portal_csrf(request)
    request.state.developer = who
    return who


def _session_ended(request: Request, portal: PortalInfo) -> None:
    request.state.session_ended = True
    security.clear_developer_session(request, portal)


def _return_path(request: Request) -> str | None:
    """Where the developer was: this page for a GET, the page the form was on (same-origin `Referer`) for a POST."""
    if request.method in ("GET", "HEAD"):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    else:
        referer = urlsplit(request.headers.get("referer", ""))
        if not referer.path or referer.netloc.lower() != request.headers.get("host", "").lower():
            return None
        target = referer.path + (f"?{referer.query}" if referer.query else "")
    return target if _safe_next(target) == target and target != "/" else None


def _login_required(request: Request) -> LoginRequired:
    """The redirect to the sign-in page with `next` back here and, when a session just ended, `expired`."""
    params: dict[str, str] = {}
    target = _return_path(request)
    if target:
        params["next"] = target
    if getattr(request.state, "session_ended", False):
        params["expired"] = "1" if request.method in ("GET", "HEAD") else "form"
    return LoginRequired("/login" + (f"?{urlencode(params, safe='/')}" if params else ""))


async def _signed_in(request: Request) -> tuple[PortalInfo, SignedIn]:
    portal = await _portal(request)
    if portal.is_public:
        raise e.PermissionDeniedError(PUBLIC)
    who = await _developer(request, portal)
    if who is None:
        raise _login_required(request)
    return portal, who


def _dev_actor(who: SignedIn) -> Actor:
    return developers.developer_actor(who)


def _anon() -> Actor:
    return Actor("developer", None, None)


def _safe_next(value: str) -> str:
    ok = value.startswith("/") and not value.startswith("//") and "\\" not in value
    return value if ok and not any(c in value for c in "\t\r\n") else "/apps"


# ---- account ---------------------------------------------------------------------------------------------


@router.get("/register")
@page
async def register_form(request: Request) -> Response:
    portal = await _portal(request)
    if portal.is_public:
        raise e.PermissionDeniedError(PUBLIC)
    return render(request, "portal/register.html", {"form": Form()})


@router.post("/register")
@page
async def register(request: Request) -> Response:
    portal = await _portal(request)
    data = await read_form(request)
    form = Form.of(data)
    try:
        async with unit(request, _anon()) as ctx:
            await developers.sign_up(
                ctx, portal, {"email": form_text(data, "email"), "full_name": form_text(data, "full_name")}
            )
    except (e.ValidationError, e.ThrottledError) as exc:
        return render(request, "portal/register.html", {"form": form.fail(exc)}, status=400)
    return render(
        request, "portal/message.html", {"title": "Check your mail", "kind": "registered", "email": form.value("email")}
    )


@router.get("/verify-email")
@page
async def verify_email_form(request: Request) -> Response:
    await _portal(request)
    token = request.query_params.get("token", "")
    return render(request, "portal/verify.html", {"token": token, "form": Form()}, secret=True)


@router.post("/verify-email")
@page
async def verify_email(request: Request) -> Response:
    portal = await _portal(request)
    data = await read_form(request)
    try:
        async with unit(request, _anon()) as ctx:
            result = await developers.verify_email(ctx, portal, {"token": form_text(data, "token")})
    except e.NotFoundError:
        form = Form(top=["This verification link is not valid. Check that you opened the whole link from the mail."])
        return render(request, "portal/verify.html", {"token": "", "form": form}, status=404)
    except (e.GoneError, e.ValidationError) as exc:
        return render(request, "portal/verify.html", {"token": "", "form": Form().fail(exc)}, status=410)
    context = {"token": result["token"], "email": result["email"], "form": Form(), "first": True}
    return render(request, "portal/reset.html", context, secret=True)


@router.get("/reset-password")
@page
async def reset_form(request: Request) -> Response:
    await _portal(request)
    context = {"token": request.query_params.get("token", ""), "form": Form(), "first": False, "email": None}
    return render(request, "portal/reset.html", context, secret=True)


@router.post("/reset-password")
@page
async def reset(request: Request) -> Response:
    portal = await _portal(request)
    data = await read_form(request)
    token = form_text(data, "token")
    password = data.get("password")
    first = form_text(data, "first") == "true"
    form = Form.of(data)
    context: dict[str, Any] = {"token": token, "first": first, "email": form.value("email") or None, "form": form}
    if password != data.get("password_confirm"):
        form.errors["password_confirm"] = "the two passwords differ; type the same password twice"
        return render(request, "portal/reset.html", context, status=400, secret=True)
    try:
        async with unit(request, _anon()) as ctx:
            await developers.reset_password(ctx, portal, {"token": token, "password": password})
    except e.NotFoundError:
        form.top.append("This password link is not valid; ask for a new one.")
        return render(request, "portal/reset.html", context, status=404, secret=True)
    except (e.GoneError, e.ValidationError) as exc:
        form.fail(exc)
        return render(request, "portal/reset.html", context, status=400, secret=True)
    return redirect("/login?reset=1")


@router.get("/login")
@page
async def login_form(request: Request) -> Response:
    portal = await _portal(request)
    if portal.is_public:
        raise e.PermissionDeniedError(PUBLIC)
    form = Form(values={"next": _safe_next(request.query_params.get("next", "/apps"))})
    return render(request, "portal/login.html", {"form": form})


@router.post("/login")
@page
async def login(request: Request) -> Response:
    portal = await _portal(request)
    data = await read_form(request)
    form = Form.of(data)
    try:
        async with unit(request, _anon()) as ctx:
            tokens = await developers.authenticate(
                ctx, portal, {"username": form_text(data, "email"), "password": data.get("password") or ""}
            )
    except e.AuthenticationError as exc:
        form.top.append(exc.detail)
        return render(request, "portal/login.html", {"form": form}, status=401)
    except (e.ValidationError, e.ThrottledError) as exc:
        form.fail(exc, lambda f: "email" if f == "username" else f)
        return render(request, "portal/login.html", {"form": form}, status=400)
    security.set_developer_session(request, portal, tokens)
    security.rotate_portal_csrf(request)
    return redirect(_safe_next(str(form.value("next", "/apps"))))


@router.post("/logout")
@page
async def logout(request: Request) -> Response:
    portal = await _portal(request)
    await read_form(request)
    async with unit(request, _anon()) as ctx:
        await developers.logout(ctx, portal, request.cookies.get(ACCESS_COOKIE), request.cookies.get(REFRESH_COOKIE))
    security.clear_developer_session(request, portal)
    security.rotate_portal_csrf(request)
    return redirect("/login")


@router.get("/forgot-password")
@page
async def forgot_form(request: Request) -> Response:
    await _portal(request)
    return render(request, "portal/forgot.html", {"form": Form()})


@router.post("/forgot-password")
@page
async def forgot(request: Request) -> Response:
    portal = await _portal(request)
    data = await read_form(request)
    form = Form.of(data)
    try:
        async with unit(request, _anon()) as ctx:
            await developers.forgot_password(ctx, portal, {"email": form_text(data, "email")})
    except (e.ValidationError, e.ThrottledError) as exc:
        return render(request, "portal/forgot.html", {"form": form.fail(exc)}, status=400)
    return render(
        request, "portal/message.html", {"title": "Check your mail", "kind": "forgot", "email": form.value("email")}
    )


# ---- catalog ---------------------------------------------------------------------------------------------


async def _catalog(request: Request) -> tuple[PortalInfo, SignedIn | None, Actor]:
    portal = await _portal(request)
    who = await _developer(request, portal)
    if not portal.is_public and who is None:
        raise _login_required(request)
    return portal, who, (_dev_actor(who) if who else _anon())


@router.get("/")
@page
async def catalog(request: Request) -> Response:
    portal, _, actor = await _catalog(request)
    q = request.query_params.get("q", "").strip()
    async with unit(request, actor) as ctx:
        if q:
            found: dict[str, dict[str, Any]] = {}
            for field in ("name", "description"):
                spec = portal_catalog.PRODUCT_LIST_SPEC
                result = await portal_catalog.list_products(
                    ctx, portal, list_query(spec, [(f"filter[{field}][contains]", q), ("sort", "name")], size=200)
                )
                for item in result.data:
                    found.setdefault(str(item["id"]), item)
            products = sorted(found.values(), key=lambda p: str(p["name"]).lower())
            total = len(products)
        else:
            result = await portal_catalog.list_products(
                ctx, portal, list_query(portal_catalog.PRODUCT_LIST_SPEC, [("sort", "name")], page_number(request))
            )
            products, total = list(result.data), result.total
    return render(request, "portal/catalog.html", {"products": products, "q": q, "total": total})


def _auth_help(config: dict[str, Any]) -> list[str]:
    ctype = config.get("credential_type")
    if ctype == "key_auth":
        return ["send your API key in the header or query parameter the gateway expects (shown on your app)"]
    return [METHOD_HELP.get(m, m) for m in config.get("auth_methods") or []]


@router.get("/products/{product_id}")
@page
async def product(request: Request, product_id: str) -> Response:
    portal, who, actor = await _catalog(request)
    pid = parse_id(product_id)
    async with unit(request, actor) as ctx:
        item = await portal_catalog.get_product(ctx, portal, pid)
        versions = await portal_catalog.list_versions(
            ctx, portal, pid, list_query(portal_catalog.VERSION_LIST_SPEC, [("sort", "created_at desc")], size=100)
        )
        wanted = request.query_params.get("version")
        listed: list[dict[str, Any]] = list(versions.data)
        chosen: dict[str, Any] | None = next((v for v in listed if v["id"] == wanted), None) or (
            listed[0] if listed else None
        )
        spec_doc = None
        ops: list[openapi.Operation] = []
        title = None
        if chosen is not None:
            spec_doc = await portal_catalog.spec_document(ctx, portal, pid, uuid.UUID(str(chosen["id"])))
            if spec_doc is not None:
                doc = openapi.load(str(spec_doc["content"]))
                if doc is not None:
                    ops = openapi.operations(doc)
                    info = doc.get("info")
                    title = info.get("title") if isinstance(info, dict) else None
        apps: list[dict[str, Any]] = []
        if who is not None and chosen is not None and chosen["registration_configs"]:
            strategy_id = chosen["registration_configs"][0]["id"]
            mine = await applications.list_applications(
                ctx, list_query(applications.LIST_SPEC, [("filter[auth_strategy_id]", strategy_id)], size=200)
            )
            apps = list(mine.data)
    return render(
        request,
        "portal/product.html",
        {
            "product": item,
            "versions": versions.data,
            "version": chosen,
            "operations": ops,
            "has_spec": spec_doc is not None,
            "spec_title": title,
            "apps": apps,
            "auth_help": _auth_help,
            "accounts": not portal.is_public,
            "credential_types": CREDENTIAL_TYPES,
        },
    )


# ---- My Apps ---------------------------------------------------------------------------------------------

APP_FIELDS = ("name", "description", "auth_strategy_id", "redirect_uri", "reference_id", "scopes")


def app_field(path: str) -> str | None:
    name = strip_indices(path)
    return name if name in APP_FIELDS else None


@router.get("/apps")
@page
async def apps(request: Request) -> Response:
    _, who = await _signed_in(request)
    async with unit(request, _dev_actor(who)) as ctx:
        result = await applications.list_applications(
            ctx, list_query(applications.LIST_SPEC, [("sort", "name")], page_number(request))
        )
        counts: dict[str, dict[str, int]] = {}
        for app in result.data:
            regs = await registrations.list_registrations(
                ctx, uuid.UUID(str(app["id"])), list_query(registrations.LIST_SPEC, [], size=1000)
            )
            tally: dict[str, int] = {}
            for reg in regs.data:
                tally[str(reg["status"])] = tally.get(str(reg["status"]), 0) + 1
            counts[str(app["id"])] = tally
    return render(request, "portal/apps.html", {"page": result, "counts": counts})


async def _offered(ctx: Ctx) -> list[dict[str, Any]]:
    page_ = await applications.list_offered_strategies(ctx, list_query(applications.STRATEGY_LIST_SPEC, [], size=100))
    return list(page_.data)


def _new_app_ctx(form: Form, offered: list[dict[str, Any]]) -> dict[str, Any]:
    scopes = sorted({str(x) for s in offered for x in s.get("available_scopes") or []})
    return {
        "form": form,
        "offered": offered,
        "credential_types": CREDENTIAL_TYPES,
        "credential_short": CREDENTIAL_SHORT,
        "scopes_offered": scopes,
    }


@router.get("/apps/new")
@page
async def new_app_form(request: Request) -> Response:
    _, who = await _signed_in(request)
    async with unit(request, _dev_actor(who)) as ctx:
        offered = await _offered(ctx)
    values = {
        "auth_strategy_id": request.query_params.get("strategy", offered[0]["id"] if offered else ""),
        "product_version_id": request.query_params.get("version", ""),
    }
    return render(request, "portal/new_app.html", _new_app_ctx(Form(values=values), offered))


def _app_body(data: FormData, offered: list[dict[str, Any]]) -> dict[str, Any]:
    sid = form_text(data, "auth_strategy_id")
    strategy = next((s for s in offered if s["id"] == sid), None)
    ctype = strategy["credential_type"] if strategy else None
    body: dict[str, Any] = {"name": form_text(data, "name")}
    if sid:
        body["auth_strategy_id"] = sid
    if form_text(data, "description"):
        body["description"] = form_text(data, "description")
    if ctype == "client_credentials" and form_text(data, "redirect_uri"):
        body["redirect_uri"] = form_text(data, "redirect_uri")
    if ctype in ("self_managed_client_credentials", "key_auth") and form_text(data, "reference_id"):
        body["reference_id"] = form_text(data, "reference_id")
    scopes = comma_list(data.get("scopes"))
    if scopes:
        body["scopes"] = scopes
    return body


@router.post("/apps/new")
@page
async def create_app(request: Request) -> Response:
    _, who = await _signed_in(request)
    data = await read_form(request)
    form = Form.of(data)
    async with once(request, data, _dev_actor(who)) as sent, unit(request, _dev_actor(who)) as ctx:
        offered = await _offered(ctx)
        try:
            created = await applications.create(ctx, _app_body(data, offered))
        except e.KeystileError as exc:
            form.fail(exc, app_field)
            return render(request, "portal/new_app.html", _new_app_ctx(form, offered), status=_status(exc))
        app_id = uuid.UUID(str(created["id"]))
        sent.location = f"/apps/{app_id}"
        secret: dict[str, Any] | None = created.get("credentials")
        key: dict[str, Any] | None = None
        problems: list[str] = []
        if created["auth_strategy"]["credential_type"] == "key_auth":
            try:
                key = await credentials.create(ctx, app_id, {"display_name": "first key"})
            except e.KeystileError as exc:
                problems.append(f"The first API key could not be created: {exc.detail}")
        registration = None
        version_id = form_text(data, "product_version_id")
        if version_id:
            try:
                registration = await registrations.create(ctx, app_id, {"product_version_id": version_id})
            except e.KeystileError as exc:
                problems.append(f"Access could not be requested: {exc.detail}")
    return render(
        request,
        "portal/secret.html",
        {
            "app": created,
            "secret": secret,
            "key": key,
            "registration": registration,
            "problems": problems,
            "title": f"{created['name']} is ready",
        },
        status=201,
        secret=True,
    )


def _status(exc: e.KeystileError) -> int:
    if isinstance(exc, e.ProviderError):
        return 504 if exc.timed_out else 502
    return {e.ConflictError: 409, e.PermissionDeniedError: 403}.get(type(exc), 400)


async def _app_page(
    request: Request, ctx: Ctx, app_id: uuid.UUID, form: Form | None = None, *, status: int = 200
) -> Response:
    app = await applications.get(ctx, app_id)
    creds: Page | None = None
    creds_note = None
    try:
        creds = await credentials.list_credentials(ctx, app_id, list_query(CREDENTIAL_LIST_SPEC, [], size=100))
    except e.ConflictError as exc:
        creds_note = exc.detail
    regs = await registrations.list_registrations(ctx, app_id, list_query(registrations.LIST_SPEC, [], size=200))
    portal: PortalInfo = request.state.portal
    requested = {str(r["product_version_id"]) for r in regs.data}
    available: list[tuple[str, str]] = []
    products = await portal_catalog.list_products(
        ctx, portal, list_query(portal_catalog.PRODUCT_LIST_SPEC, [("sort", "name")], size=200)
    )
    for item in products.data:
        versions = await portal_catalog.list_versions(
            ctx, portal, uuid.UUID(str(item["id"])), list_query(portal_catalog.VERSION_LIST_SPEC, [], size=100)
        )
        for version in versions.data:
            configs: list[dict[str, Any]] = version["registration_configs"]  # type: ignore[assignment]
            if (
                configs
                and configs[0]["id"] == app["auth_strategy"]["id"]
                and configs[0]["registration_enabled"]
                and str(version["id"]) not in requested
            ):
                available.append((str(version["id"]), f"{item['name']} {version['name']}"))
    form = form or Form(values={k: app.get(k) or "" for k in ("name", "description", "redirect_uri", "reference_id")})
    return render(
        request,
        "portal/app.html",
        {
            "app": app,
            "credentials": creds,
            "credentials_note": creds_note,
            "registrations": regs.data,
            "available": available,
            "form": form,
            "credential_types": CREDENTIAL_TYPES,
            "saved": request.query_params.get("saved"),
        },
        status=status,
    )


@router.get("/apps/{app_id}")
@page
async def app_detail(request: Request, app_id: str) -> Response:
    _, who = await _signed_in(request)
    async with unit(request, _dev_actor(who)) as ctx:
        return await _app_page(request, ctx, parse_id(app_id))


@router.post("/apps/{app_id}")
@page
async def app_update(request: Request, app_id: str) -> Response:
    _, who = await _signed_in(request)
    data = await read_form(request)
    aid = parse_id(app_id)
    form = Form.of(data)
    async with once(request, data, _dev_actor(who)) as sent, unit(request, _dev_actor(who)) as ctx:
        current = await applications.get(ctx, aid)
        body: dict[str, Any] = {"name": form_text(data, "name"), "description": form_text(data, "description") or None}
        ctype = current["auth_strategy"]["credential_type"]
        if ctype == "client_credentials":
            body["redirect_uri"] = form_text(data, "redirect_uri") or None
        if ctype == "self_managed_client_credentials":
            body["reference_id"] = form_text(data, "reference_id")
        try:
            updated = await applications.update(ctx, aid, body)
        except e.KeystileError as exc:
            return await _app_page(request, ctx, aid, form.fail(exc, app_field), status=_status(exc))
        if updated.get("credentials"):  # the provider rotated the secret with the update: shown once
            sent.location = f"/apps/{aid}"
    if updated.get("credentials"):
        context = {
            "app": updated,
            "secret": updated["credentials"],
            "key": None,
            "registration": None,
            "problems": [],
            "title": "Your new client secret",
        }
        return render(request, "portal/secret.html", context, secret=True)
    return redirect(f"/apps/{aid}?saved=1")


@router.post("/apps/{app_id}/refresh-token")
@page
async def app_refresh(request: Request, app_id: str) -> Response:
    _, who = await _signed_in(request)
    data = await read_form(request)
    aid = parse_id(app_id)
    async with once(request, data, _dev_actor(who)) as sent, unit(request, _dev_actor(who)) as ctx:
        app = await applications.get(ctx, aid)
        try:
            secret = await applications.refresh_token(ctx, aid)
        except e.KeystileError as exc:
            return await _app_page(request, ctx, aid, Form().fail(exc), status=_status(exc))
        sent.location = f"/apps/{aid}"
    context: dict[str, Any] = {
        "app": app,
        "secret": secret,
        "key": None,
        "registration": None,
        "problems": [],
        "title": "Your new client secret",
        "refreshed": True,
    }
    return render(request, "portal/secret.html", context, status=201, secret=True)


@router.post("/apps/{app_id}/credentials")
@page
async def credential_create(request: Request, app_id: str) -> Response:
    _, who = await _signed_in(request)
    data = await read_form(request)
    aid = parse_id(app_id)
    async with once(request, data, _dev_actor(who)) as sent, unit(request, _dev_actor(who)) as ctx:
        app = await applications.get(ctx, aid)
        body = {"display_name": form_text(data, "display_name")} if form_text(data, "display_name") else {}
        try:
            created = await credentials.create(ctx, aid, body)
        except e.KeystileError as exc:
            return await _app_page(request, ctx, aid, Form().fail(exc), status=_status(exc))
        sent.location = f"/apps/{aid}"
    is_key = created.get("type") == "api_key"
    context: dict[str, Any] = {
        "app": app,
        "secret": None
        if is_key
        else {"client_id": created.get("client_id"), "client_secret": created["client_secret"]},
        "key": created if is_key else None,
        "registration": None,
        "problems": [],
        "title": "Your new API key" if is_key else "Your additional client secret",
        "additional": not is_key,
    }
    return render(request, "portal/secret.html", context, status=201, secret=True)


@router.post("/apps/{app_id}/credentials/{credential_id}/revoke")
@page
async def credential_revoke(request: Request, app_id: str, credential_id: str) -> Response:
    _, who = await _signed_in(request)
    await read_form(request)
    aid = parse_id(app_id)
    async with unit(request, _dev_actor(who)) as ctx:
        try:
            await credentials.delete(ctx, aid, credential_id)
        except e.KeystileError as exc:
            if isinstance(exc, e.NotFoundError):
                raise
            return await _app_page(request, ctx, aid, Form().fail(exc), status=_status(exc))
    return redirect(f"/apps/{aid}?saved=revoked")


@router.post("/apps/{app_id}/registrations")
@page
async def registration_request(request: Request, app_id: str) -> Response:
    _, who = await _signed_in(request)
    data = await read_form(request)
    aid = parse_id(app_id)
    async with unit(request, _dev_actor(who)) as ctx:
        try:
            await registrations.create(ctx, aid, {"product_version_id": form_text(data, "product_version_id")})
        except e.KeystileError as exc:
            if isinstance(exc, e.NotFoundError):
                raise
            form = Form().fail(exc, lambda f: "product_version_id" if "product_version" in f else None)
            return await _app_page(request, ctx, aid, form, status=_status(exc))
    return redirect(f"/apps/{aid}?saved=requested")


@router.post("/apps/{app_id}/registrations/{registration_id}/withdraw")
@page
async def registration_withdraw(request: Request, app_id: str, registration_id: str) -> Response:
    _, who = await _signed_in(request)
    await read_form(request)
    aid = parse_id(app_id)
    async with unit(request, _dev_actor(who)) as ctx:
        await registrations.delete(ctx, aid, parse_id(registration_id))
    return redirect(f"/apps/{aid}?saved=withdrawn")


@router.post("/apps/{app_id}/delete")
@page
async def app_delete(request: Request, app_id: str) -> Response:
    _, who = await _signed_in(request)
    data = await read_form(request)
    aid = parse_id(app_id)
    async with unit(request, _dev_actor(who)) as ctx:
        if form_text(data, "confirm") != "yes":
            form = Form()
            form.errors["confirm"] = "tick the box to confirm that the app and its credentials go for good"
            return await _app_page(request, ctx, aid, form, status=400)
        try:
            await applications.delete(ctx, aid)
        except e.KeystileError as exc:
            if isinstance(exc, e.NotFoundError):
                raise
            return await _app_page(request, ctx, aid, Form().fail(exc), status=_status(exc))
    return redirect("/apps?deleted=1")
