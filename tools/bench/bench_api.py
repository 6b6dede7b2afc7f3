"""HTTP API benchmark: what authentication costs per request, against the same server answering a
public route in the same run.

    python -m navseal.bench.bench_api [--requests 400] [--rounds 5]

One in-process gateway (no MQTT), uvicorn on loopback, one keep-alive client connection (http.client).
Per round, alternating so machine noise hits all: `GET /healthz` (public: no authentication, the
baseline), `GET /v1/me` with a bearer token (the gate: token and user rows read, argon2 skipped by
the 60 s cache), and `GET /v1/me` with a fresh token each time (argon2id verified: the first
request of a token). Reports requests/s (median round) and the ratios to the baseline.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400, help="requests per round and kind (default 400)")
    parser.add_argument("--fresh", type=int, default=10, help="first requests of fresh tokens per round (default 10)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    from navseal.gateway import auth
    from navseal.gateway.config import load_config
    from navseal.gateway.service import GatewayService

    work = Path(tempfile.mkdtemp(prefix="bench-api-"))
    config = load_config(None, db_path=str(work / "gw.sqlite3"), http_port=0, mqtt_host="", log_level="WARNING")
    svc = GatewayService(config, enable_mqtt=False)
    with svc.store.transaction() as tx:
        auth.add_user(tx, name="bench", role="auditor", now=time.time(), created_by=auth.host_actor())
        token = auth.issue_token(tx, "bench", now=time.time())[1]
        fresh = [auth.issue_token(tx, "bench", now=time.time())[1] for _ in range(args.fresh * args.rounds)]
    svc.start()
    conn = http.client.HTTPConnection(svc.http.host, svc.http.port, timeout=30)

    def get(path: str, bearer: str | None = None) -> None:
        conn.request("GET", path, headers={"Authorization": f"Bearer {bearer}"} if bearer else {})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{path}: {resp.status}")

    def rate(fn, n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return n / (time.perf_counter() - t0)

    public, cached, first = [], [], []
    try:
        get("/v1/me", token)  # warm the cache for the cached series
        for r in range(args.rounds):
            public.append(rate(lambda: get("/healthz"), args.requests))
            cached.append(rate(lambda: get("/v1/me", token), args.requests))
            batch = iter(fresh[r * args.fresh:(r + 1) * args.fresh])
            first.append(rate(lambda: get("/v1/me", next(batch)), args.fresh))
    finally:
        conn.close()
        svc.stop()
    p, c, f = statistics.median(public), statistics.median(cached), statistics.median(first)
    print(f"public GET /healthz (baseline)          {p:8.0f} req/s")
    print(f"GET /v1/me, token (cached check)        {c:8.0f} req/s   {c / p:6.2f} x baseline")
    print(f"GET /v1/me, a token's first request     {f:8.1f} req/s   {f / p:6.3f} x baseline "
          f"({1000 / f:.0f} ms each: argon2id)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
