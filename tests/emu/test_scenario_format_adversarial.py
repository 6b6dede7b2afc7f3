"""The scenario format's adversarial vocabulary (docs/scenarios.md): the new actions and seal
settings are parsed and refused with the field named, and the new matchers (paths with list
indexes, ranges, `known_at` bounds, delivered positions, the seal's evidence) match what they say
and nothing else. The actions' effect on a run is checked in tests/scenarios (each adversarial
scenario uses them) and, for the few whose effect is not an event, here through the simulator."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import pytest

from navseal.emu.expect import (FieldPathError, SealFacts, check, check_field_expectation, delivered_positions,
                                field_matches, get_field, parse_path)
from navseal.emu.gnss import GnssSim
from navseal.emu.scenario import ScenarioError, load_scenario, parse_signed_duration
from navseal.emu.sim import Simulator

GOOD = """
[scenario]
duration = "2h"
start = 2026-11-26T04:00:00Z

[[trucks]]
id = "t"
plate = "123ABC02"
route = "kordai-almaty"

[[seals]]
id = 1001
truck = "t"

[[seals]]
id = 1002
truck = "t"

[[escorts]]
name = "e"
seals = [1001, 1002]
declaration = "D1"
departure_office = { code = "1", name = "A" }
destination_office = { code = "2", name = "B" }
transit_period = "10h"

[[actions]]
at = "1m"
do = "activate"
escort = "e"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(text)
    return path


def action(text: str) -> str:
    return GOOD + "\n[[actions]]\n" + text + "\n"


def test_signed_durations():
    assert parse_signed_duration("-2h") == -7200
    assert parse_signed_duration("90s") == 90
    assert parse_signed_duration(-30) == -30
    with pytest.raises(ValueError):
        parse_signed_duration("-soon")


def test_new_actions_load(tmp_path):
    text = GOOD + "".join("\n[[actions]]\n" + a + "\n" for a in (
        'at = "10m"\ndo = "clock_jump"\nseal = 1001\nby = "-2h"',
        'at = "11m"\ndo = "lock_restored"\nseal = 1001\ninput = "housing"',
        'at = "12m"\ndo = "gnss_lost"\ntruck = "t"\nduration = "4h10m"',
        'at = "13m"\ndo = "gnss_mode"\nseal = 1001\nmode = "S"\nduration = "10m"',
        'at = "14m"\ndo = "gnss_time_shift"\nseal = 1001\nby = "-1h"',
        'at = "15m"\ndo = "gnss_bad_date"\nseal = 1001',
        'at = "16m"\ndo = "reboot_loop"\nseal = 1001\ncount = 50\nevery = "20s"',
        'at = "17m"\ndo = "flash_wipe"\nseal = 1002',
        'at = "18m"\ndo = "replay_frame"\nseal = 1001\nvia_seal = 1002\nframe = "STATE"\nevery = "5m"\ncount = 3',
        'at = "19m"\ndo = "forged_command"\nseal = 1001\ncommand = "ack"\nmode = "replay"',
        'at = "20m"\ndo = "deactivate"\nescort = "e"\nseal = 1002',
    )) + '\n[[seals]]\nid = 1003\ntruck = "t"\nclock_offset = "-6h"\n'
    sc = load_scenario(write(tmp_path, text))
    by_do = {a.do: a for a in sc.actions}
    assert by_do["clock_jump"].params["by"] == -7200
    assert by_do["gnss_lost"].seals == [1001, 1002, 1003] and by_do["gnss_lost"].params["duration"] == 15000
    assert by_do["gnss_bad_date"].params["date"] == "310226"  # 31 February by default
    assert by_do["reboot_loop"].params == {"seal": 1001, "count": 50, "every": 20.0}
    assert by_do["replay_frame"].params["via_seal"] == 1002 and by_do["replay_frame"].params["frame"] == "STATE"
    assert by_do["deactivate"].seals == [1002]
    assert sc.seals[1003].clock_offset_s == -6 * 3600 and sc.seals[1001].clock_offset_s == 0


