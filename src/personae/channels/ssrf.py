"""Outbound webhook targets must be public: a URL that names or resolves to a loopback,
private, link-local or otherwise non-global address is refused unless the deployment allows
private targets. Checked at start-up and again before each request (DNS can change);
redirects are not followed."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from personae.channels.errors import PlatformRejected, PlatformUnavailable


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def check_target(url: str, *, allow_private: bool) -> None:
    """Raises ``PlatformRejected`` for a URL that must not be called,
    ``PlatformUnavailable`` when its host does not resolve now."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PlatformRejected(f"the webhook target {url!r} is not an http(s) URL")
    if allow_private:
        return
    try:
        found = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname,
            parts.port or (443 if parts.scheme == "https" else 80),
            type=socket.SOCK_STREAM,
        )
    except OSError as exc:
        raise PlatformUnavailable(f"cannot resolve the webhook host: {exc}") from exc
    addresses = {str(info[4][0]) for info in found}
    private = sorted(a for a in addresses if not _public(a))
    if private or not addresses:
        raise PlatformRejected(
            "the webhook target resolves to a private or loopback address; set"
            " options.allow_private_targets to allow it",
            addresses=private,
        )
