"""Scenario loader: a wrong file is refused with the file and the field named."""

from __future__ import annotations

from pathlib import Path

import pytest

from navseal.emu.scenario import ScenarioError, load_scenario, parse_duration

GOOD = """
[scenario]
duration = "2h"

[[trucks]]
id = "t"
plate = "123ABC02"
route = "kordai-almaty"

[[seals]]
id = 1001
truck = "t"

[[escorts]]
name = "e"
seals = [1001]
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


def test_good_file_loads(tmp_path):
    sc = load_scenario(write(tmp_path, GOOD))
    assert sc.duration_s == 7200 and sc.seals[1001].truck == "t"
    assert sc.escorts["e"].vehicle == "123ABC02"  # from the truck's plate
    assert sc.actions[0].at == 60 and sc.expect.no_lost_records


@pytest.mark.parametrize("text,field,words", [
    (GOOD + '\n[[actions]]\nat = "5m"\ndo = "cable_cut"\nseal = 1002\n', "actions[1].seal", "not declared"),
    (GOOD + '\n[[actions]]\nat = "5m"\ndo = "explode"\nseal = 1001\n', "actions[1].do", "unknown action"),
    (GOOD + '\n[[actions]]\nat = "5m"\ndo = "cable_cut"\n', "actions[1]", "needs 'seal' or 'truck'"),
    (GOOD + '\n[[actions]]\nat = "five"\ndo = "reboot"\nseal = 1001\n', "actions[1].at", "not a duration"),
    (GOOD + '\n[[actions]]\nat = "3h"\ndo = "reboot"\nseal = 1001\n', "actions[1].at", "after the end"),
    (GOOD + '\n[[actions]]\nat = "1h"\ndo = "battery"\nseal = 1001\n', "actions[1].pct", "required"),
    (GOOD + '\n[[actions]]\nat = "1h"\ndo = "reboot"\nseal = 1001\nvolts = 3\n', "actions[1].volts", "not a parameter"),
    (GOOD.replace('duration = "2h"', 'duration = "2h"\ncolour = "red"'), "scenario", "unknown key"),
    (GOOD.replace('route = "kordai-almaty"', 'route = "atlantis"'), "trucks[0].route", "not a shipped route"),
    (GOOD.replace('declaration = "D1"', 'declaration = "' + "X" * 41 + '"'), "escorts[0].declaration", "40 bytes"),
    (GOOD + '\n[expect]\nabsent = ["SIGNAL_LOSS"]\n', "expect.absent", "not an event kind"),
    (GOOD + '\n[[expect.events]]\nkind = "ACTIVATED"\ncount = 1\nmin = 1\n', "expect.events[0]", "not both"),
    (GOOD + '\n[[expect.events]]\nkind = "ACTIVATED"\nsael = 1001\n', "expect.events[0]", "unknown key"),
    (GOOD + '\n[gateway]\nsignal_lost_after_s = "3 hours"\n', "gateway.signal_lost_after_s", "not a duration"),
    (GOOD + '\n[gateway]\nsignal_lost_after = "3h"\n', "gateway.signal_lost_after", "not a gateway"),
    (GOOD.replace('id = 1001\ntruck = "t"', 'id = 1001\ntruck = "t"\nkey = "abc"'), "seals[0].key", "64 hex"),
    (GOOD.replace("[scenario]\n", "[scenario]\nstart = 2026-11-26T04:00:00\n"), "scenario.start", "UTC offset"),
    (GOOD.replace('route = "kordai-almaty"', 'route = "kordai-almaty"\ntunnels = [{ from_km = 5, to_km = 4 }]'),
     "trucks[0].tunnels[0].to_km", "greater than"),
    (GOOD + '\n[[actions]]\nat = "1h"\ndo = "lock_pulse"\nseal = 1001\ninput = "lid"\n', "actions[1].input", "one of"),
    (GOOD + '\n[[actions]]\nat = "1h"\ndo = "lock_pulse"\nseal = 1001\n', "actions[1].input", "required"),
    (GOOD + '\n[[actions]]\nat = "1h"\ndo = "lock_pulse"\nseal = 1001\ninput = "cable"\nwidth = "11s"\n',
     "actions[1].width", "1ms .. 10s"),
])
def test_errors_name_file_and_field(tmp_path, text, field, words):
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as exc:
        load_scenario(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: {field}: "), msg
    assert words in msg


def test_not_toml_and_missing_file(tmp_path):
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(write(tmp_path, "[scenario\n"))
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "nope.toml")


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("15m", 900), ("3h", 10800), ("1h30m", 5400),
                                          ("2d", 172800), (42, 42), (1.5, 1.5), ("50ms", 0.05),
                                          ("1m2s500ms", 62.5)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "3 hours", "-5", "h", True, -1, "5ms3s"])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_lock_pulse_action(tmp_path):
    sc = load_scenario(write(tmp_path, GOOD + '\n[[actions]]\nat = "1h"\ndo = "lock_pulse"\nseal = 1001\n'
                                              'input = "housing"\nwidth = "50ms"\n'
                                              '\n[[actions]]\nat = "1h1m"\ndo = "lock_pulse"\ntruck = "t"\n'
                                              'input = "cable"\n'))
    assert sc.actions[1].params == {"seal": 1001, "input": "housing", "width": 0.05}
    assert sc.actions[2].seals == [1001] and sc.actions[2].params["width"] == 0.05  # the default
