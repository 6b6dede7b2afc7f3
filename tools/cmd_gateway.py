"""`navseal gateway ...`: run the gateway and send it commands.

    navseal gateway run --config gateway.toml
    navseal gateway provision --seal 1001 --test-key --db gw.sqlite3
    navseal gateway activate --seal 1001 --declaration 10228010/261126/0000001 --vehicle 123ABC02 \\
        --departure-office 10228010 --departure-office-name "Almaty customs post" \\
        --dest-office 10232010 --dest-office-name "Khorgos customs post" \\
        --period-end 2026-11-29T12:00:00Z --route route.geojson --corridor 500
    navseal gateway deactivate --seal 1001 --declaration 10228010/261126/0000001 --vehicle 123ABC02
    navseal gateway status [--seal 1001] [--json]
    navseal gateway purge --config gateway.toml [--now 2031-12-01T00:00:00Z]

Commands talk to the running gateway's HTTP API (`--api`, default from the config's [http] or
http://127.0.0.1:8080) or, with `--db FILE`, directly to the SQLite database (when the gateway is
not running, or for scripts). Exit codes: 0 ok, 1 refused by the gateway, 2 bad usage, 3 gateway
unreachable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gateway",
        help="run the gateway; activate, deactivate, status, provision, purge",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="gateway_command", metavar="ACTION")
    parser.set_defaults(func=lambda args: (parser.print_help(), EXIT_USAGE)[1])

    run = sub.add_parser(
        "run",
        help="run the gateway service until SIGTERM/SIGINT",
        description="Run the gateway: MQTT/serial ingest, pipeline, sinks, HTTP API.",
        epilog="example: navseal gateway run --config /etc/navseal/gateway.toml",
    )
    run.add_argument("--config", "-c", help="TOML configuration (see docs/gateway.md); defaults without it")
    run.add_argument("--db", help="override db_path from the config")
    run.add_argument("--http-port", type=int, help="override [http] port (0: any free port)")
    run.set_defaults(func=cmd_run)

    def target_options(p: argparse.ArgumentParser) -> None:
        where = p.add_mutually_exclusive_group()
        where.add_argument("--api", help="gateway HTTP API base URL (default http://<[http] host>:<port>)")
        where.add_argument("--db", help="work on this SQLite database directly instead of the API")
        p.add_argument("--config", "-c", help="gateway TOML (for the API address or db settings)")
        p.add_argument("--json", action="store_true", help="print the raw JSON answer")

    act = sub.add_parser(
        "activate",
        help="activate an escort (clause 8 data)",
        description="Queue ACTIVATE for a seal with the clause 8 data of the customs office of departure. "
        "ACTIVATED is emitted once the seal confirmed and sent a first fix with the lock intact.",
        epilog="example: navseal gateway activate --seal 1001 --declaration 10228010/261126/0000001 "
        "--vehicle 123ABC02 --departure-office 10228010 --departure-office-name Almaty "
        "--dest-office 10232010 --dest-office-name Khorgos --period-hours 72 --route r.geojson --corridor 500",
    )
    act.add_argument("--seal", type=int, required=True, help="seal number")
    act.add_argument("--declaration", required=True, help="transit declaration number (<= 40 bytes)")
    act.add_argument("--vehicle", required=True, help="vehicle registration number (<= 16 bytes)")
    act.add_argument("--departure-office", required=True, help="customs office of departure: code")
    act.add_argument("--departure-office-name", required=True, help="customs office of departure: name")
    act.add_argument("--dest-office", required=True, help="customs office of destination: code (<= 16)")
    act.add_argument("--dest-office-name", required=True, help="customs office of destination: name (<= 64)")
    act.add_argument("--period-start", help="transit period start, ISO 8601 or Unix s (default: now)")
    period = act.add_mutually_exclusive_group(required=True)
    period.add_argument("--period-end", help="transit deadline, ISO 8601 or Unix s")
    period.add_argument("--period-hours", type=float, help="transit deadline as hours after the start")
    act.add_argument("--route", help="route file: GeoJSON LineString or GPX")
    act.add_argument("--corridor", type=int, default=0, help="corridor half-width in metres (0: no route check)")
    target_options(act)
    act.set_defaults(func=cmd_activate)

    deact = sub.add_parser(
        "deactivate",
        help="deactivate an escort (clause 13 data)",
        description="Queue DEACTIVATE. Seal, declaration and vehicle must match the escort, or it is "
        "refused. The seal must confirm within one hour (DEACTIVATION_OVERDUE otherwise).",
        epilog="example: navseal gateway deactivate --seal 1001 --declaration 10228010/261126/0000001 --vehicle 123ABC02",
    )
    deact.add_argument("--seal", type=int, required=True)
    deact.add_argument("--declaration", required=True)
    deact.add_argument("--vehicle", required=True)
    target_options(deact)
    deact.set_defaults(func=cmd_deactivate)

    status = sub.add_parser(
        "status",
        help="show escorts (all open ones, or filtered)",
        epilog="examples: navseal gateway status; navseal gateway status --seal 1001 --json",
    )
    status.add_argument("--seal", type=int)
    status.add_argument("--escort", type=int)
    status.add_argument("--declaration")
    status.add_argument("--vehicle")
    target_options(status)
    status.set_defaults(func=cmd_status)

    prov = sub.add_parser(
        "provision",
        help="register a seal and its 32-byte key",
        epilog="examples: navseal gateway provision --seal 1001 --key 00112233...; "
        "navseal gateway provision --seal 1001 --test-key --db gw.sqlite3",
    )
    prov.add_argument("--seal", type=int, required=True)
    key = prov.add_mutually_exclusive_group(required=True)
    key.add_argument("--key", help="the seal key as 64 hex digits")
    key.add_argument("--test-key", action="store_true", help="the protocol's test key for this seal (never in production)")
    target_options(prov)
    prov.set_defaults(func=cmd_provision)

    purge = sub.add_parser(
        "purge",
        help="retention purge: delete escorts kept past five years after deactivation (clause 18.3)",
        epilog="example: navseal gateway purge --config gateway.toml --now 2031-12-01T00:00:00Z",
    )
    purge.add_argument("--config", "-c")
    purge.add_argument("--db", help="database (default: db_path of the config)")
    purge.add_argument("--now", help="purge as of this time (ISO 8601 or Unix s); default: now")
    purge.set_defaults(func=cmd_purge)


# --------------------------------------------------------------------------------------------


def _config(args: argparse.Namespace):
    from navseal.gateway.config import load_config

    overrides = {}
    if getattr(args, "db", None):
        overrides["db_path"] = args.db
    return load_config(getattr(args, "config", None), **overrides)


def parse_time(text: str) -> float:
    """ISO 8601 ('Z' or offset; a bare date is midnight UTC) or Unix seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()


