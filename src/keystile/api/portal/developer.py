"""Developer accounts over `/api/v2/developer…` and `GET /api/v2/portal` (portal-api.md §1, §2.1)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from keystile.api.auth import runtime
from keystile.api.body import read_json
from keystile.api.portal.auth import (
    ACCESS_COOKIE,
    REFRESH_COOKIE,
    access_token,
    anonymous_ctx,
    check_csrf,
    portal_for_request,
    signed_in_developer,
)
from keystile.api.portal.schemas import DeveloperMeOut, PortalContextOut, VerifyEmailOut, json_body
from keystile.services import developers
from keystile.services.context import Ctx
from keystile.services.developers import PortalInfo, SessionTokens, SignedIn

__all__ = ["REFRESH_PATH", "router"]

router = APIRouter(prefix="/api/v2", tags=["Developer"])

REFRESH_PATH = "/api/v2/developer/refresh"
# Both cookies are `Path=/` so that the portal pages, which share this session, can renew an expired access token
# (portal-api.md §1, §8). A refresh cookie an earlier version left on REFRESH_PATH is deleted with every change.
COOKIE_PATH = "/"


def _samesite(portal: PortalInfo) -> str:
    # a separately hosted portal client (custom_client_domain) sends the cookies cross-site
    return "none" if portal.custom_client_domain else "lax"


def set_session_cookies(request: Request, response: Response, portal: PortalInfo, tokens: SessionTokens) -> None:
    """`portalaccesstoken` (1 h) and `portalrefreshtoken` (14 days), both Path=/; HttpOnly, SameSite=Lax (None with a
    custom_client_domain), Secure unless in development posture."""
    secure = not runtime(request).settings.dev_mode or portal.custom_client_domain is not None
    response.delete_cookie(REFRESH_COOKIE, path=REFRESH_PATH, secure=secure, httponly=True, samesite=_samesite(portal))  # type: ignore[arg-type]
    for name, value, max_age in (
        (ACCESS_COOKIE, tokens.access_token, int(developers.ACCESS_TTL.total_seconds())),
        (REFRESH_COOKIE, tokens.refresh_token, int(developers.REFRESH_TTL.total_seconds())),
    ):
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=COOKIE_PATH,
            secure=secure,
            httponly=True,
            samesite=_samesite(portal),  # type: ignore[arg-type]
        )


def clear_session_cookies(request: Request, response: Response, portal: PortalInfo) -> None:
    secure = not runtime(request).settings.dev_mode or portal.custom_client_domain is not None
    for name, path in ((ACCESS_COOKIE, COOKIE_PATH), (REFRESH_COOKIE, COOKIE_PATH), (REFRESH_COOKIE, REFRESH_PATH)):
        response.delete_cookie(name, path=path, secure=secure, httponly=True, samesite=_samesite(portal))  # type: ignore[arg-type]


@router.post(
    "/developer",
    name="developer.register",
    status_code=201,
    response_model=None,
    response_class=Response,  # 201 with no body (portal-api.md §2): the document must not promise JSON
    response_description="Signed up, or a mail sent to an existing account; the answer has no body (portal-api.md §2)",
    openapi_extra=json_body(developers.SignUp),
)
async def register(request: Request, ctx: Ctx = Depends(anonymous_ctx)) -> Response:
    portal = await portal_for_request(request)
    await developers.sign_up(ctx, portal, await read_json(request))
    return Response(status_code=201)


@router.post(
    "/developer/verify-email",
    name="developer.verify_email",
    status_code=202,
    response_model=None,
    responses={202: {"model": VerifyEmailOut}},
    openapi_extra=json_body(developers.VerifyEmail),
)
async def verify_email(request: Request, ctx: Ctx = Depends(anonymous_ctx)) -> Response:
    portal = await portal_for_request(request)
    return JSONResponse(await developers.verify_email(ctx, portal, await read_json(request)), status_code=202)


@router.post(
    "/developer/reset-password",
    name="developer.reset_password",
    status_code=204,
    response_model=None,
    openapi_extra=json_body(developers.ResetPassword),
)
async def reset_password(request: Request, ctx: Ctx = Depends(anonymous_ctx)) -> Response:
    portal = await portal_for_request(request)
    await developers.reset_password(ctx, portal, await read_json(request))
    return Response(status_code=204)


@router.post(
    "/developer/authenticate",
    name="developer.authenticate",
    status_code=204,
    response_model=None,
    openapi_extra=json_body(developers.Authenticate),
)
async def authenticate(request: Request, ctx: Ctx = Depends(anonymous_ctx)) -> Response:
    portal = await portal_for_request(request)
    tokens = await developers.authenticate(ctx, portal, await read_json(request))
    response = Response(status_code=204)
    set_session_cookies(request, response, portal, tokens)
    return response


@router.post("/developer/refresh", name="developer.refresh", status_code=204, response_model=None)
async def refresh(request: Request, ctx: Ctx = Depends(anonymous_ctx)) -> Response:
    portal = await portal_for_request(request)
    developers.require_accounts(portal)
    token = request.cookies.get(REFRESH_COOKIE)
    if token:
        check_csrf(request, portal)
    tokens = await developers.refresh(ctx, portal, token)
    response = Response(status_code=204)
    set_session_cookies(request, response, portal, tokens)
    return response


@router.post("/developer/logout", name="developer.logout", status_code=204, response_model=None)
async def logout(request: Request, ctx: Ctx = Depends(anonymous_ctx)) -> Response:
    portal = await portal_for_request(request)
    developers.require_accounts(portal)
    token, how = access_token(request)
    refresh_token = request.cookies.get(REFRESH_COOKIE)
    if how == "cookie" or (how is None and refresh_token):
        check_csrf(request, portal)
    await developers.logout(ctx, portal, token, refresh_token)
    response = Response(status_code=204)
    clear_session_cookies(request, response, portal)
    return response


@router.get("/developer/me", name="developer.me", response_model=None, responses={200: {"model": DeveloperMeOut}})
async def me(request: Request, who: SignedIn = Depends(signed_in_developer)) -> Response:
    async with runtime(request).unit(developers.developer_actor(who)) as ctx:
        return JSONResponse(await developers.me(ctx, who))


@router.post(
    "/developer/forgot-password",
    name="developer.forgot_password",
    status_code=200,
    response_model=None,
    response_class=Response,  # 200 with no body (portal-api.md §2): the document must not promise JSON
    response_description="Always, known address or not; the answer has no body (portal-api.md §2)",
    openapi_extra=json_body(developers.ForgotPassword),
)
async def forgot_password(request: Request, ctx: Ctx = Depends(anonymous_ctx)) -> Response:
    portal = await portal_for_request(request)
    await developers.forgot_password(ctx, portal, await read_json(request))
    return Response(status_code=200)


@router.get("/portal", name="portal.info", response_model=None, responses={200: {"model": PortalContextOut}})
async def portal_info(request: Request, ctx: Ctx = Depends(anonymous_ctx)) -> Response:
    return JSONResponse(await developers.portal_view(ctx, await portal_for_request(request)))
