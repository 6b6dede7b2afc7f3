"""Deliver the durable outbox to one sink, in order, with capped exponential backoff.

The pipeline writes each new event into the outbox in the same store transaction as the records
and state that produced it. This worker, one thread per sink, reads that sink's rows
past its cursor, oldest first, hands them to the sink and advances the cursor only after the sink
said it has them. Consequences:
- nothing is lost: a crash between delivery and cursor update re-sends the same rows with the same
  `event_id` (at least once, recognisably repeated: exactly once in effect);
- per-seal order holds because the whole sink's order is the outbox order (a failing event blocks
  the ones after it for that sink only, never ingest and never the other sinks);
- a sink down for hours just lets its depth grow; `depth()` is exported as a metric.

The retry policy (policy above mechanism): delays start at `backoff_initial_s`, double per
consecutive failure up to `backoff_max_s`, with +-20 % jitter so many gateways do not hammer a
recovering receiver in step; a receiver's Retry-After hint is honoured up to the cap.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from navseal.gateway.sinks import Sink, SinkError

log = logging.getLogger("navseal.gateway.outbox")


class OutboxSource(Protocol):
    """What the worker needs from the store (the outbox part of gateway/store/interface.py)."""

    def outbox_fetch(self, sink: str, limit: int) -> Sequence[Any]:
        """Rows past the sink's cursor, oldest first: objects with `outbox_id` and `event`
        (gateway.store.OutboxItem) or (outbox_id, event) tuples."""

    def outbox_mark_delivered(self, sink: str, upto_outbox_id: int, now: float | None = None) -> None: ...

    def outbox_depth(self, sink: str) -> int: ...


@dataclass
class Backoff:
    initial_s: float = 0.5
    max_s: float = 60.0
    jitter: float = 0.2
    failures: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def next_delay(self, hint: float | None = None) -> float:
        base = min(self.max_s, self.initial_s * (2 ** self.failures))
        self.failures += 1
        delay = base * (1 + self._rng.uniform(-self.jitter, self.jitter))
        if hint is not None:
            delay = max(delay, hint)
        return min(delay, self.max_s)

    def reset(self) -> None:
        self.failures = 0


@dataclass
class SinkStats:
    delivered: int = 0
    failures: int = 0
    last_error: str | None = None
    last_delivered_at: float | None = None


def _row(item: Any) -> tuple[int, dict[str, Any]]:
    if isinstance(item, tuple):
        return item
    return item.outbox_id, item.event


class OutboxWorker:
    """One sink's delivery loop in its own thread. `notify()` wakes it when new events were
    committed (so forwarding takes milliseconds, not a poll interval)."""

    def __init__(
        self,
        sink: Sink,
        open_source: Callable[[], OutboxSource],
        *,
        batch_size: int = 200,
        poll_s: float = 1.0,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
        on_delivered: Callable[[str, Sequence[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.sink = sink
        self._open_source = open_source
        self._source: OutboxSource | None = None
        self.batch_size = batch_size
        self.poll_s = poll_s
        self.backoff = backoff or Backoff()
        self.clock = clock
        self.on_delivered = on_delivered
        self.stats = SinkStats()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"outbox-{sink.name}", daemon=True)
        self._depth_cache = 0
        self._depth_lock = threading.Lock()

    # -- control -------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def notify(self) -> None:
        self._wake.set()

    def flush(self, timeout: float) -> bool:
        """Wait until this sink's outbox is empty (True) or `timeout` passes (False: a sink that is
        down keeps its rows in the durable outbox for the next start)."""
        deadline = time.monotonic() + timeout
        self._idle.clear()
        self.notify()
        while time.monotonic() < deadline:
            if self._idle.wait(min(0.1, max(0.0, deadline - time.monotonic()))):
                if self.depth() == 0:
                    return True
                self._idle.clear()
                self.notify()
        return self.depth() == 0

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.sink.close()

    def depth(self) -> int:
        with self._depth_lock:
            return self._depth_cache

    # -- loop ------------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._source is None:
                    self._source = self._open_source()
                sent = self._deliver_once(self._source)
            except Exception as exc:  # noqa: BLE001 - a worker must never die silently
                log.exception("outbox worker %s: unexpected error: %s", self.sink.name, exc)
                self.stats.last_error = repr(exc)
                self._sleep(self.backoff.next_delay())
                continue
            if sent is None:  # sink failed: back off, retry the same rows
                continue
            if sent == 0:
                self._idle.set()
                self._wake.wait(self.poll_s)
                self._wake.clear()

    def _deliver_once(self, source: OutboxSource) -> int | None:
        rows = [_row(item) for item in source.outbox_fetch(self.sink.name, self.batch_size)]
        with self._depth_lock:
            self._depth_cache = source.outbox_depth(self.sink.name) if rows else 0
        if not rows:
            return 0
        events = [event for _, event in rows]
        try:
            self.sink.deliver_batch(events)
        except SinkError as exc:
            self.stats.failures += 1
            delay = self.backoff.next_delay(exc.retry_after)
            if self.stats.last_error != str(exc) or self.backoff.failures in (1, 5, 10):
                log.warning(
                    "sink %s: delivery failed (%s); %d event(s) waiting, retry in %.1fs",
                    self.sink.name, exc, self._depth_cache, delay,
                )
            self.stats.last_error = str(exc)
            note = getattr(source, "outbox_note_failure", None)
            if note is not None:  # durable, visible in `status` and after a restart
                now = self.clock()
                note(self.sink.name, str(exc), now + delay, now)
            self._sleep(delay)
            return None
        now = self.clock()
        source.outbox_mark_delivered(self.sink.name, rows[-1][0], now)
        if self.backoff.failures:
            log.info("sink %s: delivering again after %d failure(s)", self.sink.name, self.backoff.failures)
        self.backoff.reset()
        self.stats.delivered += len(rows)
        self.stats.last_delivered_at = now
        self.stats.last_error = None
        with self._depth_lock:
            self._depth_cache = max(0, self._depth_cache - len(rows))
        if self.on_delivered:
            self.on_delivered(self.sink.name, events)
        return len(rows)

    def _sleep(self, seconds: float) -> None:
        # Interruptible by stop(), not by notify(): new events must not cut a backoff short.
        self._stop.wait(seconds)
