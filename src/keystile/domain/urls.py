"""URL rules shared by providers, strategies and upstreams."""

from __future__ import annotations

from urllib.parse import urlsplit

from keystile.settings import is_loopback_host

__all__ = ["DISCOVERY_SUFFIX", "check_https_url", "split_issuer"]

DISCOVERY_SUFFIX = "/.well-known/openid-configuration"


def check_https_url(value: str, *, max_length: int = 256, what: str = "URL") -> str:
    """An absolute https URL (http only for loopback hosts). Raises ValueError with a readable reason."""
    if len(value) > max_length:
        raise ValueError(f"{what} must be at most {max_length} characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} must be an absolute https URL, e.g. https://idp.example.com/oauth2/default")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError(f"{what} must use https (plain http is allowed only for loopback hosts)")
    if parts.fragment:
        raise ValueError(f"{what} must not have a fragment")
    return value


def split_issuer(value: str) -> tuple[str, str | None]:
    """(issuer, discovery URL or None): a value ending in the discovery suffix names the discovery URL."""
    if value.endswith(DISCOVERY_SUFFIX):
        return value[: -len(DISCOVERY_SUFFIX)], value
    return value, None
