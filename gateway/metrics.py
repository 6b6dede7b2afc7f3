"""The gateway's metrics on prometheus_client: one registry per Pipeline, rendered by `/metrics`.

Each `Pipeline` owns a `CollectorRegistry` (not prometheus_client's global one), so several pipelines
in one process (tests, the simulator) keep separate counts. `PipelineMetrics` holds what the core
counts (frames, records, events, commands, two histograms); `ServiceMetrics` adds, to the same
registry, what the drivers measure (receipt-to-commit latency, batch sizes, sinks, downlinks) and
gauges read at scrape time (outbox depth, queue length, connections), so they are never stale.
The HTTP layer renders the registry with `prometheus_client.generate_latest(registry)`.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from . import events as ev

log = logging.getLogger("navseal.gateway.metrics")

# Alarm fact (seal or gateway time) to committed in the outbox: seconds for a live seal, up to a day
# for one that was out of coverage (its alarm arrives with the backlog).
ALARM_LATENCY_BUCKETS = (1, 5, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 24 * 3600)
# Pipeline time per frame: ingest is expected in fractions of a millisecond.
INGEST_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0)
# Driver latencies: ingest in milliseconds, forwarding to the operator within seconds (the rules
# allow an hour, clause 11), so the buckets reach that far.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0, 300.0, 900.0, 3600.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

# The core's plain counters: name (exposed as navseal_<name>_total) -> help.
PIPELINE_COUNTERS = {
    "records_committed": "Records newly committed",
    "records_duplicate": "Records received again (already committed)",
    "acks_sent": "ACK frames built for accepted or duplicate frames",
    "ack_encode_errors": "ACKs that could not be built (the frame was stored; the seal's retransmission is re-ACKed)",
    "commands_sent": "Command transmissions to seals (first sends and retries)",
    "commands_acked": "Commands the seal confirmed (a COMMAND_RESULT or a STATE showing them done)",
    "commands_failed": "Commands the seal refused or that could not be encoded",
    "commands_journal_pending": "DEACTIVATE answers JOURNAL_PENDING (not yet: the seal still holds "
                                "unacknowledged records; sent again with the answer to its next frame)",
    "command_results_unmatched": "COMMAND_RESULT frames matching no open command",
    "activations_requested": "Activation requests accepted",
    "tick_errors": "Timer runs (tick) that failed and committed nothing",
    "frames_topic_mismatch": "Authenticated frames refused because their seal id is not the one of "
                             "the MQTT topic they came on (a seal's frame replayed through another's topic)",
}


class PipelineMetrics:
    """What the core counts, as Prometheus collectors on `registry`; `snapshot()` reads them back."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.frames = Counter("navseal_frames", "Uplink frames by result (accepted, duplicate, rejected) "
                              "and refusal reason", ["result", "reason"], registry=r)
        self.events = Counter("navseal_events", "Operator events created, by kind", ["kind"], registry=r)
        self.counters = {name: Counter(f"navseal_{name}", text, registry=r) for name, text in PIPELINE_COUNTERS.items()}
        self.alarm_latency = Histogram("navseal_alarm_latency_seconds", "Alarm fact (occurred_at) to "
                                       "committed in the outbox", buckets=ALARM_LATENCY_BUCKETS, registry=r)
        self.ingest = Histogram("navseal_ingest_seconds", "Pipeline time per frame (decode to commit)",
                                buckets=INGEST_BUCKETS, registry=r)
        self._frame_series: dict[tuple[str, str], Any] = {}  # labels() takes a lock: once per label pair

    def count(self, name: str, amount: float = 1) -> None:
        self.counters[name].inc(amount)

    def frame(self, result: str, reason: str) -> None:
        series = self._frame_series.get((result, reason))
        if series is None:
            series = self._frame_series[(result, reason)] = self.frames.labels(result, reason)
        series.inc()

    def events_created(self, events: Iterable[dict[str, Any]]) -> None:
        for e in events:
            self.events.labels(e["kind"]).inc()
            if e.get("alarm") and e.get("occurred_at"):
                self.alarm_latency.observe(max(0.0, ev.parse_iso(e["emitted_at"]) - ev.parse_iso(e["occurred_at"])))

    def snapshot(self) -> dict[str, Any]:
        """For tests and tools, read from the same collectors: frames {(result, reason): n} (reason ""
        when accepted/duplicate), events {kind: n}, counters {name: n} (every PIPELINE_COUNTERS name),
        alarm_latency_s and ingest_s ({"buckets": [(le, cumulative)], "sum", "count"})."""
        return {
            "frames": {(s.labels["result"], s.labels["reason"]): int(s.value) for s in _samples(self.frames, "_total")},
            "events": {s.labels["kind"]: int(s.value) for s in _samples(self.events, "_total")},
            "counters": {name: int(next(iter(_samples(c, "_total"))).value) for name, c in self.counters.items()},
            "alarm_latency_s": _histogram(self.alarm_latency),
            "ingest_s": _histogram(self.ingest),
        }


