"""Where a callback may go: the checks an https input gets, applied to a callback URL.
Pure: the address check at connect time (``address_allowed``) takes the resolved address.

A URL must be ``https://host[:port]/path`` with a public DNS host on the operator's https
allow-list (``allowedHttpsHosts``, the list https inputs answer to); every address the host
resolves to must be public. ``loopback_for_tests`` (setting ``callbacks.loopbackForTests``,
for the test suite only) also admits ``localhost`` and 127.0.0.0/8, nothing else.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from musepose_runner.contract.addresses import IPAddress, IPNetwork, address_problem
from musepose_runner.contract.location_rules import (
    FORBIDDEN_HTTPS_HOST_PATTERN,
    HTTPS_FORM_PATTERN,
    HTTPS_HOST_MESSAGE,
    MAX_LOCATION_LENGTH,
    https_host_port,
)

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
_FORM = re.compile(HTTPS_FORM_PATTERN, re.ASCII)
_FORBIDDEN_HOST = re.compile(FORBIDDEN_HTTPS_HOST_PATTERN, re.ASCII)
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


@dataclass(frozen=True)
class Target:
    host: str  # as compared with the allow-list: lower case, IDNA, no trailing dot
    port: int
    url: str


def form_problem(url: str, *, loopback_for_tests: bool = False) -> str | None:
    """Why ``url`` can never be a callback target (None: it may be, if allowed): what the
    gateway checks at submission, before the allow-list the operator holds."""
    target = _parse(url, loopback_for_tests)
    return target if isinstance(target, str) else None


def target(url: str, allowed: frozenset[tuple[str, int]], *,
           loopback_for_tests: bool = False) -> Target | str:
    """The checked target, or why ``url`` is refused."""
    parsed = _parse(url, loopback_for_tests)
    if isinstance(parsed, str):
        return parsed
    if (parsed.host, parsed.port) not in allowed:
        return (f"{_shown(url)}: {parsed.host}:{parsed.port} is not on the operator's https "
                "allow-list (allowedHttpsHosts)")
    return parsed


def address_allowed(address: IPAddress, *, loopback_for_tests: bool = False) -> str | None:
    """Why connecting to ``address`` is refused (None: allowed), as for https inputs."""
    extra: tuple[IPNetwork, ...] = LOOPBACK if loopback_for_tests else ()
    return address_problem(address, extra)


def _parse(url: str, loopback_for_tests: bool) -> Target | str:
    if not isinstance(url, str) or not url:
        return "must be an https:// URL"
    if len(url) > MAX_LOCATION_LENGTH or _CONTROL.search(url) or not url.isascii():
        return (f"{_shown(url)}: must be an ASCII https:// URL of at most "
                f"{MAX_LOCATION_LENGTH} characters, without spaces or control characters")
    if not url.startswith("https://"):
        return f"{_shown(url)}: must be an https:// URL"
    if not _FORM.fullmatch(url):
        return (f"{_shown(url)}: must be https://host[:port]/path with a DNS host name (no "
                "user info, no IP literal)")
    target = https_host_port(url)
    if target is None:
        return f"{_shown(url)}: its host or port is not valid"
    host, port = target
    if _FORBIDDEN_HOST.match(url) and not (loopback_for_tests and _is_loopback(host)):
        return f"{_shown(url)}: {HTTPS_HOST_MESSAGE}"
    return Target(host, port, url)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host) in LOOPBACK[0]
    except ValueError:
        return False


def _shown(url: str) -> str:
    return repr(url if len(url) <= 160 else url[:160] + "…")
