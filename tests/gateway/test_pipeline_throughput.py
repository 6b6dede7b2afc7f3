"""Throughput of the sans-I/O core: records/s through handle_uplink into SQLite on one core.

Realistic traffic: many seals under escort (with a route and a corridor), each sending batched
RECORDS frames of 60 records, every frame committed (WAL, synchronous=FULL) and ACKed.
Run for figures:  .venv/bin/python tests/gateway/test_pipeline_throughput.py
"""

from __future__ import annotations

import pathlib
import sys
import tempfile
import time

import pytest
from pipeline_support import FakeSeal, VirtualClock, activate

from navseal.gateway.config import GatewayConfig
from navseal.gateway.pipeline import Pipeline
from navseal.gateway.store import SqliteStore

ROUTE = [(43.0, 76.0), (43.0, 77.0), (43.2, 78.0), (43.2, 79.0)]


def measure(workdir, *, seals=50, frames_per_seal=40, batch=1, synchronous="FULL", route=True):
    clock = VirtualClock()
    path = pathlib.Path(tempfile.mkdtemp(dir=workdir)) / "bench.sqlite3"
    config = GatewayConfig(db_path=str(path), db_synchronous=synchronous)
    store = SqliteStore(config.db_path, synchronous=synchronous)
    pipeline = Pipeline(store, config, clock)
    fleet = [FakeSeal(7000 + i) for i in range(seals)]
    for s in fleet:
        activate(pipeline, s, clock, pos=(43.0, 76.5), **({"route": ROUTE, "corridor_m": 2000} if route else {}))
    frames = []
    for k in range(frames_per_seal):
        for s in fleet:
            pts = [(43.0 + (j % 7) * 1e-4, 76.5 + (k * 60 + j) * 2e-5) for j in range(60)]
            frames.append(s.records(clock.t + k * 600 + 600, pts, step=10))
    per_frame = []
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for i in range(0, len(frames), batch):
        a = time.perf_counter()
        results = pipeline.handle_uplinks([(f, "bench") for f in frames[i:i + batch]])
        per_frame.append((time.perf_counter() - a) / len(results))
        assert all(r.result == "accepted" and r.downlink for r in results)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    per_frame.sort()
    records = len(frames) * 60
    assert store.counts()["records"] == records + seals
    store.close()
    return {"records_per_s": records / elapsed, "records_per_cpu_s": records / cpu, "frames": len(frames), "records": records,
            "p50_ms": per_frame[len(per_frame) // 2] * 1e3, "p99_ms": per_frame[int(len(per_frame) * 0.99)] * 1e3,
            "batch": batch, "synchronous": synchronous, "route": route}


@pytest.mark.slow
def test_throughput_floor(tmp_path):
    fig = measure(tmp_path, seals=20, frames_per_seal=10)
    print(fig)
    # A floor, not the figure: a loaded 2-core CI box must still clear it comfortably.
    assert fig["records_per_s"] > 3000


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        for kwargs in ({"batch": 1}, {"batch": 1, "synchronous": "NORMAL"}, {"batch": 1, "route": False},
                       {"batch": 32}):
            best = max((measure(d, **kwargs) for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 3)),
                       key=lambda f: f["records_per_s"])
            print(f"batch={best['batch']:3} sync={best['synchronous']:6} route={best['route']!s:5} "
                  f"frames={best['frames']} records/s={best['records_per_s']:7.0f} "
                  f"(per CPU-second {best['records_per_cpu_s']:7.0f}) "
                  f"per-frame p50={best['p50_ms']:.2f} ms p99={best['p99_ms']:.2f} ms")
