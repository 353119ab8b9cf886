"""The catalog and portals (management-api.md §4–5): request models, `gateway_service` rules, path overlap,
and the OpenAPI specification reader (base64 or text, JSON or YAML, alias expansion capped, OpenAPI 3.0/3.1).

No I/O: services check references and uniqueness against the database.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import Field, field_validator

from keystile.domain.errors import InvalidParameter
from keystile.domain.validation import StrictModel, rule_error, validate_labels

__all__ = [
    "HTTP_METHODS",
    "KONNECT_SERVICE_KEYS",
    "MAX_SPEC_BYTES",
    "GatewayService",
    "PortalCreate",
    "PortalProductVersionCreate",
    "PortalProductVersionReplace",
    "PortalProductVersionUpdate",
    "PortalUpdate",
    "ProductCreate",
    "ProductUpdate",
    "SpecificationCreate",
    "SpecificationUpdate",
    "VersionCreate",
    "VersionUpdate",
    "konnect_service_problem",
    "null_problems",
    "overlap",
    "read_specification",
]

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
KONNECT_SERVICE_KEYS = frozenset({"id", "control_plane_id", "runtime_group_id"})
MAX_SPEC_BYTES = 5 * 1024 * 1024
MAX_YAML_NODES = 1_000_000
SPEC_NAME = re.compile(r"^.+(?:\.yaml|\.yml|\.json)$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$")


def _to_uuid(value: Any, field: str) -> Any:
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError as exc:
            raise rule_error("is_uuid", f"{field} must be a UUID") from exc
    return value


# ---- API products and versions -----------------------------------------------------------------------


class ProductCreate(StrictModel):
    name: str = Field(min_length=1, max_length=100)
    description: str | None = None
    labels: dict[str, Any] | None = None
    public_labels: dict[str, Any] | None = None
    portal_ids: list[uuid.UUID] | None = None

    @field_validator("labels", "public_labels")
    @classmethod
    def _labels(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return validate_labels(v)

    @field_validator("portal_ids", mode="before")
    @classmethod
    def _portal_ids(cls, v: Any) -> Any:
        if isinstance(v, list):
            out = [_to_uuid(item, "portal_ids items") for item in v]
            if len({str(i) for i in out}) != len(out):
                raise rule_error("invalid", "portal_ids must not repeat an id")
            return out
        return v


class ProductUpdate(ProductCreate):
    name: str | None = Field(default=None, min_length=1, max_length=100)  # type: ignore[assignment]

    @field_validator("labels", "public_labels")
    @classmethod
    def _labels(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return validate_labels(v, allow_null=True)


class GatewayService(StrictModel):
    """Extension: where keystile's gateway sends this version's traffic (management-api.md §4 table)."""

    upstream_url: str
    paths: list[str] = Field(min_length=1, max_length=16)
    methods: list[str] | None = None
    strip_path: bool = True
    connect_timeout_ms: int = Field(default=5000, ge=1, le=60000)
    read_timeout_ms: int = Field(default=60000, ge=1, le=600000)
    allow_anonymous: bool = False

    @field_validator("upstream_url")
    @classmethod
    def _upstream(cls, v: str) -> str:
        if len(v) > 2048:
            raise rule_error("max_length", "upstream_url must be at most 2048 characters", maximum=2048)
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise rule_error("type", "upstream_url must be an absolute http or https URL, e.g. http://billing:8080/api")
        if parts.query or parts.fragment or v.endswith(("?", "#")):
            raise rule_error("invalid", "upstream_url must not have a query or a fragment")
        return v

    @field_validator("paths")
    @classmethod
    def _paths(cls, v: list[str]) -> list[str]:
        for path in v:
            if not path.startswith("/"):
                raise rule_error("matches_regex", f"path {path!r} must start with '/'")
            if len(path) > 256:
                raise rule_error("max_length", f"path {path[:40]!r}… must be at most 256 characters", maximum=256)
            if "?" in path:
                raise rule_error("invalid", f"path {path!r} must not contain '?'")
            if ".." in path.split("/"):
                raise rule_error("invalid", f"path {path!r} must not contain a '..' segment")
        if len(set(v)) != len(v):
            raise rule_error("invalid", "paths must not repeat a path")
        return v

    @field_validator("methods")
    @classmethod
    def _methods(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        for method in v:
            if method not in HTTP_METHODS:
                raise rule_error(
                    "enum", f"methods items must be one of: {', '.join(HTTP_METHODS)}", choices=list(HTTP_METHODS)
                )
        if len(set(v)) != len(v):
            raise rule_error("invalid", "methods must not repeat a method")
        return v


class VersionCreate(StrictModel):
    name: str = Field(min_length=1, max_length=255)
    labels: dict[str, Any] | None = None
    publish_status: Literal["published", "unpublished"] | None = None
    deprecated: bool | None = None
    gateway_service: GatewayService | None = None

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return validate_labels(v)


class VersionUpdate(VersionCreate):
    name: str | None = Field(default=None, min_length=1, max_length=255)  # type: ignore[assignment]

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return validate_labels(v, allow_null=True)


def konnect_service_problem(value: Any) -> tuple[Any, list[InvalidParameter]]:
    """Konnect's `{control_plane_id, id}` gateway_service form: the keys removed and one item per key."""
    if not isinstance(value, dict):
        return value, []
    found = sorted(k for k in value if k in KONNECT_SERVICE_KEYS)
    if not found:
        return value, []
    items = [
        InvalidParameter(
            f"gateway_service.{key}", "unknown_property", "keystile proxies itself: give upstream_url and paths"
        )
        for key in found
    ]
    rest = {k: v for k, v in value.items() if k not in KONNECT_SERVICE_KEYS}
    if not rest:
        return None, items
    return rest, items