def cmd_run(args: argparse.Namespace) -> int:
    from navseal.gateway.config import ConfigError, load_config
    from navseal.gateway.service import run

    overrides: dict[str, Any] = {}
    if args.db:
        overrides["db_path"] = args.db
    if args.http_port is not None:
        overrides["http_port"] = args.http_port
    try:
        config = load_config(args.config, **overrides)
    except (ConfigError, OSError) as exc:
        print(f"navseal gateway: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return run(config)


class _Target:
    """The running gateway's API, or a pipeline on the database."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.direct = bool(args.db)
        if self.direct:
            from navseal.gateway.pipeline import Pipeline
            from navseal.gateway.store import open_store

            config = _config(args)
            self.store = open_store(config)
            self.pipeline = Pipeline(self.store, config)
        else:
            if args.api:
                self.base = args.api.rstrip("/")
            else:
                config = _config(args)
                host = "127.0.0.1" if config.http_host in ("0.0.0.0", "") else config.http_host
                self.base = f"http://{host}:{config.http_port}"

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read() or b"null")
            except json.JSONDecodeError:
                return exc.code, {"error": "http", "message": str(exc)}


def _finish(args: argparse.Namespace, status: int, answer: Any, describe) -> int:
    if status >= 400:
        if isinstance(answer, dict):
            print(f"refused ({status} {answer.get('error')}): {answer.get('message')}", file=sys.stderr)
        else:
            print(f"refused ({status})", file=sys.stderr)
        return EXIT_REFUSED
    if args.json:
        print(json.dumps(answer, indent=2, ensure_ascii=False, default=str))
    else:
        describe(answer)
    return 0


def _call(args: argparse.Namespace, method: str, path: str, body: Any, direct) -> tuple[int, Any]:
    """Through the API, or `direct(pipeline)` on the database; CommandError -> its HTTP status."""
    from navseal.gateway.http_api import STATUS_FOR_CODE
    from navseal.gateway.command_requests import CommandError

    try:
        target = _Target(args)
    except Exception as exc:  # noqa: BLE001 - configuration or database problem, explained
        return 599, {"error": "setup", "message": str(exc)}
    if target.direct:
        try:
            return 200, direct(target.pipeline)
        except CommandError as exc:
            return STATUS_FOR_CODE.get(exc.code, 400), {"error": exc.code, "message": exc.message}
        finally:
            target.store.close()
    try:
        return target.request(method, path, body)
    except (urllib.error.URLError, OSError) as exc:
        print(f"navseal gateway: cannot reach {target.base} ({exc}); is it running? (or use --db)",
              file=sys.stderr)
        raise SystemExit(EXIT_UNREACHABLE)


def _print_escort(escort: dict) -> None:
    fields = ("escort_id", "seal_id", "status", "declaration", "vehicle", "dest_office_code",
              "period_end", "last_seen_at", "last_position")
    print("  ".join(f"{k}={escort.get(k)}" for k in fields if k in escort))


def cmd_activate(args: argparse.Namespace) -> int:
    from navseal.gateway.command_requests import ActivationRequest

    start = parse_time(args.period_start) if args.period_start else time.time()
    end = parse_time(args.period_end) if args.period_end else start + args.period_hours * 3600
    body: dict[str, Any] = {
        "seal_id": args.seal,
        "declaration": args.declaration,
        "vehicle": args.vehicle,
        "departure_office_code": args.departure_office,
        "departure_office_name": args.departure_office_name,
        "dest_office_code": args.dest_office,
        "dest_office_name": args.dest_office_name,
        "period_start": start,
        "period_end": end,
        "corridor_m": args.corridor,
    }
    if args.route:
        from navseal.gateway.geo import load_route

        try:
            body["route"] = [list(p) for p in load_route(args.route)]
        except (OSError, ValueError) as exc:
            print(f"navseal gateway activate: route {args.route}: {exc}", file=sys.stderr)
            return EXIT_USAGE
    status, answer = _call(
        args, "POST", "/v1/escorts/activate", body,
        lambda p: {"escort": p.request_activation(ActivationRequest.from_dict(body))},
    )
    return _finish(args, status, answer, lambda a: (print("activation queued:"), _print_escort(a["escort"])))


def cmd_deactivate(args: argparse.Namespace) -> int:
    body = {"seal_id": args.seal, "declaration": args.declaration, "vehicle": args.vehicle}
    status, answer = _call(
        args, "POST", "/v1/escorts/deactivate", body,
        lambda p: {"escort": p.request_deactivation(args.seal, args.declaration, args.vehicle)},
    )
    return _finish(args, status, answer, lambda a: (print("deactivation queued:"), _print_escort(a["escort"])))


def cmd_status(args: argparse.Namespace) -> int:
    filters = {k: v for k, v in (("seal_id", args.seal), ("escort_id", args.escort),
                                  ("declaration", args.declaration), ("vehicle", args.vehicle)) if v is not None}
    query = "&".join(f"{k}={urllib.request.quote(str(v))}" for k, v in filters.items())

    def describe(answer: dict) -> None:
        escorts = answer.get("escorts", [])
        if not escorts:
            print("no matching escorts")
        for escort in escorts:
            _print_escort(escort)

    status, answer = _call(args, "GET", "/v1/escorts" + (f"?{query}" if query else ""), None,
                           lambda p: {"escorts": p.status(**filters)})
    return _finish(args, status, answer, describe)


def cmd_provision(args: argparse.Namespace) -> int:
    if args.test_key:
        from navseal.protocol import test_key

        key = test_key(args.seal)
    else:
        try:
            key = bytes.fromhex(args.key)
        except ValueError:
            print("navseal gateway provision: --key must be 64 hex digits", file=sys.stderr)
            return EXIT_USAGE
    body = {"seal_id": args.seal, "key": key.hex()}
    status, answer = _call(args, "POST", "/v1/seals", body,
                           lambda p: (p.provision_seal(args.seal, key), {"seal_id": args.seal, "provisioned": True})[1])
    return _finish(args, status, answer, lambda a: print(f"seal {args.seal} provisioned"))


def cmd_purge(args: argparse.Namespace) -> int:
    from navseal.gateway.pipeline import Pipeline
    from navseal.gateway.store import open_store

    config = _config(args)
    now = parse_time(args.now) if args.now else time.time()
    store = open_store(config)
    try:
        report = Pipeline(store, config).purge(now)
    finally:
        store.close()
    print(json.dumps({"purged": report, "as_of": now}))
    return 0
