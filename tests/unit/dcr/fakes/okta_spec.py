"""Okta's published OpenAPI documents, read in place from `../shared/specs/okta/` (never copied into the repo).

`load_okta_specs()` parses `oauth-minimal.yaml` and the large `management-minimal.yaml` once (a session fixture
calls it) and keeps only the operations keystile uses plus the components they reference:

- oauth: the org's `/.well-known/openid-configuration`, `/oauth2/v1/clients`, `/oauth2/v1/clients/{clientId}`,
  `.../lifecycle/newSecret`, the custom authorization server's `/v1/token` and `/.well-known/openid-configuration`;
- management: `/api/v1/apps/{appId}/credentials/secrets` and its sub-resources.

Three normalisations, each keeping the document's meaning for those operations:

- `security` alternatives keystile never uses (`oauth2`, `postBody` client authentication, JWT client
  authentication) are dropped: openapi-core cannot evaluate them ("Unsupported scheme type") and would pass any
  request through them; what is left (`apiToken`, `client_secret_basic`) is then really required;
- an empty response `content: {}` (Okta's `204`) is removed: it means "no body";
- the spec-level self check is skipped: Okta's token-request schemas nest `allOf` deeply enough to exhaust
  openapi-spec-validator's recursion; request and response validation is unaffected.

`OktaValidator.check(request, response)` validates a request and the fake's response. A status the operation
does not document (Okta answers `401` on the DCR paths, both `invalid_client` and `E0000011`, and the document
lists none) is checked against the `Error` or `OAuthError` component schema instead, and only for the statuses
listed in `UNDOCUMENTED_STATUSES`.
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_schema_validator import OAS30Validator
from werkzeug.datastructures import Headers, ImmutableMultiDict

SPEC_DIR = Path(__file__).resolve().parents[5] / "shared" / "specs" / "okta"

OAUTH_PATHS = (
    "/.well-known/openid-configuration",
    "/oauth2/v1/clients",
    "/oauth2/v1/clients/{clientId}",
    "/oauth2/v1/clients/{clientId}/lifecycle/newSecret",
    "/oauth2/{authorizationServerId}/v1/token",
    "/oauth2/{authorizationServerId}/.well-known/openid-configuration",
)
MANAGEMENT_PREFIX = "/api/v1/apps/{appId}/credentials/secrets"
USED_SECURITY = {"apiToken", "Client_authentication_client_secret_basic"}
# (method, path prefix) -> statuses Okta sends there that the document does not list
UNDOCUMENTED_STATUSES = {("*", "/oauth2/v1/clients"): {401}}


class OktaSpecError(AssertionError):
    """Traffic that Okta's published OpenAPI document does not allow."""


def _refs(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                out.add(value)
            else:
                _refs(value, out)
    elif isinstance(node, list):
        for value in node:
            _refs(value, out)


def _normalise(node: Any) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "security" and isinstance(value, list):
                value = [req for req in value if set(req) <= USED_SECURITY and req]
            elif key == "content" and value == {}:
                continue
            out[key] = _normalise(value)
        return out
    if isinstance(node, list):
        return [_normalise(v) for v in node]
    return node


def prune(document: dict[str, Any], paths: list[str]) -> dict[str, Any]:
    """The document with only `paths` and the components they reference (transitively)."""
    kept_paths = {path: document["paths"][path] for path in paths}
    components: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    todo: set[str] = set()
    _refs(kept_paths, todo)
    while todo:
        ref = todo.pop()
        seen.add(ref)
        _, _, section, name = ref.split("/", 3)
        node = document["components"][section][name]
        components.setdefault(section, {})[name] = node
        found: set[str] = set()
        _refs(node, found)
        todo |= found - seen
    components["securitySchemes"] = {
        name: scheme for name, scheme in document["components"]["securitySchemes"].items() if name in USED_SECURITY
    }
    head = {k: v for k, v in document.items() if k in ("openapi", "info", "servers")}
    return _normalise({**head, "paths": kept_paths, "components": components})


class _Request:
    """An `httpx.Request` seen through openapi-core's `Request` protocol."""

    def __init__(self, request: httpx.Request) -> None:
        self._request = request
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qs(request.url.query.decode(), keep_blank_values=True)),
            header=Headers(list(request.headers.items())),
            cookie=ImmutableMultiDict({}),
        )

    @property
    def host_url(self) -> str:
        return f"{self._request.url.scheme}://{self._request.url.netloc.decode()}"

    @property
    def path(self) -> str:
        return self._request.url.path

    @property
    def method(self) -> str:
        return self._request.method.lower()

    @property
    def body(self) -> bytes | None:
        return self._request.content or None

    @property
    def content_type(self) -> str:
        return self._request.headers.get("content-type", "")


