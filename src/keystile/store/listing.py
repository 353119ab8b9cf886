"""Applying a ListQuery to a SQLAlchemy select: filters, count, sort with `id` as tie-breaker, paging."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from keystile.domain.listing import ListQuery

__all__ = ["paginate"]


def _condition(column: ColumnElement[Any], op: str, values: tuple[object, ...]) -> ColumnElement[bool]:
    if op == "eq":
        return column == values[0]
    if op == "neq":
        return column != values[0]
    if op == "contains":
        return func.lower(column).contains(str(values[0]).lower(), autoescape=True)
    if op == "oeq":
        return column.in_(values)
    if op == "ocontains":
        return or_(*(func.lower(column).contains(str(v).lower(), autoescape=True) for v in values))
    if op == "lt":
        return column < values[0]
    if op == "lte":
        return column <= values[0]
    if op == "gt":
        return column > values[0]
    if op == "gte":
        return column >= values[0]
    raise ValueError(f"unknown operator {op}")  # parse_list_query admits only the ops above


async def paginate(
    session: AsyncSession,
    stmt: Any,
    query: ListQuery,
    columns: Mapping[str, Any],
    id_column: Any,
) -> tuple[list[Any], int]:
    """Rows of the requested page and the total count after filtering."""
    for flt in query.filters:
        cond = _condition(columns[flt.field], flt.op, flt.values)
        stmt = stmt.where(cond if flt.op != "neq" else or_(cond, columns[flt.field].is_(None)))
    total = (await session.execute(select(func.count()).select_from(stmt.order_by(None).subquery()))).scalar_one()
    sort_col = columns[query.sort]
    order = [sort_col.desc(), id_column.desc()] if query.descending else [sort_col.asc(), id_column.asc()]
    stmt = stmt.order_by(*order).limit(query.page_size).offset((query.page_number - 1) * query.page_size)
    rows = list((await session.execute(stmt)).all())
    return rows, total
