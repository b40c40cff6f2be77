"""Downloading one https input without trusting the server or DNS.

* The host name is resolved once; every address is checked (``locations.address_problem``)
  and the connection goes to a checked address, with SNI and certificate verification
  against the host name, so a second DNS answer cannot rebind it elsewhere.
* Redirects are followed (at most ``MAX_REDIRECTS``), each hop checked again from scratch:
  scheme, allow-list (host and port), addresses.
* One deadline covers the whole download, headers included: a watchdog shuts the socket
  when it passes, so a server sending a byte a second cannot hold the pod. The size cap is
  checked against Content-Length and again while streaming.

Exit classes: 4xx, a failed certificate or TLS handshake, a too-slow or too-large
download and a malformed reply are bad input (65, retrying repeats them); 408/429, 5xx,
refused or reset connections and DNS that does not answer are transient (75).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

from musepose_runner.contract.errors import BadInput, RunnerError, Transient
from musepose_runner.storage import places as locations
from musepose_runner.storage.places import HttpsTarget, IPAddress, IPNetwork

MAX_REDIRECTS = 5
CHUNK = 64 * 1024
USER_AGENT = "musepose-runner"
_REDIRECTS = {301, 302, 303, 307, 308}


@dataclass(frozen=True)
class FetchPolicy:
    allowed: frozenset[tuple[str, int]]  # (host, port) pairs
    extra_networks: tuple[IPNetwork, ...] = ()  # non-public networks the operator allowed
    max_bytes: int = 2 * 1024**3
    deadline_seconds: float = 300.0
    # Where names are resolved; a parameter so tests can stand in for DNS.
    resolve: Callable[[str, int], list[IPAddress]] | None = None


def download(field: str, location: str, target_file: Path, policy: FetchPolicy, *,
             parsed: HttpsTarget | None = None) -> None:
    """Write the body of ``location`` to ``target_file`` or raise a RunnerError.
    ``parsed``: ``location`` already parsed (a Place's); each redirect is parsed once."""
    deadline = time.monotonic() + policy.deadline_seconds
    current = location
    target = parsed or locations.parse_https(field, location)
    for _hop in range(MAX_REDIRECTS + 1):
        redirect = _one_request(field, location, current, target, target_file, policy,
                                deadline)
        if redirect is None:
            return
        current, target = redirect, locations.parse_https(field, redirect)
    raise BadInput(f"{field} {location}: more than {MAX_REDIRECTS} redirects",
                   reason="TooManyRedirects", field=field)


def _checked_addresses(field: str, location: str, target: HttpsTarget,
                       policy: FetchPolicy) -> list[IPAddress]:
    literal = target.ip_literal
    addresses = [literal] if literal is not None else _resolve(field, location, target, policy)
    for address in addresses:
        problem = locations.address_problem(address, policy.extra_networks)
        if problem:
            raise BadInput(f"{field} {location}: {target.host} resolves to {address}, which "
                           f"is not allowed: {problem}", reason="AddressNotAllowed", field=field)
    return addresses


def _resolve(field: str, location: str, target: HttpsTarget, policy: FetchPolicy
             ) -> list[IPAddress]:
    if policy.resolve is not None:
        return policy.resolve(target.host, target.port)
    import ipaddress

    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        if err.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)):
            raise BadInput(f"{field} {location}: host {target.host} does not exist",
                           reason="InputNotFound", field=field) from None
        raise Transient(f"{field} {location}: cannot resolve {target.host}: {err}",
                        reason="InputUnavailable", field=field) from None
    found: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if address not in found:
            found.append(address)
    if not found:
        raise BadInput(f"{field} {location}: host {target.host} has no address",
                       reason="InputNotFound", field=field)
    return found


def _connect(field: str, location: str, addresses: list[IPAddress], port: int,
             deadline: float) -> socket.socket:
    last: OSError | None = None
    for address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            return socket.create_connection((str(address), port), timeout=min(remaining, 30))
        except OSError as err:
            last = err
    if last is None:
        raise _too_slow(field, location, deadline)
    raise Transient(f"{field} {location}: cannot connect: {last}", reason="InputUnavailable",
                    field=field)


def _too_slow(field: str, location: str, deadline: float) -> BadInput:
    return BadInput(f"{field} {location}: the download did not finish within the deadline",
                    reason="InputTooSlow", field=field)


