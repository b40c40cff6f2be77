"""Rules for the locations an Animation names, shared by the models and the CRD's CEL rules.

The regular expressions are RE2-compatible so the very same text serves Python's ``re``,
the OpenAPI ``pattern`` and CEL's ``matches()``.
"""

from __future__ import annotations

import re
from typing import Any

from musepose_runner.contract import INPUT_LOCATION_PATTERN, OUTPUT_LOCATION_PATTERN

MAX_LOCATION_LENGTH = 2048

# https hosts that can never be fetched: IP literals (the allow-list names DNS hosts only),
# localhost and names that only resolve inside a cluster or a LAN.
FORBIDDEN_HTTPS_HOST_PATTERN = (
    r"^https://(localhost|[0-9.]+|\[[0-9a-fA-F:.]+\]"
    r"|[^/:]*\.(local|localdomain|internal|svc|lan|home\.arpa))\.?(:[0-9]+)?(/.*)?$"
)
# '..' as a whole path segment would let a plain path escape the shared data volume.
DOT_DOT_SEGMENT_PATTERN = r"(^|/)\.\.(/|$)"

HTTPS_HOST_MESSAGE = (
    "https locations must name a public DNS host: not localhost, an IP address "
    "or a cluster-internal name"
)
DOT_DOT_MESSAGE = "locations may not contain '..' path segments"
INPUT_FORM_MESSAGE = "must be s3://bucket/key, https://host/path or an absolute path"
OUTPUT_FORM_MESSAGE = "must be s3://bucket/key or an absolute path (https is for inputs only)"

_INPUT = re.compile(INPUT_LOCATION_PATTERN)
_OUTPUT = re.compile(OUTPUT_LOCATION_PATTERN)
_FORBIDDEN_HTTPS = re.compile(FORBIDDEN_HTTPS_HOST_PATTERN)
_DOT_DOT = re.compile(DOT_DOT_SEGMENT_PATTERN)


def input_location_problem(value: str) -> str | None:
    """Why ``value`` is not an acceptable input location, or None when it is."""
    if not _INPUT.match(value):
        return f"{value!r} {INPUT_FORM_MESSAGE}"
    if _FORBIDDEN_HTTPS.match(value):
        return f"{value!r}: {HTTPS_HOST_MESSAGE}"
    if _DOT_DOT.search(value):
        return f"{value!r}: {DOT_DOT_MESSAGE}"
    return None


def output_location_problem(value: str) -> str | None:
    """Why ``value`` is not an acceptable output location, or None when it is."""
    if not _OUTPUT.match(value):
        return f"{value!r} {OUTPUT_FORM_MESSAGE}"
    if _DOT_DOT.search(value):
        return f"{value!r}: {DOT_DOT_MESSAGE}"
    return None


def input_location_cel_rules() -> Any:
    """CEL rules for an input location field (the pattern itself is an OpenAPI pattern)."""
    return [
        {"rule": f"!self.matches('{_cel_escape(FORBIDDEN_HTTPS_HOST_PATTERN)}')",
         "message": HTTPS_HOST_MESSAGE},
        {"rule": f"!self.matches('{_cel_escape(DOT_DOT_SEGMENT_PATTERN)}')",
         "message": DOT_DOT_MESSAGE},
    ]


def output_location_cel_rules() -> Any:
    return [
        {"rule": f"!self.matches('{_cel_escape(DOT_DOT_SEGMENT_PATTERN)}')",
         "message": DOT_DOT_MESSAGE},
    ]


def _cel_escape(pattern: str) -> str:
    """A regular expression as a single-quoted CEL string literal body."""
    return pattern.replace("\\", "\\\\").replace("'", "\\'")
