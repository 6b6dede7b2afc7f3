"""`navseal gateway ...`: run the gateway, check its configuration, send it commands, manage access.

Past 400 lines on purpose: most of it is the `navseal gateway` argparse tree and its help
texts; the actions live in gateway_users.py, gateway_seals.py, gateway_dead_letters.py and
gateway_client.py.

    navseal gateway run --config gateway.toml
    navseal gateway check-config gateway.toml
    navseal gateway master-key --out /etc/navseal/master.key
    navseal gateway user add alice --role officer --office 10232010 --password-file - --db gw.sqlite3
    navseal gateway user token alice --out alice.token --db gw.sqlite3
    navseal gateway provision --seal 1001 --key-file seal-1001.key
    navseal gateway activate --seal 1001 --declaration 10228010/261126/0000001 --vehicle 123ABC02 \\
        --departure-office 10228010 --departure-office-name "Almaty customs post" \\
        --dest-office 10232010 --dest-office-name "Khorgos customs post" \\
        --period-end 2026-11-29T12:00:00Z --route route.geojson --corridor 500
    navseal gateway deactivate --seal 1001 --declaration 10228010/261126/0000001 --vehicle 123ABC02
    navseal gateway status [--seal 1001] [--json]
    navseal gateway audit verify --config gateway.toml
    navseal gateway purge --config gateway.toml [--now 2031-12-01T00:00:00Z]
    navseal gateway dead-letter list [--sink ops] [--status dead]
    navseal gateway dead-letter replay 7
    navseal gateway certs --out /etc/mosquitto/certs --host broker.example --host 10.0.0.5

Commands talk to the running gateway's HTTP API (`--api`, default from the config's [http]) with
an API token from `--token-file FILE` or the NAVSEAL_TOKEN environment variable, like any client.
With `--db FILE` (or `--config` naming the database) they open the database directly instead:
that is for an administrator on the gateway host (who can read the 0600 database and the master
key), and every such command is written to the audit log under the host account. Keys are read
from a file or stdin (`--key-file -`), never from the command line.
Exit codes: 0 ok, 1 refused, 2 bad usage or configuration, 3 gateway unreachable, 4 (`run`) the
database is missing (without --init), empty, truncated, damaged or has lost committed data.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
import urllib.request
from typing import Any

from navseal import gateway_client as client
from navseal import gateway_dead_letters, gateway_seals, gateway_users
from navseal.gateway_client import EXIT_STORE, EXIT_USAGE, Direct, target_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gateway",
        help="run the gateway; check-config, users, provision, seal rekey|reset-replay, activate, deactivate, status, "
        "audit, purge, dead-letter",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="gateway_command", metavar="ACTION")
    parser.set_defaults(func=lambda args: (parser.print_help(), EXIT_USAGE)[1])

    run = sub.add_parser(
        "run",
        help="run the gateway service until SIGTERM/SIGINT",
        description="Run the gateway: MQTT/serial ingest, pipeline, sinks, HTTP API. Needs a master key "
        "(master_key_file or NAVSEAL_MASTER_KEY). Refuses to start on a configuration error, naming the key "
        "(exit 2), and on a database that is missing (without --init), empty, truncated, damaged (PRAGMA "
        "quick_check) or behind the commit mark kept beside it (exit 4): one line each, see docs/gateway.md.",
        epilog="example: navseal gateway run --config /etc/navseal/gateway.toml",
    )
    run.add_argument("--config", "-c", help="TOML configuration (see docs/gateway.md); defaults without it")
    run.add_argument("--db", help="override db_path from the config")
    run.add_argument("--http-port", type=int, help="override [http] port (0: any free port)")
    run.add_argument("--dev-test-keys", action="store_true",
                     help="accept the published test keys (development only; logged, shown by /healthz)")
    run.add_argument("--init", action="store_true",
                     help="create a new database when there is no file at db_path (without it a missing "
                     "database is refused, exit 4); an existing file is checked and used as it is")
    run.set_defaults(func=cmd_run)

    check = sub.add_parser(
        "check-config", help="check a configuration file and print the effective configuration",
        description="Load FILE as `run` would (types, ranges, unknown keys, dangerous combinations) and print "
        "the effective configuration as JSON (secrets masked). Exit 2 with one line naming the key otherwise.",
        epilog="example: navseal gateway check-config /etc/navseal/gateway.toml")
    check.add_argument("file")
    check.set_defaults(func=cmd_check_config)

    mk = sub.add_parser("master-key", help="create a master key file (0600) for encrypting seal keys",
                        epilog="example: navseal gateway master-key --out /etc/navseal/master.key")
    mk.add_argument("--out", required=True, help="file to create (refuses to overwrite)")
    mk.set_defaults(func=cmd_master_key)

    act = sub.add_parser(
        "activate",
        help="activate an escort (clause 8 data; operator)",
        description="Queue ACTIVATE for a seal with the clause 8 data of the customs office of departure. "
        "ACTIVATED is emitted once the seal confirmed and sent a first fix with the lock intact.",
        epilog="example: navseal gateway activate --seal 1001 --declaration 10228010/261126/0000001 "
        "--vehicle 123ABC02 --departure-office 10228010 --departure-office-name Almaty "
        "--dest-office 10232010 --dest-office-name Khorgos --period-hours 72 --route r.geojson --corridor 500",
    )
    act.add_argument("--seal", type=int, required=True, help="seal number")
    act.add_argument("--declaration", required=True, help="transit declaration number, e.g. 10228010/261126/0000001")
    act.add_argument("--vehicle", required=True, help="vehicle registration number (<= 16 bytes)")
    act.add_argument("--departure-office", required=True, help="customs office of departure: code (5-8 digits)")
    act.add_argument("--departure-office-name", required=True, help="customs office of departure: name")
    act.add_argument("--dest-office", required=True, help="customs office of destination: code (5-8 digits)")
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
        help="deactivate an escort (clause 13 data; operator or destination officer)",
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
        "provision", allow_abbrev=False,
        help="register a seal and its 32-byte key (admin, operator); re-key (admin)",
        description="The key is read from a file of 64 hex digits, or from stdin with --key-file -. "
        "Re-keying an existing seal is for an admin; while the seal is under escort it also needs --force.",
        epilog="examples: navseal gateway provision --seal 1001 --key-file seal-1001.key; "
        "openssl rand -hex 32 | navseal gateway provision --seal 1001 --key-file -",
    )
    prov.add_argument("--seal", type=int, required=True)
    key = prov.add_mutually_exclusive_group()
    key.add_argument("--key-file", help="file holding the key as 64 hex digits, '-' for stdin")
    key.add_argument("--test-key", action="store_true",
                     help="the protocol's published test key for this seal (a development gateway only)")
    key.add_argument("--key", help=argparse.SUPPRESS)  # refused with a reason (argv is public)
    prov.add_argument("--force", action="store_true", help="re-key even while the seal is under escort (admin)")
    prov.add_argument("--dev-test-keys", action="store_true", help="with --db: allow --test-key (development)")
    target_options(prov)
    prov.set_defaults(func=cmd_provision)

    gateway_users.register(sub)
    gateway_seals.register(sub)
    gateway_dead_letters.register(sub)

    api = sub.add_parser("openapi", help="print the API's OpenAPI document (docs/openapi.json is this)")
    api.set_defaults(func=cmd_openapi)

    purge = sub.add_parser(
        "purge",
        help="retention purge: escorts five years after they ended (clause 18.3), escorts never deactivated "
        "expired after the horizon (ESCORT_EXPIRED), records and frames outside escorts after 90 days",
        epilog="example: navseal gateway purge --config gateway.toml --now 2031-12-01T00:00:00Z",
    )
    purge.add_argument("--config", "-c")
    purge.add_argument("--db", help="database (default: db_path of the config)")
    purge.add_argument("--now", help="purge as of this time (ISO 8601 or Unix s); default: now")
    purge.set_defaults(func=cmd_purge)

    certs = sub.add_parser(
        "certs",
        help="make a private CA and the broker's TLS certificate (and seal client certificates)",
        description="Write ca.crt/ca.der/ca.key, server.crt/server.key (EC P-256) and optional "
        "seal-<id>.crt/.key into --out; keys 0600. ca.der goes to each seal's flash "
        "(navseal provision --ca), server.* and ca.crt to Mosquitto's TLS listener.",
        epilog="examples: navseal gateway certs --out certs --host broker.example --host 203.0.113.7; "
        "navseal gateway certs --out certs --host broker.example --ca-cert ca.crt --ca-key ca.key --seal 1001",
    )
    certs.add_argument("--out", required=True, help="directory to write into (created if missing)")
    certs.add_argument("--host", action="append", required=True,
                       help="a host name or IP address the broker is reached at (repeat)")
    certs.add_argument("--seal", type=int, action="append", default=[],
                       help="also a client certificate for this seal id, for mutual TLS (repeat)")
    certs.add_argument("--ca-cert", help="issue with this existing CA (PEM) instead of a new one")
    certs.add_argument("--ca-key", help="the existing CA's private key (PEM), with --ca-cert")
    certs.set_defaults(func=cmd_certs)


# --------------------------------------------------------------------------------------------


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
    from navseal.gateway.store import StoreError, StoreRefused

    overrides: dict[str, Any] = {}
    if args.db:
        overrides["db_path"] = args.db
    if args.http_port is not None:
        overrides["http_port"] = args.http_port
    if args.dev_test_keys:
        overrides["dev_test_keys"] = True
    try:
        return run(load_config(args.config, service=True, **overrides), init=args.init)
    except ConfigError as exc:
        print(f"navseal gateway: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (StoreRefused, StoreError) as exc:
        print(f"navseal gateway: {exc}", file=sys.stderr)
        return EXIT_STORE


def cmd_certs(args: argparse.Namespace) -> int:
    from pathlib import Path

    from navseal.gateway import certs

    if bool(args.ca_cert) != bool(args.ca_key):
        print("navseal gateway certs: --ca-cert and --ca-key go together", file=sys.stderr)
        return EXIT_USAGE
    try:
        ca = certs.load(Path(args.ca_cert).read_bytes(), Path(args.ca_key).read_bytes()) if args.ca_cert else None
        written = certs.write_bundle(args.out, hosts=args.host, seals=args.seal, ca=ca)
    except (OSError, ValueError) as exc:
        print(f"navseal gateway certs: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for name, path in written.items():
        print(f"{path}  ({oct(path.stat().st_mode & 0o777)})")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from navseal.gateway.config import ConfigError, effective, load_config
    from navseal.gateway.secrets import load_master_key

    try:
        config = load_config(args.file, service=True)
        master = load_master_key(config)
    except ConfigError as exc:
        print(f"navseal gateway: {exc}", file=sys.stderr)
        return EXIT_USAGE
    out = effective(config)
    out["master_key"] = ("file" if config.master_key_file else "environment") if master else "missing"
    print(json.dumps(out, indent=2, ensure_ascii=False))
    if master is None:
        print("navseal gateway: master_key_file: not set (nor NAVSEAL_MASTER_KEY): `run` will refuse to start",
              file=sys.stderr)
        return EXIT_USAGE
    return 0


def cmd_master_key(args: argparse.Namespace) -> int:
    from navseal.gateway.secrets import SecretError, new_master_key_file

    try:
        new_master_key_file(args.out)
    except (SecretError, OSError) as exc:
        print(f"navseal gateway: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"master key written to {args.out} (0600); set master_key_file = \"{args.out}\"")
    return 0


def _print_escort(escort: dict) -> None:
    fields = ("escort_id", "seal_id", "status", "declaration", "vehicle", "dest_office_code",
              "period_end", "last_seen_at", "last_position")
    print("  ".join(f"{k}={escort.get(k)}" for k in fields if k in escort))


def cmd_activate(args: argparse.Namespace) -> int:
    from navseal.gateway.api.models import Activation
    from navseal.gateway.command_requests import ActivationRequest

    start = parse_time(args.period_start) if args.period_start else time.time()
    end = parse_time(args.period_end) if args.period_end else start + args.period_hours * 3600
    body: dict[str, Any] = {
        "seal_id": args.seal, "declaration": args.declaration, "vehicle": args.vehicle,
        "departure_office_code": args.departure_office, "departure_office_name": args.departure_office_name,
        "dest_office_code": args.dest_office, "dest_office_name": args.dest_office_name,
        "period_start": start, "period_end": end, "corridor_m": args.corridor,
    }
    if args.route:
        from navseal.gateway.geo import load_route

        try:
            body["route"] = [list(p) for p in load_route(args.route)]
        except (OSError, ValueError) as exc:
            print(f"navseal gateway activate: route {args.route}: {exc}", file=sys.stderr)
            return EXIT_USAGE

    def direct(t: Direct) -> Any:
        from navseal.gateway.command_requests import CommandError

        try:
            data = client.checked(Activation, body).checked(time.time())
        except CommandError:
            raise
        except ValueError as exc:
            raise CommandError("bad_request", str(exc)) from None
        return {"escort": t.pipeline.request_activation(ActivationRequest.from_dict(data), actor=t.actor)}

    return client.run(args, lambda a: a.request("POST", "/v1/escorts/activate", body), direct,
                lambda a: (print("activation queued:"), _print_escort(a["escort"])),
                "escort.activate", f"seal:{args.seal}")


def cmd_deactivate(args: argparse.Namespace) -> int:
    from navseal.gateway.api.models import Deactivation

    body = {"seal_id": args.seal, "declaration": args.declaration, "vehicle": args.vehicle}

    def direct(t: Direct) -> Any:
        d = client.checked(Deactivation, body)
        return {"escort": t.pipeline.request_deactivation(d.seal_id, d.declaration, d.vehicle, actor=t.actor)}

    return client.run(args, lambda a: a.request("POST", "/v1/escorts/deactivate", body), direct,
                lambda a: (print("deactivation queued:"), _print_escort(a["escort"])),
                "escort.deactivate", f"seal:{args.seal}")


def cmd_status(args: argparse.Namespace) -> int:
    from navseal.gateway import audit

    filters = {k: v for k, v in (("seal_id", args.seal), ("escort_id", args.escort),
                                  ("declaration", args.declaration), ("vehicle", args.vehicle)) if v is not None}
    query = "&".join(f"{k}={urllib.request.quote(str(v))}" for k, v in filters.items())

    def direct(t: Direct) -> Any:
        audit.record_alone(t.store, t.actor, "escort.read", "escorts", filters, outcome=audit.OK)
        return {"escorts": t.pipeline.status(**filters)}

    def describe(answer: dict) -> None:
        escorts = answer.get("escorts", [])
        if not escorts:
            print("no matching escorts")
        for escort in escorts:
            _print_escort(escort)

    def api(a) -> Any:  # every page
        escorts, cursor = [], None
        while True:
            page = a.request("GET", "/v1/escorts?" + "&".join(filter(None, (query, cursor and f"cursor={cursor}"))))
            escorts += page["escorts"]
            cursor = page.get("next")
            if not cursor:
                return {"escorts": escorts}

    return client.run(args, api, direct, describe)


def cmd_provision(args: argparse.Namespace) -> int:
    from navseal.gateway.command_requests import CommandError
    from navseal.gateway.secrets import SecretError, is_test_key, read_key_file
    from navseal.protocol import test_key

    if args.key is not None:
        print("navseal gateway provision: --key is refused: a key on the command line shows in `ps` and in shell "
              "history; use --key-file FILE or --key-file - (stdin)", file=sys.stderr)
        return EXIT_USAGE
    if not args.test_key and not args.key_file:
        print("navseal gateway provision: give --key-file FILE (or - for stdin)", file=sys.stderr)
        return EXIT_USAGE
    try:
        key = test_key(args.seal) if args.test_key else read_key_file(args.key_file)
    except SecretError as exc:
        print(f"navseal gateway provision: {exc}", file=sys.stderr)
        return EXIT_USAGE
    body = {"seal_id": args.seal, "key": key.hex(), "force": args.force}

    def direct(t: Direct) -> Any:
        if is_test_key(args.seal, key) and not (args.dev_test_keys or t.config.dev_test_keys):
            raise CommandError("test_key", f"seal {args.seal}: the published test key is for development "
                                           f"(--dev-test-keys)")
        return t.pipeline.provision_seal(args.seal, key, actor=t.actor, rekey=True, force=args.force)

    def describe(a: dict) -> None:
        print(f"seal {args.seal} {'re-keyed' if a.get('rekeyed') else 'provisioned'}")

    return client.run(args, lambda a: a.request("POST", "/v1/seals", body), direct, describe,
                "seal.provision", f"seal:{args.seal}")


def cmd_openapi(args: argparse.Namespace) -> int:
    from navseal.gateway.api import openapi_document

    print(json.dumps(openapi_document(), indent=2, ensure_ascii=False))
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from navseal.gateway import audit
    from navseal.gateway.auth import host_actor
    from navseal.gateway.pipeline import Pipeline
    from navseal.gateway.store import open_store

    config = client.config_for(args)
    now = parse_time(args.now) if args.now else time.time()
    store = open_store(config)
    try:
        report = Pipeline(store, config).purge(now)
        audit.record_alone(store, host_actor(), "purge", "escorts", {"as_of": now, "purged": report},
                           outcome=audit.OK)
    finally:
        store.close()
    print(json.dumps({"purged": report, "as_of": now}))
    return 0
