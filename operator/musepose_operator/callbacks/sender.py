"""Sending one callback: an HTTPS POST to a checked target, bounded in time and size.

* The host is resolved once, by a resolver that refuses the whole host if any address it
  gives is not public (``targets.address_allowed``); the connection goes to a checked
  address, with TLS verified against the host name, so DNS cannot rebind it elsewhere.
* Redirects are not followed: a 3xx is a final failure (the receiver is misconfigured).
* One deadline covers connecting, sending and the answer; at most ``max_response_bytes``
  of the answer are read, and only to be dropped.

2xx is delivered; 408, 429, 5xx, timeouts and connection errors are worth another try;
anything else (4xx, 3xx, a refused address or certificate) is final.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from musepose_operator.admission.callback_targets import Target, address_allowed
from musepose_operator.callbacks.plan import Delivery, Outcome
from musepose_operator.callbacks.signing import signed_headers

USER_AGENT = "musepose-operator-callbacks"


@dataclass(frozen=True)
class SendLimits:
    timeout_seconds: float = 10.0
    max_response_bytes: int = 64 * 1024
    loopback_for_tests: bool = False


class _Refused(Exception):
    pass


class _CheckedResolver(AbstractResolver):
    """Resolves through the system, then refuses every non-public address."""

    def __init__(self, loopback_for_tests: bool) -> None:
        self._inner = ThreadedResolver()
        self._loopback = loopback_for_tests

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        for result in found:
            address = ipaddress.ip_address(result["host"].split("%")[0])
            problem = address_allowed(address, loopback_for_tests=self._loopback)
            if problem:
                raise _Refused(f"{host} resolves to {address}, which is not allowed: {problem}")
        return found

    async def close(self) -> None:
        await self._inner.close()


def _cut(reply: aiohttp.ClientResponse) -> None:
    """Drop the connection of an answer longer than we read, at once: a graceful TLS close
    waits on a receiver that keeps sending (30 s, or until the loop ends)."""
    connection = reply.connection
    transport = connection.transport if connection is not None else None
    if transport is not None:
        transport.abort()


async def send(delivery: Delivery, target: Target, key: bytes, limits: SendLimits
               ) -> Outcome:
    """POST ``delivery`` to ``target``, signed with ``key``; what came of it."""
    literal = _literal(target.host)
    if literal is not None:
        problem = address_allowed(literal, loopback_for_tests=limits.loopback_for_tests)
        if problem:
            return Outcome(False, False, f"{target.host} is not allowed: {problem}")
    headers = {"Content-Type": delivery.content_type, "User-Agent": USER_AGENT,
               **signed_headers(key, delivery.id, int(time.time()), delivery.body)}
    connector = aiohttp.TCPConnector(resolver=_CheckedResolver(limits.loopback_for_tests),
                                     ssl=ssl.create_default_context(), use_dns_cache=False,
                                     force_close=True)
    timeout = aiohttp.ClientTimeout(total=limits.timeout_seconds)
    try:
        async with (aiohttp.ClientSession(connector=connector, timeout=timeout,
                                          trust_env=False) as session,
                    session.post(target.url, data=delivery.body, headers=headers,
                                 allow_redirects=False) as reply):
            await reply.content.read(limits.max_response_bytes)  # drained, then dropped
            if not reply.content.at_eof():
                _cut(reply)
            return _judged(reply.status)
    except _Refused as err:
        return Outcome(False, False, str(err))
    except aiohttp.ClientConnectorCertificateError as err:
        return Outcome(False, False, f"the TLS certificate of {target.host} does not verify "
                       f"({err.certificate_error})")
    except aiohttp.ClientConnectorError as err:
        if isinstance(err.os_error, _Refused):
            return Outcome(False, False, str(err.os_error))
        return Outcome(False, True, f"cannot connect to {target.host}:{target.port}: "
                       f"{err.os_error}")
    except TimeoutError:
        return Outcome(False, True, f"no answer within {limits.timeout_seconds:g} s")
    except aiohttp.ClientError as err:
        return Outcome(False, True, f"the connection broke: {err!r}"[:300])
    except OSError as err:
        return Outcome(False, True, f"network error: {err}")


def _judged(status: int) -> Outcome:
    if 200 <= status < 300:
        return Outcome(True, False, f"delivered (HTTP {status})", status)
    if 300 <= status < 400:
        return Outcome(False, False, f"HTTP {status}: redirects are not followed", status)
    retry = status in (408, 429) or status >= 500
    return Outcome(False, retry, f"HTTP {status}", status)


def _literal(host: str) -> Any:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None
