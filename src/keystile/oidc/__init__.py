"""keystile.oidc: shared OpenID client pieces (discovery cache; JWKS and token verification come later)."""

from keystile.oidc.discovery import DiscoveryCache, DiscoveryError, ProviderMetadata, normalize_issuer

__all__ = ["DiscoveryCache", "DiscoveryError", "ProviderMetadata", "normalize_issuer"]
