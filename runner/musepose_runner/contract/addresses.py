"""Which network addresses an outgoing connection may reach: the one home of the rule the
runner's https fetcher and the operator's callback sender both apply. Pure."""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# IPv6 forms that carry an IPv4 address inside: the embedded one is what gets reached.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215: local use only
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_TEREDO = ipaddress.IPv6Network("2001::/32")


def address_problem(address: IPAddress, extra: tuple[IPNetwork, ...] = ()) -> str | None:
    """Why connecting to ``address`` is refused, or None when it is a public address (or in
    one of the ``extra`` networks the operator allowed)."""
    if any(address.version == net.version and address in net for net in extra):
        return None
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = address_problem(embedded, extra)
            return f"it carries the IPv4 address {embedded}, and {inner}" if inner else None
        if address in _NAT64_LOCAL or address in _TEREDO:
            return "it is a local NAT64 or Teredo address"
        if address.is_site_local:
            return "it is a site-local address"
    if address.is_loopback:
        return "it is a loopback address"
    if address.is_link_local:
        return "it is a link-local address (cloud metadata lives there)"
    if address.is_multicast:
        return "it is a multicast address"
    if address.is_unspecified or address.is_reserved:
        return "it is an unspecified or reserved address"
    if address.is_private or not address.is_global:
        return "it is a private or non-public address"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return address.sixtofour
    return None
