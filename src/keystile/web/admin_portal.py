"""Admin pages over the catalog and the portals: products, versions (upstream, paths, spec upload, publication),
portals, developers, registrations, applications, pending IdP operations, data-plane tokens and nodes."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response

from keystile.domain import errors as e
from keystile.domain.listing import ListQuery, ListSpec
from keystile.services import (
    applications,
    catalog,
    dataplane,
    developers,
    outbox,
    portals,
    registrations,
    strategies,
)
from keystile.services.context import Ctx
from keystile.web.admin import require_admin
from keystile.web.common import form_bool, form_text, list_query, page_number, parse_id, read_form, unit
from keystile.web.rendering import Form, comma_list, page, redirect, render, strip_indices

__all__ = ["router"]

router = APIRouter(prefix="/admin", include_in_schema=False)

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
DEVELOPER_STATUSES = ("approved", "pending", "revoked", "rejected")


def _q(spec: ListSpec, params: list[tuple[str, str]], request: Request | None = None, size: int = 50) -> ListQuery:
    return list_query(spec, params, page_number(request) if request is not None else 1, size)


async def _portal_list(ctx: Ctx) -> list[dict[str, Any]]:
    return list((await portals.list_portals(ctx, _q(portals.LIST_SPEC, [("sort", "name")], size=200))).data)


async def _strategy_list(ctx: Ctx) -> list[dict[str, Any]]:
    result = await strategies.list_strategies(ctx, _q(strategies.LIST_SPEC, [("sort", "name")], size=1000))
    return list(result.data)


def _chosen_portal(request: Request, all_portals: list[dict[str, Any]]) -> dict[str, Any] | None:
    wanted = request.query_params.get("portal")
    found = next((p for p in all_portals if p["id"] == wanted), None)
    default = next((p for p in all_portals if p["name"] == "default"), None)
    return found or default or (all_portals[0] if all_portals else None)


# ---- products ---------------------------------------------------------------------------------------------


def _product_body(data: FormData) -> dict[str, Any]:
    return {
        "name": form_text(data, "name"),
        "description": form_text(data, "description") or None,
        "portal_ids": [p for p in data.getlist("portal_ids") if isinstance(p, str) and p],
    }


def product_field(path: str) -> str | None:
    name = strip_indices(path)
    return name if name in ("name", "description", "portal_ids") else None


@router.get("/products")
@page
async def product_list(request: Request) -> Response:
    actor = await require_admin(request)
    async with unit(request, actor) as ctx:
        result = await catalog.list_products(ctx, _q(catalog.PRODUCT_LIST_SPEC, [("sort", "name")], request))
        all_portals = await _portal_list(ctx)
    form = Form(values={"portal_ids": [p["id"] for p in all_portals if p["name"] == "default"]})
    return render(request, "admin/products.html", {"page": result, "portals": all_portals, "form": form})


@router.post("/products")
@page
async def product_create(request: Request) -> Response:
    actor = await require_admin(request)
    data = await read_form(request)
    form = Form.of(data)
    form.values["portal_ids"] = list(data.getlist("portal_ids"))
    async with unit(request, actor) as ctx:
        try:
            created = await catalog.create_product(ctx, _product_body(data))
        except e.KeystileError as exc:
            result = await catalog.list_products(ctx, _q(catalog.PRODUCT_LIST_SPEC, [("sort", "name")]))
            context = {"page": result, "portals": await _portal_list(ctx), "form": form.fail(exc, product_field)}
            return render(request, "admin/products.html", context, status=400)
    return redirect(f"/admin/products/{created['id']}")


async def _product_page(
    request: Request, ctx: Ctx, pid: uuid.UUID, form: Form | None = None, vform: Form | None = None, status: int = 200
) -> Response:
    item = await catalog.get_product(ctx, pid)
    versions = await catalog.list_versions(ctx, pid, _q(catalog.VERSION_LIST_SPEC, [("sort", "name")], size=200))
    form = form or Form(
        values={"name": item["name"], "description": item["description"] or "", "portal_ids": item["portal_ids"]}
    )
    vform = vform or Form(values={"strip_path": "true", "methods": []})
    vform.id_prefix = "version-"  # beside the product form: both have a `name` field
    context = {
        "product": item,
        "versions": versions.data,
        "portals": await _portal_list(ctx),
        "form": form,
        "vform": vform,
        "methods": HTTP_METHODS,
    }
    return render(request, "admin/product.html", context, status=status)


@router.get("/products/{product_id}")
@page
async def product_detail(request: Request, product_id: str) -> Response:
    actor = await require_admin(request)
    async with unit(request, actor) as ctx:
        return await _product_page(request, ctx, parse_id(product_id))


@router.post("/products/{product_id}")
@page
async def product_update(request: Request, product_id: str) -> Response:
    actor = await require_admin(request)
    data = await read_form(request)
    pid = parse_id(product_id)
    form = Form.of(data)
    form.values["portal_ids"] = list(data.getlist("portal_ids"))
    async with unit(request, actor) as ctx:
        try:
            await catalog.update_product(ctx, pid, _product_body(data))
        except e.KeystileError as exc:
            return await _product_page(request, ctx, pid, form=form.fail(exc, product_field), status=400)
    return redirect(f"/admin/products/{pid}?saved=1")


@router.post("/products/{product_id}/delete")
@page
async def product_delete(request: Request, product_id: str) -> Response:
    actor = await require_admin(request)
    data = await read_form(request)
    pid = parse_id(product_id)
    async with unit(request, actor) as ctx:
        try:
            await catalog.delete_product(ctx, pid, force=form_bool(data, "force"))
        except e.ConflictError as exc:
            return await _product_page(request, ctx, pid, form=Form().fail(exc), status=409)
    return redirect("/admin/products?deleted=1")


def _gateway_service(data: FormData) -> dict[str, Any] | None:
    upstream = form_text(data, "upstream_url")
    paths = comma_list(data.get("paths"))
    if not upstream and not paths:
        return None
    service: dict[str, Any] = {"upstream_url": upstream, "paths": paths}
    methods = [m for m in data.getlist("methods") if isinstance(m, str) and m]
    if methods:
        service["methods"] = methods
    service["strip_path"] = form_bool(data, "strip_path")
    service["allow_anonymous"] = form_bool(data, "allow_anonymous")
    for key in ("connect_timeout_ms", "read_timeout_ms"):
        text = form_text(data, key)
        if text:
            service[key] = int(text) if text.isdigit() else text
    return service


def version_field(path: str) -> str | None:
    name = strip_indices(path)
    if name.startswith("gateway_service."):
        return name.split(".", 2)[1]
    if name == "gateway_service":
        return "upstream_url"
    return name if name in ("name", "content", "spec_name") else None


@router.post("/products/{product_id}/versions")
@page
async def version_create(request: Request, product_id: str) -> Response:
    actor = await require_admin(request)
    data = await read_form(request)
    pid = parse_id(product_id)
    vform = Form.of(data)
    vform.values["methods"] = list(data.getlist("methods"))
    async with unit(request, actor) as ctx:
        try:
            created = await catalog.create_version(
                ctx, pid, {"name": form_text(data, "name"), "gateway_service": _gateway_service(data)}
            )
        except e.KeystileError as exc:
            return await _product_page(request, ctx, pid, vform=vform.fail(exc, version_field), status=400)
    return redirect(f"/admin/products/{pid}/versions/{created['id']}")


def _version_values(version: dict[str, Any]) -> dict[str, Any]:
    service = version.get("gateway_service") or {}
    return {
        "name": version["name"],
        "upstream_url": service.get("upstream_url", ""),
        "paths": ", ".join(service.get("paths") or []),
        "methods": list(service.get("methods") or []),
        "strip_path": "true" if service.get("strip_path", True) else "false",
        "allow_anonymous": "true" if service.get("allow_anonymous") else "false",
        "connect_timeout_ms": service.get("connect_timeout_ms", ""),
        "read_timeout_ms": service.get("read_timeout_ms", ""),
    }


async def _version_page(
    request: Request,
    ctx: Ctx,
    pid: uuid.UUID,
    vid: uuid.UUID,
    *,
    form: Form | None = None,
    spec_form: Form | None = None,
    pub_forms: dict[str, Form] | None = None,
    status: int = 200,
) -> Response:
    item = await catalog.get_product(ctx, pid)
    version = await catalog.get_version(ctx, pid, vid)
    specs = await catalog.list_specifications(ctx, pid, vid, _q(catalog.SPEC_LIST_SPEC, [], size=10))
    by_portal = {p["portal_id"]: p for p in version["portals"]}
    all_portals = await _portal_list(ctx)
    pub_forms = dict(pub_forms or {})
    for p in all_portals:
        if p["id"] not in pub_forms:
            current = by_portal.get(p["id"])
            pub_forms[p["id"]] = Form(
                values={
                    "publish_status": current["publish_status"] if current else "unpublished",
                    "application_registration_enabled": bool(current and current["application_registration_enabled"]),
                    "auto_approve_registration": bool(current and current["auto_approve_registration"]),
                    "deprecated": bool(current and current["deprecated"]),
                    "auth_strategy_id": (
                        current["auth_strategies"][0]["id"] if current and current["auth_strategies"] else ""
                    ),
                }
            )
    context = {
        "product": item,
        "version": version,
        "spec": specs.data[0] if specs.data else None,
        "form": form or Form(values=_version_values(version)),
        "spec_form": spec_form or Form(),
        "portals": all_portals,
        "published": by_portal,
        "pub_forms": pub_forms,
        "strategies": await _strategy_list(ctx),
        "methods": HTTP_METHODS,
    }
    return render(request, "admin/version.html", context, status=status)


@router.get("/products/{product_id}/versions/{version_id}")
@page
async def version_detail(request: Request, product_id: str, version_id: str) -> Response:
    actor = await require_admin(request)
    async with unit(request, actor) as ctx:
        return await _version_page(request, ctx, parse_id(product_id), parse_id(version_id))


@router.post("/products/{product_id}/versions/{version_id}")
@page
async def version_update(request: Request, product_id: str, version_id: str) -> Response:
    actor = await require_admin(request)
    data = await read_form(request)
    pid, vid = parse_id(product_id), parse_id(version_id)
    form = Form.of(data)
    form.values["methods"] = list(data.getlist("methods"))
    async with unit(request, actor) as ctx:
        try:
            await catalog.update_version(
                ctx, pid, vid, {"name": form_text(data, "name"), "gateway_service": _gateway_service(data)}
            )
        except e.KeystileError as exc:
            return await _version_page(request, ctx, pid, vid, form=form.fail(exc, version_field), status=400)
    return redirect(f"/admin/products/{pid}/versions/{vid}?saved=1")


MAX_SPEC_BYTES = 5 * 1024 * 1024


@router.post("/products/{product_id}/versions/{version_id}/spec")
@page
async def version_spec(request: Request, product_id: str, version_id: str) -> Response:
    """Upload (file input) or paste the OpenAPI document; replaces the current one."""
    actor = await require_admin(request)
    data = await read_form(request)
    pid, vid = parse_id(product_id), parse_id(version_id)
    upload = data.get("file")
    content = form_text(data, "content")
    name = form_text(data, "spec_name")
    spec_form = Form(values={"spec_name": name})
    if isinstance(upload, UploadFile) and upload.filename:
        raw = await upload.read(MAX_SPEC_BYTES + 1)
        if len(raw) > MAX_SPEC_BYTES:
            spec_form.errors["file"] = "the document is larger than 5 MiB"
        content = raw.decode("utf-8", errors="replace")
        name = name or upload.filename
    await data.close()
    if not content and not spec_form.errors:
        spec_form.errors["file"] = "choose a file or paste the document"
    async with unit(request, actor) as ctx:
        if spec_form.errors:
            return await _version_page(request, ctx, pid, vid, spec_form=spec_form, status=400)
        existing = await catalog.list_specifications(ctx, pid, vid, _q(catalog.SPEC_LIST_SPEC, [], size=1))
        body = {"name": name or "openapi.yaml", "content": content}
        try:
            if existing.data:
                spec_id = uuid.UUID(str(existing.data[0]["id"]))
                await catalog.update_specification(ctx, pid, vid, spec_id, body)
            else:
                await catalog.create_specification(ctx, pid, vid, body)
        except e.KeystileError as exc:
            spec_form.fail(exc, lambda f: "spec_name" if f == "name" else ("file" if f.startswith("content") else None))
            return await _version_page(request, ctx, pid, vid, spec_form=spec_form, status=400)
    return redirect(f"/admin/products/{pid}/versions/{vid}?saved=spec")


def publication_field(path: str) -> str | None:
    name = strip_indices(path)
    if name == "auth_strategy_ids":
        return "auth_strategy_id"
    return name if name in ("publish_status", "application_registration_enabled", "deprecated") else None


@router.post("/products/{product_id}/versions/{version_id}/publication")
@page
async def version_publication(request: Request, product_id: str, version_id: str) -> Response:
    actor = await require_admin(request)
    data = await read_form(request)
    pid, vid = parse_id(product_id), parse_id(version_id)
    portal_id = parse_id(form_text(data, "portal_id"))
    strategy_id = form_text(data, "auth_strategy_id")
    body = {
        "publish_status": "published" if form_text(data, "publish_status") == "published" else "unpublished",
        "application_registration_enabled": form_bool(data, "application_registration_enabled"),
        "auto_approve_registration": form_bool(data, "auto_approve_registration"),
        "deprecated": form_bool(data, "deprecated"),
        "auth_strategy_ids": [strategy_id] if strategy_id else [],
    }
    async with unit(request, actor) as ctx:
        try:
            await catalog.get_version(ctx, pid, vid)
            await portals.replace_product_version(ctx, portal_id, vid, body)
        except e.KeystileError as exc:
            if isinstance(exc, e.NotFoundError):
                raise
            values = {**body, "auth_strategy_id": strategy_id}
            pub = Form(values=values).fail(exc, publication_field)
            return await _version_page(request, ctx, pid, vid, pub_forms={str(portal_id): pub}, status=400)
    return redirect(f"/admin/products/{pid}/versions/{vid}?saved=publication")


@router.post("/products/{product_id}/versions/{version_id}/delete")
@page
async def version_delete(request: Request, product_id: str, version_id: str) -> Response:
    actor = await require_admin(request)
    data = await read_form(request)
    pid, vid = parse_id(product_id), parse_id(version_id)
    async with unit(request, actor) as ctx:
        try:
            await catalog.delete_version(ctx, pid, vid, force=form_bool(data, "force"))
        except e.ConflictError as exc:
            return await _version_page(request, ctx, pid, vid, form=Form().fail(exc), status=409)
    return redirect(f"/admin/products/{pid}?saved=version-deleted")


# ---- portals ----------------------------------------------------------------------------------------------

PORTAL_BOOLS = ("is_public", "auto_approve_developers", "auto_approve_applications", "revoke_on_developer_revoke")


def _portal_body(data: FormData, *, creating: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": form_text(data, "name"),
        "display_name": form_text(data, "display_name") or form_text(data, "name"),
        "description": form_text(data, "description") or None,
        "default_application_auth_strategy_id": form_text(data, "default_application_auth_strategy_id") or None,
        "custom_domain": form_text(data, "custom_domain") or None,
        "custom_client_domain": form_text(data, "custom_client_domain") or None,
    }
    for key in PORTAL_BOOLS:
        body[key] = form_bool(data, key)
    if creating:
        body = {k: v for k, v in body.items() if v is not None}
    return body


def portal_field(path: str) -> str | None:
    return path.split(".", 1)[0]


@router.get("/portals")
@page
async def portal_list(request: Request) -> Response:
    actor = await require_admin(request)
    async with unit(request, actor) as ctx:
        all_portals = await _portal_list(ctx)
        strategy_list = await _strategy_list(ctx)
    form = Form(values={"revoke_on_developer_revoke": True})
    return render(request, "admin/portals.html", {"portals": all_portals, "form": form, "strategies": strategy_list})


@router.post("/portals")
@page
async def portal_create(request: Request) -> Response:
    actor = await require_admin(request)
    data = await read_form(request)
    form = Form.of(data)
    async with unit(request, actor) as ctx:
        try:
            created = await portals.create(ctx, _portal_body(data, creating=True))
        except e.KeystileError as exc:
            context = {
                "portals": await _portal_list(ctx),
                "form": form.fail(exc, portal_field),
                "strategies": await _strategy_list(ctx),
            }
            return render(request, "admin/portals.html", context, status=400)
    return redirect(f"/admin/portals/{created['id']}")


@router.get("/portals/{portal_id}")
@page
async def portal_detail(request: Request, portal_id: str) -> Response:
    actor = await require_admin(request)
    async with unit(request, actor) as ctx:
        item = await portals.get(ctx, parse_id(portal_id))
        strategy_list = await _strategy_list(ctx)
    values = {k: ("" if v is None else v) for k, v in item.items()}
    return render(
        request, "admin/portal.html", {"portal": item, "form": Form(values=values), "strategies": strategy_list}
    )


@router.post("/portals/{portal_id}")
@page
async def portal_update(request: Request, portal_id: str) -> Response:
    actor = await require_admin(request)
    data = await read_form(request)
    pid = parse_id(portal_id)
    form = Form.of(data)
    for key in PORTAL_BOOLS:
        form.values[key] = form_bool(data, key)
    async with unit(request, actor) as ctx:
        item = await portals.get(ctx, pid)
        try:
            await portals.update(ctx, pid, _portal_body(data, creating=False))
        except e.KeystileError as exc:
            context = {"portal": item, "form": form.fail(exc, portal_field), "strategies": await _strategy_list(ctx)}
            return render(request, "admin/portal.html", context, status=400)
    return redirect(f"/admin/portals/{pid}?saved=1")


# ---- developers, registrations, applications -------------------------------------------------------------


async def _portal_scope(request: Request, ctx: Ctx) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    all_portals = await _portal_list(ctx)
    chosen = _chosen_portal(request, all_portals)
    if chosen is None:
        raise e.NotFoundError()
    return all_portals, chosen


@router.get("/developers")
@page
async def developer_list(request: Request) -> Response:
    actor = await require_admin(request)
    status = request.query_params.get("status", "")
    params: list[tuple[str, str]] = [("sort", "created_at desc")]
    if status in DEVELOPER_STATUSES:
        params.append(("filter[status]", status))
    async with unit(request, actor) as ctx:
        all_portals, chosen = await _portal_scope(request, ctx)
        result = await developers.admin_list(
            ctx, uuid.UUID(chosen["id"]), _q(developers.DEVELOPER_LIST_SPEC, params, request)
        )
    context = {
        "page": result,
        "portals": all_portals,
        "portal": chosen,
        "status": status,
        "statuses": DEVELOPER_STATUSES,
    }
    return render(request, "admin/developers.html", context)


@router.post("/developers/{developer_id}")
@page
async def developer_update(request: Request, developer_id: str) -> Response:
    actor = await require_admin(request)
    data = await read_form(request)
    portal_id = parse_id(form_text(data, "portal_id"))
    did = parse_id(developer_id)
    async with unit(request, actor) as ctx:
        if form_text(data, "action") == "delete":
            await developers.admin_delete(ctx, portal_id, did)
        else:
            await developers.admin_update(ctx, portal_id, did, {"status": form_text(data, "status")})
    return redirect(f"/admin/developers?portal={portal_id}")


@router.get("/registrations")
@page
async def registration_list(request: Request) -> Response:
    actor = await require_admin(request)
    status = request.query_params.get("status", "pending")
    params: list[tuple[str, str]] = [("sort", "created_at desc")]
    if status in ("pending", "approved", "rejected", "revoked"):
        params.append(("filter[status]", status))
    async with unit(request, actor) as ctx:
        all_portals, chosen = await _portal_scope(request, ctx)
        result = await registrations.admin_list(
            ctx, uuid.UUID(chosen["id"]), _q(registrations.ADMIN_LIST_SPEC, params, request)
        )
    context = {"page": result, "portals": all_portals, "portal": chosen, "status": status}
    return render(request, "admin/registrations.html", context)


@router.post("/registrations/{registration_id}")
@page
async def registration_update(request: Request, registration_id: str) -> Response:
    actor = await require_admin(request)
    data = await read_form(request)
    portal_id = parse_id(form_text(data, "portal_id"))
    rid = parse_id(registration_id)
    async with unit(request, actor) as ctx:
        if form_text(data, "action") == "delete":
            await registrations.admin_delete(ctx, portal_id, rid)
        else:
            await registrations.admin_update(ctx, portal_id, rid, {"status": form_text(data, "status")})
    back = form_text(data, "back") or "pending"
    return redirect(f"/admin/registrations?portal={portal_id}&status={back}")


@router.get("/applications")
@page
async def application_list(request: Request) -> Response:
    actor = await require_admin(request)
    status = request.query_params.get("status", "")
    params: list[tuple[str, str]] = [("sort", "created_at")]
    if status in ("provisioning", "active", "deleting"):
        params.append(("filter[status]", status))
    async with unit(request, actor) as ctx:
        all_portals, chosen = await _portal_scope(request, ctx)
        result = await applications.admin_list(
            ctx, uuid.UUID(chosen["id"]), _q(applications.ADMIN_LIST_SPEC, params, request)
        )
    context = {"page": result, "portals": all_portals, "portal": chosen, "status": status}
    return render(request, "admin/applications.html", context)


@router.post("/applications/{application_id}/delete")
@page
async def application_delete(request: Request, application_id: str) -> Response:
    actor = await require_admin(request)
    data = await read_form(request)
    portal_id = parse_id(form_text(data, "portal_id"))
    async with unit(request, actor) as ctx:
        await applications.admin_delete(ctx, portal_id, parse_id(application_id))
    return redirect(f"/admin/applications?portal={portal_id}")


# ---- pending IdP operations -------------------------------------------------------------------------------


@router.get("/idp-operations")
@page
async def idp_operations(request: Request) -> Response:
    actor = await require_admin(request)
    async with unit(request, actor) as ctx:
        result = await outbox.list_operations(ctx, _q(outbox.LIST_SPEC, [("sort", "created_at")], request))
    return render(request, "admin/idp_operations.html", {"page": result, "done": request.query_params.get("done")})


@router.post("/idp-operations/{operation_id}")
@page
async def idp_operation_action(request: Request, operation_id: str) -> Response:
    actor = await require_admin(request)
    data = await read_form(request)
    oid = parse_id(operation_id)
    async with unit(request, actor) as ctx:
        if form_text(data, "action") == "give_up":
            await outbox.give_up(ctx, oid)
            done = "given-up"
        else:
            await outbox.retry(ctx, oid)
            done = "retry"
    return redirect(f"/admin/idp-operations?done={done}")


# ---- data plane -------------------------------------------------------------------------------------------


async def _data_plane_page(
    request: Request, ctx: Ctx, form: Form, created: dict[str, Any] | None, status: int
) -> Response:
    tokens = await dataplane.list_tokens(ctx, _q(dataplane.TOKEN_LIST_SPEC, [("sort", "name")], size=200))
    nodes = await dataplane.list_nodes(ctx, _q(dataplane.NODE_LIST_SPEC, [], size=200))
    context = {"tokens": tokens.data, "nodes": nodes.data, "form": form, "created": created}
    return render(request, "admin/data_plane.html", context, status=status, secret=created is not None)


@router.get("/data-plane")
@page
async def data_plane(request: Request) -> Response:
    actor = await require_admin(request)
    async with unit(request, actor) as ctx:
        return await _data_plane_page(request, ctx, Form(), None, 200)


@router.post("/data-plane/tokens")
@page
async def data_plane_token_create(request: Request) -> Response:
    actor = await require_admin(request)
    data = await read_form(request)
    form = Form.of(data)
    async with unit(request, actor) as ctx:
        try:
            created = await dataplane.create_token(ctx, {"name": form_text(data, "name")})
        except e.KeystileError as exc:
            return await _data_plane_page(request, ctx, form.fail(exc), None, 400)
        return await _data_plane_page(request, ctx, Form(), created, 201)


@router.post("/data-plane/tokens/{token_id}/delete")
@page
async def data_plane_token_delete(request: Request, token_id: str) -> Response:
    actor = await require_admin(request)
    await read_form(request)
    async with unit(request, actor) as ctx:
        await dataplane.delete_token(ctx, parse_id(token_id))
    return redirect("/admin/data-plane")
