"""keystile.services."""