@pytest.mark.parametrize("text,field,words", [
    (action('at = "5m"\ndo = "clock_jump"\nseal = 1001'), "actions[1].by", "required"),
    (action('at = "5m"\ndo = "clock_jump"\nseal = 1001\nby = "0s"'), "actions[1].by", "not be zero"),
    (action('at = "5m"\ndo = "clock_jump"\nseal = 1001\nby = "later"'), "actions[1].by", "not a duration"),
    (action('at = "5m"\ndo = "lock_restored"\nseal = 1001\ninput = "door"'), "actions[1].input", "one of"),
    (action('at = "5m"\ndo = "gnss_mode"\nseal = 1001\nmode = "X"'), "actions[1].mode", "FAA mode letter"),
    (action('at = "5m"\ndo = "gnss_bad_date"\nseal = 1001\ndate = "31-02"'), "actions[1].date", "six digits"),
    (action('at = "5m"\ndo = "reboot_loop"\nseal = 1001\ncount = 0'), "actions[1].count", "1 .. 100000"),
    (action('at = "5m"\ndo = "reboot_loop"\nseal = 1001\ncount = 5\nevery = "100ms"'), "actions[1].every", "at least"),
    (action('at = "5m"\ndo = "replay_frame"\nseal = 1001\nvia_seal = 9'), "actions[1].via_seal", "not declared"),
    (action('at = "5m"\ndo = "replay_frame"\nseal = 1001\nframe = "ACK"'), "actions[1].frame", "one of"),
    (action('at = "5m"\ndo = "replay_frame"\nseal = 1001\ncount = 3'), "actions[1].every", "required when"),
    (action('at = "5m"\ndo = "replay_frame"\ntruck = "t"'), "actions[1].seal", "required"),
    (action('at = "5m"\ndo = "forged_command"\nseal = 1001\ncommand = "config"'), "actions[1].command", "one of"),
    (action('at = "5m"\ndo = "flash_wipe"'), "actions[1]", "needs 'seal' or 'truck'"),
    (GOOD.replace('id = 1002\ntruck = "t"', 'id = 1002\ntruck = "t"\n[[seals]]\nid = 1003\ntruck = "t"')
     + '\n[[actions]]\nat = "5m"\ndo = "deactivate"\nescort = "e"\nseal = 1003\n', "actions[1].seal",
     "not a seal of escort"),
    (GOOD.replace('id = 1001\ntruck = "t"', 'id = 1001\ntruck = "t"\nclock_offset = "soon"'),
     "seals[0].clock_offset", "not a duration"),
    (GOOD + '\n[[expect.events]]\nkind = "POSITION"\nfields = { "notify[x]" = 1 }\n',
     'expect.events[0].fields.notify[x]', "not a field name"),
    (GOOD + '\n[[expect.events]]\nkind = "POSITION"\nfields = { "details.count" = { min = 5, max = 2 } }\n',
     'expect.events[0].fields.details.count', "empty range"),
    (GOOD + '\n[[expect.events]]\nkind = "POSITION"\nfields = { "details.count" = { min = "5" } }\n',
     'expect.events[0].fields.details.count', "must be a number"),
    (GOOD + '\n[[expect.events]]\nkind = "POSITION"\nknown_after = "later"\n',
     'expect.events[0].known_after', "not a duration"),
    (GOOD + '\n[[expect.positions]]\nseal = 1001\n', "expect.positions[0]", "give 'count' or 'min'/'max'"),
    (GOOD + '\n[[expect.positions]]\ncount = 3\nmin = 1\n', "expect.positions[0]", "not both"),
    (GOOD + '\n[[expect.positions]]\nseal = 7\ncount = 3\n', "expect.positions[0].seal", "not declared"),
    (GOOD + '\n[[expect.seals]]\nid = 1001\nevidence = { openinigs = 1 }\n', "expect.seals[0].evidence.openinigs",
     "not an evidence field"),
])
def test_bad_adversarial_fields_are_named(tmp_path, text, field, words):
    with pytest.raises(ScenarioError) as err:
        load_scenario(write(tmp_path, text))
    msg = str(err.value)
    assert f": {field}: " in msg and words in msg, msg


