"""keystile.idp: the built-in OpenID provider with RFC 7591/7592 registration, for local use, demos and tests.

A development IdP, not a production one. Build it with `create_idp_app(IdpConfig(...))`.
"""

from keystile.idp.app import create_idp_app
from keystile.idp.bootstrap import IdpFacts
from keystile.idp.config import IdpConfig

__all__ = ["IdpConfig", "IdpFacts", "create_idp_app"]
