"""The one home of the storage-location rules that the operator and the runner share. Pure.

The operator may import this module (and ``contract``) and nothing else of the runner: the
CRD's patterns and CEL rules, the operator's admission-time checks, the runner's second
lock and its data-volume scope all read the definitions below.

The regular expressions are RE2-compatible so the very same text serves Python's ``re``
(compiled with ``re.ASCII``, so ``\\s`` means the ASCII whitespace it means in RE2), the
OpenAPI ``pattern`` and CEL's ``matches()``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

# Constants both sides use.
SCOPE_VIOLATION = "StorageScopeViolation"  # the reason a location outside the scope gets
LOWER_VRAM_SIZE = 512  # the render size of lowerVram (and of the out-of-memory fallback)
HTTPS_PORT = 443
MAX_LOCATION_LENGTH = 2048

# A location is s3://bucket/key, https://host/path (inputs only) or an absolute path on the
# shared data volume.
S3_LOCATION = r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]/[^\s]+"
HTTPS_LOCATION = r"https://[^\s/?#]+(/[^\s]*)?"
PATH_LOCATION = r"/[^\s]*[^\s/]"
INPUT_LOCATION_PATTERN = rf"^({S3_LOCATION}|{HTTPS_LOCATION}|{PATH_LOCATION})$"
OUTPUT_LOCATION_PATTERN = rf"^({S3_LOCATION}|{PATH_LOCATION})$"

# A port an https location may name: 1-65535, no leading zero.
PORT_PATTERN = (r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}"
                r"|655[0-2][0-9]|6553[0-5])")
# An https location names an ASCII DNS host, an optional port and a path: no user info
# ('user@'), no bracketed or malformed host ('[zz]', '[::1]', 'host:abc', full-width '＠').
HTTPS_FORM_PATTERN = (
    r"^https://[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    rf"(\.[A-Za-z0-9]([A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?)*\.?(:{PORT_PATTERN})?(/.*)?$"
)
# https hosts that can never be fetched, in any letter case: a host whose last label is a
# number in any notation (browsers and resolvers read '0xa9fea9fe', '2852039166',
# '0251.0376.0251.0376' and '169.254.169.254' as addresses), localhost, a single label
# (completed by the cluster's DNS search path), and names that resolve only inside a
# cluster or a LAN (kubernetes.default, *.svc, *.cluster.local, *.internal, ...).
_NUMERIC_LAST_LABEL = r"([^/:?#]*\.)?([0-9]+|0x[0-9a-f]*)"
_INTERNAL_SUFFIX = (r"[^/:?#]*\.(local|localdomain|internal|svc|lan|home\.arpa|default"
                    r"|kube-system|kube-public|cluster\.local)")
FORBIDDEN_HTTPS_HOST_PATTERN = (
    rf"(?i)^https://(localhost|[^/:?#.]+|{_NUMERIC_LAST_LABEL}|\[[^/]*\]|{_INTERNAL_SUFFIX})"
    r"\.?(:[0-9]*)?([/?#].*)?$"
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
    "https locations must name a public DNS host: not localhost, an IP address in any "
    "notation or a cluster-internal name"
)
HTTPS_FORM_MESSAGE = (
    "https locations must be https://host[:port]/path with an ASCII DNS host name and a "
    "port from 1 to 65535 (no user info, no IP literal)"
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
COMMON_RULES: tuple[tuple[str, str], ...] = (
    (CONTROL_CHARACTER_PATTERN, CONTROL_CHARACTER_MESSAGE),
    (DOT_DOT_SEGMENT_PATTERN, DOT_DOT_MESSAGE),
    (DOT_SEGMENT_PATTERN, DOT_SEGMENT_MESSAGE),
    (EMPTY_SEGMENT_PATTERN, EMPTY_SEGMENT_MESSAGE),
    (S3_URL_SYNTAX_PATTERN, S3_URL_SYNTAX_MESSAGE),
    (S3_DIRECTORY_PATTERN, S3_DIRECTORY_MESSAGE),
    (LONG_COMPONENT_PATTERN, LONG_COMPONENT_MESSAGE),
)
INPUT_RULES: tuple[tuple[str, str], ...] = (
    (FORBIDDEN_HTTPS_HOST_PATTERN, HTTPS_HOST_MESSAGE),
    *COMMON_RULES,
)


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.ASCII)


_INPUT = _compile(INPUT_LOCATION_PATTERN)
_OUTPUT = _compile(OUTPUT_LOCATION_PATTERN)
# The job contract reads \s as any Unicode space, as the runner's own checks do.
_INPUT_UNICODE = re.compile(INPUT_LOCATION_PATTERN)
_OUTPUT_UNICODE = re.compile(OUTPUT_LOCATION_PATTERN)
_HTTPS_FORM = _compile(HTTPS_FORM_PATTERN)
_COMPILED = {pattern: _compile(pattern) for pattern, _ in INPUT_RULES}


def is_input_location(value: str) -> bool:
    return bool(_INPUT_UNICODE.match(value))


def is_output_location(value: str) -> bool:
    return bool(_OUTPUT_UNICODE.match(value))


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
    if not (_INPUT.fullmatch(value) and is_input_location(value)):
        return f"{_shown(value)} {INPUT_FORM_MESSAGE}"
    if value.startswith("https://") and not _HTTPS_FORM.fullmatch(value):
        return f"{_shown(value)}: {HTTPS_FORM_MESSAGE}"
    return _first_problem(value, INPUT_RULES)


def output_location_problem(value: str) -> str | None:
    """Why ``value`` is not an acceptable output location, or None when it is."""
    if not (_OUTPUT.fullmatch(value) and is_output_location(value)):
        return f"{_shown(value)} {OUTPUT_FORM_MESSAGE}"
    return _first_problem(value, COMMON_RULES)


def within(location: str, prefixes: tuple[str, ...]) -> bool:
    """Whether ``location`` lies under one of ``prefixes`` (or is one of them exactly).

    Sound only for locations as written that passed ``written_exactly``: no '.', '..' or
    empty segments. On the data volume, where the path really leads is settled by opening
    it beneath the prefix's directory with no link followed (``musepose_runner.storage.datavolume``)."""
    return any(location == p or (p.endswith("/") and location.startswith(p)) for p in prefixes)