EVENT = {"kind": "DEACTIVATED", "seal_id": 1001, "details": {"clean": False, "value": 42, "reasons": ["a", "b"]},
         "notify": [{"role": "departure", "office_code": "1"}, {"role": "destination", "office_code": "2"}],
         "occurred_at": "2026-11-26T05:00:00Z", "known_at": "2026-11-26T06:00:00Z"}


def test_paths_with_list_indexes():
    assert parse_path("notify[0].role") == ["notify", 0, "role"]
    assert parse_path("details.reasons[-1]") == ["details", "reasons", -1]
    assert get_field(EVENT, "notify[0].role") == "departure"
    assert get_field(EVENT, "notify[1].office_code") == "2"
    assert get_field(EVENT, "details.reasons[-1]") == "b"
    assert not field_matches(get_field(EVENT, "notify[2].role"), "departure")  # out of range: no match
    assert not field_matches(get_field(EVENT, "details.value[0]"), 42)  # not a list
    assert not field_matches(get_field(EVENT, "details.missing"), None)  # missing is not null
    with pytest.raises(FieldPathError):
        parse_path("notify.[0]")


def test_ranges_match_numbers_inside_only():
    assert field_matches(42, {"min": 40, "max": 42})
    assert field_matches(42, {"min": 42})
    assert field_matches(42.0, {"max": 42})
    assert not field_matches(43, {"min": 40, "max": 42})
    assert not field_matches(39.9, {"min": 40})
    assert not field_matches("42", {"min": 40})  # a string is not in a numeric range
    assert not field_matches(True, {"min": 0, "max": 1})  # nor is a bool
    assert field_matches({"min": 1}, {"min": 1}) is False  # a dict value equal to a range is not "in" it
    assert field_matches({"lat": 1}, {"lat": 1})  # any other table is compared as it is
    check_field_expectation("details.value", {"min": 1, "max": 2})
    with pytest.raises(FieldPathError):
        check_field_expectation("details.value", {"min": 3, "max": 2})


def _scenario_with(tmp_path: Path, expect: str):
    return load_scenario(write(tmp_path, GOOD + expect))


def _facts(**evidence) -> dict[int, SealFacts]:
    return {1001: SealFacts(seal_id=1001, state="INACTIVE", journal_pending=0, last_rseq=0, stored_rseqs=0,
                            thinned=0, refused=0, rejected_commands=0, evidence=evidence)}


def _outcomes(sc, events, facts):
    return {o.name.split(" ")[0]: o for o in check(sc, events, facts).outcomes}


def test_known_at_bounds_and_fields_in_a_run_report(tmp_path):
    sc = _scenario_with(tmp_path, """
[expect]
no_lost_records = false
schema_valid = false
[[expect.events]]
kind = "DEACTIVATED"
count = 1
known_after = "1h59m"
known_before = "2h01m"
fields = { "notify[1].role" = "destination", "details.value" = { min = 40, max = 50 } }
[[expect.events]]
kind = "DEACTIVATED"
count = 0
known_before = "1h"
""")
    events = [dict(EVENT, event_id="a" * 32)]
    got = _outcomes(sc, events, _facts())
    assert got["expect.events[0]"].ok and got["expect.events[1]"].ok
    late = [dict(EVENT, event_id="b" * 32, known_at="2026-11-26T06:05:00Z")]
    got = _outcomes(sc, late, _facts())
    assert not got["expect.events[0]"].ok and "known in [1h59m, 2h1m]" in got["expect.events[0]"].detail
    out_of_range = [dict(EVENT, event_id="c" * 32, details=dict(EVENT["details"], value=51))]
    assert not _outcomes(sc, out_of_range, _facts())["expect.events[0]"].ok


def _positions(seal: int, rseqs: list[int], eid: str) -> dict:
    return {"kind": "POSITION", "seal_id": seal, "event_id": eid, "occurred_at": "2026-11-26T05:00:00Z",
            "details": {"count": len(rseqs), "positions": [{"rseq": r} for r in rseqs]}}