def null_problems(raw: Any, fields: dict[str, str]) -> list[InvalidParameter]:
    """`null` sent for fields that cannot be cleared (PATCH `null` clears only nullable fields): {field: rule}."""
    if not isinstance(raw, dict):
        return []
    reasons = {"is_string": "a string", "is_boolean": "true or false", "enum": "one of its values"}
    return [
        InvalidParameter(name, rule, f"{name} cannot be null; it must be {reasons.get(rule, 'a value')}")
        for name, rule in fields.items()
        if name in raw and raw[name] is None
    ]


def _prefixes_overlap(a: str, b: str) -> bool:
    """Whether two route prefixes can match the same request path (segment-aware prefix match)."""
    a2, b2 = a.rstrip("/") or "/", b.rstrip("/") or "/"
    if a2 == b2 or a2 == "/" or b2 == "/":
        return True
    short, long = (a2, b2) if len(a2) <= len(b2) else (b2, a2)
    return long.startswith(short + "/")


def overlap(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """The first (path, method) two gateway services both claim, as text, or None."""
    methods_a = set(a.get("methods") or HTTP_METHODS)
    methods_b = set(b.get("methods") or HTTP_METHODS)
    common = [m for m in HTTP_METHODS if m in methods_a and m in methods_b]
    if not common:
        return None
    for pa in a.get("paths") or []:
        for pb in b.get("paths") or []:
            if _prefixes_overlap(pa, pb):
                return f"{common[0]} {pa if len(pa) >= len(pb) else pb}"
    return None


# ---- specifications ---------------------------------------------------------------------------------


class SpecificationCreate(StrictModel):
    name: str = Field(min_length=1, max_length=255)
    content: str = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not SPEC_NAME.match(v):
            raise rule_error("matches_regex", "name must end in .yaml, .yml or .json, e.g. billing.yaml")
        return v


class SpecificationUpdate(StrictModel):
    name: str | None = Field(default=None, min_length=1, max_length=255)
    content: str | None = Field(default=None, min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return None if v is None else SpecificationCreate._name(v)


class _CappedLoader(yaml.SafeLoader):
    """PyYAML's safe loader; the composed graph is measured with aliases expanded before anything walks it."""


def _expanded_size(root: yaml.Node, cap: int) -> int:
    """Nodes in the tree once aliases are expanded (a DAG in PyYAML), stopping past `cap`; cycles count as cap+1."""
    memo: dict[int, int] = {}
    visiting: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in memo:
            return memo[key]
        if key in visiting:
            return cap + 1
        visiting.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                total += size(child)
                if total > cap:
                    break
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                total += size(k) + size(v)
                if total > cap:
                    break
        visiting.discard(key)
        memo[key] = total
        return total

    return size(root)


def _decode_content(raw: str) -> tuple[str, list[InvalidParameter]]:
    """The document text: base64 when the value is valid base64 of UTF-8 text, else the value itself."""
    compact = re.sub(r"\s+", "", raw)
    text = raw
    if compact and len(compact) % 4 == 0 and re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", compact):
        try:
            text = base64.b64decode(compact, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            text = raw
    size = len(text.encode("utf-8"))
    if size > MAX_SPEC_BYTES:
        return text, [
            InvalidParameter(
                "content",
                "max_length",
                f"the specification is {size} bytes; at most {MAX_SPEC_BYTES} bytes (5 MiB) once decoded",
                maximum=MAX_SPEC_BYTES,
            )
        ]
    return text, []


_TOO_DEEP = InvalidParameter("content", "invalid", "the specification nests too deeply to be an API description")


def _load_document(text: str) -> tuple[Any, list[InvalidParameter]]:
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            return json.loads(text), []
        except json.JSONDecodeError as exc:
            return None, [
                InvalidParameter(
                    "content",
                    "invalid",
                    f"the specification is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
                )
            ]
        except RecursionError:
            return None, [_TOO_DEEP]
    try:
        loader = _CappedLoader(text)  # the reader refuses control characters here, before any parsing
    except yaml.YAMLError as exc:
        return None, [InvalidParameter("content", "invalid", f"the specification is not valid YAML or JSON: {exc}")]
    try:
        node = loader.get_single_node()
        if node is None:
            return None, [InvalidParameter("content", "invalid", "the specification is empty")]
        if _expanded_size(node, MAX_YAML_NODES) > MAX_YAML_NODES:
            return None, [
                InvalidParameter(
                    "content",
                    "invalid",
                    f"the YAML document expands to more than {MAX_YAML_NODES} nodes through aliases (or aliases "
                    "form a cycle); expand them or use fewer",
                )
            ]
        return loader.construct_document(node), []
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        return None, [
            InvalidParameter("content", "invalid", f"the specification is not valid YAML or JSON: {exc.problem}{where}")
        ]
    except yaml.YAMLError as exc:
        return None, [InvalidParameter("content", "invalid", f"the specification is not valid YAML or JSON: {exc}")]
    except RecursionError:
        return None, [_TOO_DEEP]
    finally:
        loader.dispose()


def _external_refs(doc: Any, path: str = "") -> Iterator[str]:
    if isinstance(doc, dict):
        for key, value in doc.items():
            here = f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"
            if key == "$ref" and isinstance(value, str) and not value.startswith("#"):
                yield here
            else:
                yield from _external_refs(value, here)
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from _external_refs(value, f"{path}/{i}")


def _first_line(message: str) -> str:
    line = message.strip().splitlines()[0] if message.strip() else "invalid"
    return line[:400]


def _pointer(parts: Iterable[Any]) -> str:
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _validate_openapi(doc: Any) -> list[InvalidParameter]:
    from openapi_spec_validator.validation import OpenAPIV30SpecValidator, OpenAPIV31SpecValidator

    if not isinstance(doc, dict):
        return [InvalidParameter("content", "invalid", "the specification must be an object (an OpenAPI document)")]
    version = doc.get("openapi")
    if not isinstance(version, str):
        hint = " (Swagger 2.0 is not supported; convert it to OpenAPI 3)" if "swagger" in doc else ""
        return [InvalidParameter("content", "invalid", f"the document has no 'openapi' version string{hint}")]
    if re.match(r"^3\.0\.\d+", version):
        base: type[Any] = OpenAPIV30SpecValidator
    elif re.match(r"^3\.1\.\d+", version):
        base = OpenAPIV31SpecValidator
    else:
        return [
            InvalidParameter("content", "invalid", f"openapi {version!r} is not supported; use OpenAPI 3.0.x or 3.1.x")
        ]
    external = list(_external_refs(doc))
    if external:
        return [
            InvalidParameter(
                "content",
                "invalid",
                f"at {p}: only local $ref values ('#/…') are allowed; keystile does not fetch other documents",
            )
            for p in external[:5]
        ]
    validator_cls = type("LocalOnly" + base.__name__, (base,), {"resolver_handlers": {}})
    problems: list[InvalidParameter] = []
    try:
        for err in validator_cls(doc).iter_errors():
            problems.append(
                InvalidParameter("content", "invalid", f"at {_pointer(err.absolute_path)}: {_first_line(err.message)}")
            )
            if len(problems) >= 5:
                break
    except Exception as exc:  # a validator crash on hostile input is reported as invalid content, chained nowhere
        problems.append(
            InvalidParameter("content", "invalid", f"the OpenAPI document cannot be validated: {exc}"[:500])
        )
    return problems


def read_specification(raw: str) -> tuple[str, list[InvalidParameter]]:
    """(document text, problems): decode, size-check, parse and validate an uploaded specification."""
    text, problems = _decode_content(raw)
    if problems:
        return text, problems
    doc, problems = _load_document(text)
    if problems:
        return text, problems
    return text, _validate_openapi(doc)


# ---- portals ---------------------------------------------------------------------------------------


def _hostname(v: str | None, field: str) -> str | None:
    if v is None:
        return None
    if not _HOSTNAME.match(v):
        raise rule_error("type", f"{field} must be a hostname such as portal.example.com (no scheme, port or path)")
    return v.lower()


class PortalCreate(StrictModel):
    name: str = Field(min_length=1, max_length=255)
    display_name: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = Field(default=None, max_length=512)
    is_public: bool | None = None
    rbac_enabled: bool | None = None
    auto_approve_applications: bool | None = None
    auto_approve_developers: bool | None = None
    custom_domain: str | None = None
    custom_client_domain: str | None = None
    default_application_auth_strategy_id: uuid.UUID | None = None
    labels: dict[str, Any] | None = None
    revoke_on_developer_revoke: bool | None = None

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return validate_labels(v)

    @field_validator("rbac_enabled")
    @classmethod
    def _rbac(cls, v: bool | None) -> bool | None:
        if v:
            raise rule_error("invalid", "rbac_enabled cannot be true: keystile has no developer teams yet")
        return v

    @field_validator("custom_domain")
    @classmethod
    def _domain(cls, v: str | None) -> str | None:
        return _hostname(v, "custom_domain")

    @field_validator("custom_client_domain")
    @classmethod
    def _client_domain(cls, v: str | None) -> str | None:
        return _hostname(v, "custom_client_domain")

    @field_validator("default_application_auth_strategy_id", mode="before")
    @classmethod
    def _strategy(cls, v: Any) -> Any:
        return _to_uuid(v, "default_application_auth_strategy_id")


class PortalUpdate(PortalCreate):
    name: str | None = Field(default=None, min_length=1, max_length=255)  # type: ignore[assignment]

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return validate_labels(v, allow_null=True)


def _strategy_ids(v: Any) -> Any:
    if isinstance(v, list):
        return [_to_uuid(item, "auth_strategy_ids items") for item in v]
    return v


class PortalProductVersionUpdate(StrictModel):
    publish_status: Literal["published", "unpublished"] | None = None
    application_registration_enabled: bool | None = None
    auto_approve_registration: bool | None = None
    deprecated: bool | None = None
    auth_strategy_ids: list[uuid.UUID] | None = Field(default=None, max_length=1)
    notify_developers: bool | None = None

    @field_validator("auth_strategy_ids", mode="before")
    @classmethod
    def _ids(cls, v: Any) -> Any:
        return _strategy_ids(v)


class PortalProductVersionReplace(StrictModel):
    publish_status: Literal["published", "unpublished"]
    application_registration_enabled: bool
    auto_approve_registration: bool
    deprecated: bool
    auth_strategy_ids: list[uuid.UUID] = Field(max_length=1)
    notify_developers: bool | None = None

    @field_validator("auth_strategy_ids", mode="before")
    @classmethod
    def _ids(cls, v: Any) -> Any:
        return _strategy_ids(v)


class PortalProductVersionCreate(StrictModel):
    product_version_id: uuid.UUID
    publish_status: Literal["published", "unpublished"]
    application_registration_enabled: bool
    auto_approve_registration: bool
    deprecated: bool
    auth_strategy_ids: list[uuid.UUID] = Field(max_length=1)

    @field_validator("auth_strategy_ids", mode="before")
    @classmethod
    def _ids(cls, v: Any) -> Any:
        return _strategy_ids(v)

    @field_validator("product_version_id", mode="before")
    @classmethod
    def _version(cls, v: Any) -> Any:
        return _to_uuid(v, "product_version_id")
