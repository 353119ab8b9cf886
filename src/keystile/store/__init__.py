"""keystile.store."""
