"""Gateway metrics in the Prometheus text exposition format (version 0.0.4), no dependency.

Counters and histograms keyed by label tuples, guarded by one lock (updates come from the pipeline
runner, the outbox workers and the drivers). Gauges that live elsewhere (outbox depth, queue
length, connection state) are read at scrape time through callbacks, so they are never stale.
"""

from __future__ import annotations

import bisect
import math
import threading
from typing import Callable, Iterable

# Seconds. Ingest is expected in milliseconds; forwarding to the operator within seconds (the rules
# allow an hour, clause 11), so the buckets reach that far.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0, 300.0, 900.0, 3600.0,
)

Labels = tuple[tuple[str, str], ...]


def _labels(**labels: object) -> Labels:
    return tuple(sorted((k, str(v)) for k, v in labels.items()))


def _fmt_labels(labels: Labels, extra: tuple[str, str] | None = None) -> str:
    items = list(labels) + ([extra] if extra else [])
    if not items:
        return ""
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in items)
    return "{" + body + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt_value(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class Histogram:
    def __init__(self, buckets: Iterable[float] = LATENCY_BUCKETS) -> None:
        self.bounds = tuple(buckets)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0
        # Recent samples for quantile estimates in `quantile()` (bench, status); bounded.
        self._recent: list[float] = []

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1
        if len(self._recent) >= 100_000:
            del self._recent[:50_000]
        self._recent.append(value)

    def quantile(self, q: float) -> float | None:
        if not self._recent:
            return None
        ordered = sorted(self._recent)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[Labels, float]] = {}
        self._histograms: dict[str, dict[Labels, Histogram]] = {}
        self._help: dict[str, str] = {}
        self._gauges: list[tuple[str, str, Callable[[], Iterable[tuple[Labels, float]]]]] = []
        self._collectors: list[Callable[[], str]] = []
        self._buckets: dict[str, tuple[float, ...]] = {}

    def buckets(self, name: str, bounds: Iterable[float]) -> None:
        """Bucket bounds for a histogram other than a latency (set before the first observation)."""
        self._buckets[name] = tuple(bounds)

    def describe(self, name: str, help_text: str) -> None:
        self._help[name] = help_text

    def inc(self, name: str, amount: float = 1, **labels: object) -> None:
        key = _labels(**labels)
        with self._lock:
            series = self._counters.setdefault(name, {})
            series[key] = series.get(key, 0) + amount

    def observe(self, name: str, value: float, **labels: object) -> None:
        key = _labels(**labels)
        with self._lock:
            series = self._histograms.setdefault(name, {})
            hist = series.get(key)
            if hist is None:
                hist = series[key] = Histogram(self._buckets.get(name, LATENCY_BUCKETS))
            hist.observe(value)

    def gauge(self, name: str, help_text: str, read: Callable[[], Iterable[tuple[dict, float]]]) -> None:
        """Register a gauge read at scrape time: `read()` yields (labels dict, value)."""

        def wrapped() -> Iterable[tuple[Labels, float]]:
            return [(_labels(**labels), value) for labels, value in read()]

        self._gauges.append((name, help_text, wrapped))

    def collector(self, render: Callable[[], str]) -> None:
        """Register a callable returning ready exposition text (metrics kept by another module)."""
        self._collectors.append(render)

    def counter_value(self, name: str, **labels: object) -> float:
        with self._lock:
            return self._counters.get(name, {}).get(_labels(**labels), 0)

    def counter_total(self, name: str) -> float:
        with self._lock:
            return sum(self._counters.get(name, {}).values())

    def histogram(self, name: str, **labels: object) -> Histogram | None:
        with self._lock:
            return self._histograms.get(name, {}).get(_labels(**labels))

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for name in sorted(self._counters):
                lines.append(f"# HELP {name} {self._help.get(name, name)}")
                lines.append(f"# TYPE {name} counter")
                for labels, value in sorted(self._counters[name].items()):
                    lines.append(f"{name}{_fmt_labels(labels)} {_fmt_value(value)}")
            for name in sorted(self._histograms):
                lines.append(f"# HELP {name} {self._help.get(name, name)}")
                lines.append(f"# TYPE {name} histogram")
                for labels, hist in sorted(self._histograms[name].items()):
                    cumulative = 0
                    for bound, count in zip(hist.bounds + (math.inf,), hist.counts):
                        cumulative += count
                        lines.append(
                            f"{name}_bucket{_fmt_labels(labels, ('le', _fmt_value(bound)))} {cumulative}"
                        )
                    lines.append(f"{name}_sum{_fmt_labels(labels)} {_fmt_value(hist.sum)}")
                    lines.append(f"{name}_count{_fmt_labels(labels)} {hist.count}")
        for name, help_text, read in self._gauges:
            try:
                samples = list(read())
            except Exception as exc:  # noqa: BLE001 - a broken gauge must not break the scrape
                lines.append(f"# gauge {name} unavailable: {exc!r}")
                continue
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} gauge")
            for labels, value in samples:
                lines.append(f"{name}{_fmt_labels(labels)} {_fmt_value(value)}")
        for render in self._collectors:
            try:
                text = render()
            except Exception as exc:  # noqa: BLE001 - a broken collector must not break the scrape
                lines.append(f"# collector unavailable: {exc!r}")
                continue
            if text:
                lines.append(text.rstrip("\n"))
        return "\n".join(lines) + "\n"


def render_counter(name: str, help_text: str, samples: Iterable[tuple[dict, float]]) -> str:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
    for labels, value in samples:
        lines.append(f"{name}{_fmt_labels(_labels(**labels))} {_fmt_value(value)}")
    return "\n".join(lines)


def render_histogram_snapshot(name: str, help_text: str, snapshot: dict) -> str:
    """A snapshot {"buckets": [(le, cumulative)], "sum", "count"} in exposition format."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
    for bound, cumulative in snapshot["buckets"]:
        lines.append(f'{name}_bucket{{le="{_fmt_value(bound)}"}} {cumulative}')
    lines.append(f"{name}_sum {_fmt_value(snapshot['sum'])}")
    lines.append(f"{name}_count {snapshot['count']}")
    return "\n".join(lines)
