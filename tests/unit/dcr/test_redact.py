"""`redact` removes every secret of §1.4 (the test STYLE.md asks for)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from keystile.dcr.redact import MASK, SECRET_FIELDS, redact


@pytest.mark.parametrize("field", SECRET_FIELDS)
def test_json_form_repr_and_colon_values_of_each_secret_field_are_removed(field):
    text = (
        f'{{"{field}": "json-value-1234", "other": "keep-me"}} '
        f"{field}=form-value-5678&next=keep-too "
        f"{{'{field}': 'repr-value-9012'}} "
        f"{field}: plain-value-3456"
    )
    out = redact(text)
    for value in ("json-value-1234", "form-value-5678", "repr-value-9012", "plain-value-3456"):
        assert value not in out
    assert "keep-me" in out
    assert "next=keep-too" in out
    assert out.count(MASK) == 4


def test_named_fields_from_the_style_guide():
    body = (
        '{"client_id":"abc","client_secret":"s3cr3t-value","registration_access_token":"rat-value-1",'
        '"api_key":"key_value_123456","dcr_token":"00okta-token"}'
    )
    out = redact(body)
    assert out == (
        '{"client_id":"abc","client_secret":"[REDACTED]","registration_access_token":"[REDACTED]",'
        '"api_key":"[REDACTED]","dcr_token":"[REDACTED]"}'
    )


def test_escaped_quotes_inside_a_json_value_do_not_leak_the_rest():
    out = redact(r'{"password": "ab\"cd-tail", "x": 1}')
    assert "cd-tail" not in out
    assert '"x": 1' in out


@pytest.mark.parametrize("scheme", ["Bearer", "SSWS", "Basic", "bearer"])
def test_authorization_scheme_values_are_removed(scheme):
    out = redact(f"Authorization: {scheme} abc.DEF-123_x/y+z==; next")
    assert "abc.DEF" not in out
    assert out == f"Authorization: {scheme} {MASK}; next"


def test_known_secrets_are_removed_anywhere_also_percent_encoded():
    secret = SecretStr("p@ss word/+=")
    text = "echo p@ss word/+= and p%40ss%20word%2F%2B%3D and p%40ss+word%2F%2B%3D"
    out = redact(text, [secret, "another-known", None, ""])
    assert "p@ss" not in out
    assert "p%40ss" not in out
    assert out == f"echo {MASK} and {MASK} and {MASK}"
    assert redact("x another-known y", ["another-known"]) == f"x {MASK} y"


def test_very_short_known_values_are_ignored_and_plain_text_is_untouched():
    assert redact("a normal sentence with abc", ["abc"]) == "a normal sentence with abc"
    assert redact("client_name: Orders (ks-0123456789ab)") == "client_name: Orders (ks-0123456789ab)"
