"""The client name that tags every IdP client with its application (contracts/dcr-providers.md §2, §3.3).

`client_name` = `<app name> (ks-<h12>)`, `h12` = the last 12 hex digits of the application id (random in UUIDv4 and
v7): unique (Okta requires it) and traceable. The app name is cut so the whole fits 100 characters; `<` and `>` are
dropped (Auth0 refuses them). Reconcile finds the tag with `TAG_RE`.
"""

from __future__ import annotations

import re
import uuid

__all__ = ["MAX_CLIENT_NAME", "OPENID_SCOPES", "TAG_RE", "client_name", "registration_scopes", "tag", "tag_of"]

MAX_CLIENT_NAME = 100
TAG_RE = re.compile(r"\(ks-([0-9a-f]{12})\)$")
OPENID_SCOPES = frozenset({"openid", "profile", "email", "address", "phone", "offline_access"})


def tag(application_id: uuid.UUID | str) -> str:
    """`ks-<h12>` for an application id."""
    hex_digits = uuid.UUID(str(application_id)).hex
    return f"ks-{hex_digits[-12:]}"


def client_name(app_name: str, application_id: uuid.UUID | str) -> str:
    """The IdP client name for an application: `<app name> (ks-<h12>)`, at most 100 characters."""
    suffix = f" ({tag(application_id)})"
    cleaned = " ".join(app_name.replace("<", "").replace(">", "").split())
    cleaned = cleaned[: MAX_CLIENT_NAME - len(suffix)].rstrip()
    return f"{cleaned}{suffix}" if cleaned else suffix.lstrip()


def tag_of(name: str | None) -> str | None:
    """The `h12` of a client name carrying keystile's tag, else `None`."""
    if not name:
        return None
    match = TAG_RE.search(name)
    return match.group(1) if match else None


def registration_scopes(scopes: tuple[str, ...] | list[str]) -> list[str]:
    """The scopes to register and probe with: the app's minus the OpenID scopes, order kept, no duplicates."""
    out: list[str] = []
    for scope in scopes:
        if scope not in OPENID_SCOPES and scope not in out:
            out.append(scope)
    return out
