"""keystile: an API developer portal with OAuth 2.0 Dynamic Client Registration, and its gateway."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("keystile")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
