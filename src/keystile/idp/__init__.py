"""keystile.idp."""
