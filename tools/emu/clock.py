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
