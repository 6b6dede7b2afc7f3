"""A bell the runner rings after each commit that made events; live feeds wait on it.

The runner thread commits frames and ticks; the HTTP API's server-sent-event streams run on uvicorn's
event loop. `ring()` is called from any thread and wakes every waiting stream at once
(`call_soon_threadsafe`), so a new alarm reaches the browser as soon as it is committed, without a
thread per stream and without polling the store while nothing happens. `close()` (at shutdown)
wakes them for good, so open streams end at once instead of holding the server's exit.
"""

from __future__ import annotations

import asyncio
import threading


class Bell:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.closed = False
        self.rings = 0

    def ring(self) -> None:
        with self._lock:
            self.rings += 1
            waiters = list(self._waiters)
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop is closed: its stream is gone
                pass

    def close(self) -> None:
        self.closed = True
        self.ring()

    async def wait(self, timeout: float, since: int | None = None) -> bool:
        """Until a ring after the `since`-th (default: the next one) -> True, or `timeout` seconds
        -> False; at once when closed. Pass the `rings` count read before looking at the store, so a
        ring that came in between is not missed."""
        event = asyncio.Event()
        waiter = (asyncio.get_running_loop(), event)
        with self._lock:
            if self.closed or (since is not None and self.rings > since):
                return True
            self._waiters.add(waiter)
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            with self._lock:
                self._waiters.discard(waiter)
