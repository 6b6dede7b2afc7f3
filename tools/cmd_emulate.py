"""`navseal emulate SCENARIO`: the scenario's seals in real time over MQTT or a serial tty."""

from __future__ import annotations

import argparse
import resource
import sys
import time

EPILOG = """\
The same scenario file as `navseal simulate`, in real time (or --time-scale times faster), with
the real firmware core per seal and a real link:
  --broker mqtt://HOST:PORT   one MQTT connection for all seals, seals/<id>/up and /down
  --serial auto               a pseudo-terminal pair: the seals on one end, the gateway on the other
  --serial /dev/ttyUSB0       a real serial line (COBS frames, many seals multiplexed)

By default the gateway runs embedded in this process (the real gateway service on SQLite, JSON
Lines sink in --out), the scenario's commands go to it and its events are checked against the
scenario's expectations at the end (exit 1 if any fails). --no-gateway runs the seals only, for a
gateway you run yourself (`navseal gateway run`); activate and deactivate them there.

Fleet mode: --seals N adds background seals (clones of the scenario's first seal, spread along its
route) up to N in all, reporting every --report-interval seconds.

examples:
  navseal emulate routine-escort --broker mqtt://127.0.0.1:1883 --time-scale 120
  navseal emulate reboot-latched-alarm --serial auto --time-scale 500
  navseal emulate routine-escort --broker mqtt://127.0.0.1:1883 --seals 2000 --no-gateway --duration 10m
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "emulate",
        help="run a scenario's seals in real time against a real broker or serial link",
        description="Emulate seals (the real firmware core on a desktop HAL) in real time.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scenario", metavar="SCENARIO", help="scenario file or shipped scenario name")
    link = p.add_mutually_exclusive_group(required=True)
    link.add_argument("--broker", metavar="URL", help="MQTT broker, mqtt://host:port")
    link.add_argument("--serial", metavar="PTY", help="'auto' (a pseudo-terminal pair) or a tty device")
    p.add_argument("--time-scale", type=float, default=1.0, metavar="X",
                   help="virtual seconds per wall second (default 1: real time)")
    p.add_argument("--seals", type=int, default=0, metavar="N", help="fleet mode: N seals in all")
    p.add_argument("--report-interval", type=int, default=60, metavar="S",
                   help="fleet mode: background seals report every S seconds (default 60)")
    p.add_argument("--duration", metavar="DURATION", help="stop after this (virtual) time instead of the scenario's")
    p.add_argument("--no-gateway", action="store_true", help="seals only; use your own gateway")
    p.add_argument("--mqtt-client", choices=("paho", "firmware"), default="paho",
                   help="paho: one connection for all seals (default); firmware: each seal its own "
                        "connection through the firmware's MQTT client (navseal_fw.link_mqtt)")
    p.add_argument("--flash", choices=("files", "memory"),
                   help="seal flash as files, a directory per seal under --out (default), or in RAM "
                        "(default in fleet mode)")
    p.add_argument("--out", default="out/emulate", metavar="DIR", help="gateway store and event log (default out/emulate)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from navseal.cmd_simulate import resolve
    from navseal.emu.emulator import Emulator, EmulatorError, fleet_scenario
    from navseal.emu.scenario import ScenarioError, format_duration, load_scenario, parse_duration
    from navseal.emu.sim import write_report

    try:
        scenario = load_scenario(resolve(args.scenario))
        duration = parse_duration(args.duration) if args.duration else None
    except (ScenarioError, ValueError) as exc:
        print(f"navseal emulate: {exc}", file=sys.stderr)
        return 2
    if args.seals:
        scenario = fleet_scenario(scenario, args.seals, report_s=args.report_interval)
        scenario.gnss_interval_s = max(scenario.gnss_interval_s, min(args.report_interval, 60))
    try:
        emu = Emulator(scenario, workdir=args.out, broker=args.broker, serial=args.serial,
                       scale=args.time_scale, gateway=not args.no_gateway,
                       flash=args.flash or ("memory" if args.seals else "files"),
                       mqtt_client=args.mqtt_client,
                       on_action=None if args.quiet else
                       (lambda t, text: print(f"[{format_duration(t - scenario.start)}] {text}", file=sys.stderr)))
    except (EmulatorError, OSError) as exc:
        print(f"navseal emulate: {exc}", file=sys.stderr)
        return 2
    last = [time.monotonic()]
    cpu0 = time.process_time()
    wall0 = time.monotonic()

    def progress() -> None:
        if args.quiet or time.monotonic() - last[0] < 5:
            return
        last[0] = time.monotonic()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"[{format_duration(emu.clock.now - scenario.start)}] {len(emu.seals)} seals, "
              f"{emu.frames_up} frames up, {emu.frames_down} down, timer lag {emu.clock.lag_max:.1f} s, "
              f"max RSS {rss:.0f} MB", file=sys.stderr)

    n_events = 0
    try:
        emu.run(on_idle=progress, duration_s=duration)
    except EmulatorError as exc:
        print(f"navseal emulate: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("navseal emulate: interrupted", file=sys.stderr)
        return 130
    wall = time.monotonic() - wall0
    cpu = time.process_time() - cpu0
    print(f"{len(emu.seals)} seals for {format_duration(emu.clock.now - scenario.start)} virtual in {wall:.1f} s: "
          f"CPU {100 * cpu / max(wall, 1e-9):.0f} % of one core, {emu.frames_up} frames up, "
          f"{emu.frames_down} down", file=sys.stderr)
    for note in emu.skipped:
        print(f"skipped: {note}", file=sys.stderr)
    if args.no_gateway or args.seals:
        return 0
    report = emu.check()
    n_events = len(emu.read_events())
    write_report(report, sys.stderr, name=scenario.name)
    print(f"events: {emu.events_path} ({n_events}); gateway store: {emu.db_path}", file=sys.stderr)
    return 0 if report.ok else 1
