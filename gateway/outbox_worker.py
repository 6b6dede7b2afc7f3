"""Deliver the durable outbox to one sink, in order, with capped exponential backoff.

The pipeline writes each new event into the outbox in the same store transaction as the records
and state that produced it. This worker, one thread per sink, reads that sink's rows
past its cursor, oldest first, hands them to the sink and advances the cursor only after the sink
said it has them. Consequences:
- nothing is lost: a crash between delivery and cursor update re-sends the same rows with the same
  `event_id` (at least once, recognisably repeated: exactly once in effect);
- per-seal order holds because the whole sink's order is the outbox order (a failing event blocks
  the ones after it for that sink only, never ingest and never the other sinks);
- a sink down for hours just lets its depth grow; `depth()` is exported as a metric;
- an event the sink refuses for good (`SinkRefused`, e.g. a webhook's 400) does not block the
  ones after it: it becomes a dead letter (store `outbox_dead_letter`: kept, the cursor moves past
  it, `on_dead_letter` raises the alarm) and delivery goes on. An admin's replay
  (`navseal gateway dead-letter replay ID`) marks it "replay"; the worker sends those first.

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

from navseal.gateway.sinks import Sink, SinkError, SinkRefused

log = logging.getLogger("navseal.gateway.outbox")


class OutboxSource(Protocol):
    """What the worker needs from the store (the outbox part of gateway/store/interface.py)."""

    def outbox_fetch(self, sink: str, limit: int) -> Sequence[Any]:
        """Rows past the sink's cursor, oldest first: objects with `outbox_id` and `event`
        (gateway.store.OutboxItem) or (outbox_id, event) tuples."""

    def outbox_mark_delivered(self, sink: str, upto_outbox_id: int, now: float | None = None) -> None: ...

    def outbox_depth(self, sink: str) -> int: ...

    # Optional (a store has them; a source without them cannot keep dead letters):
    # outbox_dead_letter(sink, outbox_id, event_id, error, now) -> int, dead_letters(sink=, status=,
    # limit=) -> rows with `dead_letter_id` and `event`, dead_letter_settled(id, delivered=, error=, now=).


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
        on_dead_letter: Callable[[str, dict[str, Any], str], None] | None = None,
    ) -> None:
        self.sink = sink
        self._open_source = open_source
        self._source: OutboxSource | None = None
        self.batch_size = batch_size
        self.poll_s = poll_s
        self.backoff = backoff or Backoff()
        self.clock = clock
        self.on_delivered = on_delivered
        self.on_dead_letter = on_dead_letter
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
        replayed = self._replay(source)
        if replayed is None:
            return None
        rows = [_row(item) for item in source.outbox_fetch(self.sink.name, self.batch_size)]
        with self._depth_lock:
            self._depth_cache = source.outbox_depth(self.sink.name) if rows else 0
        if not rows:
            return replayed
        events = [event for _, event in rows]
        try:
            self.sink.deliver_batch(events)
        except SinkRefused as exc:
            if exc.delivered:
                self._delivered(source, rows[:exc.delivered])
            outbox_id, event = rows[exc.delivered]
            dead_letter_id = source.outbox_dead_letter(self.sink.name, outbox_id, str(event.get("event_id")), str(exc),
                                                       self.clock())
            log.error("sink %s: event %s refused for good (%s): kept as dead letter %d, delivery goes on; "
                      "`navseal gateway dead-letter replay %d` sends it again", self.sink.name, event.get("event_id"),
                      exc, dead_letter_id, dead_letter_id)
            self.backoff.reset()
            if self.on_dead_letter:
                self.on_dead_letter(self.sink.name, event, str(exc))
            return exc.delivered + 1
        except SinkError as exc:
            if exc.delivered:  # those went through: do not send them again
                self._delivered(source, rows[:exc.delivered])
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
        if self.backoff.failures:
            log.info("sink %s: delivering again after %d failure(s)", self.sink.name, self.backoff.failures)
        self.backoff.reset()
        self._delivered(source, rows)
        return len(rows)

    def _delivered(self, source: OutboxSource, rows: list[tuple[int, dict[str, Any]]]) -> None:
        now = self.clock()
        source.outbox_mark_delivered(self.sink.name, rows[-1][0], now)
        self.stats.delivered += len(rows)
        self.stats.last_delivered_at = now
        self.stats.last_error = None
        with self._depth_lock:
            self._depth_cache = max(0, self._depth_cache - len(rows))
        if self.on_delivered:
            self.on_delivered(self.sink.name, [event for _, event in rows])

    def _replay(self, source: OutboxSource) -> int | None:
        """Send this sink's dead letters an admin asked to replay. Their count, or None when the
        sink failed (back off, like any failure)."""
        fetch = getattr(source, "dead_letters", None)
        if fetch is None:
            return 0
        due = fetch(sink=self.sink.name, status="replay", limit=self.batch_size)
        for letter in due:
            event = letter.get("event")
            if event is None:  # its escort's data was purged meanwhile: nothing left to send
                source.dead_letter_settled(letter["dead_letter_id"], delivered=False, now=self.clock(),
                                           error="the event was purged (retention)")
                continue
            try:
                self.sink.deliver_batch([event])
            except SinkRefused as exc:
                source.dead_letter_settled(letter["dead_letter_id"], delivered=False, error=str(exc), now=self.clock())
                log.error("sink %s: dead letter %d refused again (%s)", self.sink.name, letter["dead_letter_id"], exc)
                if self.on_dead_letter:
                    self.on_dead_letter(self.sink.name, event, str(exc))
                continue
            except SinkError as exc:
                self.stats.failures += 1
                self.stats.last_error = str(exc)
                delay = self.backoff.next_delay(exc.retry_after)
                log.warning("sink %s: replay of dead letter %d failed (%s); retry in %.1fs", self.sink.name,
                            letter["dead_letter_id"], exc, delay)
                self._sleep(delay)
                return None
            source.dead_letter_settled(letter["dead_letter_id"], delivered=True, error=None, now=self.clock())
            log.info("sink %s: dead letter %d replayed (event %s)", self.sink.name, letter["dead_letter_id"],
                     event.get("event_id"))
            if self.on_delivered:
                self.on_delivered(self.sink.name, [event])
        return len(due)

    def _sleep(self, seconds: float) -> None:
        # Interruptible by stop(), not by notify(): new events must not cut a backoff short.
        self._stop.wait(seconds)
