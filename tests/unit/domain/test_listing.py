import uuid

import pytest

from keystile.domain.errors import ValidationError
from keystile.domain.listing import ListSpec, parse_list_query

SPEC = ListSpec(
    filters={"name": "string", "id": "uuid", "active": "bool", "created_at": "datetime"}, sorts=("created_at", "name")
)


def test_defaults_and_full_query():
    q = parse_list_query([], SPEC)
    assert (q.page_number, q.page_size, q.sort, q.descending, q.filters) == (1, 100, "created_at", False, [])
    uid = uuid.uuid4()
    q = parse_list_query(
        [
            ("page[size]", "5"),
            ("page[number]", "2"),
            ("sort", "name desc"),
            ("filter[name][ocontains]", "a,b"),
            ("filter[id]", str(uid)),
            ("filter[active][eq]", "true"),
            ("filter[created_at][gte]", "2026-01-01T00:00:00Z"),
            ("force", "true"),
        ],
        SPEC,
    )
    assert (q.page_number, q.page_size, q.sort, q.descending) == (2, 5, "name", True)
    assert [(f.field, f.op, f.values) for f in q.filters][:3] == [
        ("name", "ocontains", ("a", "b")),
        ("id", "eq", (uid,)),
        ("active", "eq", (True,)),
    ]


def test_every_problem_reported_at_once():
    with pytest.raises(ValidationError) as info:
        parse_list_query(
            [
                ("page[size]", "1001"),
                ("page[number]", "x"),
                ("sort", "name sideways"),
                ("filter[id][contains]", "x"),
                ("filter[nope]", "1"),
                ("filter[active]", "yes"),
            ],
            SPEC,
        )
    got = {(i.field, i.rule) for i in info.value.items}
    assert got == {
        ("page[size]", "max"),
        ("page[number]", "is_integer"),
        ("sort", "enum"),
        ("filter[id][contains]", "unknown_property"),
        ("filter[nope]", "unknown_property"),
        ("filter[active]", "is_boolean"),
    }
    assert all(i.source == "query" for i in info.value.items)
