"""Outbound webhook targets: loopback, private, link-local and other non-public addresses are
refused unless allowed."""

from __future__ import annotations

import pytest

from personae.channels.errors import PlatformRejected
from personae.channels.ssrf import check_target


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8080/hook",
        "http://10.1.2.3/hook",
        "http://172.16.0.1/hook",
        "http://192.168.1.10/hook",
        "http://169.254.169.254/latest/meta-data",  # cloud metadata
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped loopback
        "http://[fd00::1]/hook",
        "http://0.0.0.0/hook",
        "http://100.64.0.1/hook",  # carrier-grade NAT
        "http://224.0.0.1/hook",
    ],
)
async def test_non_public_targets_are_refused(url: str) -> None:
    with pytest.raises(PlatformRejected, match="private or loopback"):
        await check_target(url, allow_private=False)


async def test_private_targets_pass_when_allowed() -> None:
    await check_target("http://127.0.0.1:9/hook", allow_private=True)


async def test_a_public_address_passes() -> None:
    await check_target("https://8.8.8.8/hook", allow_private=False)


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "http:///nohost"])
async def test_only_http_urls_with_a_host_are_accepted(url: str) -> None:
    with pytest.raises(PlatformRejected, match="not an http"):
        await check_target(url, allow_private=True)