def test_delivered_positions_count_distinct_records(tmp_path):
    events = [_positions(1001, [1, 2, 3], "1" * 32), _positions(1001, [3, 4], "2" * 32),
              _positions(1002, [1, 2], "3" * 32)]
    assert delivered_positions(events) == 6
    assert delivered_positions(events, 1001) == 4
    sc = _scenario_with(tmp_path, """
[expect]
no_lost_records = false
schema_valid = false
no_duplicate_events = false
[[expect.positions]]
seal = 1001
count = 4
[[expect.positions]]
min = 7
""")
    got = check(sc, events, _facts()).outcomes
    assert [o.ok for o in got if o.name.startswith("expect.positions")] == [True, False]
    assert "want at least 7 delivered positions, got 6" in [o.detail for o in got if not o.ok][0]


def test_seal_evidence_expectation(tmp_path):
    sc = _scenario_with(tmp_path, """
[expect]
no_lost_records = false
schema_valid = false
[[expect.seals]]
id = 1001
evidence = { openings = 2, reboots = { min = 1 }, closed = true }
""")
    ok = check(sc, [], _facts(openings=2, reboots=5, closed=True)).outcomes[-1]
    bad = check(sc, [], _facts(openings=1, reboots=0, closed=True)).outcomes[-1]
    assert ok.ok and not bad.ok
    assert "evidence openings 1, want 2" in bad.detail and "evidence reboots 0" in bad.detail


def test_gnss_games_in_the_receivers_sentences():
    t = _dt.datetime(2026, 11, 26, 5, 0, tzinfo=_dt.timezone.utc).timestamp()
    g = GnssSim(1, crc_error_rate=0)
    g.mode = "S"
    g.time_shift_s = -3600
    g.bad_date = "310226"
    lines = g.epoch(t, 43.0, 76.9, 60, 90).decode().split("\r\n")
    gga = next(x for x in lines if x.startswith("$GNGGA")).split(",")
    rmc = next(x for x in lines if x.startswith("$GNRMC")).split(",")
    assert gga[6] == "8" and rmc[12] == "S"  # simulator mode in both
    assert rmc[1].startswith("040000") and rmc[9] == "310226"  # an hour back, on 31 February


def test_clock_offset_jump_and_flash_wipe_reach_the_seal(tmp_path):
    sc = load_scenario(write(tmp_path, GOOD.replace('id = 1002\ntruck = "t"', 'id = 1002\ntruck = "t"\n'
                                                    'clock_offset = "-6h"') + """
[[actions]]
at = "30m"
do = "clock_jump"
seal = 1001
by = "-3h"
[[actions]]
at = "30m"
do = "flash_wipe"
seal = 1002
[expect]
no_lost_records = false
"""))
    sim = Simulator(sc, db_path=str(tmp_path / "gw.sqlite3"))
    seen = {}
    sim.clock.call_at(sc.start + 1, lambda: seen.update(off=sim.seals[1002].hal.unix() - sim.clock.now))

    def after_the_actions() -> None:  # same instant, queued behind the actions (timers run in order)
        seen.update(jump=sim.seals[1001].hal.unix() - sim.clock.now, boot=sim.seals[1002].core.boot,
                    state=sim.seals[1002].core.escort.state)
    sim.clock.call_at(sc.start + 1800, lambda: sim.clock.call_at(sc.start + 1800, after_the_actions))
    try:
        sim.run()
    finally:
        sim.close()
    assert -6 * 3600 - 2 <= seen["off"] <= -6 * 3600 + 1  # the seal's RTC starts six hours behind
    assert -3 * 3600 - 2 <= seen["jump"] <= -3 * 3600 + 1  # and jumps back three hours
    assert seen["boot"] == 1 and seen["state"] == 0  # a wiped seal boots as new: counter, escort gone
    assert abs(sim.seals[1001].hal.unix() - sim.clock.now) <= 2  # GNSS set the clock forward again
