"""`navseal simulate` as a user runs it: events on stdout, expectations on stderr, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from navseal.cli import main

SCENARIOS = Path(__file__).resolve().parents[2] / "tools" / "scenarios"


def test_events_on_stdout_report_on_stderr(capsys):
    assert main(["simulate", "nmea-replay"]) == 0
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["kind"] for e in events if e["kind"] != "POSITION"][:1] == ["ACTIVATED"]
    assert "nmea-replay: 8 passed, 0 failed" in err and "virtual s per wall s" in err


def test_a_failed_expectation_exits_1_and_is_named(tmp_path, capsys):
    text = (SCENARIOS / "nmea-replay.toml").read_text().replace(
        "../../tests/data/nmea/", str(SCENARIOS.parents[1] / "tests" / "data" / "nmea") + "/")
    text += '\n[[expect.events]]\nkind = "SIGNAL_LOST"\ncount = 1\n'
    path = tmp_path / "wrong.toml"
    path.write_text(text)
    events = tmp_path / "ev" / "events.jsonl"
    assert main(["simulate", str(path), "--events", str(events)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "FAIL expect.events[2] SIGNAL_LOST: want exactly 1, got 0" in err
    assert events.read_text().count("\n") >= 4


def test_a_broken_scenario_exits_2_naming_file_and_field(tmp_path, capsys):
    path = tmp_path / "broken.toml"
    path.write_text('[scenario]\nduration = "1h"\n[[trucks]]\nid = "t"\nplate = "P"\nroute = "nowhere"\n')
    assert main(["simulate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: trucks[0].route: route 'nowhere'" in err


PULSES = """
[scenario]
name = "pulses"
duration = "1h"
seed = 1

[[trucks]]
id = "truck-1"
plate = "111BBB02"
route = "kordai-almaty"

[[seals]]
id = 1501
truck = "truck-1"

[[escorts]]
name = "transit"
seals = [1501]
declaration = "50601/261126/0001501"
departure_office = { code = "50601", name = "Kordai customs post" }
destination_office = { code = "50508", name = "Almaty customs post" }
transit_period = "12h"

[[actions]]
at = "2m"
do = "activate"
escort = "transit"

[[actions]]
at = "20m"
do = "lock_pulse"
seal = 1501
input = "cable"
width = "50ms"

[[actions]]
at = "30m"
do = "lock_pulse"
seal = 1501
input = "housing"
width = "20ms"

[expect]
absent = ["HOUSING_OPENED"]

[[expect.events]]
kind = "UNAUTHORIZED_OPENING"
seal = 1501
count = 1
after = "19m59s"
before = "20m"
"""


def test_a_lock_pulse_between_two_samples_is_an_opening_dated_by_its_edge(tmp_path, capsys):
    # 50 ms of cable cut ending at 20m: the opening edge is at 19m59.95s; 20 ms: a glitch.
    path = tmp_path / "pulses.toml"
    path.write_text(PULSES)
    assert main(["simulate", str(path)]) == 0, capsys.readouterr().err
    out, err = capsys.readouterr()
    kinds = [json.loads(line)["kind"] for line in out.splitlines()]
    assert kinds.count("UNAUTHORIZED_OPENING") == 1 and "HOUSING_OPENED" not in kinds
