"""The ICE address filter is scoped to whoever asked for it: aioice is wrapped only inside an ``ice_addresses`` block
with addresses, each server gathers on its own addresses, a server without --ice-address leaves aioice untouched,
and nothing stays installed once the server that asked is closed.
"""

from __future__ import annotations

import asyncio
import contextvars

import pytest

aioice_ice = pytest.importorskip("aioice.ice")
pytest.importorskip("aiortc")
pytest.importorskip("aiohttp")

from realtime.webrtc.client import ClientPeer  # noqa: E402
from realtime.webrtc.ice import filter_installed, ice_addresses  # noqa: E402
from realtime.webrtc.server import ServeConfig, SwapServer  # noqa: E402
from tests._webrtc_fixtures import LOOPBACK, demo_factory, serving, wait_for  # noqa: E402


def host_candidates(sdp: str) -> set[str]:
    """The addresses of the host candidates in an SDP (a=candidate:<foundation> <component> <transport> <priority>
    <address> <port> typ host ...)."""
    addresses = set()
    for line in sdp.splitlines():
        if line.startswith("a=candidate:") and " typ host" in line:
            addresses.add(line.split()[4])
    return addresses


def test_the_filter_exists_only_inside_a_block_that_asked():
    original = aioice_ice.get_host_addresses
    with ice_addresses(None), ice_addresses(()):  # nobody asked: aioice is not even wrapped
        assert aioice_ice.get_host_addresses is original and not filter_installed()
    with ice_addresses(("127.0.0.1", "::1")):
        lookup = aioice_ice.get_host_addresses
        assert lookup is not original and filter_installed()
        assert lookup(use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
        assert lookup(use_ipv4=False, use_ipv6=True) == ["::1"]
        with ice_addresses(("10.9.8.7",)):  # nested: the inner choice, then the outer one again
            assert aioice_ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["10.9.8.7"]
        assert aioice_ice.get_host_addresses is lookup
        assert lookup(use_ipv4=True, use_ipv6=True) == ["127.0.0.1", "::1"]
        # Code in another context (another server's task, another thread) gets aioice's own answer meanwhile.
        elsewhere = contextvars.Context().run(lookup, use_ipv4=True, use_ipv6=False)
        assert elsewhere == original(use_ipv4=True, use_ipv6=False)
        assert "127.0.0.1" not in elsewhere  # aioice's own lookup never offers loopback
    assert aioice_ice.get_host_addresses is original and not filter_installed()


def test_overlapping_blocks_in_two_tasks_undo_the_filter_when_the_last_one_ends():
    original = aioice_ice.get_host_addresses

    async def gather(addresses, entered: asyncio.Event, release: asyncio.Event) -> list[str]:
        with ice_addresses(addresses):
            entered.set()
            await release.wait()
            return aioice_ice.get_host_addresses(use_ipv4=True, use_ipv6=False)

    async def scenario():
        events = [asyncio.Event() for _ in range(4)]
        first = asyncio.ensure_future(gather(("127.0.0.1",), events[0], events[1]))
        second = asyncio.ensure_future(gather(("127.0.0.2",), events[2], events[3]))
        await events[0].wait()
        await events[2].wait()
        events[1].set()  # the first block ends while the second is still open
        assert await first == ["127.0.0.1"]
        assert filter_installed() and aioice_ice.get_host_addresses is not original
        events[3].set()
        assert await second == ["127.0.0.2"]  # each task saw its own addresses
        assert aioice_ice.get_host_addresses is original and not filter_installed()

    asyncio.run(scenario())


@pytest.mark.slow
def test_each_server_gathers_on_its_own_addresses_and_leaves_aioice_as_it_found_it(astronaut_clip):
    factory = demo_factory()
    original = aioice_ice.get_host_addresses

    async def scenario():
        plain = SwapServer(factory, ServeConfig())  # no --ice-address
        local = SwapServer(factory, ServeConfig(ice_addresses=LOOPBACK))
        clients = []
        try:
            async with serving(plain) as plain_url, serving(local) as local_url:
                assert aioice_ice.get_host_addresses is original
                answers = {}
                for name, url in (("plain", plain_url), ("local", local_url)):
                    client = ClientPeer(astronaut_clip.frames, audio=False, ice_addresses=LOOPBACK)
                    clients.append(client)
                    answers[name] = await client.connect(url)
                    # Nothing left wrapped between requests, whoever asked.
                    assert aioice_ice.get_host_addresses is original and not filter_installed()
                assert host_candidates(answers["local"]["sdp"]) == {"127.0.0.1"}
                assert "127.0.0.1" not in host_candidates(answers["plain"]["sdp"])  # aioice's own choice
                # The loopback-only server really is reachable on loopback: frames come back.
                await wait_for(lambda: clients[1].result.frames >= 1, 40, "a frame from the loopback server")
                for client in clients:
                    await client.close()
        finally:
            for client in clients:
                await client.close()
        assert aioice_ice.get_host_addresses is original and not filter_installed()

    asyncio.run(scenario())
