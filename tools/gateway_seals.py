"""`navseal gateway seal rekey|reset-replay`: an admin's answers to a seal the gateway no longer
trusts or no longer hears (a compromised key; counters that restarted with a replaced flash)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from navseal.gateway_client import EXIT_USAGE, Direct, run, target_options


def register(sub: argparse._SubParsersAction) -> None:
    """`seal` under `navseal gateway`."""
    seal = sub.add_parser("seal", help="a seal's trust (admin): rekey, reset-replay",
                          description="Admin commands on a provisioned seal, audited: replace its key, or reset "
                          "its replay window. Through the API with an admin token, or on the gateway host with --db.")
    ssub = seal.add_subparsers(dest="seal_command", metavar="ACTION")
    seal.set_defaults(func=lambda args: (seal.print_help(), EXIT_USAGE)[1])
    rk = ssub.add_parser(
        "rekey", allow_abbrev=False, help="replace a provisioned seal's key",
        description="The new key is read from a file of 64 hex digits, or from stdin with --key-file -; never "
        "from the command line (it would show in `ps` and in shell history). The seal must be given the same "
        "key (navseal provision on the bench). Under escort it needs --force.",
        epilog="example: openssl rand -hex 32 | tee seal-1001.key | navseal gateway seal rekey --seal 1001 --key-file -")
    rk.add_argument("--seal", type=int, required=True)
    rk.add_argument("--key-file", required=True, help="file holding the new key as 64 hex digits, '-' for stdin")
    rk.add_argument("--force", action="store_true", help="re-key even while the seal is under escort")
    target_options(rk)
    rk.set_defaults(func=cmd_rekey)
    rr = ssub.add_parser(
        "reset-replay", allow_abbrev=False, help="forget the seal's last accepted (boot, seq)",
        description="For a seal whose every frame is refused as replayed (SEAL_REJECTING) because its counters "
        "restarted (a replaced or wiped flash): its next new frame is accepted whatever its (boot, seq). Frames "
        "stored before stay duplicates, so a captured frame replayed afterwards proves nothing.",
        epilog="example: navseal gateway seal reset-replay --seal 1001")
    rr.add_argument("--seal", type=int, required=True)
    target_options(rr)
    rr.set_defaults(func=cmd_reset_replay)


def cmd_rekey(args: argparse.Namespace) -> int:
    from navseal.gateway.command_requests import CommandError
    from navseal.gateway.secrets import SecretError, read_key_file

    try:
        key = read_key_file(args.key_file)
    except SecretError as exc:
        print(f"navseal gateway seal rekey: {exc}", file=sys.stderr)
        return EXIT_USAGE

    def direct(t: Direct) -> Any:
        if t.store.seal_key(args.seal) is None:
            raise CommandError("unknown_seal", f"seal {args.seal} is not provisioned")
        return t.pipeline.provision_seal(args.seal, key, actor=t.actor, rekey=True, force=args.force)

    def describe(a: dict) -> None:
        print(f"seal {args.seal} re-keyed" + (" (under escort, forced)" if a.get("forced") else ""))

    return run(args, lambda a: a.request("POST", f"/v1/seals/{args.seal}/rekey",
                                         {"key": key.hex(), "force": args.force}),
               direct, describe, "seal.rekey", f"seal:{args.seal}")


def cmd_reset_replay(args: argparse.Namespace) -> int:
    def describe(a: dict) -> None:
        prev = a.get("previous") or {}
        print(f"seal {args.seal}: replay window reset (was boot {prev.get('boot')}, seq {prev.get('seq')}; "
              f"{a.get('refused_in_a_row', 0)} frame(s) refused in a row before)")

    return run(args, lambda a: a.request("POST", f"/v1/seals/{args.seal}/reset-replay", {}),
               lambda t: t.pipeline.reset_replay_window(args.seal, actor=t.actor), describe,
               "seal.reset_replay", f"seal:{args.seal}")
