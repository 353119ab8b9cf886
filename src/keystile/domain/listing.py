"""Paging, filtering and sorting of lists (management-api.md §1.3), independent of SQL."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from keystile.domain.errors import InvalidParameter, ValidationError

__all__ = ["MAX_PAGE_NUMBER", "FieldKind", "Filter", "ListQuery", "ListSpec", "Page", "parse_list_query"]

#: page[number] ceiling: (number - 1) × page[size] (≤ 1000) stays far inside a 64-bit OFFSET
MAX_PAGE_NUMBER = 1_000_000_000
FieldKind = Literal["string", "uuid", "bool", "datetime", "int"]
_OPS: dict[str, tuple[str, ...]] = {
    "string": ("eq", "neq", "contains", "oeq", "ocontains"),
    "uuid": ("eq", "neq", "oeq"),
    "bool": ("eq",),
    "int": ("eq", "neq", "oeq"),
    "datetime": ("eq", "lt", "lte", "gt", "gte"),
}


@dataclass(frozen=True)
class ListSpec:
    """What a list endpoint can filter and sort on."""

    filters: dict[str, FieldKind]
    sorts: tuple[str, ...]
    default_sort: tuple[str, bool] = ("created_at", False)


@dataclass(frozen=True)
class Filter:
    field: str
    op: str
    values: tuple[object, ...]


@dataclass
class ListQuery:
    page_number: int = 1
    page_size: int = 100
    filters: list[Filter] = field(default_factory=list)
    sort: str = "created_at"
    descending: bool = False


@dataclass(frozen=True)
class Page:
    data: list[dict[str, object]]
    number: int
    size: int
    total: int

    def as_dict(self) -> dict[str, object]:
        return {"data": self.data, "meta": {"page": {"number": self.number, "size": self.size, "total": self.total}}}


def _convert(kind: FieldKind, raw: str, name: str, problems: list[InvalidParameter]) -> object:
    try:
        if kind == "uuid":
            return uuid.UUID(raw)
        if kind == "bool":
            if raw not in ("true", "false"):
                raise ValueError
            return raw == "true"
        if kind == "int":
            number = int(raw)
            if not -(2**63) <= number < 2**63:  # the databases' 64-bit integers
                raise ValueError
            return number
        if kind == "datetime":
            return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        rule = {"uuid": "is_uuid", "bool": "is_boolean", "int": "is_integer", "datetime": "is_date_time"}[kind]
        problems.append(InvalidParameter(name, rule, f"{name} has an invalid value {raw!r}", "query"))
    return raw


def parse_list_query(params: list[tuple[str, str]], spec: ListSpec) -> ListQuery:
    """Read `page[size]`, `page[number]`, `filter[f][op]`, `sort` from query parameters.

    Raises:
        ValidationError: every problem found (unknown filter fields or operators, bad sizes, unknown sort).
    """
    query = ListQuery(sort=spec.default_sort[0], descending=spec.default_sort[1])
    problems: list[InvalidParameter] = []
    for key, raw in params:
        if key in ("page[size]", "page[number]"):
            try:
                n = int(raw)
            except ValueError:
                problems.append(InvalidParameter(key, "is_integer", f"{key} must be an integer", "query"))
                continue
            if key == "page[size]":
                if not 1 <= n <= 1000:
                    rule, bound = ("min", {"minimum": 1}) if n < 1 else ("max", {"maximum": 1000})
                    problems.append(InvalidParameter(key, rule, "page[size] must be 1–1000", "query", **bound))  # type: ignore[arg-type]
                query.page_size = n
            else:
                if n < 1:
                    problems.append(InvalidParameter(key, "min", "page[number] must be 1 or more", "query", minimum=1))
                elif n > MAX_PAGE_NUMBER:
                    # the row offset must fit the databases' 64-bit integers (was a 500 from the driver)
                    problems.append(
                        InvalidParameter(
                            key,
                            "max",
                            f"page[number] must be at most {MAX_PAGE_NUMBER}",
                            "query",
                            maximum=MAX_PAGE_NUMBER,
                        )
                    )
                query.page_number = n
        elif key == "sort":
            parts = raw.strip().split()
            name = parts[0] if parts else ""
            desc = len(parts) > 1 and parts[1].lower() == "desc"
            if name not in spec.sorts or (len(parts) > 1 and parts[1].lower() not in ("asc", "desc")) or len(parts) > 2:
                problems.append(
                    InvalidParameter(
                        "sort",
                        "enum",
                        f"sort must be one of {', '.join(spec.sorts)}, optionally followed by ' desc'",
                        "query",
                        choices=list(spec.sorts),
                    )
                )
                continue
            query.sort, query.descending = name, desc
        elif key.startswith("filter["):
            inner = key[len("filter[") :]
            name, _, rest = inner.partition("]")
            op = "eq"
            if rest:
                if not (rest.startswith("[") and rest.endswith("]")):
                    problems.append(InvalidParameter(key, "unknown_property", f"{key} is not a filter", "query"))
                    continue
                op = rest[1:-1]
            kind = spec.filters.get(name)
            if kind is None:
                problems.append(
                    InvalidParameter(
                        key,
                        "unknown_property",
                        f"cannot filter on {name!r}; filters: {', '.join(sorted(spec.filters)) or 'none'}",
                        "query",
                    )
                )
                continue
            if op not in _OPS[kind]:
                problems.append(
                    InvalidParameter(
                        key,
                        "unknown_property",
                        f"filter operator {op!r} does not apply to {name}; use {', '.join(_OPS[kind])}",
                        "query",
                    )
                )
                continue
            raws = raw.split(",") if op in ("oeq", "ocontains") else [raw]
            values = tuple(_convert(kind, r, key, problems) for r in raws)
            query.filters.append(Filter(name, op, values))
        # other query parameters belong to the endpoint (e.g. force) and are checked there
    if problems:
        raise ValidationError(problems)
    return query
