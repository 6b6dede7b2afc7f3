"""`navseal gateway run`: the long-running gateway process, wiring the sans-I/O core to the world.

    drivers (threads)                 runner (one thread)                     outbox (thread per sink)
    MQTT  on_message  --+                                                     
    serial readers    --+--> queue --> Pipeline.handle_uplinks(batch) --+--> ACKs/commands to seals
    HTTP commands     --+            (one SQLite transaction per batch) |
                                     Pipeline.tick at next_deadline     +--> notify --> sinks
                                     retention purge on a schedule

Why one runner thread and a queue: the drivers never block on SQLite; frames of one seal keep
their arrival order (one FIFO); frames waiting in the queue are committed together in ONE
transaction (one fsync for up to `MAX_BATCH` frames), and the ACKs of a batch go out only after
that commit. MQTT frames are PUBACKed to the broker only after their commit, so a gateway killed
at any instant loses nothing: uncommitted frames are redelivered from its persistent session.

Graceful shutdown (SIGTERM/SIGINT): stop taking frames (MQTT: no more acks, the broker keeps the
rest for the next start; serial: close the ports), finish the queued frames and their ACKs, give
the sinks a bounded time to drain the outbox (what is left stays in the durable outbox), disconnect.
"""

from __future__ import annotations

import json
import logging
import queue
import signal
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

from .config import GatewayConfig
from .events import ALARM_KINDS, parse_iso
from .outbox_worker import Backoff, OutboxWorker
from .pipeline import IngestResult, Pipeline
from .sinks import build_sink
from .store import open_store
from .telemetry import Metrics, render_counter, render_histogram_snapshot

log = logging.getLogger("navseal.gateway")

MAX_BATCH = 64  # frames per transaction: one fsync per batch, yet a frame waits at most ~64 frames of work
MAX_IDLE_WAIT_S = 1.0  # the runner re-reads next_deadline at least this often
# next_deadline() scans the monitored escorts: under load, re-read it at most this often (frames
# only push rule deadlines later; new commands call pipeline.wakeup, which forces a re-read).
DEADLINE_REFRESH_S = 0.5
# A clock that is neither wall time nor says how fast it runs (see wall_seconds_until): wait at
# most this long, so its deadlines are noticed within this much wall time whatever its speed.
UNKNOWN_CLOCK_WAIT_S = 0.05
SHUTDOWN_SINK_FLUSH_S = 5.0

Reply = Callable[[bytes], None]
Ack = Callable[[], None]