class _Response:
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status_code(self) -> int:
        return self._response.status_code

    @property
    def content_type(self) -> str:
        return self._response.headers.get("content-type", "")

    @property
    def headers(self) -> Headers:
        return Headers(list(self._response.headers.items()))

    @property
    def data(self) -> bytes | None:
        return self._response.content or None


@dataclass
class OktaValidator:
    oauth: OpenAPI
    management: OpenAPI
    error_schema: dict[str, Any]
    oauth_error_schema: dict[str, Any]
    validated: int = 0

    def _api(self, request: httpx.Request) -> OpenAPI:
        return self.management if request.url.path.startswith("/api/v1/apps/") else self.oauth

    def check_request(self, request: httpx.Request) -> None:
        try:
            self._api(request).validate_request(_Request(request))
        except Exception as exc:
            raise OktaSpecError(f"request not valid for Okta's OpenAPI document: {exc}") from exc
        self.validated += 1

    def check_response(self, request: httpx.Request, response: httpx.Response) -> None:
        response.read()
        undocumented = any(
            response.status_code in statuses and request.url.path.startswith(prefix) and method in ("*", request.method)
            for (method, prefix), statuses in UNDOCUMENTED_STATUSES.items()
        )
        if undocumented:
            body = json.loads(response.content)
            schema = self.oauth_error_schema if "error" in body else self.error_schema
            errors = list(OAS30Validator(schema).iter_errors(body))
            if errors:
                raise OktaSpecError(f"{response.status_code} body not valid for Okta's error schema: {errors[0]}")
            self.validated += 1
            return
        try:
            self._api(request).validate_response(_Request(request), _Response(response))
        except Exception as exc:
            raise OktaSpecError(
                f"response {response.status_code} not valid for Okta's OpenAPI document: {exc}"
            ) from exc
        self.validated += 1


@functools.cache
def load_okta_specs(spec_dir: Path = SPEC_DIR) -> OktaValidator | None:
    """Parse both documents once per process (shared by every test that needs them); None when absent."""
    oauth_file = spec_dir / "oauth-minimal.yaml"
    management_file = spec_dir / "management-minimal.yaml"
    if not (oauth_file.is_file() and management_file.is_file()):
        return None
    with oauth_file.open("rb") as fh:
        oauth_doc = yaml.load(fh, Loader=yaml.CSafeLoader)
    with management_file.open("rb") as fh:
        management_doc = yaml.load(fh, Loader=yaml.CSafeLoader)
    management_paths = [p for p in management_doc["paths"] if p.startswith(MANAGEMENT_PREFIX)]
    oauth = prune(oauth_doc, list(OAUTH_PATHS))
    management = prune(management_doc, management_paths)
    config = Config(spec_validator_cls=None)
    schemas = oauth["components"]["schemas"]
    return OktaValidator(
        oauth=OpenAPI.from_dict(oauth, config=config),
        management=OpenAPI.from_dict(management, config=config),
        error_schema=copy.deepcopy(schemas["Error"]),
        oauth_error_schema=copy.deepcopy(oauth_doc["components"]["schemas"]["OAuthError"]),
    )
