"""Reading JSON request bodies: media type (415), size (413), and malformed JSON explained (400)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from keystile.domain.errors import PayloadTooLargeError, UnsupportedMediaTypeError, ValidationError

__all__ = ["MAX_BODY", "MAX_SPEC_BODY", "describe_json_error", "read_json"]

MAX_BODY = 1024 * 1024
MAX_SPEC_BODY = 8 * 1024 * 1024


async def read_json(request: Request, *, max_bytes: int = MAX_BODY, required: bool = True) -> Any:
    """The request's JSON body.

    Raises:
        UnsupportedMediaTypeError: a body with a Content-Type other than JSON.
        PayloadTooLargeError: a body over `max_bytes`.
        ValidationError: malformed or too deeply nested JSON, or no body when one is required.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLargeError(f"The request body is larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLargeError(f"The request body is larger than {max_bytes} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        if required:
            raise ValidationError.single("body", "required", "a JSON object body is required")
        return None
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype and not (ctype == "application/json" or ctype.endswith("+json")):
        raise UnsupportedMediaTypeError(f"The request body must be application/json, not {ctype}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError.single("body", "invalid", f"the body is not UTF-8 (byte {exc.start})") from exc
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError.single("body", "invalid", describe_json_error(exc)) from exc
    except RecursionError as exc:  # arrays or objects nested deeper than the parser's recursion limit
        raise ValidationError.single("body", "invalid", "the JSON body nests arrays or objects too deeply") from exc
    if "\\u" in text:  # only an escape can spell a lone surrogate; the UTF-8 decode above refused raw ones
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValidationError.single(
                "body", "invalid", "a string holds a lone UTF-16 surrogate escape (\\ud800-\\udfff), which is not text"
            ) from exc
    return value


def _open_brackets(doc: str, end: int) -> list[str]:
    """The brackets still open at `end`, outermost first (strings skipped)."""
    stack: list[str] = []
    in_string = False
    escaped = False
    for ch in doc[:end]:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append(ch)
        elif ch in "}]" and stack:
            stack.pop()
    return stack


def describe_json_error(exc: json.JSONDecodeError) -> str:
    """A sentence with the parser message, line, column and offset, saying when the body ended early."""
    where = f"malformed JSON at line {exc.lineno}, column {exc.colno} (char {exc.pos})"
    ended = exc.doc[exc.pos :].strip() == ""
    if not ended:
        return f"{where}: {exc.msg[0].lower()}{exc.msg[1:]}"
    stack = _open_brackets(exc.doc, exc.pos)
    if stack and stack[-1] == "{":
        return f"{where}: expected ',' or '}}' but the body ended; a closing brace is probably missing"
    if stack and stack[-1] == "[":
        return f"{where}: expected ',' or ']' but the body ended; a closing bracket is probably missing"
    return f"{where}: the body ended early ({exc.msg[0].lower()}{exc.msg[1:]})"
