"""`navseal simulate SCENARIO`: the whole chain in one process on virtual time (navseal.emu.sim)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

EPILOG = """\
A scenario is a TOML file (docs/scenarios.md); the shipped ones are in tools/scenarios/ and can be
named without their folder and suffix (e.g. `navseal simulate routine-escort`).

Prints the operator event stream as JSON Lines on stdout (the gateway's event schema, as its JSON
Lines sink writes it), then one PASS/FAIL line per expectation on stderr. Exit status: 0 all
expectations met, 1 some failed (each named), 2 the scenario file is wrong (file and field named).

examples:
  navseal simulate signal-lost-tamper-in-gap
  navseal simulate adversarial/gap-cut-early-deactivation   an attack (docs/threat-model.md)
  navseal simulate --quiet tools/scenarios/*.toml        every shipped scenario, summary only
  navseal simulate my.toml --events out/events.jsonl --seed 7
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="run a scenario through seals + gateway on virtual time and check its expectations",
        description="Run scenarios through the real firmware core and the real gateway pipeline "
                    "in one process on a virtual clock.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scenarios", nargs="+", metavar="SCENARIO", help="scenario file or shipped scenario name")
    p.add_argument("--events", metavar="FILE", help="write the event stream to FILE instead of stdout")
    p.add_argument("--quiet", "-q", action="store_true", help="do not print events, only the expectations")
    p.add_argument("--seed", type=int, help="override the scenario's seed")
    p.add_argument("--db", metavar="FILE", help="keep the gateway's SQLite store in FILE (default: a temp file)")
    p.set_defaults(func=run)


def resolve(name: str) -> Path:
    from navseal.emu.scenario import ScenarioError

    path = Path(name)
    if path.exists():
        return path
    shipped = Path(__file__).resolve().parent / "scenarios" / f"{name}.toml"
    if shipped.exists():
        return shipped
    raise ScenarioError(f"{name}: no such file and not a shipped scenario (see tools/scenarios/)")


def run(args: argparse.Namespace) -> int:
    from navseal.emu.scenario import ScenarioError, load_scenario
    from navseal.emu.sim import SimulationError, Simulator, event_line, write_report

    failed = 0
    for name in args.scenarios:
        try:
            scenario = load_scenario(resolve(name))
        except ScenarioError as exc:
            print(f"navseal simulate: {exc}", file=sys.stderr)
            return 2
        if args.seed is not None:
            scenario.seed = args.seed
        out = None
        if args.events:
            Path(args.events).parent.mkdir(parents=True, exist_ok=True)
            out = open(args.events, "a", encoding="utf-8")
        elif not args.quiet:
            out = sys.stdout

        def emit(event, _out=out):
            _out.write(event_line(event) + "\n")

        t0 = time.perf_counter()
        try:
            sim = Simulator(scenario, db_path=args.db, on_event=emit if out else None)
        except SimulationError as exc:
            print(f"navseal simulate: {exc}", file=sys.stderr)
            return 2
        try:
            report = sim.run()
        finally:
            sim.close()
            if out is not None and out is not sys.stdout:
                out.close()
        wall = time.perf_counter() - t0
        write_report(report, sys.stderr, name=scenario.name)
        print(f"{scenario.name}: {scenario.duration_s / 3600:.1f} h virtual in {wall:.2f} s wall "
              f"({scenario.duration_s / max(wall, 1e-9):,.0f} virtual s per wall s), "
              f"{len(sim.events)} events, {sim.frames_up} frames up, {sim.frames_down} down",
              file=sys.stderr)
        if not report.ok:
            failed += 1
    return 1 if failed else 0
