"""The gateway fixtures of tests/integration/gateway (a real gateway on loopback, an echo upstream, a fake IdP),
reused here for hostile requests."""

from tests.integration.gateway.conftest import idp, start_gateway, upstream, world

__all__ = ["idp", "start_gateway", "upstream", "world"]
