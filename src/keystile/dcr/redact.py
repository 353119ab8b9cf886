"""Remove secrets from text that may be logged or put in an exception (contracts/dcr-providers.md §1.4).

`redact(text, known)` replaces:

- the value of every field named in `SECRET_FIELDS`, in JSON (`"client_secret": "…"`), Python reprs
  (`'client_secret': '…'`), forms and queries (`client_secret=…`) and `name: value` text;
- what follows `Bearer `, `SSWS ` and `Basic ` (any case);
- every value in `known` (the secrets the call holds), also in its percent-encoded form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

from pydantic import SecretStr

__all__ = ["MASK", "SECRET_FIELDS", "redact"]

MASK = "[REDACTED]"

SECRET_FIELDS: tuple[str, ...] = (
    "client_secret",
    "registration_access_token",
    "access_token",
    "refresh_token",
    "id_token",
    "initial_access_token",
    "api_key",
    "dcr_token",
    "initial_client_secret",
    "secretText",
    "password",
)

_FIELD_RE = re.compile(
    r"(?P<key>(?P<q>[\"']?)(?:" + "|".join(re.escape(f) for f in SECRET_FIELDS) + r")(?P=q))"
    r"(?P<sep>\s*[:=]\s*)"
    r"(?P<value>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[^\s&,;}\])\"']+)",
    re.IGNORECASE,
)
_SCHEME_RE = re.compile(r"\b(?P<scheme>Bearer|SSWS|Basic)(?P<sp>\s+)[A-Za-z0-9\-._~+/=:%]+", re.IGNORECASE)
_MIN_KNOWN = 4  # shorter "secrets" would mask ordinary words; real ones are far longer


def _mask_field(match: re.Match[str]) -> str:
    value = match.group("value")
    quote_char = value[0] if value[:1] in ("'", '"') else ""
    return f"{match.group('key')}{match.group('sep')}{quote_char}{MASK}{quote_char}"


def redact(text: str, known: Iterable[str | SecretStr | None] = ()) -> str:
    """`text` without the secrets described in the module docstring.

    Args:
        text: any text (an IdP error body, a message, a URL).
        known: secret values this call holds; `SecretStr` and `None` are accepted.
    """
    values: set[str] = set()
    for item in known:
        raw = item.get_secret_value() if isinstance(item, SecretStr) else item
        if raw and len(raw) >= _MIN_KNOWN:
            values.update({raw, quote(raw, safe=""), quote_plus(raw, safe="")})
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, MASK)
    text = _FIELD_RE.sub(_mask_field, text)
    return _SCHEME_RE.sub(lambda m: f"{m.group('scheme')}{m.group('sp')}{MASK}", text)
