"""The schemathesis harness shared by the Management API and Portal API fuzz tests.

`fuzz(schema, labels, plan)` drives every named operation of the served OpenAPI document in-process, with valid
credentials, for a bounded number of positive and negative examples each, and checks every response:

* the four schemathesis checks of `CHECKS` (no 5xx; body, status code and content type as documented);
* use after free: a DELETE answered 2xx is followed by a GET of the same item, which must answer 404;
* resource availability: a POST answered 201 with an `id` is followed by a GET of the new item, which must
  answer 200 (when the document has a GET at `<collection>/{id}`).

The installed schemathesis (4.x) runs its own `use_after_free` / `ensure_resource_availability` only inside its
stateful engine, which needs links between operations our document does not declare; the two follow-up reads
above are the same checks, done deterministically after each case.

Most examples of an operation with path parameters go to seeded rows (`Plan.ids`), the others to random ids,
so the handlers past the 404 run. Every failing operation is reported, not just the first.
"""

from __future__ import annotations

import collections
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import hypothesis.errors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode, checks

# what the issue asks: no 5xx, and every response as documented (schema, status code, content type)
CHECKS = [
    checks.not_a_server_error,
    checks.response_schema_conformance,
    checks.status_code_conformance,
    checks.content_type_conformance,
]
#: KEYSTILE_TEST_FUZZ_SCALE=5 multiplies every example count (a longer local hunt; CI runs the committed counts)
SCALE = float(os.environ.get("KEYSTILE_TEST_FUZZ_SCALE", "1"))
METHODS = ("get", "put", "post", "patch", "delete", "head", "options", "trace")
PARAM = re.compile(r"\{[^}]+\}")


# The list operations read `page[size]`, `page[number]`, `sort` and `filter[field][op]` (management-api.md §1.3),
# which the served document does not declare, so schemathesis would never send them: the list operations get
# these drawn on top of each generated case (well-formed, malformed and unknown names alike).
_VISIBLE = st.characters(blacklist_categories=("Cs",))  # lone surrogates cannot be put in a URL at all
LIST_QUERY = st.dictionaries(
    st.one_of(
        st.sampled_from(
            [
                "page[size]",
                "page[number]",
                "sort",
                "filter[name]",
                "filter[name][eq]",
                "filter[name][neq]",
                "filter[name][contains]",
                "filter[name][oeq]",
                "filter[id][eq]",
                "filter[id][oeq]",
                "filter[status]",
                "filter[created_at][gte]",
                "filter[created_at][lt]",
                "filter[nope][eq]",
                "filter[name][bogus]",
                "filter[name][eq][eq]",
                "filter[]",
                "filter",
                "page",
                "page[size][x]",
            ]
        ),
        st.text(_VISIBLE, max_size=12),
    ),
    st.one_of(
        st.sampled_from(
            [
                "0",
                "-1",
                "1",
                "2",
                "100",
                "101",
                "1000",
                "99999999999999999999999",
                "1e3",
                "name",
                "-name",
                "created_at",
                "-created_at",
                "updated_at",
                "true",
                "false",
                "2026-01-01T00:00:00Z",
                "2026-13-45",
                "not-a-date",
                "00000000-0000-0000-0000-000000000000",
                "a,b",
                "",
            ]
        ),
        st.text(_VISIBLE, max_size=24),
    ),
    max_size=4,
)


# Creating POSTs honour an `Idempotency-Key` (management-api.md §1.5) the document does not declare either: every
# POST draws none, one of two shared keys (so replays and reuse with another body happen) or an arbitrary one.
_HEADER_TEXT = st.characters(min_codepoint=0x20, max_codepoint=0x7E)  # what an HTTP client can send as is
IDEMPOTENCY = st.one_of(
    st.just({}),
    st.sampled_from(["fuzz-key-1", "fuzz-key-2"]).map(lambda key: {"Idempotency-Key": key}),
    # surrounding spaces are refused by the HTTP client itself, before anything is sent
    st.text(_HEADER_TEXT, max_size=300).map(lambda key: {"Idempotency-Key": key.strip()}),
)


def list_operations(document: dict[str, Any]) -> set[str]:
    """GET operations on a collection (a path ending in a name, not a `{parameter}`) that answer a page."""
    lists = set()
    for path, item in document.get("paths", {}).items():
        get = item.get("get")
        if get is None or path.endswith("}"):
            continue
        schema = get.get("responses", {}).get("200", {}).get("content", {}).get("application/json", {}).get("schema")
        ref = (schema or {}).get("$ref", "")
        if ref.endswith("Page") or not ref:
            lists.add(f"GET {path}")
    return lists


