"""keystile.gateway."""
