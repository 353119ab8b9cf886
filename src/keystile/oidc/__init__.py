"""keystile.oidc."""