def served_operations(document: dict[str, Any]) -> set[str]:
    """Every `METHOD /path` of an OpenAPI document."""
    return {
        f"{method.upper()} {path}"
        for path, item in document.get("paths", {}).items()
        for method in item
        if method in METHODS
    }


MANAGEMENT_API = "/v2/"
PORTAL_API = "/api/v2/"


def operations_of(document: dict[str, Any], prefix: str) -> set[str]:
    """The operations of one API: those whose path starts with `prefix` (`MANAGEMENT_API` or `PORTAL_API`)."""
    return {label for label in served_operations(document) if label.split(" ", 1)[1].startswith(prefix)}


def path_parameters(label: str) -> set[str]:
    return {name[1:-1] for name in PARAM.findall(label)}


def describe(exc: BaseException) -> str:
    """The failure with its sub-failures (schemathesis groups every failed check of one response)."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, BaseExceptionGroup):
        text += "".join(f"\n  - {describe(sub)}" for sub in exc.exceptions)
    return text


def label_of(operation: Any) -> str:
    return f"{operation.method.upper()} {operation.path}"


@dataclass
class Plan:
    """How to call the operations: credentials, which seeded ids to use, which calls to adjust."""

    headers: dict[str, str]
    #: path parameter name → a seeded row's id
    ids: dict[str, str] = field(default_factory=dict)
    #: operation label → path parameter overrides (e.g. a row only that operation may change)
    ids_for: dict[str, dict[str, str]] = field(default_factory=dict)
    #: JSON body field → a seeded row's id (top-level fields only)
    body_ids: dict[str, Any] = field(default_factory=dict)
    #: operation label → headers replacing `headers` (another kind of credential)
    headers_for: dict[str, dict[str, str]] = field(default_factory=dict)
    #: operation label → a function that adjusts a generated case before it is sent
    adjust: dict[str, Callable[[Any], None]] = field(default_factory=dict)
    #: operation labels run after all others (in this order), e.g. logout
    last: tuple[str, ...] = ()
    #: list operations: each case also carries drawn paging / filter / sort parameters (`LIST_QUERY`)
    lists: set[str] = field(default_factory=set)


@dataclass
class Report:
    statuses: dict[str, collections.Counter[int]]
    failures: dict[str, str]
    follow_ups: collections.Counter[str]
    seconds: dict[str, float]

    def summary(self) -> str:
        return "\n".join(
            f"{label}: {dict(sorted(c.items()))} {self.seconds.get(label, 0):.2f}s"
            for label, c in sorted(self.statuses.items())
        )

    def never_succeeded(self) -> set[str]:
        """Operations no example of which was answered 2xx."""
        return {label for label, c in self.statuses.items() if not any(200 <= code < 300 for code in c)}


def ordered(labels: Iterable[str], last: tuple[str, ...]) -> list[str]:
    """Reads and writes first; then the DELETEs, deepest path first (children before their parents); then `last`."""
    rest = [label for label in labels if label not in last]
    deletes = sorted((lb for lb in rest if lb.startswith("DELETE ")), key=lambda lb: (-lb.count("/"), lb))
    others = sorted(lb for lb in rest if not lb.startswith("DELETE "))
    return [*others, *deletes, *[lb for lb in last if lb in labels]]


def fuzz(
    schema: Any, labels: Iterable[str], plan: Plan, *, positive: int, negative: int, pick_seeded: int = 3
) -> Report:
    """Run every operation of `labels` for `positive` + `negative` examples; `Report.failures` names each failure.

    `pick_seeded` of every 4 examples use the seeded ids of `plan` (when the operation has those parameters).
    """
    operations = {label_of(op): op for op in (r.ok() for r in schema.get_all_operations())}
    gets = {op.path: op for op in operations.values() if op.method.upper() == "GET"}
    wanted = set(labels)
    positive, negative = round(positive * SCALE), round(negative * SCALE)
    report = Report({label: collections.Counter() for label in wanted}, {}, collections.Counter(), {})
    for label in ordered(wanted, plan.last):
        started = time.monotonic()
        run = _OperationRun(operations[label], label, plan, gets, report, pick_seeded)
        for mode, count in ((GenerationMode.POSITIVE, positive), (GenerationMode.NEGATIVE, negative)):
            if count > 0 and label not in report.failures:
                run.explore(mode, count)
        report.seconds[label] = time.monotonic() - started
    return report


class _OperationRun:
    """The examples of one operation: prepare, send, check, record."""

    def __init__(
        self, operation: Any, label: str, plan: Plan, gets: dict[str, Any], report: Report, pick_seeded: int
    ) -> None:
        self.operation = operation
        self.label = label
        self.plan = plan
        self.headers = plan.headers_for.get(label, plan.headers)
        self.ids = {**plan.ids, **plan.ids_for.get(label, {})}
        self.adjust = plan.adjust.get(label)
        self.gets = gets
        self.report = report
        self.pick_seeded = pick_seeded

    def explore(self, mode: GenerationMode, count: int) -> None:
        try:
            strategy = self.operation.as_strategy(generation_mode=mode)
        except Exception:  # nothing to generate in this mode (e.g. no parameter to break)
            return

        extras = LIST_QUERY if self.label in self.plan.lists else st.just({})
        headers = IDEMPOTENCY if self.label.startswith("POST ") else st.just({})

        @given(case=strategy, pick=st.integers(0, 3), extra=extras, extra_headers=headers)
        @settings(max_examples=count, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: Any, pick: int, extra: dict[str, str], extra_headers: dict[str, str]) -> None:
            # a failure is recorded, not raised: the API keeps state (rows deleted, sign-ups throttled), so
            # hypothesis' replay of a failing example would not see the same answer and report it as flaky
            if extra:
                case.query = {**(case.query or {}), **extra}
            if extra_headers:
                case.headers = {**(case.headers or {}), **extra_headers}
            try:
                self.send(case, pick, negative=mode is GenerationMode.NEGATIVE)
            except (Exception, BaseExceptionGroup) as exc:
                self.report.failures.setdefault(self.label, f"[{mode.value}] {describe(exc)}"[:4000])

        try:
            run()
        except hypothesis.errors.Unsatisfiable:
            return
        except (Exception, BaseExceptionGroup) as exc:  # collected, reported together at the end
            self.report.failures.setdefault(self.label, f"[{mode.value}] {describe(exc)}"[:4000])

    def send(self, case: Any, pick: int, *, negative: bool) -> None:
        if pick < self.pick_seeded:
            for name in list(case.path_parameters or {}):
                if name in self.ids:
                    case.path_parameters[name] = self.ids[name]
            if not negative and isinstance(case.body, dict):
                for name in list(case.body):
                    if name in self.plan.body_ids:
                        case.body[name] = self.plan.body_ids[name]
        if self.adjust is not None:
            self.adjust(case)
        response = case.call(headers=self.headers)
        self.report.statuses[self.label][response.status_code] += 1
        if not negative:
            case.validate_response(response, checks=CHECKS, headers=self.headers)
            self.follow_up(case, response)
            return
        # negative data: no 5xx, and the answer is one of the documented ones; the data is invalid, yet a 2xx is
        # possible (e.g. a broken optional header the server ignores), so the body is checked on errors only
        case.validate_response(
            response,
            checks=[checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance],
            headers=self.headers,
        )
        if response.status_code >= 400:
            case.validate_response(response, checks=[checks.response_schema_conformance], headers=self.headers)

    def follow_up(self, case: Any, response: Any) -> None:
        method = case.operation.method.upper()
        if method == "DELETE" and 200 <= response.status_code < 300 and case.path_parameters:
            item = self.gets.get(case.operation.path)
            if item is not None:
                again = item.Case(path_parameters=dict(case.path_parameters)).call(headers=self.headers)
                self.report.follow_ups["use_after_free"] += 1
                assert again.status_code == 404, (
                    f"use after free: DELETE {case.formatted_path} answered {response.status_code}, "
                    f"then GET answered {again.status_code}: {again.text[:300]}"
                )
        if method == "POST" and response.status_code == 201 and response.content:
            body = response.json()
            prefix = case.operation.path + "/"
            item = next(
                (
                    g
                    for path, g in self.gets.items()
                    if path.startswith(prefix) and PARAM.fullmatch(path[len(prefix) :])
                ),
                None,
            )
            if item is not None and isinstance(body, dict) and "id" in body:
                new = PARAM.findall(item.path)[-1][1:-1]
                params = {**(case.path_parameters or {}), new: body["id"]}
                again = item.Case(path_parameters=params).call(headers=self.headers)
                self.report.follow_ups["ensure_resource_availability"] += 1
                assert again.status_code == 200, (
                    f"resource availability: POST {case.formatted_path} created {body['id']}, "
                    f"then GET {item.path} answered {again.status_code}: {again.text[:300]}"
                )
                item.validate_response(again)
