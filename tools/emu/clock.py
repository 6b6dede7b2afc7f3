"""A virtual clock with a timer queue: the simulator's only notion of time.

Everything that would sleep in real life (GNSS epochs, seal timers, gateway deadlines, scripted
actions) is a timer here; `run_until(t)` pops them in time order and jumps the clock from one to
the next, so a three-hour silence costs one heap pop. Timers at the same instant run in the order
they were scheduled (a sequence number breaks ties), which keeps runs deterministic.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Callable


class VirtualClock:
    def __init__(self, start: float) -> None:
        self.now = float(start)
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.fired = 0

    def __call__(self) -> float:
        """So the clock itself can be handed to code that takes a `clock()` callable."""
        return self.now

    def call_at(self, t: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (max(float(t), self.now), next(self._seq), fn))

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        self.call_at(self.now + delay, fn)

    def next_time(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def run_until(self, end: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= end:
            t, _, fn = heapq.heappop(heap)
            self.now = t
            self.fired += 1
            fn()
        self.now = max(self.now, float(end))


class RealTimeClock(VirtualClock):
    """The same timer queue driven by the wall clock, optionally faster (`scale` virtual seconds
    per wall second), with an inbox other threads post callables to (frames from MQTT or serial).

    `now` is the scenario's time: `start + (wall - wall0) * scale`. `run_until` sleeps until the
    next timer or until something arrives in the inbox, whichever comes first.
    """

    def __init__(self, start: float, scale: float = 1.0) -> None:
        import queue
        import time

        super().__init__(start)
        self._start = float(start)
        if scale <= 0:
            raise ValueError("time scale must be > 0")
        self.scale = float(scale)
        self._wall0 = time.monotonic()
        self._monotonic = time.monotonic
        self.inbox: "queue.Queue[Callable[[], None]]" = queue.Queue()
        self.stopped = False
        self.lag_max = 0.0  # worst lateness of a timer, virtual seconds (the fleet's health)

    def virtual_now(self) -> float:
        return self.start_time + (self._monotonic() - self._wall0) * self.scale

    @property
    def start_time(self) -> float:
        return self._start

    def __call__(self) -> float:
        return self.virtual_now()

    def post(self, fn: Callable[[], None]) -> None:
        """Thread-safe: run `fn` on the clock's thread as soon as possible."""
        self.inbox.put(fn)

    def stop(self) -> None:
        self.stopped = True
        self.inbox.put(lambda: None)

    def run_until(self, end: float, on_idle: Callable[[], None] | None = None) -> None:
        import queue

        heap = self._heap
        while not self.stopped:
            vnow = self.virtual_now()
            if vnow >= end:
                break
            # Everything that is due, oldest first.
            while heap and heap[0][0] <= vnow:
                t, _, fn = heapq.heappop(heap)
                self.lag_max = max(self.lag_max, vnow - t)
                self.now = vnow
                self.fired += 1
                fn()
            # Frames from other threads.
            try:
                while True:
                    fn = self.inbox.get_nowait()
                    self.now = self.virtual_now()
                    fn()
            except queue.Empty:
                pass
            if on_idle is not None:
                on_idle()
            nxt = min(heap[0][0] if heap else end, end)
            wait = max(0.0, (nxt - self.virtual_now()) / self.scale)
            if wait > 0:
                try:
                    fn = self.inbox.get(timeout=min(wait, 0.25))
                    self.now = self.virtual_now()
                    fn()
                except queue.Empty:
                    pass
        self.now = self.virtual_now()
