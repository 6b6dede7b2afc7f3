"""The runner: the one thread that calls the pipeline for ingest and time.

    drivers (threads)                 runner (one thread)
    MQTT  on_message  --+
    serial readers    --+--> queue --> Pipeline.handle_uplinks(batch) --+--> ACKs/commands to seals
    HTTP commands     --+            (one store transaction per batch)  |
                                     Pipeline.tick at next_deadline     +--> notify the outbox workers
                                     retention purge on a schedule

Why one runner thread and a queue: the drivers never block on the store; frames of one seal keep
their arrival order (one FIFO); frames waiting in the queue are committed together in ONE
transaction (one fsync for up to `MAX_BATCH` frames), and the ACKs of a batch go out only after
that commit. MQTT frames are PUBACKed to the broker only after their commit, so a gateway killed
at any instant loses nothing: uncommitted frames are redelivered from its persistent session.

A store error (disk full, I/O error) pauses ingest rather than stalling it: the frames of the
failed batch are not acknowledged, `on_pause(reason)` tells the drivers to stop taking frames (MQTT
disconnects, keeping its session), frames still queued are dropped unacknowledged (the broker
redelivers them, serial seals retransmit), and the store is probed (`Pipeline.probe_store`, a
write that needs free space) with a growing interval; once a probe commits, `on_resume()`
reconnects and the broker redelivers everything not acknowledged. `paused` says why meanwhile
(/healthz, metrics).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

from .ingest import IngestResult
from .metrics import ServiceMetrics
from .pipeline import Pipeline

log = logging.getLogger("navseal.gateway")

MAX_BATCH = 64  # frames per transaction: one fsync per batch, yet a frame waits at most ~64 frames of work
MAX_IDLE_WAIT_S = 1.0  # the runner re-reads next_deadline at least this often
# next_deadline() scans the monitored escorts: under load, re-read it at most this often (frames
# only push rule deadlines later; new commands call pipeline.wakeup, which forces a re-read).
DEADLINE_REFRESH_S = 0.5
# A clock that is neither wall time nor says how fast it runs (see wall_seconds_until): wait at
# most this long, so its deadlines are noticed within this much wall time whatever its speed.
UNKNOWN_CLOCK_WAIT_S = 0.05
# While ingest is paused on a store error: the first probe after this long, then twice as long
# each time, up to the maximum.
PROBE_FIRST_S = 0.5
PROBE_MAX_S = 10.0

Reply = Callable[[bytes], None]
Ack = Callable[[], None]


@dataclass
class _Uplink:
    raw: bytes
    source: str
    reply: Reply | None
    ack: Ack | None
    received: float = field(default_factory=time.monotonic)


@dataclass
class _Call:
    fn: Callable[[Pipeline], Any]
    future: Future


_STOP = object()
_WAKE = object()


def wall_seconds_until(clock: Callable[[], float], t: float) -> float:
    """Wall seconds until `clock()` reaches `t` (may be <= 0).

    In production the clock is `time.time`. The emulator and the demo run the gateway on a faster
    virtual clock (tools/emu/clock.py RealTimeClock: `scale` virtual seconds per wall second, e.g.
    --time-scale 1000), where waiting `t - clock()` wall seconds would notice a deadline up to
    `scale` times late. A clock may convert itself (`wall_seconds_until(t)`) or give its `scale`;
    any other clock is waited on in steps of UNKNOWN_CLOCK_WAIT_S (no busy wait either way)."""
    convert = getattr(clock, "wall_seconds_until", None)
    if callable(convert):
        return float(convert(t))
    remaining = t - clock()
    if clock is time.time:
        return remaining
    scale = getattr(clock, "scale", None)
    if isinstance(scale, (int, float)) and scale > 0:
        return remaining / scale
    return min(remaining, UNKNOWN_CLOCK_WAIT_S)


class PipelineRunner:
    def __init__(
        self,
        pipeline: Pipeline,
        metrics: ServiceMetrics,
        *,
        clock: Callable[[], float] = time.time,
        default_downlink: Callable[[int, bytes], None] | None = None,
        on_committed: Callable[[], None] | None = None,
        purge_interval_s: float | None = None,
        on_pause: Callable[[str], None] | None = None,
        on_resume: Callable[[], None] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.metrics = metrics
        self.clock = clock
        self._default_downlink = default_downlink
        self._on_committed = on_committed
        # SimpleQueue (C, one lock) rather than Queue (Python, a Condition per put/get): every MQTT
        # frame passes through here twice, from the network thread to the runner.
        self._queue: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        # Where to send a seal's downlinks that are not answers (command retries from tick, new
        # commands): the transport the seal spoke on last.
        self._routes: dict[int, Reply] = {}
        self._purge_interval = purge_interval_s
        # First purge a minute after start (a gateway restarted more often than the interval must
        # still purge), then every interval.
        self._next_purge = time.monotonic() + min(60.0, purge_interval_s or 0)
        self._thread = threading.Thread(target=self._run, name="pipeline", daemon=True)
        self.on_result: Callable[[_Uplink, IngestResult], None] | None = None  # tests, bench
        self._deadline: float | None = None
        self._deadline_read_at = -float("inf")
        pipeline.wakeup = self.wake
        self._on_pause = on_pause
        self._on_resume = on_resume
        # Ingest paused on a store error: {"reason": "disk_full" | "store_error", "error", "since"}.
        self.paused: dict[str, Any] | None = None
        self._probe_at = 0.0
        self._probe_delay = PROBE_FIRST_S

    def wake(self) -> None:
        """Something may have an earlier deadline now (a new command): re-read next_deadline."""
        self._deadline_read_at = -float("inf")
        self._queue.put(_WAKE)

    # -- called from any thread --
    def submit(self, raw: bytes, source: str, reply: Reply | None = None, ack: Ack | None = None) -> None:
        self._queue.put(_Uplink(bytes(raw), source, reply, ack))

    def call(self, fn: Callable[[Pipeline], Any], timeout: float = 30.0) -> Any:
        """Run `fn(pipeline)` on the runner thread, between batches; its downlinks and events are
        handled like tick's. Raises what `fn` raised."""
        future: Future = Future()
        self._queue.put(_Call(fn, future))
        return future.result(timeout)

    def queue_length(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Process everything already queued, then stop."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    # -- runner thread --
    def _run(self) -> None:
        while True:
            if self.paused is not None:
                if self._paused_step():
                    return
                continue
            item = self._next_item()
            if item is None:
                self._tick()
                continue
            batch: list[_Uplink] = []
            stop = False
            while item is not None:
                if item is _STOP:
                    stop = True
                    break
                if item is _WAKE:
                    pass
                elif isinstance(item, _Call):
                    self._flush(batch)
                    batch = []
                    self._run_call(item)
                elif self.paused is not None:
                    self._defer(item)
                else:
                    batch.append(item)
                    if len(batch) >= MAX_BATCH:
                        self._flush(batch)
                        batch = []
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    item = None
            self._flush(batch)
            if self.paused is None:
                self._tick()
            if stop:
                return

    # -- paused on a store error --
    def _pause(self, error: str) -> None:
        reason = "disk_full" if "full" in error.lower() else "store_error"
        self.paused = {"reason": reason, "error": error, "since": time.time()}
        self._probe_delay = PROBE_FIRST_S
        self._probe_at = time.monotonic() + self._probe_delay
        self.metrics.ingest_pauses.labels(reason).inc()
        log.error("ingest paused: %s (%s); frames are not acknowledged until the store takes writes again",
                  "disk full" if reason == "disk_full" else "store error", error)
        if self._on_pause is not None:
            try:
                self._on_pause(reason)
            except Exception:  # noqa: BLE001
                log.exception("on_pause failed")

    def _defer(self, uplink: _Uplink) -> None:
        """Paused: leave the frame unacknowledged (the broker redelivers it after the reconnect;
        a serial seal retransmits it)."""
        self.metrics.ingest_deferred.inc()

    def _paused_step(self) -> bool:
        """One step while paused: take queued items (frames deferred, calls run, stop obeyed) until
        the next probe; probe. True when told to stop."""
        try:
            item = self._queue.get(timeout=max(0.0, self._probe_at - time.monotonic()))
        except queue.Empty:
            item = None
        if item is _STOP:
            return True
        if isinstance(item, _Call):
            self._run_call(item)
        elif isinstance(item, _Uplink):
            self._defer(item)
        if time.monotonic() < self._probe_at or self.paused is None:
            return False
        error = self.pipeline.probe_store()
        if error is not None:
            self.paused["error"] = error
            self._probe_delay = min(PROBE_MAX_S, self._probe_delay * 2)
            self._probe_at = time.monotonic() + self._probe_delay
            return False
        log.warning("ingest resumed: the store takes writes again (paused %.1f s: %s)",
                    time.time() - self.paused["since"], self.paused["reason"])
        self.paused = None
        if self._on_resume is not None:
            try:
                self._on_resume()
            except Exception:  # noqa: BLE001
                log.exception("on_resume failed")
        return False

    def _next_deadline(self) -> float | None:
        if time.monotonic() - self._deadline_read_at >= DEADLINE_REFRESH_S:
            self._deadline = self._safe(self.pipeline.next_deadline)
            self._deadline_read_at = time.monotonic()
        return self._deadline

    def _next_item(self) -> Any:
        wait = MAX_IDLE_WAIT_S
        deadline = self._next_deadline()
        if deadline is not None:
            # Through the clock: the deadline is in its time, the queue waits in wall seconds.
            wait = max(0.0, min(wait, wall_seconds_until(self.clock, deadline)))
        if wait <= 0:
            return None
        try:
            return self._queue.get(timeout=wait)
        except queue.Empty:
            return None

    def _flush(self, batch: list[_Uplink]) -> None:
        if not batch:
            return
        if self.paused is not None:
            for uplink in batch:
                self._defer(uplink)
            return
        try:
            results = self.pipeline.handle_uplinks([(u.raw, u.source) for u in batch])
        except Exception:  # noqa: BLE001 - the pipeline promises not to raise; do not trust it blindly
            log.exception("pipeline: handle_uplinks raised; falling back to frame by frame")
            results = [self.pipeline.handle_uplink(u.raw, u.source) for u in batch]
        committed_at = time.monotonic()
        self.metrics.batch_frames.observe(len(batch))
        new_events = False
        for uplink, result in zip(batch, results):
            if result.seal_id is not None and result.accepted:
                # Route later downlinks (commands, retries) the way this seal last spoke.
                if uplink.reply is not None:
                    self._routes[result.seal_id] = uplink.reply
                else:
                    self._routes.pop(result.seal_id, None)
            for seal_id, frame in result.downlink:
                self._send(seal_id, frame, uplink.reply if seal_id == result.seal_id else None)
            # The broker may forget the frame only now that it is committed (or refused for good).
            # A store error is neither: leave it unacknowledged so it is delivered again.
            if uplink.ack is not None and result.reason != "store_error":
                try:
                    uplink.ack()
                except Exception:  # noqa: BLE001 - e.g. the connection dropped: the broker redelivers
                    log.exception("broker acknowledgement failed for a frame from %s", uplink.source)
            self.metrics.ingest_latency.observe(committed_at - uplink.received)
            new_events = new_events or bool(result.events)
            if self.on_result is not None:
                try:
                    self.on_result(uplink, result)
                except Exception:  # noqa: BLE001 - an observer must not stop ingest
                    log.exception("on_result observer failed")
        if new_events and self._on_committed:
            self._on_committed()
        if any(result.reason == "store_error" for result in results):
            self._pause(self.pipeline.last_store_error or "store error")

    def _send(self, seal_id: int, frame: bytes, reply: Reply | None = None) -> None:
        route = reply or self._routes.get(seal_id)
        try:
            if route is not None:
                route(frame)
            elif self._default_downlink is not None:
                self._default_downlink(seal_id, frame)
            else:
                self.metrics.downlinks_unroutable.inc()
                return
            self.metrics.downlinks.inc()
        except Exception:  # noqa: BLE001 - a transport hiccup must not stop ingest
            log.exception("downlink to seal %d failed", seal_id)
            self.metrics.downlinks_failed.inc()

    def _tick(self) -> None:
        now = self.clock()
        deadline = self._next_deadline()
        if deadline is not None and deadline < now:
            downlinks = self._safe(lambda: self.pipeline.tick(now)) or []
            for seal_id, frame in downlinks:
                self._send(seal_id, frame)
            self._deadline_read_at = -float("inf")  # what was due is done: read the next one
            events = self.pipeline.last_tick_events or []
            for event in events:
                log.info("rule fired", extra={"kind": event.get("kind"), "seal_id": event.get("seal_id"),
                                              "event_id": event.get("event_id")})
            if events and self._on_committed:
                self._on_committed()
        if self._purge_interval and time.monotonic() >= self._next_purge:
            self._next_purge = time.monotonic() + self._purge_interval
            report = self._safe(lambda: self.pipeline.purge(now))
            if report is not None:
                log.info("retention purge done", extra={"purged": report})
                if report.get("escorts_expired") and self._on_committed:
                    self._on_committed()  # ESCORT_EXPIRED events are in the outbox

    def _run_call(self, call: _Call) -> None:
        if not call.future.set_running_or_notify_cancel():
            return
        try:
            value = call.fn(self.pipeline)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            call.future.set_exception(exc)
            return
        call.future.set_result(value)
        # A new command may be sendable right away (seal online): let tick send it.
        if self.paused is None:
            self._tick()
        if self._on_committed:
            self._on_committed()

    @staticmethod
    def _safe(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception:  # noqa: BLE001 - a rule bug must not stop ingest; it is logged loudly
            log.exception("pipeline call failed")
            return None
