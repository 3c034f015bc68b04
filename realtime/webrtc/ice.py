"""Which local addresses ICE gathers host candidates on, for the server or client that asks.

aiortc offers no way to choose the interfaces ICE gathers on, and aioice never offers 127.0.0.1 (so two peers on one
machine without another interface cannot connect, and a machine-local service cannot stay on loopback). aioice reads
the host addresses through one module-level function, ``aioice.ice.get_host_addresses``, while a peer connection
gathers (inside ``setLocalDescription``). ``ice_addresses(addresses)`` wraps that function for the duration of the
block only and says through a context variable which addresses the block's own tasks want:

- ``ice_addresses(None)`` (a server or client that did not ask) does nothing at all: aioice stays untouched;
- while any block that asked is open, the wrapper is installed; code outside such a block (its context variable
  unset) still gets aioice's own answer, so one server's choice never leaks into another's peers;
- when the last such block closes, aioice's own function is put back.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator

HostLookup = Callable[..., list[str]]
LOOPBACK = ("127.0.0.1",)  # a machine-local server and its clients (tests, the benchmark)

# A ContextVar, not a global, so each server or client picks its own addresses in its own tasks (an aiohttp request
# handler and the tasks it starts see the value set around its negotiation; other tasks see None).
_CHOSEN: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar("swapcam_ice_addresses", default=None)


class _HostAddressPatch:
    """The one process-wide patch of aioice, reference-counted by the blocks that need it. The patch itself has to
    be process-wide (aioice looks the function up in its module), so its lifetime is kept as short as the users'."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # blocks may open and close in several threads' event loops
        self._users = 0
        self._original: HostLookup | None = None
        self._wrapper: HostLookup | None = None

    def acquire(self) -> None:
        import aioice.ice

        with self._lock:
            if self._users == 0:
                original = aioice.ice.get_host_addresses

                def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
                    chosen = _CHOSEN.get()
                    if chosen is None:  # a peer of someone who did not ask: aioice's own answer
                        return original(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
                    return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

                self._original, self._wrapper = original, get_host_addresses
                aioice.ice.get_host_addresses = get_host_addresses
            self._users += 1

    def release(self) -> None:
        import aioice.ice

        with self._lock:
            self._users -= 1
            if self._users == 0:
                # Put aioice's function back only if ours is still the one installed: whoever patched after us
                # keeps their patch (and ours, wrapped inside it, then answers like aioice for everyone).
                # (_original is None only if release() came without acquire(); then _wrapper is None as well and
                # the identity test fails anyway: the check only narrows the Optional.)
                if self._original is not None and aioice.ice.get_host_addresses is self._wrapper:
                    aioice.ice.get_host_addresses = self._original
                self._original = self._wrapper = None

    @property
    def installed(self) -> bool:
        return self._users > 0


_PATCH = _HostAddressPatch()


@contextlib.contextmanager
def ice_addresses(addresses: tuple[str, ...] | list[str] | None) -> Iterator[None]:
    """Within this block (and tasks started from it), ICE gathers host candidates on ``addresses`` only; None or
    empty: aioice's default, and aioice is not touched."""
    if not addresses:
        yield
        return
    _PATCH.acquire()
    token = _CHOSEN.set(tuple(addresses))
    try:
        yield
    finally:
        _CHOSEN.reset(token)
        _PATCH.release()


def filter_installed() -> bool:
    """Whether some block has aioice's host lookup wrapped right now (for tests and diagnostics)."""
    return _PATCH.installed
