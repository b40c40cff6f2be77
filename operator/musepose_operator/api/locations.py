"""Rules for the locations an Animation names, shared by the models and the CRD's CEL rules.

The regular expressions are RE2-compatible so the very same text serves Python's ``re``,
the OpenAPI ``pattern`` and CEL's ``matches()``. Python compiles them with ``re.ASCII`` so
``\\s`` means the same ASCII whitespace it means in RE2.
"""

from __future__ import annotations

import re
from typing import Any

from musepose_runner.contract import (
    INPUT_LOCATION_PATTERN,
    OUTPUT_LOCATION_PATTERN,
    is_input_location,
    is_output_location,
)

MAX_LOCATION_LENGTH = 2048

# https hosts that can never be fetched: IP literals (the allow-list names DNS hosts only),
# localhost and names that only resolve inside a cluster or a LAN.
FORBIDDEN_HTTPS_HOST_PATTERN = (
    r"^https://(localhost|[0-9.]+|\[[0-9a-fA-F:.]+\]"
    r"|[^/:]*\.(local|localdomain|internal|svc|lan|home\.arpa))\.?(:[0-9]+)?(/.*)?$"
)
# An https location names an ASCII DNS host, an optional numeric port and a path: no user
# info ('user@'), no bracketed or malformed host ('[zz]', 'host:abc', full-width '＠').
HTTPS_FORM_PATTERN = (
    r"^https://[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?(:[0-9]{1,5})?(/.*)?$"
)
# '..' as a whole path segment would let a plain path escape the shared data volume.
DOT_DOT_SEGMENT_PATTERN = r"(^|/)\.\.(/|$)"
# Bytes no location ever needs: they are how keys get silently altered or logs forged.
CONTROL_CHARACTER_PATTERN = r"[\x00-\x1f\x7f]"
# No file system takes a path component longer than 255 bytes.
LONG_COMPONENT_PATTERN = r"[^/]{256,}"
# In an S3 key or a data-volume path (the part after s3://bucket, or the whole path):
# an empty segment ('//') or a '.' segment, which clients and file systems normalise away,
# so the object written would not be the one named (and a prefix check would be fooled).
EMPTY_SEGMENT_PATTERN = r"^(s3://[^/]*)?/(/|.*//)"
DOT_SEGMENT_PATTERN = r"^(s3://[^/]*)?/(.*/)?\.(/|$)"
# '#' and '?' in an S3 key are cut off by URL handling: the poster once overwrote its video.
S3_URL_SYNTAX_PATTERN = r"^s3://[^/]*/.*[#?]"
S3_DIRECTORY_PATTERN = r"^s3://.*/$"

HTTPS_HOST_MESSAGE = (
    "https locations must name a public DNS host: not localhost, an IP address "
    "or a cluster-internal name"
)
HTTPS_FORM_MESSAGE = (
    "https locations must be https://host[:port]/path with an ASCII DNS host name "
    "(no user info, no IP literal)"
)
DOT_DOT_MESSAGE = "locations may not contain '..' path segments"
CONTROL_CHARACTER_MESSAGE = "locations may not contain control characters"
LONG_COMPONENT_MESSAGE = "location path components may be at most 255 characters long"
EMPTY_SEGMENT_MESSAGE = "locations may not contain empty path segments ('//')"
DOT_SEGMENT_MESSAGE = "locations may not contain '.' path segments"
S3_URL_SYNTAX_MESSAGE = "s3 keys may not contain '#' or '?'"
S3_DIRECTORY_MESSAGE = "s3 locations must name an object, not end with '/'"
INPUT_FORM_MESSAGE = "must be s3://bucket/key, https://host/path or an absolute path"
OUTPUT_FORM_MESSAGE = "must be s3://bucket/key or an absolute path (https is for inputs only)"

# (pattern that must NOT match, message), checked in this order after the form.
_COMMON_RULES: tuple[tuple[str, str], ...] = (
    (CONTROL_CHARACTER_PATTERN, CONTROL_CHARACTER_MESSAGE),
    (DOT_DOT_SEGMENT_PATTERN, DOT_DOT_MESSAGE),
    (DOT_SEGMENT_PATTERN, DOT_SEGMENT_MESSAGE),
    (EMPTY_SEGMENT_PATTERN, EMPTY_SEGMENT_MESSAGE),
    (S3_URL_SYNTAX_PATTERN, S3_URL_SYNTAX_MESSAGE),
    (S3_DIRECTORY_PATTERN, S3_DIRECTORY_MESSAGE),
    (LONG_COMPONENT_PATTERN, LONG_COMPONENT_MESSAGE),
)
_INPUT_RULES: tuple[tuple[str, str], ...] = (
    (FORBIDDEN_HTTPS_HOST_PATTERN, HTTPS_HOST_MESSAGE),
    *_COMMON_RULES,
)


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.ASCII)


_INPUT = _compile(INPUT_LOCATION_PATTERN)
_OUTPUT = _compile(OUTPUT_LOCATION_PATTERN)
_HTTPS_FORM = _compile(HTTPS_FORM_PATTERN)
_COMPILED = {pattern: _compile(pattern) for pattern, _ in _INPUT_RULES}


def _shown(value: str) -> str:
    """The value as messages quote it: escaped, and cut when long."""
    return repr(value if len(value) <= 160 else value[:160] + "…")


def _first_problem(value: str, rules: tuple[tuple[str, str], ...]) -> str | None:
    for pattern, message in rules:
        if _COMPILED[pattern].search(value):
            return f"{_shown(value)}: {message}"
    return None


def input_location_problem(value: str) -> str | None:
    """Why ``value`` is not an acceptable input location, or None when it is."""
    # The contract's own check too: it reads \s as any Unicode space, as the runner does.
    if not (_INPUT.fullmatch(value) and is_input_location(value)):
        return f"{_shown(value)} {INPUT_FORM_MESSAGE}"
    if value.startswith("https://") and not _HTTPS_FORM.fullmatch(value):
        return f"{_shown(value)}: {HTTPS_FORM_MESSAGE}"
    return _first_problem(value, _INPUT_RULES)


def output_location_problem(value: str) -> str | None:
    """Why ``value`` is not an acceptable output location, or None when it is."""
    if not (_OUTPUT.fullmatch(value) and is_output_location(value)):
        return f"{_shown(value)} {OUTPUT_FORM_MESSAGE}"
    return _first_problem(value, _COMMON_RULES)


def _forbid(pattern: str, message: str) -> dict[str, str]:
    return {"rule": f"!self.matches('{_cel_escape(pattern)}')", "message": message}


def input_location_cel_rules() -> Any:
    """CEL rules for an input location field (the form itself is an OpenAPI pattern)."""
    https_form = {
        "rule": f"!self.startsWith('https://') || self.matches('{_cel_escape(HTTPS_FORM_PATTERN)}')",
        "message": HTTPS_FORM_MESSAGE,
    }
    return [https_form, *(_forbid(p, m) for p, m in _INPUT_RULES)]


def output_location_cel_rules() -> Any:
    return [_forbid(p, m) for p, m in _COMMON_RULES]


def _cel_escape(pattern: str) -> str:
    """A regular expression as a single-quoted CEL string literal body."""
    return pattern.replace("\\", "\\\\").replace("'", "\\'")
