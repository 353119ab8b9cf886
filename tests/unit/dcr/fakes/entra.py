"""An in-process Entra ID tenant (Microsoft Graph + the v2 token endpoint) for the `azureAd` contract tests
(contracts/dcr-providers.md §2.4, §4.2).

Built from the Graph v1.0 reference pages (`application-post-applications`, `serviceprincipal-post-
serviceprincipals`, `application-addpassword`, `application-removepassword`, `application-delete`,
`directory-deleteditems-delete`, `application-list`, `concepts/errors`) and the identity platform's client
credentials page. State: applications (object id ≠ appId), service principals, password credentials, deleted
items, Graph tokens.

Quirks reproduced: `/applications/{appId}` is 404 (`Request_ResourceNotFound`: only the object id, or the
`applications(appId='…')` alternate key, finds an application); a service principal created right after its
application can fail with "does not reference a valid application object" (`sp_lag_failures`); a new password is
refused at the token endpoint (`invalid_client`, AADSTS7000215) for the next `propagation_refusals` requests
(`None` = never accepted); `passwordCredentials` on create is refused; deleted applications go to
`/directory/deletedItems` until purged; list needs `ConsistencyLevel: eventual` with `$count`.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from ._common import (
    FakeIdP,
    bearer,
    expect,
    expect_no_body,
    expect_query,
    fake_jwt,
    form_body,
    json_body,
    json_response,
    random_id,
)

TENANT_ID = "8f2c4e6a-1b3d-4f5a-9c7e-0d2b4f6a8c1e"
LOGIN = "https://login.microsoftonline.com"
GRAPH = "https://graph.microsoft.com"
GRAPH_V1 = f"{GRAPH}/v1.0"
ISSUER = f"{LOGIN}/{TENANT_ID}/v2.0"
ADMIN_CLIENT_ID = "5a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
ADMIN_CLIENT_SECRET = "adm~Q8Z.entra-admin-secret-value-0123456789"
GRAPH_DEFAULT = "https://graph.microsoft.com/.default"
API_SCOPE = "api://orders-api/.default"

_APP = re.compile(r"^/v1\.0/applications/([^/]+)$")
_APP_BY_APPID = re.compile(r"^/v1\.0/applications\(appId='([^']+)'\)(/addPassword|/removePassword)?$")
_APP_ACTION = re.compile(r"^/v1\.0/applications/([^/]+)/(addPassword|removePassword)$")
_SP = re.compile(r"^/v1\.0/servicePrincipals/([^/]+)$")
_SP_BY_APPID = re.compile(r"^/v1\.0/servicePrincipals\(appId='([^']+)'\)$")
_DELETED = re.compile(r"^/v1\.0/directory/deletedItems/([^/]+)$")
_TAGS_FILTER = re.compile(r"^tags/any\(t:t eq 'keystile:provider:([^']+)'\)$")


def graph_error(code: str, message: str) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {"request-id": str(uuid.uuid4()), "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")},
        }
    }


def token_error(error: str, description: str, code: int) -> dict[str, Any]:
    return {
        "error": error,
        "error_description": f"AADSTS{code}: {description} Trace ID: {uuid.uuid4()} Correlation ID: x Timestamp: y",
        "error_codes": [code],
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
        "trace_id": str(uuid.uuid4()),
        "correlation_id": str(uuid.uuid4()),
    }


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeEntra(FakeIdP):
    def __init__(self) -> None:
        super().__init__()
        self.roles = ["Application.ReadWrite.OwnedBy"]
        self.graph_tokens: set[str] = set()
        self.applications: dict[str, dict[str, Any]] = {}  # object id -> application
        self.passwords: dict[str, list[dict[str, Any]]] = {}  # object id -> password credentials (with secretText)
        self.service_principals: dict[str, dict[str, Any]] = {}  # sp id -> service principal
        self.deleted: dict[str, dict[str, Any]] = {}  # object id -> soft-deleted application
        self.sp_lag_failures = 0
        self.propagation_refusals: int | None = 0
        self.page_size = 100
        self._refusals: dict[str, int | None] = {}  # secretText -> refusals left (None = forever)
        self._sp_lag_left = 0
        self.add_password_error: tuple[int, dict[str, Any]] | None = None  # answer addPassword with this
        self.app_token_outage = False  # the token endpoint answers 503 to application (not admin) requests
        self.created_date_time: str | None = None  # overrides createdDateTime of new applications
        self.correlation_ids: list[str] = []  # of every token endpoint error, in order

    # -- helpers for tests ---------------------------------------------------------------------------------------
    def _token_error(self, error: str, description: str, code: int) -> dict[str, Any]:
        body = token_error(error, description, code)
        self.correlation_ids.append(body["correlation_id"])
        return body

    def by_app_id(self, app_id: str) -> dict[str, Any] | None:
        return next((a for a in self.applications.values() if a["appId"] == app_id), None)

    def sp_of(self, app_id: str) -> dict[str, Any] | None:
        return next((s for s in self.service_principals.values() if s["appId"] == app_id), None)

    def live_secrets(self, object_id: str) -> list[str]:
        return [p["secretText"] for p in self.passwords.get(object_id, [])]

    # -- routing ------------------------------------------------------------------------------------------------
    def route(self, request: httpx.Request) -> httpx.Response:
        origin = f"https://{request.url.host}"
        if origin == LOGIN:
            return self._login(request)
        expect(origin == GRAPH and request.url.path.startswith("/v1.0/"), f"not Graph v1.0: {request.url}")
        token = bearer(request)
        expect(token is not None, "the Graph call does not use Bearer")
        if token not in self.graph_tokens:
            return json_response(
                401, graph_error("InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
            )
        return self._graph(request)

    # -- login.microsoftonline.com ------------------------------------------------------------------------------
    def _login(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == f"/{TENANT_ID}/v2.0/.well-known/openid-configuration" and request.method == "GET":
            expect_query(request, {})
            expect("authorization" not in request.headers, "credentials sent to the public discovery endpoint")
            return json_response(
                200,
                {
                    "issuer": ISSUER,
                    "token_endpoint": f"{LOGIN}/{TENANT_ID}/oauth2/v2.0/token",
                    "authorization_endpoint": f"{LOGIN}/{TENANT_ID}/oauth2/v2.0/authorize",
                    "jwks_uri": f"{LOGIN}/{TENANT_ID}/discovery/v2.0/keys",
                    "token_endpoint_auth_methods_supported": [
                        "client_secret_post",
                        "private_key_jwt",
                        "client_secret_basic",
                    ],
                },
            )
        expect(path == f"/{TENANT_ID}/oauth2/v2.0/token" and request.method == "POST", f"unexpected {request.url}")
        expect_query(request, {})
        expect("authorization" not in request.headers, "credentials go in the form (client_secret_post)")
        form = form_body(request)
        expect(set(form) == {"client_id", "client_secret", "scope", "grant_type"}, f"token form {sorted(form)}")
        expect(form["grant_type"] == "client_credentials", "grant_type")
        client_id, secret, scope = form["client_id"], form["client_secret"], form["scope"]
        if client_id == ADMIN_CLIENT_ID:
            if secret != ADMIN_CLIENT_SECRET:
                return json_response(
                    401, self._token_error("invalid_client", "Invalid client secret provided.", 7000215)
                )
            expect(scope == GRAPH_DEFAULT, f"Graph token scope {scope!r}")
            token = fake_jwt({"aud": GRAPH, "appid": client_id, "roles": self.roles, "tid": TENANT_ID})
            self.graph_tokens.add(token)
            return json_response(
                200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}
            )
        if self.app_token_outage:
            return httpx.Response(503, text="Service Unavailable")
        app = self.by_app_id(client_id)
        if app is None:
            return json_response(
                400,
                self._token_error(
                    "unauthorized_client",
                    f"Application with identifier '{client_id}' was not found in the directory.",
                    700016,
                ),
            )
        if secret not in self.live_secrets(app["id"]):
            return json_response(401, self._token_error("invalid_client", "Invalid client secret provided.", 7000215))
        left = self._refusals.get(secret, 0)
        if left is None or left > 0:
            if left is not None:
                self._refusals[secret] = left - 1
            return json_response(401, self._token_error("invalid_client", "Invalid client secret provided.", 7000215))
        if not scope.endswith("/.default"):
            return json_response(
                400, self._token_error("invalid_scope", f"The provided value '{scope}' is not valid.", 1002012)
            )
        claims = {"aud": scope.removesuffix("/.default"), "appid": client_id, "azp": client_id, "tid": TENANT_ID}
        return json_response(200, {"token_type": "Bearer", "expires_in": 3599, "access_token": fake_jwt(claims)})

    # -- Graph --------------------------------------------------------------------------------------------------
    def _graph(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if path == "/v1.0/applications" and method == "POST":
            expect_query(request, {})
            return self._create_application(request)
        if path == "/v1.0/applications" and method == "GET":
            return self._list(request)
        if path == "/v1.0/servicePrincipals" and method == "POST":
            expect_query(request, {})
            return self._create_sp(request)
        if method == "GET" and ((m := _APP.match(path)) or (m := _APP_BY_APPID.match(path))):
            return self._get_application(request, m.group(1))
        expect_query(request, {})
        if m := _SP_BY_APPID.match(path):
            expect(method == "GET", "only GET on servicePrincipals(appId=…)")
            expect_no_body(request)
            sp = self.sp_of(m.group(1))
            return json_response(200, sp) if sp else self._not_found(m.group(1))
        if m := _APP_ACTION.match(path):
            expect(method == "POST", f"{m.group(2)} is a POST")
            return self._password(request, m.group(1), m.group(2))
        if m := _APP_BY_APPID.match(path):
            app = self.by_app_id(m.group(1))
            if m.group(2):
                expect(method == "POST", f"{m.group(2)} is a POST")
                return self._password(request, app["id"] if app else m.group(1), m.group(2).lstrip("/"))
            return self._application(request, app["id"] if app else m.group(1))
        if m := _APP.match(path):
            return self._application(request, m.group(1))
        if m := _SP.match(path):
            expect(method == "DELETE", "only DELETE on a service principal")
            expect_no_body(request)
            if self.service_principals.pop(m.group(1), None) is None:
                return self._not_found(m.group(1))
            return httpx.Response(204)
        if m := _DELETED.match(path):
            expect(method == "DELETE", "only DELETE on a deleted item")
            expect_no_body(request)
            if self.deleted.pop(m.group(1), None) is None:
                return self._not_found(m.group(1))
            return httpx.Response(204)
        raise self.unexpected(request)

    @staticmethod
    def _not_found(key: str) -> httpx.Response:
        return json_response(
            404,
            graph_error(
                "Request_ResourceNotFound",
                f"Resource '{key}' does not exist or one of its queried reference-property objects are not present.",
            ),
        )

    def _create_application(self, request: httpx.Request) -> httpx.Response:
        body = json_body(request)
        expect(isinstance(body, dict), "application body is not an object")
        if "passwordCredentials" in body:
            return json_response(
                400, graph_error("Request_BadRequest", "Property 'passwordCredentials' is read-only on create.")
            )
        keys = {"displayName", "signInAudience", "notes", "tags"} | ({"web"} if "web" in body else set())
        expect(set(body) == keys, f"application body keys {sorted(body)}")
        expect(body["signInAudience"] == "AzureADMyOrg", "signInAudience")
        expect(body["tags"][0] == "keystile" and len(body["tags"]) == 3, f"tags {body['tags']!r}")
        if "web" in body:
            expect(set(body["web"]) == {"redirectUris"} and len(body["web"]["redirectUris"]) == 1, "web")
        object_id, app_id = str(uuid.uuid4()), str(uuid.uuid4())
        app = {
            "id": object_id,
            "appId": app_id,
            "createdDateTime": self.created_date_time or _iso(datetime.now(UTC)),
            "displayName": body["displayName"],
            "notes": body["notes"],
            "signInAudience": body["signInAudience"],
            "tags": list(body["tags"]),
            "web": {"redirectUris": list(body.get("web", {}).get("redirectUris", [])), "implicitGrantSettings": {}},
            "passwordCredentials": [],
            "publisherDomain": "acme.onmicrosoft.example",
        }
        self.applications[object_id] = app
        self.passwords[object_id] = []
        self._sp_lag_left = self.sp_lag_failures
        return json_response(201, {"@odata.context": f"{GRAPH_V1}/$metadata#applications/$entity", **app})

    def _create_sp(self, request: httpx.Request) -> httpx.Response:
        body = json_body(request)
        expect(isinstance(body, dict) and set(body) == {"appId"}, f"service principal body {body!r}")
        app = self.by_app_id(body["appId"])
        if app is None or self._sp_lag_left > 0:
            self._sp_lag_left = max(0, self._sp_lag_left - 1)
            return json_response(
                400,
                graph_error(
                    "Request_BadRequest",
                    f"The appId '{body['appId']}' of the service principal does not reference a valid application"
                    " object.",
                ),
            )
        if self.sp_of(body["appId"]) is not None:
            return json_response(
                409,
                graph_error(
                    "Request_MultipleObjectsWithSameKeyValue",
                    "Another object with the same value for property servicePrincipalNames already exists.",
                ),
            )
        sp = {
            "id": str(uuid.uuid4()),
            "appId": body["appId"],
            "displayName": app["displayName"],
            "accountEnabled": True,
        }
        self.service_principals[sp["id"]] = sp
        return json_response(201, sp)

    def _get_application(self, request: httpx.Request, key: str) -> httpx.Response:
        """`GET /applications/{id}?$select=passwordCredentials` (secretText is never returned after addPassword)."""
        expect_no_body(request)
        expect_query(request, {"$select": "passwordCredentials"})
        by_app_id = request.url.path.startswith("/v1.0/applications(")
        app = self.by_app_id(key) if by_app_id else self.applications.get(key)  # /applications/{appId} is 404
        if app is None:
            return self._not_found(key)
        listed = [{**p, "secretText": None} for p in self.passwords[app["id"]]]
        return json_response(
            200,
            {
                "@odata.context": f"{GRAPH_V1}/$metadata#applications(passwordCredentials)/$entity",
                "passwordCredentials": listed,
            },
        )

    def _application(self, request: httpx.Request, object_id: str) -> httpx.Response:
        app = self.applications.get(object_id)
        if app is None:
            return self._not_found(object_id)
        if request.method == "DELETE":
            expect_no_body(request)
            del self.applications[object_id]
            self.passwords.pop(object_id, None)
            for sp in [s for s in self.service_principals.values() if s["appId"] == app["appId"]]:
                del self.service_principals[sp["id"]]
            self.deleted[object_id] = {**app, "deletedDateTime": _iso(datetime.now(UTC))}
            return httpx.Response(204)
        if request.method == "PATCH":
            body = json_body(request)
            expect(set(body) == {"displayName", "web"} and set(body["web"]) == {"redirectUris"}, f"PATCH {body!r}")
            app["displayName"] = body["displayName"]
            app["web"]["redirectUris"] = list(body["web"]["redirectUris"])
            return httpx.Response(204)
        raise self.unexpected(request)

    def _password(self, request: httpx.Request, object_id: str, action: str) -> httpx.Response:
        body = json_body(request)
        if object_id not in self.applications:
            return self._not_found(object_id)
        if action == "addPassword":
            expect(set(body) == {"passwordCredential"}, f"addPassword body {body!r}")
            if self.add_password_error is not None:
                return json_response(*self.add_password_error)
            credential = body["passwordCredential"]
            expect(set(credential) == {"displayName", "endDateTime"}, f"passwordCredential {credential!r}")
            expect(re.fullmatch(r"keystile \d{4}-\d{2}-\d{2}", credential["displayName"]) is not None, "displayName")
            end = datetime.fromisoformat(credential["endDateTime"].replace("Z", "+00:00"))
            expect(end.tzinfo is not None and end > datetime.now(UTC), f"endDateTime {credential['endDateTime']!r}")
            secret = f"{random_id(length=3)}8Q~{random_id(length=34)}"
            now = datetime.now(UTC)
            password = {
                "customKeyIdentifier": None,
                "displayName": credential["displayName"],
                "endDateTime": credential["endDateTime"],
                "hint": secret[:3],
                "keyId": str(uuid.uuid4()),
                "secretText": secret,
                "startDateTime": _iso(now),
            }
            self.passwords[object_id].append(password)
            self._refusals[secret] = self.propagation_refusals
            return json_response(
                200, {"@odata.context": f"{GRAPH_V1}/$metadata#microsoft.graph.passwordCredential", **password}
            )
        expect(set(body) == {"keyId"}, f"removePassword body {body!r}")
        before = len(self.passwords[object_id])
        self.passwords[object_id] = [p for p in self.passwords[object_id] if p["keyId"] != body["keyId"]]
        if len(self.passwords[object_id]) == before:
            return self._not_found(body["keyId"])
        return httpx.Response(204)

    def _list(self, request: httpx.Request) -> httpx.Response:
        expect_no_body(request)
        expect(request.headers.get("consistencylevel") == "eventual", "advanced query without ConsistencyLevel")
        params = dict(request.url.params)
        expect(set(params) - {"$skiptoken"} == {"$filter", "$select", "$count"}, f"list parameters {sorted(params)}")
        match = _TAGS_FILTER.match(params["$filter"])
        expect(match is not None, f"$filter {params['$filter']!r}")
        assert match is not None
        expect(params["$select"] == "id,appId,displayName,tags,createdDateTime", "$select")
        expect(params["$count"] == "true", "$count")
        tag = f"keystile:provider:{match.group(1)}"
        rows = sorted((a for a in self.applications.values() if tag in a["tags"]), key=lambda a: a["id"])
        start = int(params.get("$skiptoken", "0"))
        page = rows[start : start + self.page_size]
        body: dict[str, Any] = {
            "@odata.context": f"{GRAPH_V1}/$metadata#applications(id,appId,displayName,tags,createdDateTime)",
            "@odata.count": len(rows),
            "value": [{k: a[k] for k in ("id", "appId", "displayName", "tags", "createdDateTime")} for a in page],
        }
        if start + self.page_size < len(rows):
            nxt = httpx.QueryParams(
                {**{k: v for k, v in params.items() if k != "$skiptoken"}, "$skiptoken": str(start + self.page_size)}
            )
            body["@odata.nextLink"] = f"{GRAPH_V1}/applications?{nxt}"
        return json_response(200, body)
