"""`navseal gateway user ...` and `navseal gateway audit verify`: who may use the gateway, and the
check of the audit log's hash chain."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from navseal.gateway_client import EXIT_REFUSED, EXIT_USAGE, Direct, changed, config_for, run, target_options


def register(sub: argparse._SubParsersAction) -> None:
    """`user` and `audit` under `navseal gateway`."""
    user = sub.add_parser("user", help="users and API tokens: add, list, disable, token",
                          description="Manage who may use the gateway. On the gateway host with --db (how the "
                          "first admin is made), or through the API with an admin token.")
    usub = user.add_subparsers(dest="user_command", metavar="ACTION")
    user.set_defaults(func=lambda args: (user.print_help(), EXIT_USAGE)[1])
    uadd = usub.add_parser("add", help="add a user",
                           epilog="examples: navseal gateway user add root --role admin --db gw.sqlite3; "
                           "navseal gateway user add alice --role officer --office 10232010 --password-file -")
    uadd.add_argument("name")
    uadd.add_argument("--role", required=True, choices=("admin", "operator", "officer", "auditor"))
    uadd.add_argument("--office", action="append", default=[], help="office code an officer is bound to (repeat)")
    uadd.add_argument("--password-file", help="password for browser login, from a file or '-' (stdin)")
    target_options(uadd)
    uadd.set_defaults(func=cmd_user_add)
    ulist = usub.add_parser("list", help="list users")
    target_options(ulist)
    ulist.set_defaults(func=cmd_user_list)
    udis = usub.add_parser("disable", help="disable a user (tokens revoked, sessions ended)")
    udis.add_argument("name")
    target_options(udis)
    udis.set_defaults(func=cmd_user_disable)
    utok = usub.add_parser("token", help="issue an API token (written 0600 to --out, or printed once)")
    utok.add_argument("name")
    utok.add_argument("--label")
    utok.add_argument("--expires-days", type=float)
    utok.add_argument("--out", help="write the token to this file (0600) instead of stdout")
    target_options(utok)
    utok.set_defaults(func=cmd_user_token)

    aud = sub.add_parser("audit", help="the audit log: verify its hash chain")
    asub = aud.add_subparsers(dest="audit_command", metavar="ACTION")
    aud.set_defaults(func=lambda args: (aud.print_help(), EXIT_USAGE)[1])
    aver = asub.add_parser("verify", help="check the chain; print its head (keep a copy elsewhere)",
                           epilog="example: navseal gateway audit verify --config /etc/navseal/gateway.toml")
    aver.add_argument("--config", "-c")
    aver.add_argument("--db")
    aver.set_defaults(func=cmd_audit_verify)


def cmd_user_add(args: argparse.Namespace) -> int:
    from navseal.gateway import auth

    password = None
    if args.password_file:
        password = (sys.stdin.readline() if args.password_file == "-"
                    else Path(args.password_file).read_text()).rstrip("\n")
    body = {"name": args.name, "role": args.role, "offices": args.office, "password": password}
    return run(args, lambda a: a.request("POST", "/v1/users", body),
                lambda t: changed(t, "user.add", f"user:{args.name}",
                                   lambda tx, now: auth.add_user(tx, name=args.name, role=args.role,
                                                                 offices=args.office, password=password, now=now,
                                                                 created_by=t.actor),
                                   {"role": args.role, "offices": args.office}),
                lambda a: print(f"user {a['name']} added ({a['role']}{' ' + ','.join(a['offices']) if a['offices'] else ''})"),
                "user.add", f"user:{args.name}")


def cmd_user_list(args: argparse.Namespace) -> int:
    from navseal.gateway import auth

    def direct(t: Direct) -> Any:
        with t.store.transaction() as tx:
            return {"users": [auth.public_user(u) for u in tx.list_users()]}

    def describe(a: dict) -> None:
        for u in a["users"]:
            print(f"{u['name']}  role={u['role']}  offices={','.join(u['offices']) or '-'}  "
                  f"{'DISABLED' if u['disabled'] else 'active'}")

    def api(a) -> Any:  # every page
        users, cursor = [], None
        while True:
            page = a.request("GET", "/v1/users" + (f"?cursor={cursor}" if cursor else ""))
            users += page["users"]
            cursor = page.get("next")
            if not cursor:
                return {"users": users}

    return run(args, api, direct, describe)


def cmd_user_disable(args: argparse.Namespace) -> int:
    from navseal.gateway import auth

    return run(args, lambda a: a.request("POST", f"/v1/users/{args.name}/disable", {}),
                lambda t: changed(t, "user.disable", f"user:{args.name}",
                                   lambda tx, now: auth.disable_user(tx, args.name, now)),
                lambda a: print(f"user {args.name} disabled; tokens revoked, sessions ended"),
                "user.disable", f"user:{args.name}")


def cmd_user_token(args: argparse.Namespace) -> int:
    from navseal.gateway import auth
    from navseal.gateway.secrets import write_private

    expires_s = int(args.expires_days * 86400) if args.expires_days else None
    body: dict[str, Any] = {"label": args.label, "expires_in_s": expires_s}

    def direct(t: Direct) -> Any:
        def issue(tx, now):
            token_id, token = auth.issue_token(tx, args.name, now=now, label=args.label,
                                               expires_at=now + expires_s if expires_s else None)
            return {"token_id": token_id, "token": token, "user": args.name}
        return changed(t, "token.issue", f"user:{args.name}", issue, {"label": args.label})

    def describe(a: dict) -> None:
        if args.out:
            write_private(args.out, a["token"] + "\n")
            print(f"token {a['token_id']} for {args.name} written to {args.out} (0600)")
        else:
            print(a["token"])

    if args.out and args.json:
        args.json = False  # never print a token that was asked to go to a file
    return run(args, lambda a: a.request("POST", f"/v1/users/{args.name}/tokens", body), direct, describe,
                "token.issue", f"user:{args.name}")


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from navseal.gateway import audit
    from navseal.gateway.config import ConfigError
    from navseal.gateway.store import StoreError, open_store

    try:
        config = config_for(args)
        store = open_store(config)  # the configured engine: SQLite at db_path, or [store] url
    except (ConfigError, StoreError, OSError) as exc:
        print(f"navseal gateway: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        def rows():
            after = 0
            while True:
                page = store.audit_rows(after_seq=after, limit=5000)
                if not page:
                    return
                yield from page
                after = page[-1]["seq"]
        verdict = audit.verify(rows(), store.audit_high_water())
    finally:
        store.close()
    print(json.dumps({"ok": verdict.ok, "rows": verdict.rows, "head_seq": verdict.head_seq,
                      "head_hash": verdict.head_hash, "problems": verdict.problems}, indent=2))
    return 0 if verdict.ok else EXIT_REFUSED


