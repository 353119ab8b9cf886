"""Admin pages (`/admin/…`): sign-in, DCR providers, auth strategies, audit log (portal-api.md §8)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from keystile.domain.errors import AuthenticationError, InvalidParameter, KeystileError, ValidationError
from keystile.domain.strategies import AUTH_METHODS
from keystile.services import (
    admin_tokens,
    audit,
    catalog,
    outbox,
    portals,
    providers,
    registrations,
    strategies,
    verification,
)
from keystile.services.context import Actor
from keystile.web import security
from keystile.web.common import clean, form_bool, form_text, list_query, page_number, parse_id, read_form, unit
from keystile.web.rendering import Form, LoginRequired, comma_list, page, redirect, render, strip_indices

__all__ = ["PROVIDER_TYPES", "require_admin", "router", "strategy_field"]

router = APIRouter(prefix="/admin", include_in_schema=False)


async def require_admin(request: Request) -> Actor:
    """The admin of this page's session; else LoginRequired (redirect to the sign-in page)."""
    session = security.read_admin_session(request)
    target = "/admin/login"
    if request.method == "GET" and request.url.path not in ("/admin", "/admin/"):
        target += "?next=" + request.url.path
    if session is None:
        raise LoginRequired(target)
    try:
        actor = await admin_tokens.authenticate(request.app.state.runtime, session.token)
    except AuthenticationError as exc:
        raise LoginRequired(target) from exc
    request.state.admin_actor = actor
    return actor


def _render(request: Request, template: str, context: dict[str, Any] | None = None, **kw: Any) -> Response:
    return render(request, template, context, **kw)


# ---- sign-in ---------------------------------------------------------------------------------------------


def _safe_next(value: str) -> str:
    return value if value.startswith("/admin/") and "//" not in value and "\\" not in value else "/admin/"


@router.get("/login")
@page
async def login_form(request: Request) -> Response:
    nxt = _safe_next(request.query_params.get("next", "/admin/"))
    return _render(request, "admin/login.html", {"form": Form(values={"next": nxt})})


@router.post("/login")
@page
async def login(request: Request) -> Response:
    data = await read_form(request)
    form = Form.of(data, secret=("admin_token",))
    token = form_text(data, "admin_token")
    try:
        if not token:
            raise ValidationError.single("admin_token", "required", "enter an admin token (kpat_…)")
        await admin_tokens.authenticate(request.app.state.runtime, token)
    except ValidationError as exc:
        return _render(request, "admin/login.html", {"form": form.fail(exc)}, status=400)
    except AuthenticationError:
        form.errors["admin_token"] = (
            "this admin token is unknown or revoked; create one with `keystile admin token create --name NAME`"
        )
        return _render(request, "admin/login.html", {"form": form}, status=401)
    response = redirect(_safe_next(str(form.value("next", "/admin/"))))
    security.open_admin_session(request, response, token)
    return response


@router.post("/logout")
@page
async def logout(request: Request) -> Response:
    await read_form(request)
    response = redirect("/admin/login")
    security.close_admin_session(request, response)
    return response


@router.get("")
@router.get("/")
@page
async def home(request: Request) -> Response:
    actor = await require_admin(request)
    async with unit(request, actor) as ctx:
        provider_page = await providers.list_providers(ctx, list_query(providers.LIST_SPEC, [], size=1))
        strategy_page = await strategies.list_strategies(ctx, list_query(strategies.LIST_SPEC, [], size=1))
        recent = await audit.list_events(ctx, list_query(audit.LIST_SPEC, [("sort", "created_at desc")], size=8))
        products = await catalog.list_products(ctx, list_query(catalog.PRODUCT_LIST_SPEC, [], size=1))
        pending_ops = await outbox.list_operations(ctx, list_query(outbox.LIST_SPEC, [], size=1))
        portal_page = await portals.list_portals(ctx, list_query(portals.LIST_SPEC, [("sort", "name")], size=200))
        waiting = 0
        for portal in portal_page.data:
            regs = await registrations.admin_list(
                ctx,
                uuid.UUID(str(portal["id"])),
                list_query(registrations.ADMIN_LIST_SPEC, [("filter[status]", "pending")], size=1),
            )
            waiting += regs.total
    cards = [
        ("/admin/products", "API products", f"{products.total} in the catalog"),
        ("/admin/registrations", "Access requests", f"{waiting} waiting for approval"),
        ("/admin/idp-operations", "IdP operations", f"{pending_ops.total} pending"),
    ]
    return _render(
        request,
        "admin/home.html",
        {
            "provider_count": provider_page.total,
            "strategy_count": strategy_page.total,
            "recent": recent.data,
            "extra_cards": cards,
        },
    )


