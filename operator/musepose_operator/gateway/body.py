"""Reading a request body into a payload object, refusing what a JSON parser chokes on.

Everything malformed becomes a ``GatewayProblem`` naming the field or the payload, never an
exception escaping to a 500: non-UTF-8 bytes, nesting deeper than any payload needs (the
stdlib parser would hit the recursion limit), integers too long to be a number the API
takes (the stdlib refuses over 4300 digits with a ValueError), NaN/Infinity and duplicate
keys (ambiguous: which one wins?). Pure: no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from musepose_operator.admission.payload import PayloadProblem
from musepose_operator.gateway.problems import (
    GatewayProblem,
    bad_request,
    invalid_payload,
    unsupported_media_type,
)

JSON_MEDIA_TYPE = "application/json"
MAX_DEPTH = 16  # a payload is a flat object; 16 leaves room for any sane extension
MAX_INT_DIGITS = 20  # 2**64 has 20 digits; the largest number the API takes (seed) has 16


@dataclass(frozen=True)
class _Unrepresentable:
    """Stands in for a number the payload cannot hold, so the field can be named later."""

    why: str


def check_content_type(header: str | None) -> None:
    """Only application/json (optionally charset=utf-8): a browser cannot send that
    cross-site without a CORS preflight, which the gateway never grants."""
    media, _, params = (header or "").partition(";")
    if media.strip().lower() != JSON_MEDIA_TYPE:
        raise unsupported_media_type(media.strip())
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
                "utf-8", "utf8"):
            raise unsupported_media_type(f"{JSON_MEDIA_TYPE} with charset {value.strip()}")


def parse_payload(raw: bytes) -> dict[str, Any]:
    """The payload object in ``raw``, or a GatewayProblem (400) naming what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise bad_request("payload", f"not UTF-8: invalid byte at offset {err.start}") from None
    depth = _max_depth(text)
    if depth > MAX_DEPTH:
        raise bad_request("payload", f"JSON nested {depth} levels deep; at most {MAX_DEPTH}")
    try:
        data = json.loads(text, parse_int=_parse_int, parse_constant=_parse_constant,
                          object_pairs_hook=_unique_keys)
    except _DuplicateKey as dup:
        raise bad_request(dup.key, "appears more than once in the payload") from None
    except json.JSONDecodeError as err:
        raise bad_request(
            "payload", f"not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from None
    except (ValueError, RecursionError) as err:  # anything the parser still refuses
        raise bad_request("payload", f"not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise bad_request("payload", "must be a JSON object")
    problems = [PayloadProblem(path, value.why) for path, value in _unrepresentable(data)]
    if problems:
        raise invalid_payload(problems)
    return data


def _parse_int(digits: str) -> int | _Unrepresentable:
    count = len(digits.lstrip("-"))
    if count > MAX_INT_DIGITS:
        return _Unrepresentable(f"an integer of {count} digits is out of range")
    return int(digits)


def _parse_constant(name: str) -> _Unrepresentable:
    return _Unrepresentable(f"{name} is not a JSON number")


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _unrepresentable(value: Any, path: str = "") -> list[tuple[str, _Unrepresentable]]:
    if isinstance(value, _Unrepresentable):
        return [(path or "payload", value)]
    if isinstance(value, dict):
        return [hit for key, item in value.items()
                for hit in _unrepresentable(item, f"{path}.{key}" if path else key)]
    if isinstance(value, list):
        return [hit for i, item in enumerate(value)
                for hit in _unrepresentable(item, f"{path}[{i}]")]
    return []


def _max_depth(text: str) -> int:
    """The deepest [ / { nesting outside strings (a scan, no recursion)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


__all__ = ["JSON_MEDIA_TYPE", "GatewayProblem", "check_content_type", "parse_payload"]
