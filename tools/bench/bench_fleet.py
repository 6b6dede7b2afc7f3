"""Fleet benchmark: how many emulated seals one process carries in real time, at what CPU and RSS.

    .venv/bin/python -m navseal.bench.bench_fleet --seals 10000 --measure 120
    .venv/bin/python -m navseal.bench.bench_fleet --seals 2000 --link mqtt     (starts its own Mosquitto)

Each seal is the real firmware core (navseal_fw.seal.SealCore) on in-memory flash, driving a
shipped route (all trucks share one planned drive at different offsets), with a GNSS epoch and a
position report every --report seconds and the lock inputs sampled every --poll seconds. Frames go
to a link: `null` answers every journal frame with a genuine ACK built by the firmware's own codec
(so journals are released as with a gateway, and the cost measured is the seals'), `mqtt` publishes
them to a Mosquitto this script starts (paho's cost included; nobody ACKs, so seals retransmit on
their capped backoff as they would with a gateway down).

Reported: seals, frames per second, CPU of this process as % of one core over the measuring window
(after every seal has booted), RSS, bytes per seal, and the worst timer lag (how late the busiest
moment ran a seal's timer: a fleet that cannot keep up shows it here first).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from navseal.emu.emulator import Emulator, MqttLink, NullLink, fleet_scenario
from navseal.emu.scenario import load_scenario
from navseal_fw import codec as fw_codec

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "routine-escort.toml"


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


class Acker:
    """ACKs each journal frame the way the gateway would (cumulative committed_rseq), dated by
    `clock` (the run's clock: a seal judges its fixes against the authenticated time it is given,
    so a virtual date far from the host's would make it refuse them all)."""

    def __init__(self, keys: dict[int, bytes], post, clock=time.time) -> None:
        self.keys = keys
        self.post = post
        self.clock = clock
        self.codec = fw_codec.Codec(1, keys[next(iter(keys))])
        self.seq: dict[int, int] = {}
        self.acks = 0

    def __call__(self, seal_id: int, frame: bytes) -> None:
        typ = frame[3]
        if typ not in (fw_codec.RECORDS, fw_codec.EVENT):
            return
        c = self.codec
        f = c.decode(frame, check_mac=False)  # header fields where the codec reads them
        boot, seq = f.boot, f.seq
        first = int.from_bytes(f.payload[0:4], "big")
        last = first + f.payload[8] - 1 if typ == fw_codec.RECORDS else first
        c.seal_id = seal_id
        c.set_key(self.keys[seal_id])
        n = self.seq.get(seal_id, 0) + 1
        self.seq[seal_id] = n
        ack = c.encode(fw_codec.ACK, 0, n, int(self.clock()), (boot, seq, last))
        self.acks += 1
        self.post(seal_id, ack)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seals", type=int, default=10000)
    ap.add_argument("--report", type=int, default=60, help="report interval, seconds (default 60)")
    ap.add_argument("--poll", type=float, default=1.0, help="lock sampling period, seconds (default 1)")
    ap.add_argument("--measure", type=float, default=120.0, help="measuring window after boot, wall s")
    ap.add_argument("--link", choices=("null", "mqtt"), default="null")
    ap.add_argument("--flash", choices=("memory", "files"), default="memory",
                    help="seal flash in RAM (default) or as files, a directory per seal")
    ap.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = ap.parse_args(argv)

    t_setup = time.perf_counter()
    rss0 = rss_mb()
    scenario = fleet_scenario(load_scenario(SCENARIO), args.seals + 1, report_s=args.report)
    scenario.seals.pop(next(iter(scenario.seals)))  # only the uniform background fleet
    scenario.actions = []
    scenario.gnss_interval_s = float(args.report)  # a duty-cycled receiver: one fix per report
    broker = None
    tmp = tempfile.mkdtemp(prefix="navseal-bench-fleet-")
    if args.link == "mqtt":
        from navseal.gateway.mosquitto_broker import MosquittoBroker

        broker = MosquittoBroker(tmp)
        broker.start()
    emu_holder: list[Emulator] = []

    def post(seal_id: int, frame: bytes) -> None:
        emu = emu_holder[0]
        emu.clock.call_later(0.05, lambda: emu.deliver_down(seal_id, frame))

    if args.link == "null":
        link = NullLink(Acker({s.id: s.key for s in scenario.seals.values()}, post,
                              clock=lambda: emu_holder[0].clock.now))
    else:
        link = MqttLink("127.0.0.1", broker.port, "seals", lambda sid, f: None)
    emu = Emulator(scenario, workdir=tmp, gateway=False, link=link, scale=1.0, min_poll_s=args.poll,
                   flash=args.flash)
    emu_holder.append(emu)
    setup_s = time.perf_counter() - t_setup
    boot_window = 62.0  # start_seals spreads the boots over 60 s
    marks: dict[str, float] = {}

    def on_idle() -> None:
        elapsed = emu.clock.now - scenario.start
        if "t0" not in marks and elapsed >= boot_window:
            marks.update(t0=time.monotonic(), cpu0=time.process_time(), up0=emu.frames_up)
            emu.clock.lag_max = 0.0

    emu.run(on_idle=on_idle, duration_s=boot_window + args.measure)
    wall = time.monotonic() - marks["t0"]
    cpu = time.process_time() - marks["cpu0"]
    frames = emu.frames_up - marks["up0"]
    rss = rss_mb()
    result = {
        "seals": args.seals, "report_s": args.report, "poll_s": args.poll, "link": args.link,
        "setup_s": round(setup_s, 1), "measured_s": round(wall, 1),
        "frames_per_s": round(frames / wall, 1), "cpu_pct_of_one_core": round(100 * cpu / wall, 1),
        "rss_mb": round(rss, 1), "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "kb_per_seal": round((rss - rss0) * 1000 / args.seals, 1),
        "timer_lag_max_s": round(emu.clock.lag_max, 2),
        "journal_pending_total": sum(s.core.journal.pending for s in emu.seals.values() if s.core),
    }
    if broker is not None:
        broker.kill()
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>22}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
