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
