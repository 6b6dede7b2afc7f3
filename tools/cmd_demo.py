"""`navseal demo`: broker, gateway and a handful of seals on a shipped route, live, in a minute."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EPILOG = """\
With nothing installed but this package: starts an embedded MQTT broker (amqtt) in this process,
the gateway on SQLite, and the seals of tools/scenarios/demo.toml (the real firmware core per
seal) on the Kordai -> Almaty route: activation, tracking, a coverage gap, an unauthorized
opening, deactivation. About a minute by default; Ctrl-C stops early and still writes the files.
On a terminal the gateway and its web console then stay up (the escort's verdict, track and
alarms to look at) until Ctrl-C; --no-stay ends at once.

On a terminal it redraws a live table (seals, state, last position, events, progress); otherwise
(CI, pipes) it prints plain progress and event lines.

examples:
  navseal demo
  navseal demo --broker mqtt://127.0.0.1:1883      an external broker (MQTT 5, e.g. Mosquitto)
  navseal demo --seconds 20 --out /tmp/demo
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="the whole chain on one machine: embedded broker, gateway, seals, live view",
        description="Run a scripted escort end to end: embedded MQTT broker, gateway, emulated seals.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--broker", metavar="URL", help="use this MQTT broker instead of the embedded one")
    p.add_argument("--seconds", type=float, default=60.0, metavar="S",
                   help="play the escort in about S wall seconds (default 60)")
    p.add_argument("--scenario", metavar="FILE", help="another scenario instead of the demo's")
    p.add_argument("--out", default="out", metavar="DIR", help="where the event log and tracks go (default ./out)")
    p.add_argument("--plain", action="store_true", help="plain progress lines even on a terminal")
    p.add_argument("--stay", action=argparse.BooleanOptionalAction, default=None,
                   help="after the escort, keep the gateway and its web console up until Ctrl-C, to look at "
                        "the finished escort (default: on a terminal, yes; in pipes and CI, no)")
    p.add_argument("--http-port", type=int, default=8080, metavar="PORT",
                   help="the gateway API on 127.0.0.1:PORT (default 8080; any free port if taken)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from navseal.cmd_simulate import resolve
    from navseal.emu.demo import DEMO_SCENARIO, run_demo, write_summary
    from navseal.emu.scenario import ScenarioError, load_scenario

    try:
        scenario = load_scenario(resolve(args.scenario) if args.scenario else DEMO_SCENARIO)
    except ScenarioError as exc:
        print(f"navseal demo: {exc}", file=sys.stderr)
        return 2
    try:
        result = run_demo(scenario=scenario, out_dir=Path(args.out), broker_url=args.broker,
                          wall_seconds=args.seconds, stream=sys.stdout,
                          tty=False if args.plain else None, http_port=args.http_port,
                          stay=args.stay if args.stay is not None else (sys.stdout.isatty() and not args.plain))
    except (RuntimeError, OSError) as exc:
        print(f"navseal demo: {exc}", file=sys.stderr)
        return 1
    import json

    events = [json.loads(line) for line in result.events_path.read_text().splitlines() if line.strip()]
    write_summary(result, events, sys.stdout)
    if result.interrupted:
        return 130
    return 0 if result.report is None or result.report.ok else 1