class _Watchdog:
    """Shuts a socket down when the deadline passes, unblocking any read on it."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.fired = False
        self._sock = sock
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        """Watch ``sock`` instead (the TLS socket takes over the raw one's descriptor)."""
        self._sock = sock

    def _fire(self) -> None:
        self.fired = True
        with contextlib.suppress(OSError):  # already closed: nothing left to unblock
            # The plain socket call: it unblocks a pending TLS read from another thread.
            socket.socket.shutdown(self._sock, socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()

    def close(self) -> None:
        # Shut down first: the reply's file object holds a reference that would keep the
        # connection open (and a hostile server streaming) until garbage collection.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self._sock, socket.SHUT_RDWR)
        self._sock.close()


def _one_request(field: str, location: str, current: str, target: HttpsTarget,
                 target_file: Path, policy: FetchPolicy, deadline: float) -> str | None:
    """One hop (``current``, parsed as ``target``): the redirect's next URL, or None when
    the body was written."""
    locations.check_allowed(field, current, target, policy.allowed)
    addresses = _checked_addresses(field, current, target, policy)
    raw = _connect(field, location, addresses, target.port, deadline)
    watchdog = _Watchdog(raw, deadline)
    try:
        redirect = _exchange(field, location, current, raw, watchdog, target, target_file,
                             policy, deadline)
        if watchdog.fired:  # the shut socket may have looked like the end of the body
            raise _too_slow(field, location, deadline)
        return redirect
    except RunnerError:
        if watchdog.fired:
            raise _too_slow(field, location, deadline) from None
        raise
    except ssl.SSLCertVerificationError as err:
        raise BadInput(f"{field} {location}: the TLS certificate of {target.host} does not "
                       f"verify ({err.verify_message})", reason="TLSVerificationFailed",
                       field=field) from None
    except (ssl.SSLError, http.client.HTTPException, OSError, ValueError) as err:
        if watchdog.fired:
            raise _too_slow(field, location, deadline) from None
        raise _classify(field, location, err) from None
    finally:
        watchdog.cancel()
        watchdog.close()


def _classify(field: str, location: str, err: Exception) -> RunnerError:
    if isinstance(err, (http.client.IncompleteRead, ConnectionError, TimeoutError,
                        ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return Transient(f"{field} {location}: the connection broke: {err!r}",
                         reason="InputUnavailable", field=field)
    if isinstance(err, ssl.SSLError):
        return BadInput(f"{field} {location}: TLS handshake failed: {err.reason or err}",
                        reason="TLSFailed", field=field)
    if isinstance(err, (http.client.HTTPException, ValueError)):
        return BadInput(f"{field} {location}: malformed HTTP reply: {err!r}"[:400],
                        reason="InvalidHTTPResponse", field=field)
    return Transient(f"{field} {location}: {err}", reason="InputUnavailable", field=field)


def _exchange(field: str, location: str, current: str, raw: socket.socket,
              watchdog: _Watchdog, target: HttpsTarget, target_file: Path, policy: FetchPolicy,
              deadline: float) -> str | None:
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    tls = context.wrap_socket(raw, server_hostname=target.host, do_handshake_on_connect=False)
    watchdog.watch(tls)  # before the handshake: a server can drip that too
    tls.do_handshake()
    connection = http.client.HTTPSConnection(target.host, target.port, context=context)
    connection.sock = tls  # already connected to the checked address: no second lookup
    try:
        return _get(field, location, current, connection, target, target_file, policy,
                    deadline)
    finally:
        # Close the descriptor now, not at garbage collection: a hostile server would go on
        # streaming into a half-shut connection that an exception's traceback keeps alive.
        connection.close()


def _get(field: str, location: str, current: str, connection: http.client.HTTPSConnection,
         target: HttpsTarget, target_file: Path, policy: FetchPolicy, deadline: float
         ) -> str | None:
    connection.putrequest("GET", target.target, skip_accept_encoding=True)
    connection.putheader("Accept-Encoding", "identity")
    connection.putheader("User-Agent", USER_AGENT)
    connection.endheaders()
    reply = connection.getresponse()
    try:
        return _body(field, location, current, reply, target_file, policy, deadline)
    finally:
        reply.close()


def _body(field: str, location: str, current: str, reply: http.client.HTTPResponse,
          target_file: Path, policy: FetchPolicy, deadline: float) -> str | None:
    status = reply.status
    if status in _REDIRECTS:
        where = reply.getheader("Location")
        if not where:
            raise BadInput(f"{field} {location}: HTTP {status} without a Location",
                           reason="InvalidHTTPResponse", field=field)
        return urljoin(current, where.strip())
    if status in (408, 429) or status >= 500:
        raise Transient(f"{field} {location}: HTTP {status}", reason="InputUnavailable",
                        field=field)
    if status in (404, 410):
        raise BadInput(f"{field} {location}: HTTP {status} (not found)",
                       reason="InputNotFound", field=field)
    if status != 200:
        raise BadInput(f"{field} {location}: HTTP {status}", reason="InputRefused",
                       field=field)
    declared = reply.getheader("Content-Length")
    if declared is not None and declared.strip().isdigit() and int(declared) > policy.max_bytes:
        raise BadInput(f"{field} {location}: {int(declared)} bytes is over the limit of "
                       f"{policy.max_bytes}", reason="InputTooLarge", field=field)
    copied = 0
    with target_file.open("wb") as out:
        while chunk := reply.read1(CHUNK):
            copied += len(chunk)
            if copied > policy.max_bytes:
                raise BadInput(f"{field} {location}: over the limit of {policy.max_bytes} "
                               "bytes", reason="InputTooLarge", field=field)
            if time.monotonic() > deadline:
                raise _too_slow(field, location, deadline)
            out.write(chunk)
    if declared is not None and declared.strip().isdigit() and copied < int(declared):
        raise http.client.IncompleteRead(b"", int(declared) - copied)
    return None