def _samples(collector: Any, suffix: str) -> list[Any]:
    return [s for metric in collector.collect() for s in metric.samples if s.name.endswith(suffix)]


def _histogram(h: Histogram) -> dict[str, Any]:
    samples = [s for metric in h.collect() for s in metric.samples]
    out: dict[str, Any] = {"buckets": [], "sum": 0.0, "count": 0}
    for s in samples:
        if s.name.endswith("_bucket"):
            out["buckets"].append((float(s.labels["le"]), int(s.value)))
        elif s.name.endswith("_sum"):
            out["sum"] = s.value
        elif s.name.endswith("_count"):
            out["count"] = int(s.value)
    return out


Read = Callable[[], Iterable[tuple[dict[str, Any], float]]]


class _ScrapeGauge(Collector):
    """A gauge whose samples `read()` yields at scrape time as (labels, value)."""

    def __init__(self, name: str, text: str, read: Read) -> None:
        self.name, self.text, self.read = name, text, read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        try:
            samples = list(self.read())
        except Exception:  # noqa: BLE001 - a broken gauge must not break the scrape
            log.exception("gauge %s unavailable", self.name)
            return []
        labels = sorted({k for lab, _ in samples for k in lab})
        family = GaugeMetricFamily(self.name, self.text, labels=labels)
        for lab, value in samples:
            family.add_metric([str(lab.get(k, "")) for k in labels], value)
        return [family]


class ServiceMetrics:
    """What the gateway service's drivers measure, on the pipeline's registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.ingest_latency = Histogram("navseal_ingest_latency_seconds", "Frame receipt by a driver to its commit",
                                        buckets=LATENCY_BUCKETS, registry=r)
        self.batch_frames = Histogram("navseal_ingest_batch_frames", "Frames committed per transaction "
                                      "(group commit)", buckets=BATCH_BUCKETS, registry=r)
        self.forward_latency = Histogram("navseal_forward_latency_seconds", "Event known to the gateway to "
                                         "delivered by a sink", ["sink"], buckets=LATENCY_BUCKETS, registry=r)
        self.alarm_fact_to_forward = Histogram("navseal_alarm_fact_to_forward_seconds", "Alarm fact "
                                               "(occurred_at) to delivered by a sink", ["sink"],
                                               buckets=LATENCY_BUCKETS, registry=r)
        self.sink_delivered = Counter("navseal_sink_delivered", "Events delivered, by sink", ["sink"], registry=r)
        self.downlinks = Counter("navseal_downlinks", "Downlink frames handed to a transport", registry=r)
        self.downlinks_unroutable = Counter("navseal_downlinks_unroutable", "Downlink frames with no route to "
                                            "their seal (it never spoke on a transport)", registry=r)
        self.downlinks_failed = Counter("navseal_downlinks_failed", "Downlink frames a transport failed to send",
                                        registry=r)
        self.dead_letters = Counter("navseal_dead_letters", "Events a sink refused for good (kept as dead letters), "
                                    "by sink", ["sink"], registry=r)
        self.ingest_pauses = Counter("navseal_ingest_pauses", "Times ingest paused on a store error, by reason "
                                     "(disk_full, store_error)", ["reason"], registry=r)
        self.ingest_deferred = Counter("navseal_ingest_deferred_frames", "Frames left unacknowledged while ingest "
                                       "was paused (redelivered by the broker, retransmitted by serial seals)",
                                       registry=r)

    def gauge(self, name: str, text: str, read: Read) -> None:
        """Register a gauge read at scrape time: `read()` yields (labels dict, value)."""
        self.registry.register(_ScrapeGauge(name, text, read))
