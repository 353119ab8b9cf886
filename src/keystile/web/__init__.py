"""keystile.web."""
