"""Hostile OpenAPI uploads to the specification reader (domain/catalog.read_specification): random text, random
YAML/JSON structures, alias bombs and alias cycles are refused with `invalid_parameters` on `content` — never an
exception, never a hang. Bounded examples; each bomb must be refused within a second."""

from __future__ import annotations

import base64
import json
import time

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keystile.domain.catalog import MAX_YAML_NODES, read_specification

FUZZ = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

yaml_noise = st.text(alphabet=st.sampled_from(list("ab:- \n\t{}[],&*!|>'\"#%@`?0123456789.")), max_size=400)
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
trees = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)


def _refused_or_valid(raw: str) -> None:
    text, problems = read_specification(raw)
    assert isinstance(text, str)
    for problem in problems:
        assert problem.field == "content"
        assert problem.reason


@FUZZ
@given(yaml_noise)
def test_random_yaml_text_is_refused_or_read(raw: str) -> None:
    _refused_or_valid(raw)


@FUZZ
@given(trees, st.sampled_from(["yaml", "json", "base64"]))
def test_random_documents_are_refused_or_read(tree: object, form: str) -> None:
    doc = {"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {}, "x-fuzz": tree}
    if form == "yaml":
        raw = yaml.safe_dump(doc)
    elif form == "json":
        raw = json.dumps(doc)
    else:
        raw = base64.b64encode(yaml.safe_dump(doc).encode()).decode()
    _refused_or_valid(raw)


@FUZZ
@given(trees)
def test_random_openapi_fields_are_refused_or_read(tree: object) -> None:
    doc = {"openapi": "3.0.3", "info": tree, "paths": {"/x": {"get": tree}}}
    _refused_or_valid(yaml.safe_dump(doc))


def _bomb(width: int, depth: int) -> str:
    lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, depth):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "openapi: 3.0.3\n" + "\n".join(lines) + "\n"


@settings(max_examples=25, deadline=None, database=None)
@given(st.integers(min_value=4, max_value=30), st.integers(min_value=0, max_value=4))
def test_alias_bombs_are_refused_quickly(width: int, extra: int) -> None:
    depth = 1
    while width**depth <= MAX_YAML_NODES:
        depth += 1
    depth += extra
    raw = _bomb(width, depth)
    started = time.monotonic()
    _, problems = read_specification(raw)
    elapsed = time.monotonic() - started
    assert width**depth > MAX_YAML_NODES
    assert [p.field for p in problems] == ["content"]
    assert "aliases" in problems[0].reason
    assert elapsed < 1.0, f"{width}x{depth} took {elapsed:.2f}s"


def test_billion_laughs_base64_and_a_cycle_are_refused() -> None:
    for raw in (_bomb(10, 9), base64.b64encode(_bomb(10, 9).encode()).decode(), "openapi: 3.0.3\nx: &a [*a, *a]\n"):
        _, problems = read_specification(raw)
        assert len(problems) == 1 and "aliases" in problems[0].reason, problems


def test_python_tags_are_not_constructed() -> None:
    _, problems = read_specification("openapi: 3.0.3\nx: !!python/object/apply:os.system ['touch /tmp/pwned']\n")
    assert problems and "not valid YAML" in problems[0].reason
