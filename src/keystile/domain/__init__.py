"""keystile.domain."""
