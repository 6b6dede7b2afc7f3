"""Capacity model for a fleet, checked against the gateway on this machine.

    python -m navseal.bench.bench_capacity                          # 100,000 seals, SQLite (~3 min)
    python -m navseal.bench.bench_capacity --postgresql             # the gateway on PostgreSQL
    python -m navseal.bench.bench_capacity --seals 2000 --window-s 5   # smoke

The model (docs/gateway.md, "Capacity"): an escorted seal reports a position every
`report_moving_s` (30 s) while moving and every `report_stopped_s` (300 s) while stopped, one
RECORDS frame per report when it is online, and a STATE every `heartbeat_s` (900 s). So

    frames/s = seals x (moving/30 + (1 - moving)/300 + 1/900)

and one instance carries `capacity` frames/s of such one-record frames; instances needed =
ceil(frames/s / (capacity x headroom)), headroom 0.5 by default (a fleet comes back from a
coverage gap with a backlog; the seals' batches of up to 60 records absorb it, see phase A of
bench_gateway).

The run (one fresh Mosquitto and gateway per phase, `navseal gateway run`, all processes on this
machine):

1. Every one of `--seals` seals is provisioned in the store (one transaction): the store holds the
   fleet's rows and indexes.
2. Capacity: one-record RECORDS frames from all seals in turn (each frame a different seal, so no
   cache sees the same seal twice in a row), published as fast as one publisher can; committed
   frames/s timed by the ACKs, and, in the same run, a bare paho subscriber's msgs/s.
3. The model's load, sampled: the fleet's frame rate from the model, paced, for `--window-s`
   seconds of real time (not compressed: the rate is the fleet's real rate), each frame from the
   next seal in turn, so a 30 s window at 100,000 seals touches every seal about once, as one
   moving-report interval does. STATE heartbeats are sent as one-record RECORDS frames (same
   rate, the cheaper path is not what limits). It reports the publish -> ACK latency and whether
   the gateway kept up (every frame ACKed, p99 under `--max-p99-ms`).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from navseal.bench.bench_gateway import (
    bare_subscriber,
    open_bench_store,
    pct,
    publish,
    seal_side_listener,
    start_gateway,
    stop,
    write_gateway_config,
)
from navseal.bench.seal_frames import SealFrames
from navseal.gateway.mosquitto_broker import MosquittoBroker

REPORT_MOVING_S = 30.0  # firmware defaults (docs/firmware.md, "Reporting defaults")
REPORT_STOPPED_S = 300.0
HEARTBEAT_S = 900.0


def fleet_frames_per_s(seals: int, moving: float, *, report_moving_s: float = REPORT_MOVING_S,
                       report_stopped_s: float = REPORT_STOPPED_S, heartbeat_s: float = HEARTBEAT_S) -> float:
    """The model: frames per second a fleet of escorted seals sends, `moving` the share moving."""
    return seals * (moving / report_moving_s + (1.0 - moving) / report_stopped_s + 1.0 / heartbeat_s)


def instances_needed(frames_per_s: float, capacity: float, headroom: float = 0.5) -> int:
    return max(1, math.ceil(frames_per_s / max(1e-9, capacity * headroom)))


def provision(path: Path, seals: list[SealFrames], store_url: str | None) -> float:
    """Every seal in one transaction (keys as the bench gateways read them: the published test keys,
    stored raw; the gateway encrypts them with its master key when it opens the store)."""
    from navseal.bench.bench_gateway import _bench_token

    start = time.perf_counter()
    store = open_bench_store(path, store_url, "NORMAL")
    try:
        now = time.time()
        with store.transaction() as tx:
            for seal in seals:
                tx.put_seal_key(seal.seal_id, seal.key, now)
    finally:
        store.close()
    _bench_token(path, store_url)
    return time.perf_counter() - start


def run_phase(work: Path, name: str, db: Path, store_url: str | None, frames: list[tuple[int, int, bytes]],
              *, rate: float | None, idle_s: float, with_bare: bool) -> dict:
    with MosquittoBroker(work / f"broker-{name}") as broker:
        config = work / f"{name}.toml"
        http_port = write_gateway_config(config, broker, db, client_id=f"cap-gw-{name}", share_group=None,
                                         synchronous="FULL", store_url=store_url)
        gateway = start_gateway(config, http_port, work / f"gw-{name}.log")
        ctx = mp.get_context("fork")
        out = ctx.Queue()
        side_ready, bare_ready = ctx.Event(), ctx.Event()
        side = ctx.Process(target=seal_side_listener,
                           args=(broker.host, broker.port, len(frames), 0, side_ready, out, idle_s))
        side.start()
        bare = None
        if with_bare:
            bare = ctx.Process(target=bare_subscriber, args=(broker.host, broker.port, len(frames), bare_ready, out))
            bare.start()
            bare_ready.wait(10)
        side_ready.wait(10)
        t0 = time.time()
        sent = publish(frames, broker.host, broker.port, rate=rate)
        publish_s = time.time() - t0
        results = {}
        for _ in range(2 if with_bare else 1):
            item = out.get(timeout=1800)
            results[item[0]] = item[1:]
        side.join(10)
        if bare is not None:
            bare.join(10)
        stop(gateway)
    acks = results["seal_side"][0]
    times = list(acks.values())
    lat = [acks[f"{s}:{q}"] - t for (s, q), t in sent.items() if f"{s}:{q}" in acks]
    figures = {
        "frames": len(frames), "publish_rate": len(frames) / max(1e-9, publish_s), "acked": len(times),
        "gateway_frames_per_s": len(times) / max(1e-9, max(times) - min(times)) if len(times) > 1 else 0.0,
        "p50_ms": pct(lat, 0.5) * 1000, "p99_ms": pct(lat, 0.99) * 1000, "max_ms": max(lat, default=0) * 1000,
    }
    if with_bare:
        n_bare, first, last = results["bare"][:3]  # then its CPU time (bench_gateway)
        figures["bare_rate"] = n_bare / max(1e-9, last - first)
        figures["ratio"] = figures["gateway_frames_per_s"] / figures["bare_rate"] if figures["bare_rate"] else 0.0
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seals", type=int, default=100_000)
    parser.add_argument("--moving", type=float, default=1.0, help="share of the fleet moving (worst case: 1)")
    parser.add_argument("--window-s", type=float, default=30.0, help="real seconds of the model's load to play")
    parser.add_argument("--capacity-frames", type=int, default=20_000, help="frames of the capacity phase")
    parser.add_argument("--headroom", type=float, default=0.5)
    parser.add_argument("--max-p99-ms", type=float, default=1000.0, help="'kept up' needs p99 below this")
    parser.add_argument("--postgresql", action="store_true",
                        help="the gateway on PostgreSQL (a private cluster started for the run, fsync off; or --store-url)")
    parser.add_argument("--store-url", help="postgresql:// URL of a database the bench may fill (both phases)")
    parser.add_argument("--idle-s", type=float, default=20.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    model = fleet_frames_per_s(args.seals, args.moving)
    seals = [SealFrames(1_000_000 + i) for i in range(args.seals)]
    cluster = None
    store_url = args.store_url
    if args.postgresql and not store_url:
        from navseal.pg_cluster import start_private_cluster

        cluster = start_private_cluster()
    figures: dict = {"cpus": os.cpu_count(), "seals": args.seals, "moving": args.moving,
                     "model_frames_per_s": model, "engine": "postgresql" if (args.postgresql or store_url) else "sqlite"}
    try:
        with tempfile.TemporaryDirectory(prefix="navseal-capacity-") as tmp:
            work = Path(tmp)
            phases = {}
            for name in ("capacity", "model"):
                db = work / f"{name}.sqlite3"
                url = cluster.database(name) if cluster else store_url
                figures[f"provision_{name}_s"] = provision(db, seals, url)
                if name == "capacity":
                    order = [seals[i % len(seals)] for i in range(args.capacity_frames)]
                    rate = None
                else:
                    count = max(1, int(model * args.window_s))
                    order = [seals[i % len(seals)] for i in range(count)]
                    rate = model
                frames = []
                for seal in order:
                    frame = seal.records(1)
                    frames.append((seal.seal_id, seal.seq - 1, frame))
                phases[name] = run_phase(work, name, db, url, frames, rate=rate, idle_s=args.idle_s,
                                         with_bare=name == "capacity")
    finally:
        if cluster is not None:
            cluster.stop("immediate")
            shutil.rmtree(cluster.root, ignore_errors=True)
    cap, run = phases["capacity"], phases["model"]
    kept_up = run["acked"] == run["frames"] and run["p99_ms"] <= args.max_p99_ms
    # One instance's capacity: the higher committed rate of the two phases while saturated (the
    # capacity phase can be bound by the one publisher beside the bare subscriber; a model run that
    # did not keep up was saturated too).
    capacity = max(cap["gateway_frames_per_s"], 0.0 if kept_up else run["gateway_frames_per_s"])
    publisher_bound = cap["gateway_frames_per_s"] >= 0.9 * cap["publish_rate"]
    figures.update(capacity=cap, model_run=run, capacity_frames_per_s=capacity, publisher_bound=publisher_bound,
                   instances_needed=instances_needed(model, capacity, args.headroom), kept_up=kept_up)
    print(f"model: {args.seals} seals, {args.moving:.0%} moving -> {model:.0f} frames/s "
          f"({args.seals * args.moving / REPORT_MOVING_S:.0f} position reports/s + heartbeats); "
          f"engine {figures['engine']}, {os.cpu_count()} CPUs")
    print(f"1. provisioned {args.seals} seals in {figures['provision_capacity_s']:.1f} s")
    print(f"2. capacity (one-record frames, each from another seal): gateway {cap['gateway_frames_per_s']:.0f} "
          f"frames/s, bare subscriber {cap['bare_rate']:.0f} msgs/s in the same run ({cap['ratio'] * 100:.0f} %), "
          f"publisher {cap['publish_rate']:.0f} frames/s" + (" (publisher-bound: a lower bound)" if publisher_bound else ""))
    print(f"3. the model's load for {args.window_s:.0f} s: offered {model:.0f} frames/s (published at "
          f"{run['publish_rate']:.0f}), ACKed {run['acked']}/{run['frames']}, publish -> ACK p50 {run['p50_ms']:.0f} ms "
          f"p99 {run['p99_ms']:.0f} ms max {run['max_ms']:.0f} ms: {'kept up' if kept_up else 'did NOT keep up'}")
    print(f"   one instance's capacity {capacity:.0f} frames/s (the higher of 2 and, when it did not keep up, 3); "
          f"instances needed at {args.headroom:.0%} headroom: {figures['instances_needed']} "
          f"(ceil({model:.0f} / ({capacity:.0f} x {args.headroom})))")
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
