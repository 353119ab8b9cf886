"""keystile.api."""