def written_exactly(location: str) -> str | None:
    """Why an s3:// or data-volume location would not be used exactly as named (None: it
    would): control characters, '.', '..' or empty segments, '#' or '?' in an S3 key."""
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in location):
        return "contains control characters"
    if location.startswith("s3://"):
        bucket, _, key = location[len("s3://"):].partition("/")
        if not bucket or not key or key.endswith("/"):
            return "does not name an object (s3://bucket/key)"
        if "#" in key or "?" in key:
            return "has '#' or '?' in its key"
    elif location.startswith("/"):
        key = location[1:]
    else:
        return None  # https: the fetcher's own checks apply
    segments = key.split("/")
    if "" in segments[:-1] or any(part in (".", "..") for part in segments):
        return "has an empty, '.' or '..' path segment"
    return None


_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DNS_NAME = re.compile(rf"^(?:{_LABEL}\.)*{_LABEL}$")


def normal_host(raw: str) -> str | None:
    """A host as it is compared: lower case, IDNA, no trailing dot; None when it is not a
    valid DNS name or IP address ("1.2.3" and "010.0.0.1" are neither)."""
    host = raw.lower().rstrip(".")
    if not host:
        return None
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    if len(host) > 253 or not _DNS_NAME.match(host):
        return None
    if re.fullmatch(r"[0-9.]+", host):  # "1.2.3" or "010.0.0.1": ambiguous, never a name
        return None
    return host


def https_host_port(url: str) -> tuple[str, int] | None:
    """(host as it is compared, port) of an https URL, or None when it has no readable one
    (user info, a bracketed or malformed host, a port out of range): the one reading of an
    https host that the CRD check, the allow-list, the runner and the callbacks share."""
    try:
        parts = urlsplit(url)
        port = parts.port or HTTPS_PORT
    except ValueError:  # "[zz]", a port that is not a number or out of range
        return None
    if parts.scheme != "https" or "@" in parts.netloc:
        return None
    host = normal_host(parts.hostname or "")
    return None if host is None else (host, port)


def parse_allow_list(entries: Iterable[str]) -> frozenset[tuple[str, int]]:
    """The operator's https allow-list (``host`` or ``host:port`` entries) as (host, port)
    pairs; an entry that names no host allows nothing (the operator validates its settings)."""
    return frozenset(target for entry in entries
                     if (target := https_host_port(f"https://{entry.strip()}/")) is not None)
