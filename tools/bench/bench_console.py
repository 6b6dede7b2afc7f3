"""The console's escorts table with 100,000 escorts stored: how long a filtered page takes.

    python -m navseal.bench.bench_console [--escorts 100000] [--seals 2000] [--rounds 7]

Fills a fresh SQLite store through the store's own transaction methods: `--seals` seals, each with
escorts one after another (the newest one open, the others deactivated, a few failed), offices
from a pool of 20, an alarm on one escort in ten, and POSITION events beside them. Then times one
page (50 rows, what `GET /v1/console/escorts` builds: rows, alarm badges, companion seals) for each
filter the console offers, the median of `--rounds`, and reports it in milliseconds and as a ratio
to the unfiltered first page measured in the same run (this machine is noisy). For comparison it
also times one escort by its id (the cheapest indexed read) and what the HTTP API offered before
the console: the unpaginated list of every open escort (`Pipeline.status()`).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

OFFICES = [f"5{n:04d}" for n in range(600, 620)]
ALARMS = ("UNAUTHORIZED_OPENING", "SIGNAL_LOST", "ROUTE_DEVIATION", "LOW_BATTERY", "HOUSING_OPENED")
T_START = 1_700_000_000.0
DAY = 86400.0


def fill(store: Any, *, escorts: int, seals: int, seed: int = 1, position_events: int = 2) -> dict[str, Any]:
    """Escorts, seals and events as a busy operator's store holds them after some years."""
    from navseal.gateway.events import iso

    rng = random.Random(seed)
    per_seal = max(1, escorts // seals)
    spacing = 5 * 365 * DAY / per_seal  # five years of escorts per seal
    now = T_START + 5 * 365 * DAY
    outbox = 0
    with store.transaction() as tx:
        for sid in range(1, seals + 1):
            tx.put_seal_key(sid, bytes(32), T_START)
            tx.update_seal(sid, last_seen_at=now - rng.uniform(0, 3600), last_fix_time=int(now - rng.uniform(0, 3600)),
                           last_lat=432380000, last_lon=769450000, last_battery_pct=rng.randint(10, 100),
                           last_cable_intact=1, last_housing_closed=1)
    made = 0
    batch: list[tuple[dict, list[dict]]] = []
    for i in range(escorts):
        sid = i % seals + 1
        k = i // seals  # this seal's k-th escort: time runs with it
        start = T_START + k * spacing + rng.uniform(0, spacing / 4)
        newest = k == (escorts - 1 - (i % seals)) // seals
        status = "active" if newest else ("failed" if rng.random() < 0.02 else "deactivated")
        dep, dest = rng.sample(OFFICES, 2)
        row = {"seal_id": sid, "declaration": f"{dep}/{time.strftime('%d%m%y', time.gmtime(start))}/{i:07d}",
               "vehicle": f"{rng.randint(100, 999)}{rng.choice('ABCEHKMOPTX')}{rng.choice('ABCEHKMOPTX')}"
                          f"{rng.choice('ABCEHKMOPTX')}{rng.randint(1, 17):02d}",
               "departure_office_code": dep, "departure_office_name": f"post {dep}",
               "dest_office_code": dest, "dest_office_name": f"post {dest}",
               "period_start": start, "period_end": start + 3 * DAY, "route": None, "corridor_m": 0,
               "status": status, "requested_at": start, "confirmed_at": start + 60,
               "activated_at": start + 120 if status != "failed" else None,
               "deactivation_requested_at": start + 2 * DAY if status == "deactivated" else None,
               "deactivated_at": start + 2 * DAY + 600 if status == "deactivated" else None,
               "clean": (1 if rng.random() > 0.1 else 0) if status == "deactivated" else None}
        events = []
        kinds = ["POSITION"] * position_events + ([rng.choice(ALARMS)] if rng.random() < 0.1 else [])
        for j, kind in enumerate(kinds):
            t = start + 3600 * (j + 1)
            events.append({"event_id": f"{i:016x}{j:016x}", "kind": kind, "seal_id": sid, "alarm": kind != "POSITION",
                           "occurred_at": iso(t), "known_at": iso(t), "emitted_at": iso(t), "position": None,
                           "details": {}})
        batch.append((row, events))
        if len(batch) >= 5000 or i == escorts - 1:
            with store.transaction() as tx:
                for r, evs in batch:
                    eid = tx.insert_escort(r)
                    for e in evs:
                        e["escort_id"] = eid
                    tx.insert_events(evs, [eid] * len(evs), r["requested_at"])
                    outbox += len(evs)
                    made += 1
            batch = []
    return {"escorts": made, "seals": seals, "events": outbox, "now": now}


def median_ms(fn: Callable[[], Any], rounds: int) -> float:
    fn()  # warm the page cache: what is measured is the query, not the disk
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def cases(store: Any, now: float, config: Any) -> dict[str, Callable[[], Any]]:
    """The table's filters, each as the route runs it (gateway/api/routes_browse.py)."""
    from navseal.gateway.api.routes_browse import escort_page, escort_query

    def page(offices=None, **filters: Any) -> Callable[[], Any]:
        args = {"state": None, "office": None, "alarm": None, "since": None, "until": None, "q": None,
                "cursor": None, "limit": 50, **filters}
        query = escort_query(offices=offices, now=now, config=config, **args)
        return lambda: escort_page(store, query, now=now, config=config)

    officer = tuple(OFFICES[:2])
    last = store.escort_rows(escort_query(offices=None, now=now, config=config, state=None, office=None, alarm=None,
                                          since=None, until=None, q=None, cursor=None, limit=1))[0]
    return {
        "first page, no filter": page(),
        "officer's scope (2 offices)": page(offices=officer),
        "state active": page(state="active"),
        "state overdue": page(state="overdue"),
        "alarm any": page(alarm="any"),
        "alarm ROUTE_DEVIATION": page(alarm="ROUTE_DEVIATION"),
        "search declaration prefix": page(q=OFFICES[3] + "/"),
        "search plate prefix": page(q=last["vehicle"][:4]),
        "activation dates (one month)": page(since=str(now - 400 * DAY), until=str(now - 370 * DAY)),
        "officer + active + alarm": page(offices=officer, state="active", alarm="any"),
        "page 1000 (deep cursor)": page(cursor=str(max(1, last["escort_id"] - 50_000))),
    }


def run(escorts: int, seals: int, rounds: int, work: Path | None = None) -> dict[str, Any]:
    from navseal.gateway.config import GatewayConfig
    from navseal.gateway.pipeline import Pipeline
    from navseal.gateway.store import SqliteStore

    work = work or Path(tempfile.mkdtemp(prefix="bench-console-"))
    store = SqliteStore(str(work / "gw.sqlite3"), synchronous="OFF")
    config = GatewayConfig(db_path=str(work / "gw.sqlite3"), db_synchronous="OFF")
    t = time.perf_counter()
    filled = fill(store, escorts=escorts, seals=seals)
    fill_s = time.perf_counter() - t
    now = filled["now"]
    first_id = store.escort_rows(__import__("navseal.gateway.store.console", fromlist=["EscortQuery"])
                                 .EscortQuery(limit=1))[0]["escort_id"]
    baseline = median_ms(lambda: store.escort_with_seal(first_id), rounds)
    results = {name: median_ms(fn, rounds) for name, fn in cases(store, now, config).items()}
    pipeline = Pipeline(store, config, clock=lambda: now)
    before = median_ms(lambda: pipeline.status(), max(1, rounds // 2))
    store.close()
    return {"filled": filled, "fill_s": fill_s, "baseline_ms": baseline, "pages_ms": results,
            "all_open_unpaginated_ms": before}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--escorts", type=int, default=100_000)
    parser.add_argument("--seals", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    out = run(args.escorts, args.seals, args.rounds)
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    f = out["filled"]
    print(f"store: {f['escorts']} escorts, {f['seals']} seals, {f['events']} events (filled in {out['fill_s']:.1f} s)")
    first = out["pages_ms"]["first page, no filter"]
    print(f"one escort by id (primary key): {out['baseline_ms']:.3f} ms")
    print(f"{'page of 50 (rows + badges + seals)':<40} {'ms':>8} {'x first page':>13}")
    for name, ms in out["pages_ms"].items():
        print(f"{name:<40} {ms:8.2f} {ms / first:13.1f}")
    before = out["all_open_unpaginated_ms"]
    print(f"{'before: every open escort, unpaginated':<40} {before:8.1f} {before / first:13.1f}  "
          f"({f['seals']} open escorts)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
