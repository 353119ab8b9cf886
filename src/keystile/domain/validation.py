"""Validation of API input: pydantic models whose errors become Konnect-style `invalid_parameters`.

Models use `StrictModel` (unknown keys forbidden, no type coercion) and raise `rule_error(rule, reason)` for
rules pydantic has no name for; `parse(model, raw)` runs one pass and returns the model or every problem.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

from keystile.domain.errors import InvalidParameter, ValidationError

__all__ = [
    "LABEL_VALUE",
    "StrictModel",
    "dotted",
    "errors_to_params",
    "parse",
    "rule_error",
    "validate_labels",
]

M = TypeVar("M", bound=BaseModel)

LABEL_VALUE = re.compile(r"^[a-z0-9A-Z]{1}([a-z0-9A-Z-._]*[a-z0-9A-Z]+)?$")
_RESERVED_LABEL_PREFIXES = ("kong", "konnect", "mesh", "kic", "_")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


def rule_error(rule: str, reason: str, **extra: Any) -> PydanticCustomError:
    """A validator error that keeps keystile's rule name (`is_label`, `enum`, `missing_reference`…)."""
    return PydanticCustomError(rule, reason, extra or None)


def dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


_TYPE_RULES = {
    "string_type": ("is_string", "must be a string"),
    "int_type": ("is_integer", "must be an integer"),
    "int_parsing": ("is_integer", "must be an integer"),
    "int_from_float": ("is_integer", "must be an integer"),
    "bool_type": ("is_boolean", "must be true or false"),
    "bool_parsing": ("is_boolean", "must be true or false"),
    "list_type": ("is_array", "must be an array"),
    "dict_type": ("is_object", "must be an object"),
    "model_type": ("is_object", "must be an object"),
    "model_attributes_type": ("is_object", "must be an object"),
    "uuid_type": ("is_uuid", "must be a UUID"),
    "uuid_parsing": ("is_uuid", "must be a UUID"),
    "datetime_type": ("is_date_time", "must be an RFC 3339 date-time"),
    "datetime_parsing": ("is_date_time", "must be an RFC 3339 date-time"),
    "float_type": ("type", "must be a number"),
    "none_required": ("type", "must be null"),
    "url_type": ("type", "must be a URL string"),
    "url_parsing": ("type", "must be an absolute URL"),
    "url_scheme": ("type", "must be an http or https URL"),
}


def _item_for(err: Any, source: str, prefix: Sequence[str | int]) -> InvalidParameter | None:
    loc = [*prefix, *[p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))]]
    field = dotted(loc)
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return InvalidParameter(field, "required", f"{field} is required", source)
    if kind == "extra_forbidden":
        return InvalidParameter(field, "unknown_property", f"{field} is not a known property", source)
    if kind in _TYPE_RULES:
        rule, text = _TYPE_RULES[kind]
        return InvalidParameter(field, rule, f"{field} {text}", source)
    if kind in ("literal_error", "enum") and "expected" in ctx:
        choices = _choices(ctx.get("expected", ""))
        return InvalidParameter(field, "enum", f"{field} must be one of: {', '.join(choices)}", source, choices=choices)
    if kind == "string_too_short":
        n = ctx.get("min_length")
        return InvalidParameter(field, "min_length", f"{field} must be at least {n} characters", source, minimum=n)
    if kind == "string_too_long":
        n = ctx.get("max_length")
        return InvalidParameter(field, "max_length", f"{field} must be at most {n} characters", source, maximum=n)
    if kind == "too_short":
        n = ctx.get("min_length")
        return InvalidParameter(field, "min_items", f"{field} must have at least {n} items", source, minimum=n)
    if kind == "too_long":
        n = ctx.get("max_length")
        return InvalidParameter(field, "max_items", f"{field} must have at most {n} items", source, maximum=n)
    if kind in ("greater_than_equal", "greater_than"):
        n = ctx.get("ge", ctx.get("gt"))
        return InvalidParameter(field, "min", f"{field} must be at least {n}", source, minimum=n)
    if kind in ("less_than_equal", "less_than"):
        n = ctx.get("le", ctx.get("lt"))
        return InvalidParameter(field, "max", f"{field} must be at most {n}", source, maximum=n)
    if kind == "string_pattern_mismatch":
        return InvalidParameter(field, "matches_regex", f"{field} must match {ctx.get('pattern')}", source)
    if kind == "value_error":
        message = str(ctx.get("error", err.get("msg", "is invalid")))
        return InvalidParameter(field, "invalid", message, source)
    # PydanticCustomError: the type is keystile's rule, the message its reason, ctx its extras
    extras = {k: ctx[k] for k in ("choices", "minimum", "maximum", "dependents") if k in ctx}
    reason = err.get("msg") or f"{field} is invalid"
    return InvalidParameter(field, kind, reason, source, **extras)


def _choices(expected: str) -> list[str]:
    return [c.strip().strip("'\"") for c in re.split(r",| or ", expected) if c.strip().strip("'\"")]


def errors_to_params(
    exc: pydantic.ValidationError, source: str = "body", prefix: Sequence[str | int] = ()
) -> list[InvalidParameter]:
    items: list[InvalidParameter] = []
    seen: set[tuple[str, str]] = set()
    for err in exc.errors(include_url=False):
        item = _item_for(err, source, prefix)
        if item is not None and (item.field, item.rule) not in seen:
            seen.add((item.field, item.rule))
            items.append(item)
    return items


def parse(model: type[M], raw: Any, *, extra_items: Iterable[InvalidParameter] = ()) -> M:
    """Validate `raw` against `model`; raise one ValidationError with every problem found."""
    extra = list(extra_items)
    if not isinstance(raw, dict):
        raise ValidationError([InvalidParameter("body", "is_object", "the body must be a JSON object"), *extra])
    try:
        value = model.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise ValidationError(errors_to_params(exc) + extra) from exc
    if extra:
        raise ValidationError(extra)
    return value


def validate_labels(value: dict[str, Any] | None, *, allow_null: bool = False) -> dict[str, Any] | None:
    """Konnect label rules (management-api.md §1.4); raises a rule_error('is_label')."""
    if value is None:
        return None
    if len(value) > 50:
        raise rule_error("max_items", "labels may hold at most 50 keys", maximum=50)
    for key, val in value.items():
        if not 1 <= len(key) <= 63 or key.startswith(_RESERVED_LABEL_PREFIXES):
            raise rule_error(
                "is_label",
                f"label key {key!r} must be 1–63 characters and not start with kong, konnect, mesh, kic or _",
            )
        if val is None and allow_null:
            continue
        if not isinstance(val, str) or not 1 <= len(val) <= 63 or not LABEL_VALUE.match(val):
            raise rule_error(
                "is_label",
                f"label {key!r} must be 1–63 letters, digits, '-', '_' or '.', starting and ending with a letter "
                "or digit",
            )
    return value
