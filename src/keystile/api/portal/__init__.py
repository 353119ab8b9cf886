"""The Portal API `/api/v2` (contracts/portal-api.md)."""
