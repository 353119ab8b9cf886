"""Route matching on normalised paths (contracts/gateway.md §4).

- Percent-encoded unreserved characters are decoded, dot segments removed (RFC 3986 §6.2.2.2, §5.2.4); a
  path that climbs above `/` is malformed. `%2F` stays encoded and is not a separator.
- A route path matches when equal to the request path or a prefix ending at a `/` boundary; the longest
  wins; at equal length a route listing `methods` beats one without; a method outside `methods` is no match.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["MalformedPathError", "Router", "join_upstream_path", "normalize_path"]

T = TypeVar("T")

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX = frozenset("0123456789abcdefABCDEF")


class MalformedPathError(ValueError):
    """The request path cannot be normalised (answered 400)."""


def _decode_unreserved(path: str) -> str:
    out: list[str] = []
    i = 0
    n = len(path)
    while i < n:
        ch = path[i]
        if ch == "%":
            if i + 2 >= n:
                raise MalformedPathError("truncated percent-encoding")
            h1, h2 = path[i + 1], path[i + 2]
            if h1 not in _HEX or h2 not in _HEX:
                raise MalformedPathError("invalid percent-encoding")
            value = int(h1 + h2, 16)
            if value in _UNRESERVED:
                out.append(chr(value))
            else:
                out.append("%" + (h1 + h2).upper())
            i += 3
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def normalize_path(path: str) -> str:
    """The normalised form of an origin-form request path (no query).

    Raises:
        MalformedPathError: not starting with `/`, bad percent-encoding, or dot segments above the root.
    """
    if not path.startswith("/"):
        raise MalformedPathError("the path must start with '/'")
    if "%" in path:
        path = _decode_unreserved(path)
    if "/." not in path:
        return path
    segments = path.split("/")[1:]
    out: list[str] = []
    last = len(segments) - 1
    for i, seg in enumerate(segments):
        if seg == ".":
            if i == last:
                out.append("")
            continue
        if seg == "..":
            if not out:
                raise MalformedPathError("the path climbs above '/'")
            out.pop()
            if i == last:
                out.append("")
            continue
        out.append(seg)
    return "/" + "/".join(out)


def join_upstream_path(base: str, rest: str) -> str:
    """`base` + `rest` joined with exactly one `/` (an empty `rest` keeps `base` as it is)."""
    if not rest:
        return base or "/"
    if not base:
        return rest if rest.startswith("/") else "/" + rest
    return base.rstrip("/") + "/" + rest.lstrip("/")


@dataclass(frozen=True)
class _Entry(Generic[T]):
    methods: frozenset[str] | None
    target: T


class Router(Generic[T]):
    """Longest `/`-boundary prefix match over (path, methods, target) triples."""

    def __init__(self, entries: Iterable[tuple[str, Iterable[str] | None, T]]) -> None:
        table: dict[str, list[_Entry[T]]] = {}
        for path, methods, target in entries:
            key = normalize_path(path)
            if len(key) > 1 and key.endswith("/"):
                key = key.rstrip("/") or "/"
            table.setdefault(key, []).append(
                _Entry(frozenset(m.upper() for m in methods) if methods is not None else None, target)
            )
        for items in table.values():
            items.sort(key=lambda e: e.methods is None)
        self._table = table

    def _pick(self, key: str, method: str) -> T | None:
        entries = self._table.get(key)
        if entries is None:
            return None
        for entry in entries:
            if entry.methods is None or method in entry.methods:
                return entry.target
        return None

    def match(self, path: str, method: str) -> tuple[T, str] | None:
        """The winning target and the matched route path, for a normalised request path."""
        table = self._table
        if path in table:
            hit = self._pick(path, method)
            if hit is not None:
                return hit, path
        i = path.rfind("/")
        while i >= 0:
            prefix = path[:i] or "/"
            if prefix in table:
                hit = self._pick(prefix, method)
                if hit is not None:
                    return hit, prefix
            if i == 0:
                break
            i = path.rfind("/", 0, i)
        return None