# ---- DCR providers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    key: str
    label: str
    kind: str = "text"  # text | url | secret | bool | int
    required: bool = False
    hint: str = ""


PROVIDER_TYPES: dict[str, tuple[str, list[Field]]] = {
    "okta": ("Okta", [Field("dcr_token", "Okta API token", "secret", True, "An Okta API token (SSWS) of an admin.")]),
    "auth0": (
        "Auth0",
        [
            Field("initial_client_id", "Management client ID", required=True),
            Field("initial_client_secret", "Management client secret", "secret", True),
            Field("initial_client_audience", "Management API audience", hint="Blank: the issuer."),
            Field("use_developer_managed_scopes", "Developers choose their scopes", "bool"),
        ],
    ),
    "curity": (
        "Curity",
        [
            Field("initial_client_id", "Initial client ID", required=True),
            Field("initial_client_secret", "Initial client secret", "secret", True),
            Field("iat_scope", "Initial access token scope", hint="Default: dcr."),
            Field("management_scope", "Management scope"),
        ],
    ),
    "azureAd": (
        "Microsoft Entra ID",
        [
            Field("initial_client_id", "Application (client) ID", required=True),
            Field("initial_client_secret", "Client secret", "secret", True),
            Field("graph_base_url", "Microsoft Graph base URL", "url"),
            Field("login_base_url", "Login base URL", "url"),
            Field("secret_lifetime_days", "Secret lifetime (days)", "int"),
            Field("max_secrets", "Maximum live secrets", "int"),
            Field("purge_on_delete", "Purge deleted applications", "bool"),
        ],
    ),
    "http": (
        "HTTP DCR bridge",
        [
            Field("dcr_base_url", "Bridge base URL", "url", True),
            Field("api_key", "Bridge API key", "secret", True, "12–256 letters, digits or underscores."),
            Field("disable_event_hooks", "Disable event hooks", "bool"),
            Field("disable_refresh_secret", "Disable secret refresh", "bool"),
            Field("allow_multiple_credentials", "Allow multiple credentials", "bool"),
        ],
    ),
    "rfc7591": (
        "RFC 7591 server (e.g. oidc-provider, Keycloak)",
        [
            Field("registration_endpoint", "Registration endpoint", "url", hint="Blank: taken from discovery."),
            Field(
                "initial_access_token",
                "Initial access token",
                "secret",
                hint="Leave blank for open registration or when using an initial client.",
            ),
            Field(
                "initial_client_id", "Initial client ID", hint="Mints a fresh initial access token per registration."
            ),
            Field("initial_client_secret", "Initial client secret", "secret"),
            Field("initial_client_scope", "Initial client scope"),
            Field("rotates_secret_on_put", "The server issues a new secret on an RFC 7592 PUT", "bool"),
        ],
    ),
}


def _provider_config(data: FormData, fields: list[Field], *, editing: bool, current: dict[str, Any]) -> dict[str, Any]:
    cfg: dict[str, Any] = {}
    for f in fields:
        name = f"dcr_config.{f.key}"
        if f.kind == "bool":
            value: Any = form_bool(data, name)
            if editing or value:
                cfg[f.key] = value
            continue
        text = form_text(data, name)
        if f.kind == "secret":
            if text:
                cfg[f.key] = text
            continue
        if not text:
            if editing and current.get(f.key) not in (None, "") and not f.required:
                cfg[f.key] = None
            continue
        if f.kind == "int":
            cfg[f.key] = int(text) if text.lstrip("-").isdigit() else text
        else:
            cfg[f.key] = text
    return cfg


