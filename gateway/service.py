"""`navseal gateway run`: the long-running gateway process, wiring the sans-I/O core to the world.

    drivers (threads)          runner (one thread, gateway/runner.py)       outbox (thread per sink)
    MQTT, serial, HTTP  --->   Pipeline: ingest, tick, purge         --->   OutboxWorker -> sinks

`GatewayService` builds the store, the pipeline, the runner, the drivers, the outbox workers and
the HTTP API from one `GatewayConfig`, and registers the drivers' metrics on the pipeline's
Prometheus registry (gateway/metrics.py), which `/metrics` renders.

Graceful shutdown (SIGTERM/SIGINT): stop taking frames (MQTT: no more acks, the broker keeps the
rest for the next start; serial: close the ports), finish the queued frames and their ACKs, give
the sinks a bounded time to drain the outbox (what is left stays in the durable outbox), disconnect.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any, Callable

from prometheus_client import CollectorRegistry

from .bell import Bell
from .auth import Authenticator, LoginThrottle
from .config import ConfigError, GatewayConfig
from .events import ALARM_KINDS, parse_iso
from .logs import setup_logging
from .metrics import ServiceMetrics
from .outbox_worker import Backoff, OutboxWorker
from .pipeline import Pipeline
from .runner import Ack, PipelineRunner, Reply
from .secrets import is_test_key, load_master_key
from .sinks import build_sink
from .store import check_store, open_store

log = logging.getLogger("navseal.gateway")

SHUTDOWN_SINK_FLUSH_S = 5.0


class GatewayService:
    """Everything `navseal gateway run` starts. `start()` returns once it is running; `stop()` is
    the graceful shutdown; `run_forever()` does both around SIGTERM/SIGINT."""

    def __init__(self, config: GatewayConfig, *, clock: Callable[[], float] = time.time,
                 enable_mqtt: bool | None = None, http: bool = True) -> None:
        self.config = config
        self.clock = clock
        self.cipher = load_master_key(config)  # None: keys stored as they are (in-process tools only)
        self.store = open_store(config, self.cipher, commit_mark=True)
        # The HTTP API's reads (tracks, tables, the alarm feed) on a connection of their own: WAL
        # readers never wait for ingest's write transaction, nor hold it up.
        self.reader = open_store(config)
        self.bell = Bell()  # rung after each commit that made events: the live alarm feed waits on it
        self.pipeline = Pipeline(self.store, config, clock)
        # Sessions and tokens expire in wall time even when the rules run on a virtual clock (demo).
        self.authenticator = Authenticator(self.store, session_idle_s=config.http_session_idle_s)
        self.login_throttle = LoginThrottle(self.store)
        self.metrics = ServiceMetrics(self.pipeline.registry)
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
                    tls=config.mqtt_tls,
                    tls_ca=config.mqtt_tls_ca,
                    tls_cert=config.mqtt_tls_cert,
                    tls_key=config.mqtt_tls_key,
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
            on_pause=self._ingest_paused,
            on_resume=self._ingest_resumed,
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
                mqtt_tls=(config.mqtt_tls_ca, config.mqtt_tls_cert, config.mqtt_tls_key)
                if config.mqtt_tls else None,
            )
            self.workers.append(
                OutboxWorker(
                    sink,
                    lambda: open_store(self.config),  # its own connection (reads events; no keys, no master key)
                    backoff=Backoff(config.sink_retry_initial_s, config.sink_retry_max_s),
                    clock=clock,
                    on_delivered=self._delivered,
                    on_dead_letter=self._dead_letter,
                )
            )
        if http:
            from .api import build_app
            from .api.server import ApiServer

            self.http = ApiServer(build_app(self), config.http_host, config.http_port,
                                  tls_cert=config.http_tls_cert, tls_key=config.http_tls_key,
                                  request_timeout_s=config.http_request_timeout_s,
                                  idle_timeout_s=config.http_idle_timeout_s,
                                  max_connections=config.http_max_connections)
        self._register_metrics()

    def health(self, detail: bool = True) -> dict[str, Any]:
        """What /healthz answers: status ok/degraded with the problems, queue, outbox depths.
        Without `detail` (an anonymous caller) only the status and the test-key flag, and no store
        reads: a load balancer polls this, and what runs inside is for users."""
        problems = []
        if not self.runner._thread.is_alive():
            problems.append("pipeline runner stopped")
        if self.mqtt is not None and not self.mqtt.connected.is_set():
            problems.append("mqtt broker not connected")
        if self.serial is not None:
            problems += [f"serial {r.port} not open" for r in self.serial.readers if not r.connected.is_set()]
        paused = self.runner.paused
        if paused is not None:
            problems.append(f"ingest paused: {'disk full' if paused['reason'] == 'disk_full' else 'store error'} "
                            f"({paused['error']}); frames are not acknowledged until the store takes writes")
        status = "ok" if not problems else "degraded"
        if not detail:
            return {"status": status, "dev_test_keys": self.config.dev_test_keys}
        return {
            "status": status,
            "problems": problems,
            "ingest": {"state": "running"} if paused is None else {"state": "paused", **paused},
            # Events a sink refused for good, waiting for an admin (navseal gateway dead-letter list).
            "dead_letters": self.store.dead_letter_counts(),
            "queue": self.runner.queue_length(),
            "outbox_depth": {w.sink.name: self.store.outbox_depth(w.sink.name) for w in self.workers},
            "dev_test_keys": self.config.dev_test_keys,
        }

    def check_keys(self) -> None:
        """A production gateway (no dev_test_keys) refuses to run with a published test key stored."""
        if self.config.dev_test_keys:
            log.warning("DEVELOPMENT MODE: the published test keys are accepted (dev_test_keys = true); "
                        "never run a production gateway like this")
            return
        with self.store.transaction() as tx:
            seal_ids = tx.seal_ids()
        weak = [sid for sid in seal_ids if is_test_key(sid, self.store.seal_key(sid) or b"")]
        if weak:
            shown = ", ".join(map(str, weak[:10])) + (" ..." if len(weak) > 10 else "")
            raise ConfigError(f"seal(s) {shown} have the published test key: re-key them "
                              f"(navseal gateway provision --key-file) or set dev_test_keys for development")

    # -- driver callbacks --
    def _submit_mqtt(self, raw: bytes, source: str, reply: Reply, ack: Ack) -> None:
        self.runner.submit(raw, source, None, ack)  # downlinks route by seal id over MQTT

    def _submit_serial(self, raw: bytes, source: str, reply: Reply) -> None:
        self.runner.submit(raw, source, reply, None)

    def _ingest_paused(self, reason: str) -> None:
        """The runner paused ingest on a store error: stop taking MQTT frames (the broker keeps
        them). Serial frames are dropped unacknowledged meanwhile: the seals retransmit."""
        if self.mqtt is not None and not self._stopped.is_set():
            self.mqtt.suspend()

    def _ingest_resumed(self) -> None:
        if self.mqtt is not None and not self._stopped.is_set():
            self.mqtt.resume()

    def notify_sinks(self) -> None:
        """Wake the sinks' workers (an admin asked for a dead letter to be sent again)."""
        for worker in self.workers:
            worker.notify()

    def _notify_workers(self) -> None:
        for worker in self.workers:
            worker.notify()
        self.bell.ring()

    def _delivered(self, sink: str, events: list[dict[str, Any]]) -> None:
        now = self.clock()
        for event in events:
            try:
                known = parse_iso(event["known_at"])
                occurred = parse_iso(event["occurred_at"])
            except (KeyError, TypeError, ValueError):
                continue
            self.metrics.forward_latency.labels(sink).observe(max(0.0, now - known))
            if event.get("kind") in ALARM_KINDS:
                self.metrics.alarm_fact_to_forward.labels(sink).observe(max(0.0, now - occurred))
            self.metrics.sink_delivered.labels(sink).inc()

    def _dead_letter(self, sink: str, event: dict[str, Any], error: str) -> None:
        self.metrics.dead_letters.labels(sink).inc()

    @property
    def registry(self) -> CollectorRegistry:
        """The Prometheus registry `/metrics` renders: the pipeline's, with the drivers' metrics."""
        return self.pipeline.registry

    def _register_metrics(self) -> None:
        m = self.metrics
        m.gauge("navseal_outbox_depth", "Events in the outbox not yet delivered, by sink",
                lambda: [({"sink": w.sink.name}, self.store.outbox_depth(w.sink.name)) for w in self.workers])
        m.gauge("navseal_dead_letters_waiting", "Events a sink refused for good, not replayed yet, by sink",
                lambda: list(({"sink": sink}, n) for sink, n in self.store.dead_letter_counts().items()))
        m.gauge("navseal_sink_failures", "Delivery failures since start, by sink",
                lambda: [({"sink": w.sink.name}, w.stats.failures) for w in self.workers])
        m.gauge("navseal_ingest_queue_length", "Frames received and waiting for the pipeline",
                lambda: [({}, self.runner.queue_length())])
        m.gauge("navseal_ingest_paused", "1 while ingest is paused on a store error, by reason "
                "(disk_full, store_error): frames are not acknowledged",
                lambda: [({"reason": r}, 1 if (self.runner.paused or {}).get("reason") == r else 0)
                         for r in ("disk_full", "store_error")])
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

    # -- lifecycle --
    def start(self) -> None:
        self.check_keys()
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
            "http": self.http.url if self.http else None,
            "dev_test_keys": self.config.dev_test_keys,
            "sinks": [w.sink.name for w in self.workers],
        })

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        log.info("gateway stopping")
        self.bell.close()  # live feeds end now rather than hold the HTTP server's exit
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
        self.reader.close()
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


def run(config: GatewayConfig, *, init: bool = False) -> int:
    """`navseal gateway run`: the production entry point. Needs a master key (seal keys are
    encrypted at rest); ConfigError (one line) when something is missing or wrong. The store is
    checked first (gateway/store/sqlite_check.py): StoreRefused (one line) when it is missing
    without `init`, empty, truncated, damaged or has lost committed data."""
    setup_logging(config.log_format, config.log_level)
    if load_master_key(config) is None:
        raise ConfigError("master_key_file: not set, and NAVSEAL_MASTER_KEY is not set either; create one "
                          "with `navseal gateway master-key --out FILE` (seal keys are encrypted with it)")
    if check_store(config, init=init) == "new":
        log.info("creating a new database", extra={"db": config.db_path})
    return GatewayService(config).run_forever()