# --------------------------------------------------------------------------------------------
# Logging
# --------------------------------------------------------------------------------------------


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, and `extra={...}` fields."""

    _STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class KeyValueLogFormatter(logging.Formatter):
    """ts=... level=... logger=... msg="..." key=value for every `extra` field (values JSON-quoted
    when they are not plain words), one line per record."""

    def format(self, record: logging.LogRecord) -> str:
        text = (
            f"ts={record.created:.3f} level={record.levelname.lower()} logger={record.name} "
            f"msg={json.dumps(record.getMessage(), ensure_ascii=False)}"
        )
        for key, value in vars(record).items():
            if key not in JsonLogFormatter._STANDARD and not key.startswith("_"):
                plain = isinstance(value, (int, float)) or (isinstance(value, str) and value.isidentifier())
                text += f" {key}={value if plain else json.dumps(value, default=str, ensure_ascii=False)}"
        if record.exc_info:
            text += " exc=" + json.dumps(self.formatException(record.exc_info))
        return text


def setup_logging(fmt: str = "json", level: str = "INFO", stream=None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLogFormatter() if fmt == "json" else KeyValueLogFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


# --------------------------------------------------------------------------------------------
# The runner: the only thread that calls the pipeline for ingest and time
# --------------------------------------------------------------------------------------------


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
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
        default_downlink: Callable[[int, bytes], None] | None = None,
        on_committed: Callable[[], None] | None = None,
        purge_interval_s: float | None = None,
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
            self._tick()
            if stop:
                return

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
        try:
            results = self.pipeline.handle_uplinks([(u.raw, u.source) for u in batch])
        except Exception:  # noqa: BLE001 - the pipeline promises not to raise; do not trust it blindly
            log.exception("pipeline: handle_uplinks raised; falling back to frame by frame")
            results = [self.pipeline.handle_uplink(u.raw, u.source) for u in batch]
        committed_at = time.monotonic()
        self.metrics.observe("navseal_ingest_batch_frames", len(batch))
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
            self.metrics.observe("navseal_ingest_latency_seconds", committed_at - uplink.received)
            new_events = new_events or bool(result.events)
            if self.on_result is not None:
                try:
                    self.on_result(uplink, result)
                except Exception:  # noqa: BLE001 - an observer must not stop ingest
                    log.exception("on_result observer failed")
        if new_events and self._on_committed:
            self._on_committed()

    def _send(self, seal_id: int, frame: bytes, reply: Reply | None = None) -> None:
        route = reply or self._routes.get(seal_id)
        try:
            if route is not None:
                route(frame)
            elif self._default_downlink is not None:
                self._default_downlink(seal_id, frame)
            else:
                self.metrics.inc("navseal_downlinks_unroutable_total")
                return
            self.metrics.inc("navseal_downlinks_total")
        except Exception:  # noqa: BLE001 - a transport hiccup must not stop ingest
            log.exception("downlink to seal %d failed", seal_id)
            self.metrics.inc("navseal_downlinks_failed_total")

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


# --------------------------------------------------------------------------------------------
# The service
# --------------------------------------------------------------------------------------------


class GatewayService:
    """Everything `navseal gateway run` starts. `start()` returns once it is running; `stop()` is
    the graceful shutdown; `run_forever()` does both around SIGTERM/SIGINT."""

    def __init__(self, config: GatewayConfig, *, clock: Callable[[], float] = time.time,
                 enable_mqtt: bool | None = None, http: bool = True) -> None:
        self.config = config
        self.clock = clock
        self.metrics = Metrics()
        self.store = open_store(config)
        self.pipeline = Pipeline(self.store, config, clock)
        self.mqtt = None
        self.serial = None
        self.http = None
        self.workers: list[OutboxWorker] = []
        self._stopped = threading.Event()
        mqtt_on = bool(config.mqtt_host) if enable_mqtt is None else enable_mqtt

        if mqtt_on:
            from .mqtt_ingest import MqttIngest, MqttSettings

            self.mqtt = MqttIngest(
                MqttSettings(
                    host=config.mqtt_host,
                    port=config.mqtt_port,
                    client_id=config.mqtt_client_id,
                    username=config.mqtt_username,
                    password=config.mqtt_password,
                    topic_prefix=config.mqtt_topic_prefix,
                    shared_group=config.mqtt_share_group,
                    session_expiry_s=config.mqtt_session_expiry_s,
                    keepalive_s=config.mqtt_keepalive_s,
                    protocol=config.mqtt_protocol,
                ),
                self._submit_mqtt,
            )
        self.runner = PipelineRunner(
            self.pipeline,
            self.metrics,
            clock=clock,
            default_downlink=self.mqtt.publish_downlink if self.mqtt else None,
            on_committed=self._notify_workers,
            purge_interval_s=config.retention_purge_interval_s,
        )
        if config.serial:
            from .serial_ingest import SerialIngest

            self.serial = SerialIngest(
                [{"port": s.port, "baudrate": s.baudrate} for s in config.serial], self._submit_serial
            )
        for spec in config.sinks:
            sink = build_sink(
                spec,
                mqtt_host=config.mqtt_host or "127.0.0.1",
                mqtt_port=config.mqtt_port,
                mqtt_username=config.mqtt_username,
                mqtt_password=config.mqtt_password,
                client_id_prefix=config.mqtt_client_id,
            )
            self.workers.append(
                OutboxWorker(
                    sink,
                    lambda: open_store(self.config),  # its own connection: reads beside the writer
                    backoff=Backoff(config.sink_retry_initial_s, config.sink_retry_max_s),
                    clock=clock,
                    on_delivered=self._delivered,
                )
            )
        if http:
            from .http_api import HttpApi

            self.http = HttpApi(self, config.http_host, config.http_port)
        self._register_metrics()

    # -- driver callbacks --
    def _submit_mqtt(self, raw: bytes, source: str, reply: Reply, ack: Ack) -> None:
        self.runner.submit(raw, source, None, ack)  # downlinks route by seal id over MQTT

    def _submit_serial(self, raw: bytes, source: str, reply: Reply) -> None:
        self.runner.submit(raw, source, reply, None)

    def _notify_workers(self) -> None:
        for worker in self.workers:
            worker.notify()

    def _delivered(self, sink: str, events: list[dict[str, Any]]) -> None:
        now = self.clock()
        for event in events:
            try:
                known = parse_iso(event["known_at"])
                occurred = parse_iso(event["occurred_at"])
            except (KeyError, TypeError, ValueError):
                continue
            self.metrics.observe("navseal_forward_latency_seconds", max(0.0, now - known), sink=sink)
            if event.get("kind") in ALARM_KINDS:
                self.metrics.observe("navseal_alarm_fact_to_forward_seconds", max(0.0, now - occurred), sink=sink)
            self.metrics.inc("navseal_sink_delivered_total", sink=sink)

    def _register_metrics(self) -> None:
        m = self.metrics
        m.collector(self._pipeline_metrics)
        m.describe("navseal_ingest_latency_seconds", "Frame receipt by a driver to its commit")
        m.describe("navseal_ingest_batch_frames", "Frames committed per transaction (group commit)")
        m.buckets("navseal_ingest_batch_frames", (1, 2, 4, 8, 16, 32, 64, 128, 256))
        m.describe("navseal_forward_latency_seconds", "Event known to the gateway to delivered by a sink")
        m.describe("navseal_alarm_fact_to_forward_seconds", "Alarm fact (occurred_at) to delivered by a sink")
        m.describe("navseal_sink_delivered_total", "Events delivered, by sink")
        m.describe("navseal_downlinks_total", "Downlink frames handed to a transport")
        m.gauge("navseal_outbox_depth", "Events in the outbox not yet delivered, by sink",
                lambda: [({"sink": w.sink.name}, self.store.outbox_depth(w.sink.name)) for w in self.workers])
        m.gauge("navseal_sink_failures", "Delivery failures since start, by sink",
                lambda: [({"sink": w.sink.name}, w.stats.failures) for w in self.workers])
        m.gauge("navseal_ingest_queue_length", "Frames received and waiting for the pipeline",
                lambda: [({}, self.runner.queue_length())])
        if self.mqtt:
            m.gauge("navseal_mqtt_connected", "1 when connected to the broker",
                    lambda: [({}, 1 if self.mqtt.connected.is_set() else 0)])
        if self.serial:
            m.gauge("navseal_serial_open", "1 when the port is open, by port",
                    lambda: [({"port": r.port}, 1 if r.connected.is_set() else 0) for r in self.serial.readers])
            m.gauge("navseal_serial_reopens", "Port (re)opens since start, by port",
                    lambda: [({"port": r.port}, r.stats.opens) for r in self.serial.readers])
            m.gauge("navseal_serial_deframe_errors", "COBS errors and overruns, by port",
                    lambda: [({"port": r.port, "kind": k}, v) for r in self.serial.readers
                             for k, v in r.deframer.stats.items() if k != "frames"])

    def _pipeline_metrics(self) -> str:
        """The pipeline keeps its own counters (the one source for frames, records, events)."""
        snap = self.pipeline.metrics()
        counters = snap["counters"]
        parts = [
            render_counter("navseal_frames_total",
                           "Uplink frames by result (accepted, duplicate, rejected) and refusal reason",
                           [({"result": r, "reason": reason}, n) for (r, reason), n in sorted(snap["frames"].items())]),
            render_counter("navseal_records_total", "Records newly committed",
                           [({}, counters.get("records_committed", 0))]),
            render_counter("navseal_records_duplicate_total", "Records received again (already committed)",
                           [({}, counters.get("records_duplicate", 0))]),
            render_counter("navseal_events_total", "Operator events created, by kind",
                           [({"kind": k}, n) for k, n in sorted(snap["events"].items())]),
            render_counter("navseal_pipeline_total", "Other pipeline counters (commands, acks, ticks)",
                           [({"counter": k}, n) for k, n in sorted(counters.items())
                            if k not in ("records_committed", "records_duplicate")]),
            render_histogram_snapshot("navseal_alarm_fact_to_emit_seconds",
                                      "Alarm fact (occurred_at) to committed in the outbox", snap["alarm_latency_s"]),
            render_histogram_snapshot("navseal_pipeline_processing_seconds",
                                      "Pipeline time per frame (decode to commit)", snap["ingest_s"]),
        ]
        return "\n".join(parts)

    # -- lifecycle --
    def start(self) -> None:
        self.runner.start()
        for worker in self.workers:
            worker.start()
        if self.http:
            self.http.start()
        if self.mqtt:
            self.mqtt.start()
        if self.serial:
            self.serial.start()
        log.info("gateway started", extra={
            "db": self.config.db_path,
            "mqtt": f"{self.config.mqtt_host}:{self.config.mqtt_port}" if self.mqtt else None,
            "serial": [s.port for s in self.config.serial],
            "http": f"{self.http.host}:{self.http.port}" if self.http else None,
            "sinks": [w.sink.name for w in self.workers],
        })

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        log.info("gateway stopping")
        if self.http:
            self.http.stop()
        if self.mqtt:
            self.mqtt.pause()  # frames still arriving stay unacknowledged in the broker session
        if self.serial:
            self.serial.stop()
        self.runner.stop()  # commits and ACKs everything already received
        undelivered = {}
        for worker in self.workers:
            if not worker.flush(SHUTDOWN_SINK_FLUSH_S):
                undelivered[worker.sink.name] = worker.depth()
            worker.stop()
        if self.mqtt:
            self.mqtt.stop()  # after the runner: the last PUBACKs and ACK downlinks go out first
        self.store.close()
        log.info("gateway stopped", extra={"undelivered_in_outbox": undelivered})

    def run_forever(self) -> int:
        stop = threading.Event()

        def on_signal(signum, frame) -> None:
            log.info("signal received", extra={"signal": signal.Signals(signum).name})
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.start()
        while not stop.wait(0.5):
            pass
        self.stop()
        return 0


def run(config: GatewayConfig) -> int:
    setup_logging(config.log_format, config.log_level)
    return GatewayService(config).run_forever()
