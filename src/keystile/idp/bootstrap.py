"""First-start and every-start set-up of the built-in IdP: the admin client, the static initial access
tokens, and the facts file `<data dir>/idp.json` (mode 0600) that the demo and the tests read.

Generated secrets are kept in the facts file so that a restart with the same data dir keeps them.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from keystile.idp.config import DCR_SCOPE, IdpConfig
from keystile.idp.keys import write_private_json
from keystile.idp.store import IdpStore

__all__ = ["FACTS_FILE", "IdpFacts", "bootstrap", "read_facts"]

FACTS_FILE = "idp.json"


@dataclass(frozen=True)
class IdpFacts:
    """What a client of the IdP needs to know; written to `idp.json`.

    `initial_access_token` (also written as `rotating_iat`, the key name of the `oidc-provider` peer's start
    line) registers clients that get a new secret on each RFC 7592 PUT; `plain_iat` registers clients that keep
    their secret on PUT.
    """

    issuer: str
    initial_access_token: str = field(repr=False)
    plain_iat: str = field(repr=False)
    admin_client_id: str
    admin_client_secret: str = field(repr=False)
    api_audience: str
    scopes: list[str]
    token_endpoint: str
    registration_endpoint: str
    introspection_endpoint: str
    jwks_uri: str
    access_token_ttl: int

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["rotating_iat"] = self.initial_access_token
        return data


def read_facts(data_dir: Path) -> dict[str, Any]:
    """The facts file of `data_dir` as written at the last start, or `{}` when missing or unreadable."""
    try:
        data = json.loads((data_dir / FACTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _kept(previous: dict[str, Any], key: str) -> str | None:
    value = previous.get(key)
    return value if isinstance(value, str) and len(value) >= 16 else None


def bootstrap(config: IdpConfig, store: IdpStore) -> IdpFacts:
    """Put the admin client and the static initial access tokens in the store; write and return the facts."""
    previous = read_facts(config.data_dir)
    iats = list(config.initial_access_tokens) or [_kept(previous, "initial_access_token") or secrets.token_urlsafe(32)]
    plain = list(config.plain_initial_access_tokens) or [_kept(previous, "plain_iat") or secrets.token_urlsafe(32)]
    store.set_static_initial_access_tokens(rotating=iats, plain=plain)

    admin_secret = config.admin_client_secret
    if admin_secret is None and previous.get("admin_client_id") == config.admin_client_id:
        admin_secret = _kept(previous, "admin_client_secret")
    admin_secret = admin_secret or secrets.token_urlsafe(32)
    store.put_admin_client(
        config.admin_client_id,
        admin_secret,
        {
            "client_name": "keystile idp admin (mints initial access tokens)",
            "grant_types": ["client_credentials"],
            "response_types": [],
            "token_endpoint_auth_method": "client_secret_basic",
            "scope": DCR_SCOPE,
        },
    )
    facts = IdpFacts(
        issuer=config.issuer,
        initial_access_token=iats[0],
        plain_iat=plain[0],
        admin_client_id=config.admin_client_id,
        admin_client_secret=admin_secret,
        api_audience=config.api_audience,
        scopes=list(config.scopes),
        token_endpoint=config.url("/token"),
        registration_endpoint=config.url("/register"),
        introspection_endpoint=config.url("/introspect"),
        jwks_uri=config.url("/jwks"),
        access_token_ttl=config.access_token_ttl,
    )
    write_private_json(config.data_dir / FACTS_FILE, facts.as_json())
    return facts