def _provider_values(provider: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {k: provider.get(k) or "" for k in ("name", "display_name", "issuer")}
    for key, value in provider.get("dcr_config", {}).items():
        values[f"dcr_config.{key}"] = "" if value is None else value
    return values


@router.get("/providers")
@page
async def provider_list(request: Request) -> Response:
    actor = await require_admin(request)
    async with unit(request, actor) as ctx:
        result = await providers.list_providers(
            ctx, list_query(providers.LIST_SPEC, [("sort", "name")], page_number(request))
        )
    return _render(request, "admin/providers.html", {"page": result, "types": PROVIDER_TYPES})


@router.get("/providers/new")
@page
async def provider_new(request: Request) -> Response:
    await require_admin(request)
    ptype = request.query_params.get("type", "")
    if ptype not in PROVIDER_TYPES:
        return _render(request, "admin/provider_type.html", {"types": PROVIDER_TYPES})
    return _render(request, "admin/provider_form.html", _provider_ctx(ptype, Form(), None))


def _provider_ctx(ptype: str, form: Form, provider: dict[str, Any] | None) -> dict[str, Any]:
    label, fields = PROVIDER_TYPES[ptype]
    return {"ptype": ptype, "type_label": label, "fields": fields, "form": form, "provider": provider}


@router.post("/providers/new")
@page
async def provider_create(request: Request) -> Response:
    actor = await require_admin(request)
    data = await read_form(request)
    ptype = form_text(data, "provider_type")
    if ptype not in PROVIDER_TYPES:
        return redirect("/admin/providers/new")
    _, fields = PROVIDER_TYPES[ptype]
    form = Form.of(data, secret=[f"dcr_config.{f.key}" for f in fields if f.kind == "secret"])
    body = clean(
        {
            "name": form_text(data, "name"),
            "display_name": form_text(data, "display_name"),
            "issuer": form_text(data, "issuer"),
        }
    )
    body["provider_type"] = ptype
    body["dcr_config"] = _provider_config(data, fields, editing=False, current={})
    try:
        async with unit(request, actor) as ctx:
            created = await providers.create(ctx, body)
    except KeystileError as exc:
        return _render(request, "admin/provider_form.html", _provider_ctx(ptype, form.fail(exc), None), status=400)
    return redirect(f"/admin/providers/{created['id']}")


@router.get("/providers/{provider_id}")
@page
async def provider_detail(request: Request, provider_id: str) -> Response:
    actor = await require_admin(request)
    async with unit(request, actor) as ctx:
        provider = await providers.get(ctx, parse_id(provider_id))
    form = Form(values=_provider_values(provider))
    return _render(request, "admin/provider_form.html", _provider_ctx(provider["provider_type"], form, provider))


@router.post("/providers/{provider_id}")
@page
async def provider_update(request: Request, provider_id: str) -> Response:
    actor = await require_admin(request)
    data = await read_form(request)
    pid = parse_id(provider_id)
    async with unit(request, actor) as ctx:
        provider = await providers.get(ctx, pid)
        _, fields = PROVIDER_TYPES[provider["provider_type"]]
        form = Form.of(data, secret=[f"dcr_config.{f.key}" for f in fields if f.kind == "secret"])
        body: dict[str, Any] = {
            "name": form_text(data, "name"),
            "issuer": form_text(data, "issuer"),
            "dcr_config": _provider_config(data, fields, editing=True, current=provider["dcr_config"]),
        }
        if form_text(data, "display_name"):
            body["display_name"] = form_text(data, "display_name")
        try:
            await providers.update(ctx, pid, body)
        except KeystileError as exc:
            context = _provider_ctx(provider["provider_type"], form.fail(exc), provider)
            return _render(request, "admin/provider_form.html", context, status=400)
    return redirect(f"/admin/providers/{pid}?saved=1")


@router.post("/providers/{provider_id}/verify")
@page
async def provider_verify(request: Request, provider_id: str) -> Response:
    actor = await require_admin(request)
    data = await read_form(request)
    pid = parse_id(provider_id)
    async with unit(request, actor) as ctx:
        provider = await providers.get(ctx, pid)
        result = await verification.verify_provider(ctx, pid, trial=form_bool(data, "trial_registration"))
    context = _provider_ctx(provider["provider_type"], Form(values=_provider_values(provider)), provider)
    context["result"] = result
    return _render(request, "admin/provider_form.html", context)


@router.post("/providers/{provider_id}/delete")
@page
async def provider_delete(request: Request, provider_id: str) -> Response:
    actor = await require_admin(request)
    await read_form(request)
    pid = parse_id(provider_id)
    async with unit(request, actor) as ctx:
        provider = await providers.get(ctx, pid)
        try:
            await providers.delete(ctx, pid)
        except KeystileError as exc:
            form = Form(values=_provider_values(provider)).fail(exc)
            context = _provider_ctx(provider["provider_type"], form, provider)
            return _render(request, "admin/provider_form.html", context, status=409)
    return redirect("/admin/providers?deleted=1")


# ---- auth strategies ----------------------------------------------------------------------------------

OIDC_FORM_KEYS = ("issuer", "credential_claim", "scopes", "auth_methods")
METHOD_LABELS = {
    "client_credentials": "Client credentials (Basic client_id:secret)",
    "bearer": "Bearer JWT",
    "session": "Session cookie",
    "introspection": "Token introspection",
}


def strategy_field(path: str) -> str | None:
    """The form field a service error names (`configs.openid-connect.scopes[0]` → `scopes`)."""
    path = strip_indices(path)
    for prefix in ("configs.openid-connect.", "configs.key-auth."):
        if path.startswith(prefix):
            key = path[len(prefix) :].split(".", 1)[0]
            if prefix.endswith("key-auth."):
                return "ttl_value" if key == "ttl" else key
            return key if key in OIDC_FORM_KEYS else "advanced"
    if path in ("name", "display_name", "strategy_type", "dcr_provider_id", "advanced"):
        return path
    return None


def _strategy_body(
    data: FormData, stype: str, provider_issuers: dict[str, str], current: dict[str, Any] | None
) -> tuple[dict[str, Any], list[InvalidParameter]]:
    problems: list[InvalidParameter] = []
    body: dict[str, Any] = {"name": form_text(data, "name"), "display_name": form_text(data, "display_name")}
    if current is None:
        body["strategy_type"] = stype
    if stype == "openid_connect":
        provider_id = form_text(data, "dcr_provider_id")
        body["dcr_provider_id"] = provider_id or None
        issuer = form_text(data, "issuer") or provider_issuers.get(provider_id, "")
        cfg: dict[str, Any] = {
            "issuer": issuer,
            "credential_claim": comma_list(data.get("credential_claim")),
            "scopes": comma_list(data.get("scopes")),
            "auth_methods": [m for m in data.getlist("auth_methods") if isinstance(m, str)],
        }
        if not issuer and current is None:
            cfg.pop("issuer")
        advanced_raw = form_text(data, "advanced")
        advanced: Any = {}
        if advanced_raw:
            try:
                advanced = json.loads(advanced_raw)
            except ValueError as exc:
                problems.append(InvalidParameter("advanced", "invalid", f"not valid JSON: {exc}"))
                advanced = {}
            if not isinstance(advanced, dict):
                problems.append(InvalidParameter("advanced", "is_object", 'give a JSON object, e.g. {"audience": "x"}'))
                advanced = {}
        clash = sorted(set(advanced) & set(OIDC_FORM_KEYS))
        if clash:
            problems.append(
                InvalidParameter("advanced", "invalid", f"set {', '.join(clash)} with the fields above, not here")
            )
        cfg.update({k: v for k, v in advanced.items() if k not in OIDC_FORM_KEYS})
        if current is not None:
            for key in current:
                if key not in OIDC_FORM_KEYS and key not in advanced:
                    cfg[key] = None  # removed from the advanced JSON: PATCH null deletes it
        body["configs"] = {"openid-connect": cfg}
    else:
        ka: dict[str, Any] = {"key_names": comma_list(data.get("key_names")) or ["apikey"]}
        ttl_value = form_text(data, "ttl_value")
        if ttl_value:
            ka["ttl"] = {
                "value": int(ttl_value) if ttl_value.isdigit() else ttl_value,
                "unit": form_text(data, "ttl_unit") or "days",
            }
        elif current is not None and current.get("ttl"):
            ka["ttl"] = None
        body["configs"] = {"key-auth": ka}
    return body, problems


def _strategy_values(strategy: dict[str, Any]) -> dict[str, Any]:
    stype = strategy["strategy_type"]
    values: dict[str, Any] = {
        "name": strategy["name"],
        "display_name": strategy["display_name"],
        "strategy_type": stype,
        "dcr_provider_id": (strategy.get("dcr_provider") or {}).get("id", ""),
    }
    if stype == "openid_connect":
        cfg = strategy["configs"]["openid-connect"]
        values["issuer"] = cfg.get("issuer", "")
        values["credential_claim"] = ", ".join(cfg.get("credential_claim", []))
        values["scopes"] = ", ".join(cfg.get("scopes", []))
        values["auth_methods"] = list(cfg.get("auth_methods", []))
        extra = {k: v for k, v in cfg.items() if k not in OIDC_FORM_KEYS}
        values["advanced"] = json.dumps(extra, indent=2) if extra else ""
    else:
        cfg = strategy["configs"]["key-auth"]
        values["key_names"] = ", ".join(cfg.get("key_names", []))
        ttl = cfg.get("ttl") or {}
        values["ttl_value"] = ttl.get("value", "")
        values["ttl_unit"] = ttl.get("unit", "days")
    return values


async def _provider_choices(request: Request, actor: Actor) -> list[dict[str, Any]]:
    async with unit(request, actor) as ctx:
        result = await providers.list_providers(ctx, list_query(providers.LIST_SPEC, [("sort", "name")], size=1000))
    return list(result.data)


def _strategy_ctx(form: Form, providers_: list[dict[str, Any]], strategy: dict[str, Any] | None) -> dict[str, Any]:
    values = form.values
    methods = values.get("auth_methods", [])
    if isinstance(methods, str):
        methods = [methods]
    return {
        "form": form,
        "strategy": strategy,
        "providers": providers_,
        "methods": [(m, METHOD_LABELS[m]) for m in AUTH_METHODS],
        "selected_methods": methods,
        "stype": values.get("strategy_type") or (strategy or {}).get("strategy_type") or "openid_connect",
    }


@router.get("/strategies")
@page
async def strategy_list(request: Request) -> Response:
    actor = await require_admin(request)
    async with unit(request, actor) as ctx:
        result = await strategies.list_strategies(
            ctx, list_query(strategies.LIST_SPEC, [("sort", "name")], page_number(request))
        )
    return _render(request, "admin/strategies.html", {"page": result})


@router.get("/strategies/new")
@page
async def strategy_new(request: Request) -> Response:
    actor = await require_admin(request)
    form = Form(
        values={
            "strategy_type": "openid_connect",
            "credential_claim": "client_id",
            "auth_methods": ["client_credentials", "bearer"],
            "key_names": "apikey",
        }
    )
    return _render(
        request, "admin/strategy_form.html", _strategy_ctx(form, await _provider_choices(request, actor), None)
    )


@router.post("/strategies/new")
@page
async def strategy_create(request: Request) -> Response:
    actor = await require_admin(request)
    data = await read_form(request)
    form = Form.of(data)
    form.values["auth_methods"] = [m for m in data.getlist("auth_methods") if isinstance(m, str)]
    choices = await _provider_choices(request, actor)
    stype = form_text(data, "strategy_type")
    if stype not in ("openid_connect", "key_auth"):
        stype = "openid_connect"
    body, problems = _strategy_body(data, stype, {p["id"]: p["issuer"] for p in choices}, None)
    try:
        async with unit(request, actor) as ctx:
            if problems:  # the form's own problems first: the service would commit a valid remainder
                raise ValidationError(problems)
            created = await strategies.create(ctx, body)
    except KeystileError as exc:
        form.fail(exc, strategy_field)
        return _render(request, "admin/strategy_form.html", _strategy_ctx(form, choices, None), status=400)
    return redirect(f"/admin/strategies/{created['id']}")


@router.get("/strategies/{strategy_id}")
@page
async def strategy_detail(request: Request, strategy_id: str) -> Response:
    actor = await require_admin(request)
    async with unit(request, actor) as ctx:
        strategy = await strategies.get(ctx, parse_id(strategy_id))
    choices = await _provider_choices(request, actor)
    form = Form(values=_strategy_values(strategy))
    return _render(request, "admin/strategy_form.html", _strategy_ctx(form, choices, strategy))


@router.post("/strategies/{strategy_id}")
@page
async def strategy_update(request: Request, strategy_id: str) -> Response:
    actor = await require_admin(request)
    data = await read_form(request)
    sid = parse_id(strategy_id)
    choices = await _provider_choices(request, actor)
    async with unit(request, actor) as ctx:
        strategy = await strategies.get(ctx, sid)
        stype = strategy["strategy_type"]
        current = strategy["configs"]["openid-connect" if stype == "openid_connect" else "key-auth"]
        body, problems = _strategy_body(data, stype, {p["id"]: p["issuer"] for p in choices}, current)
        form = Form.of(data)
        form.values["strategy_type"] = stype
        form.values["auth_methods"] = [m for m in data.getlist("auth_methods") if isinstance(m, str)]
        try:
            if problems:
                raise ValidationError(problems)
            await strategies.update(ctx, sid, body)
        except KeystileError as exc:
            form.fail(exc, strategy_field)
            return _render(request, "admin/strategy_form.html", _strategy_ctx(form, choices, strategy), status=400)
    return redirect(f"/admin/strategies/{sid}?saved=1")


@router.post("/strategies/{strategy_id}/verify")
@page
async def strategy_verify(request: Request, strategy_id: str) -> Response:
    actor = await require_admin(request)
    data = await read_form(request)
    sid = parse_id(strategy_id)
    choices = await _provider_choices(request, actor)
    async with unit(request, actor) as ctx:
        strategy = await strategies.get(ctx, sid)
        result = await verification.verify_strategy(ctx, sid, trial=form_bool(data, "trial_registration"))
    context = _strategy_ctx(Form(values=_strategy_values(strategy)), choices, strategy)
    context["result"] = result
    return _render(request, "admin/strategy_form.html", context)


@router.post("/strategies/{strategy_id}/delete")
@page
async def strategy_delete(request: Request, strategy_id: str) -> Response:
    actor = await require_admin(request)
    await read_form(request)
    sid = parse_id(strategy_id)
    choices = await _provider_choices(request, actor)
    async with unit(request, actor) as ctx:
        strategy = await strategies.get(ctx, sid)
        try:
            await strategies.delete(ctx, sid)
        except KeystileError as exc:
            form = Form(values=_strategy_values(strategy)).fail(exc)
            return _render(request, "admin/strategy_form.html", _strategy_ctx(form, choices, strategy), status=409)
    return redirect("/admin/strategies?deleted=1")


# ---- audit log ----------------------------------------------------------------------------------------

AUDIT_FILTERS = ("action", "resource_type", "resource_id", "actor_type", "outcome")


@router.get("/audit")
@page
async def audit_log(request: Request) -> Response:
    actor = await require_admin(request)
    q = request.query_params
    params: list[tuple[str, str]] = [("sort", "created_at desc")]
    values: dict[str, Any] = {}
    for name in AUDIT_FILTERS:
        value = q.get(name, "").strip()
        if value:
            values[name] = value
            op = "contains" if name == "action" else "eq"
            params.append((f"filter[{name}][{op}]", value))
    form = Form(values=values)
    for name in ("since", "until"):
        value = q.get(name, "").strip()
        if not value:
            continue
        values[name] = value
        try:
            day = date.fromisoformat(value)
        except ValueError:
            form.errors[name] = "Give a date as YYYY-MM-DD, e.g. 2026-11-28"
            continue
        if name == "since":
            params.append(("filter[created_at][gte]", f"{day.isoformat()}T00:00:00Z"))
        elif day < date.max:  # "until" a day includes all of it: events before the next day's midnight (UTC)
            params.append(("filter[created_at][lt]", f"{(day + timedelta(days=1)).isoformat()}T00:00:00Z"))
    if form.errors:
        base = "/admin/audit?" + urlencode(values)
        return _render(request, "admin/audit.html", {"form": form, "page": None, "base": base}, status=400)
    result = None
    try:
        async with unit(request, actor) as ctx:
            result = await audit.list_events(ctx, list_query(audit.LIST_SPEC, params, page_number(request)))
    except ValidationError as exc:
        form.fail(exc, lambda f: "since" if "created_at" in f else next((n for n in AUDIT_FILTERS if n in f), None))
    base = "/admin/audit?" + urlencode(values)
    return _render(request, "admin/audit.html", {"form": form, "page": result, "base": base})
