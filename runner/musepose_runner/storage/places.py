"""Parsing and checking input/output locations before anything is opened. Pure, no I/O.

Whatever the API server admits may still be hostile: NUL bytes, path components longer
than a filesystem allows, malformed or disguised hosts, user info, odd ports, addresses
that reach the cluster's insides. Each is refused here with ``BadInput`` naming the field.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from musepose_runner.contract.addresses import IPAddress as IPAddress
from musepose_runner.contract.addresses import IPNetwork as IPNetwork
from musepose_runner.contract.addresses import address_problem as address_problem
from musepose_runner.contract.errors import BadConfig, BadInput
from musepose_runner.contract.location_rules import (
    CONTROL_CHARACTER_PATTERN,
    HTTPS_PORT,
    normal_host,
)
from musepose_runner.contract.location_rules import parse_allow_list as parse_allow_list

MAX_PATH_BYTES = 4096  # PATH_MAX on Linux
MAX_COMPONENT_BYTES = 255  # NAME_MAX on every common Linux filesystem
_CONTROL = re.compile(CONTROL_CHARACTER_PATTERN)  # the rule the CRD checks too


@dataclass(frozen=True)
class HttpsTarget:
    host: str  # lower-case ASCII (IDNA) name or IP literal, no brackets, no trailing dot
    port: int
    target: str  # path and query for the request line

    @property
    def ip_literal(self) -> IPAddress | None:
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None


PlaceKind = Literal["s3", "https", "data-volume"]


@dataclass(frozen=True)
class Place:
    """One location of a run, parsed once (``parse_place``): every storage operation takes
    this, never the text again. ``field``: the spec field it came from, for messages."""

    field: str
    location: str  # as written
    kind: PlaceKind
    bucket: str = ""  # s3
    key: str = ""  # s3
    https: HttpsTarget | None = None  # https (inputs only)

    @property
    def is_file(self) -> bool:
        """A path on the data volume (``location`` is then the absolute path)."""
        return self.kind == "data-volume"


def parse_place(field: str, location: str, *, output: bool = False) -> Place:
    """``location`` parsed and checked (BadInput naming ``field`` when it is no place a run
    can use); ``output``: a place to write, so not https."""
    check_text(field, location)
    if location.startswith("/"):
        check_data_path(field, location)
        return Place(field, location, "data-volume")
    if location.startswith("s3://"):
        bucket, key = parse_s3(field, location)
        return Place(field, location, "s3", bucket=bucket, key=key)
    if location.startswith("https://") and not output:
        return Place(field, location, "https", https=parse_https(field, location))
    if output:
        raise BadInput(f"{field} {location}: outputs go to s3:// or an absolute path",
                       reason="UnsupportedLocation", field=field)
    raise BadInput(f"{field} {location}: unsupported location (use s3://, https:// or an "
                   "absolute path)", reason="UnsupportedLocation", field=field)


def _bad(field: str, location: str, why: str, reason: str = "InvalidLocation") -> BadInput:
    return BadInput(f"{field} {_shown(location)}: {why}", reason=reason, field=field)


def _shown(location: str) -> str:
    """The location as printable text of bounded length, for messages."""
    text = location.encode("unicode_escape").decode("ascii")
    return text if len(text) <= 200 else text[:200] + "…"


def check_text(field: str, location: str) -> None:
    """No control characters (NUL included) and no whitespace anywhere in a location."""
    if _CONTROL.search(location) or any(c.isspace() for c in location):
        raise _bad(field, location, "contains control characters or whitespace")
    try:
        encoded = location.encode()
    except UnicodeEncodeError:  # lone surrogates: no file or URL can be named by them
        raise _bad(field, location, "is not valid Unicode text") from None
    if len(encoded) > MAX_PATH_BYTES:
        raise _bad(field, location, f"is longer than {MAX_PATH_BYTES} bytes")


def check_data_path(field: str, location: str) -> None:
    """An absolute path on the data volume that every filesystem can name."""
    check_text(field, location)
    if not location.startswith("/"):
        raise _bad(field, location, "is not an absolute path")
    for part in location.split("/"):
        if len(part.encode()) > MAX_COMPONENT_BYTES:
            raise _bad(field, location, f"has a path component longer than "
                       f"{MAX_COMPONENT_BYTES} bytes")


def parse_https(field: str, location: str) -> HttpsTarget:
    """Host, port and request target of an https location, or BadInput saying what is wrong."""
    check_text(field, location)
    try:
        parts = urlsplit(location)
        port = parts.port
    except ValueError as err:  # "[zz]", a port that is not a number, NFKC tricks
        raise _bad(field, location, f"is not a valid URL ({err})") from None
    if parts.scheme != "https":
        raise _bad(field, location, "is not an https:// URL")
    if "@" in parts.netloc:
        raise _bad(field, location, "carries user info (user@host); credentials are not "
                   "allowed in locations")
    raw_host = parts.hostname or ""
    host = normal_host(raw_host)
    if host is None:
        raise _bad(field, location, f"host {raw_host!r} is not a valid host name or address")
    if port == 0:
        raise _bad(field, location, "port 0 is not a valid port")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    if not target.startswith("/"):
        raise _bad(field, location, "has no path")
    return HttpsTarget(host, port or HTTPS_PORT, target)


def check_allowed(field: str, location: str, target: HttpsTarget,
                  allowed: frozenset[tuple[str, int]]) -> None:
    if (target.host, target.port) in allowed:
        return
    if any(host == target.host for host, _ in allowed):
        raise _bad(field, location, f"port {target.port} of {target.host} is not on the https "
                   "allow-list (list host:port to allow a non-default port)",
                   reason="HostNotAllowed")
    raise _bad(field, location, f"host {target.host} is not on the https allow-list",
               reason="HostNotAllowed")


def parse_cidrs(text: str, setting: str) -> tuple[IPNetwork, ...]:
    """The operator's escape hatch: networks that may be reached although not public."""
    networks = []
    for entry in filter(None, (e.strip() for e in text.split(","))):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise BadConfig(f"{setting}: {entry!r} is not a CIDR (e.g. 10.1.0.0/16)",
                            reason="InvalidConfiguration") from None
    return tuple(networks)


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
MAX_KEY_BYTES = 1024  # S3's limit on object key length


def parse_s3(field: str, location: str) -> tuple[str, str]:
    """Bucket and key of ``s3://bucket/key``, taken verbatim: ``?``, ``#``, empty or dot
    segments would be read differently by different clients, so they are refused."""
    check_text(field, location)
    if not location.startswith("s3://"):
        raise _bad(field, location, "is not an s3:// location")
    bucket, _, key = location[len("s3://"):].partition("/")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise _bad(field, location, f"bucket {bucket!r} is not a valid bucket name")
    if not key:
        raise _bad(field, location, "has no object key")
    if "?" in key or "#" in key:
        raise _bad(field, location, "'?' and '#' are not allowed in object keys")
    if any(segment in ("", ".", "..") for segment in key.split("/")):
        raise _bad(field, location, "the object key has an empty, '.' or '..' segment "
                   "(e.g. '//' or a trailing '/')")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise _bad(field, location, f"the object key is longer than {MAX_KEY_BYTES} bytes")
    return bucket, key
