"""What a frame costs on the wire to PostgreSQL: statements sent and round trips (waits for the
server) per frame, counted by the store's connection (gateway/store/postgres.py), for the gateway
bench's stream (RECORDS frames, round-robin over the seals) fed to the pipeline in batches as the
MQTT driver forms them. Counts, not times: they do not depend on the machine. Beside them, where a
frame's time goes in this process (no broker): the server's CPU (its backend process, when the
server runs on this machine), this process's CPU, and the wall time.

    python -m navseal.bench.bench_pg_round_trips                 # a private cluster (fsync off)
    python -m navseal.bench.bench_pg_round_trips --store-url postgresql://...
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

from navseal.bench.bench_gateway import make_frames
from navseal.bench.seal_frames import SealFrames


def count(url: str, *, seals: int, frames: int, records: int, batch: int, escorts: int = 0) -> dict[str, float]:
    from navseal.bench.bench_gateway import prepare_db
    from navseal.gateway.config import load_config
    from navseal.gateway.pipeline import Pipeline
    from navseal.gateway.store.postgres import PgStore

    fleet = [SealFrames(700_000 + i) for i in range(seals)]
    escorted = [SealFrames(800_000 + i) for i in range(escorts)]
    prepare_db(None, fleet, escorted, "NORMAL", url)  # type: ignore[arg-type]
    stream = [(frame, f"mqtt:{sid}") for sid, _, frame in make_frames(fleet + escorted, frames, records)]
    store = PgStore(url)
    try:
        pipeline = Pipeline(store, load_config(None, db_path="unused", store_url=url))
        conn = store._c
        backend = conn.raw("SELECT pg_backend_pid()").fetchone()[0]
        statements, trips = conn.statements, conn.round_trips
        server, client, wall = _cpu_s(backend), time.process_time(), time.perf_counter()
        accepted = 0
        for i in range(0, len(stream), batch):
            accepted += sum(r.result == "accepted" for r in pipeline.handle_uplinks(stream[i:i + batch]))
        n = len(stream)
        server_after = _cpu_s(backend)
        return {"frames": n, "accepted": accepted, "batch": batch,
                "statements_per_frame": (conn.statements - statements) / n,
                "round_trips_per_frame": (conn.round_trips - trips) / n,
                "server_cpu_ms_per_frame": (server_after - server) * 1e3 / n if server is not None
                and server_after is not None else None,
                "client_cpu_ms_per_frame": (time.process_time() - client) * 1e3 / n,
                "wall_ms_per_frame": (time.perf_counter() - wall) * 1e3 / n}
    finally:
        store.close()


def _cpu_s(pid: int) -> float | None:
    """CPU seconds of process `pid` on this machine (None: not here, or not readable)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seals", type=int, default=200)
    parser.add_argument("--frames", type=int, default=5, help="RECORDS frames per seal")
    parser.add_argument("--records", type=int, default=60)
    parser.add_argument("--escorts", type=int, default=20, help="seals with an active escort, besides --seals")
    parser.add_argument("--batch", type=int, default=64, help="frames per transaction (the MQTT driver's most)")
    parser.add_argument("--store-url")
    args = parser.parse_args(argv)
    cluster = None
    url = args.store_url
    if not url:
        from navseal.pg_cluster import start_private_cluster

        cluster = start_private_cluster()
        url = cluster.database(f"round-trips-{time.time_ns()}")
    try:
        runs = [(args.seals, 0, "no escort")] + ([(0, args.escorts, "escorted")] if args.escorts else [])
        for seals, escorts, what in runs:
            r = count(url, seals=seals, frames=args.frames, records=args.records, batch=args.batch, escorts=escorts)
            print(f"{r['frames']} RECORDS frames ({what}), {r['batch']} per transaction: "
                  f"{r['statements_per_frame']:.2f} statements, {r['round_trips_per_frame']:.2f} round trips "
                  f"per frame ({r['accepted']} accepted)")
            server = "?" if r["server_cpu_ms_per_frame"] is None else f"{r['server_cpu_ms_per_frame']:.2f}"
            print(f"   per frame: server CPU {server} ms, this process's CPU {r['client_cpu_ms_per_frame']:.2f} ms, "
                  f"wall {r['wall_ms_per_frame']:.2f} ms")
    finally:
        if cluster is not None:
            cluster.stop("immediate")
            shutil.rmtree(cluster.root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
