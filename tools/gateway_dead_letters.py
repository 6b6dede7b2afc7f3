"""`navseal gateway dead-letter list|replay ID`: events a sink refused for good (gateway/dead_letters.py).

Through the API with an admin's (replay) or an auditor's (list) token, or with --db on the gateway
host; a replay is audited either way (`dead_letter.replay`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
import urllib.parse
from typing import Any

from navseal.gateway_client import EXIT_USAGE, Direct, run, target_options


def register(sub: argparse._SubParsersAction) -> None:
    dead = sub.add_parser("dead-letter", help="events a sink refused for good: list, replay",
                          description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    dsub = dead.add_subparsers(dest="dead_letter_command", metavar="ACTION")
    dead.set_defaults(func=lambda args: (dead.print_help(), EXIT_USAGE)[1])
    dlist = dsub.add_parser("list", help="list dead letters, oldest first",
                            epilog="examples: navseal gateway dead-letter list; "
                            "navseal gateway dead-letter list --sink ops --status dead --json")
    dlist.add_argument("--sink", help="only this sink's")
    dlist.add_argument("--status", choices=("dead", "replay", "replayed"),
                       help="dead: waiting; replay: to be sent again; replayed: delivered on a replay")
    dlist.add_argument("--limit", type=int, default=100, help="at most this many (default 100, max 500)")
    dlist.add_argument("--cursor", help="the `next` of a previous page")
    target_options(dlist)
    dlist.set_defaults(func=cmd_list)
    drep = dsub.add_parser("replay", help="send a dead letter to its sink again (admin; audited)",
                           epilog="example: navseal gateway dead-letter replay 7")
    drep.add_argument("dead_letter_id", type=int, metavar="ID")
    target_options(drep)
    drep.set_defaults(func=cmd_replay)


def _when(t: float | None) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if t else "-"


def cmd_list(args: argparse.Namespace) -> int:
    limit = max(1, min(500, args.limit))
    query = {k: v for k, v in (("sink", args.sink), ("status", args.status), ("cursor", args.cursor),
                               ("limit", limit)) if v is not None}

    def direct(t: Direct) -> Any:
        rows = t.store.dead_letters(sink=args.sink, status=args.status, after_id=int(args.cursor or 0),
                                    limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return {"items": rows, "next": str(rows[-1]["dead_letter_id"]) if more else None}

    def describe(answer: dict) -> None:
        for d in answer["items"]:
            event = d.get("event") or {}
            print(f"{d['dead_letter_id']}  {d['status']:<8}  sink={d['sink']}  event={d['event_id']} "
                  f"({event.get('kind', 'purged')}, seal {event.get('seal_id', '-')})  refused {_when(d['refused_at'])}"
                  f" x{d['refusals']}: {d['error']}")
        if not answer["items"]:
            print("no dead letters")
        if answer.get("next"):
            print(f"more: --cursor {answer['next']}")

    return run(args, lambda a: a.request("GET", "/v1/dead-letters?" + urllib.parse.urlencode(query)), direct, describe)


def cmd_replay(args: argparse.Namespace) -> int:
    from navseal.gateway import dead_letters

    target = f"dead_letter:{args.dead_letter_id}"

    def direct(t: Direct) -> Any:
        with t.store.transaction() as tx:
            dead_letters.replay(tx, t.actor, args.dead_letter_id, time.time())
        return t.store.dead_letters(after_id=args.dead_letter_id - 1, limit=1)[0]

    def describe(d: dict) -> None:
        print(f"dead letter {d['dead_letter_id']} ({d['event_id']}) will be sent to {d['sink']} again "
              f"(the running gateway sends it within its sink's next round)")

    return run(args, lambda a: a.request("POST", f"/v1/dead-letters/{args.dead_letter_id}/replay", {}), direct,
               describe, "dead_letter.replay", target)
