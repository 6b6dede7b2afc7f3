"""The issue's test, as a person would do it: a gateway fed by `navseal emulate` (real firmware seals
on a real Mosquitto, the scenario tests/console/data/officer-escort.toml, time compressed) and the
console in Debian's Chromium. The destination office's officer watches the alarm feed (the opening
must show within 2 s of the seal's frame), finds the escort, sees the opening marker where the
truck was, requests deactivation in the clause 13 form, and reads the verdict the seal's answer
brings; an officer of another office sees nothing of it."""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path

import pytest

from conftest import log_in, new_page
from navseal.emu.demo import DemoEmulator
from navseal.emu.scenario import load_scenario
from navseal.gateway import auth
from navseal.gateway.mosquitto_broker import DEFAULT_BINARY, MosquittoBroker, free_port
from navseal.protocol import decode_frame, schema

pytestmark = [pytest.mark.slow, pytest.mark.mosquitto]
SCENARIO = Path(__file__).with_name("data") / "officer-escort.toml"
SCALE = 60.0  # a virtual minute a wall second: the seals report every second
PASSWORD = "officer-password-1"
TYPE_AT = len(schema.MAGIC) + 1  # the header's type byte follows magic and version
EVENT = schema.MSG_TYPES["EVENT"]


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    dlat = math.radians(b[0] - a[0])
    dlon = math.radians(b[1] - a[1]) * math.cos(math.radians((a[0] + b[0]) / 2))
    return 6_371_000 * math.hypot(dlat, dlon)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """One Mosquitto (the project's configuration) for the module's one emulated run."""
    if not os.path.exists(DEFAULT_BINARY):
        pytest.fail(f"mosquitto is missing at {DEFAULT_BINARY}: `bash tools/run setup` installs it")
    started = MosquittoBroker(tmp_path_factory.mktemp("mosquitto"))
    started.start()
    yield started
    started.kill()


@pytest.fixture(scope="module")
def emulated(broker, tmp_path_factory):
    scenario = load_scenario(SCENARIO)
    emu = DemoEmulator(scenario, embedded_broker=None, workdir=tmp_path_factory.mktemp("officer-escort"),
                       broker=broker.url, scale=SCALE, topic_prefix="seals", http_port=free_port())
    started = threading.Event()

    def officers() -> None:  # the offices' officials, with passwords, before the first frame counts
        with emu.service.store.transaction() as tx:
            for name, office in (("almaty", "50508"), ("shymkent", "50401")):
                auth.add_user(tx, name=name, role="officer", offices=[office], password=PASSWORD, now=time.time(),
                              created_by=auth.host_actor())
        started.set()

    emu.on_gateway_started = officers
    cuts: list[tuple[float, int, bytes]] = []  # wall time, seal, frame of every EVENT frame published
    send = emu.link.send

    def recording_send(seal_id: int, frame: bytes) -> None:
        if frame[TYPE_AT] == EVENT:
            cuts.append((time.time(), seal_id, frame))
        send(seal_id, frame)

    emu.link.send = recording_send
    runner = threading.Thread(target=emu.run, name="emulator", daemon=True)
    runner.start()
    assert started.wait(60), "the emulated gateway did not start"
    emu.event_frames = cuts
    emu.base = emu.access.url
    yield emu
    emu.clock.stop()
    runner.join(60)


def cut_frame(emu) -> tuple[float, dict]:
    """When the seal published its CABLE_CUT, and the frame decoded."""
    key = emu.scenario.seals[4001].key
    for sent, seal_id, raw in list(emu.event_frames):
        frame = decode_frame(raw, key) if seal_id == 4001 else None
        if frame is not None and frame.payload["code"] == "CABLE_CUT":
            return sent, frame.payload
    raise AssertionError("the seal published no CABLE_CUT")


def test_the_destination_officer_follows_the_opening_and_deactivates(emulated, browser, shots):
    emu = emulated
    problems: list[str] = []
    page = new_page(browser, problems)
    log_in(page, emu.base, "almaty", PASSWORD)
    page.click("#nav-alarms")
    page.wait_for_selector("main[data-ready]")
    page.wait_for_selector("#live-state .dot.on", timeout=10000)
    # The cut comes 20 virtual minutes in; the feed is live before it.
    row = page.locator('#alarm-rows tr[data-kind="UNAUTHORIZED_OPENING"]')
    row.wait_for(timeout=60000)
    sent, payload = cut_frame(emu)
    shown = int(row.get_attribute("data-shown-at")) / 1000
    print(f"\nalarm on the live feed {shown - sent:.3f} s after the seal published its frame")
    assert 0 < shown - sent < 2.0
    shots.take(page, "alarms-live")

    # Find the escort as an officer would: by the plate.
    page.click("#nav-escorts")
    page.fill("#f-q", "201kzd")
    page.click("#f-apply")
    page.wait_for_function("() => document.querySelectorAll('#escorts tbody tr[data-escort]').length === 1")
    page.locator("#escorts tbody tr[data-escort]").first.click()
    page.wait_for_selector("main[data-drawn]", timeout=15000)
    marker = page.locator('.ev-marker[data-kind="UNAUTHORIZED_OPENING"]')
    assert marker.count() == 1 and marker.is_visible()
    where = (float(marker.get_attribute("data-lat")), float(marker.get_attribute("data-lon")))
    truth = emu.seals[4001].truck.state(payload["time"])  # where the truck was when the seal saw the cut
    assert metres(where, (truth.lat, truth.lon)) < 300, (where, truth)
    assert metres(where, (payload["lat"] / 1e7, payload["lon"] / 1e7)) < 1  # the seal's own position, drawn
    shots.take(page, "escort-detail-emulated")

    page.click("#open-deactivate")
    page.fill("#d-seal", "4001")
    page.fill("#d-declaration", "50601/261126/0004001")
    page.fill("#d-vehicle", "201KZD02")
    page.click("#d-send")
    page.wait_for_selector("#form-done")
    # The seal takes DEACTIVATE with its next report and answers; the gateway gives the verdict.
    page.wait_for_selector("#verdict-result.not-clean", timeout=60000)
    verdict = page.inner_text("#verdict")
    assert "UNAUTHORIZED_OPENING" in verdict
    assert "almaty" in page.inner_text("#clause8")
    shots.take(page, "escort-verdict-emulated")
    assert problems == []
    page.context.close()


def test_an_officer_of_another_office_sees_nothing_of_it(emulated, browser):
    emu = emulated
    problems: list[str] = []
    page = new_page(browser, problems)
    log_in(page, emu.base, "shymkent", PASSWORD)
    page.wait_for_selector("#escorts tbody tr")
    page.wait_for_function("() => document.querySelectorAll('#escorts tbody tr[data-escort]').length >= 1",
                           timeout=30000)
    declarations = page.locator("#escorts tbody tr[data-escort]").evaluate_all(
        "rows => rows.map(r => r.dataset.declaration)")
    assert declarations == ["50508/261126/0004002"]
    page.goto(f"{emu.base}/console/#/escorts?q=50601/261126/0004001")
    page.wait_for_selector("#escorts tbody td.muted")
    page.goto(f"{emu.base}/console/#/alarms")
    page.wait_for_selector("main[data-ready]")
    assert page.locator('#alarm-rows tr[data-kind="UNAUTHORIZED_OPENING"]').count() == 0
    truck_1 = emu.service.pipeline.status(seal_id=4001)[0]["escort_id"]
    page.goto(f"{emu.base}/console/#/escorts/{truck_1}")
    page.wait_for_selector(".error")
    assert page.locator("#map").count() == 0
    assert problems == []
    page.context.close()
