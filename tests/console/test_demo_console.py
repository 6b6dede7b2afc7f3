"""`navseal demo` on a terminal: its live view keeps saying where the web console is and how to
log in, on every redraw (the screen is cleared each time, so a line printed once would be gone)."""

from __future__ import annotations

import io
from types import SimpleNamespace

from navseal.emu.demo import DEMO_SCENARIO, LiveView
from navseal.emu.demo_access import DemoAccess
from navseal.emu.scenario import load_scenario


def test_the_live_view_shows_the_console_and_a_login_on_every_redraw(tmp_path):
    scenario = load_scenario(DEMO_SCENARIO)
    access = DemoAccess(url="http://127.0.0.1:8080", file=tmp_path / "demo-access.txt",
                        passwords={"officer": "s3cret-pass", "operator": "x"}, tokens={}, offices=["50508"])
    emu = SimpleNamespace(seals={}, clock=SimpleNamespace(now=scenario.start + 600), scale=200.0, access=None,
                          events_path=tmp_path / "events.jsonl")
    out = io.StringIO()
    view = LiveView(emu, scenario, out, tty=True)
    view.draw()
    assert "Web console" not in out.getvalue()  # not before the gateway is up
    emu.access = access
    for _ in range(2):
        out.truncate(0)
        view.draw()
        screen = out.getvalue().split("\x1b[2J")[-1]
        assert "Web console: http://127.0.0.1:8080/console/  log in as demo-officer / s3cret-pass" in screen
