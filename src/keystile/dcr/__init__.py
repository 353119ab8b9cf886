"""keystile.dcr."""
