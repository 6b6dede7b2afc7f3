"""Every shipped scenario (tools/scenarios/*.toml) through the simulator: real firmware core, real
gateway pipeline on SQLite, virtual time. Each must meet all of its expectations."""

from __future__ import annotations

from pathlib import Path

import pytest

from navseal.emu.scenario import load_scenario
from navseal.emu.sim import Simulator

SCENARIOS = sorted((Path(__file__).resolve().parents[2] / "tools" / "scenarios").glob("*.toml"))

# Scenarios failing because of a known, reported defect, as {name: reason}; strict, so the test
# turns red once the defect is fixed and the entry must go. (Empty: none known.)
KNOWN: dict[str, str] = {}


def _params():
    for path in SCENARIOS:
        marks = [pytest.mark.xfail(reason=KNOWN[path.stem], strict=True)] if path.stem in KNOWN else []
        yield pytest.param(path, id=path.stem, marks=marks)


def test_there_are_scenarios_for_every_rule():
    names = {p.stem for p in SCENARIOS}
    for needed in ("signal-lost-tamper-in-gap", "route-deviation-and-return", "deactivation-overdue",
                   "transit-overdue", "reboot-latched-alarm", "journal-overflow-long-gap",
                   "two-seals-one-truck", "forged-deactivation"):
        assert needed in names


@pytest.mark.parametrize("path", list(_params()))
def test_scenario_meets_its_expectations(path, tmp_path):
    scenario = load_scenario(path)
    sim = Simulator(scenario, db_path=str(tmp_path / "gw.sqlite3"))
    try:
        report = sim.run()
    finally:
        sim.close()
    failures = [f"{o.name}: {o.detail}" for o in report.failures]
    assert not failures, "\n".join(failures)
    assert sim.events, "a scenario that produces no operator event tests nothing"


def test_same_seed_same_event_stream(tmp_path):
    path = next(p for p in SCENARIOS if p.stem == "reboot-latched-alarm")
    streams = []
    for i in range(2):
        sim = Simulator(load_scenario(path), db_path=str(tmp_path / f"gw{i}.sqlite3"))
        sim.run()
        sim.close()
        streams.append([(e["event_id"], e["emitted_at"], e["occurred_at"]) for e in sim.events])
    assert streams[0] == streams[1]
    assert len(streams[0]) > 20


def test_a_wrong_expectation_fails_and_is_named(tmp_path):
    scenario = load_scenario(next(p for p in SCENARIOS if p.stem == "route-deviation-and-return"))
    scenario.expect.absent.append("ROUTE_DEVIATION")
    scenario.expect.events[0].count = 3
    sim = Simulator(scenario, db_path=str(tmp_path / "gw.sqlite3"))
    report = sim.run()
    sim.close()
    names = [o.name for o in report.failures]
    assert "expect.absent ROUTE_DEVIATION" in names
    assert any(n.startswith("expect.events[0] ROUTE_DEVIATION") for n in names)
    assert len(names) == 2


def test_routine_escort_really_crosses_a_tunnel_and_a_dead_zone(tmp_path):
    path = next(p for p in SCENARIOS if p.stem == "routine-escort")
    sim = Simulator(load_scenario(path), db_path=str(tmp_path / "gw.sqlite3"))
    report = sim.run()
    sim.close()
    assert report.ok
    seal = sim.seals[1001]
    assert seal.gnss.no_fix_epochs >= 10  # 1.5 km without fix at ~80 km/h, one epoch per 5 s
    batches = [e["details"]["count"] for e in sim.events if e["kind"] == "POSITION"]
    assert max(batches) >= 15  # the ~20 minutes without coverage arrive as one buffered batch
