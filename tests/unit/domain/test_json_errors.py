import json

import pytest

from keystile.api.body import describe_json_error


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ('{"a": {"b": "c"}', "expected ',' or '}' but the body ended; a closing brace is probably missing"),
        ('{"a": [1, 2', "expected ',' or ']' but the body ended; a closing bracket is probably missing"),
        ('{"a": 1,, "b": 2}', "expecting property name enclosed in double quotes"),
        ('{"a": "}{"', "a closing brace is probably missing"),  # braces inside strings do not count
    ],
)
def test_parser_message_with_position(doc, expected):
    with pytest.raises(json.JSONDecodeError) as info:
        json.loads(doc)
    text = describe_json_error(info.value)
    assert text.startswith(
        f"malformed JSON at line {info.value.lineno}, column {info.value.colno} (char {info.value.pos})"
    )
    assert expected in text
