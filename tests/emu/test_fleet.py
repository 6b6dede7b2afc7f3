"""Fleet mode: many real firmware cores in one process on one clock, journals released by genuine
ACKs (the benchmark's acker), compressed in time so the test is quick."""

from __future__ import annotations

from pathlib import Path

from navseal.bench.bench_fleet import Acker
from navseal.emu.emulator import Emulator, NullLink, fleet_scenario
from navseal.emu.scenario import load_scenario

SCENARIO = Path(__file__).resolve().parents[2] / "tools" / "scenarios" / "routine-escort.toml"


def test_three_hundred_seals_report_and_are_released(tmp_path):
    scenario = fleet_scenario(load_scenario(SCENARIO), 301, report_s=60)
    scenario.seals.pop(1001)  # only the uniform background fleet
    scenario.actions = []
    scenario.gnss_interval_s = 60.0
    holder = []

    def post(seal_id, frame):
        emu = holder[0]
        emu.clock.call_later(0.05, lambda: emu.deliver_down(seal_id, frame))

    acker = Acker({s.id: s.key for s in scenario.seals.values()}, post, clock=lambda: holder[0].clock.now)
    emu = Emulator(scenario, workdir=tmp_path, gateway=False, link=NullLink(acker), scale=60.0, flash="memory")
    holder.append(emu)
    emu.run(duration_s=600)  # 10 virtual minutes in 10 wall seconds
    seals = list(emu.seals.values())
    assert len(seals) == 300 and all(s.core is not None for s in seals)
    # Every seal booted and reports about once a minute once it has a fix; the ACKs release them.
    written = sum(s.core.journal.next_rseq - 1 for s in seals)
    assert written > 300 * 6
    assert sum(s.core.journal.pending for s in seals) <= 300  # at most the frame in flight each
    assert acker.acks > 300 * 5
    # They are spread along the route (one shared plan, different offsets), not stacked.
    kms = {round(s.truck.state(emu.clock.now).km) for s in seals}
    assert len(kms) > 100
    assert emu.clock.lag_max < 30  # virtual seconds at x60: under half a wall second late
