"""The web console in a real browser (Debian's Chromium, Playwright) against an in-process gateway
fed with real frames: a 10-hour escort of 36,000 fixes drawn in under a second, every page in both
languages, an officer's scope, the clause 13 deactivation form and its verdict, acknowledging an
alarm. Screenshots of each page are written (conftest.py says where)."""

from __future__ import annotations

import statistics
import time

import pytest

import world
from conftest import log_in, new_page
from gateway_harness import make_tokens
from pipeline_support import VirtualClock
from navseal.gateway import auth
from navseal.gateway.config import load_config
from navseal.gateway.service import GatewayService

pytestmark = pytest.mark.slow
T0 = 1_795_000_000
PASSWORD = "console-password-1"


def add_officer(store, name: str, offices: list[str]) -> None:
    with store.transaction() as tx:
        auth.add_user(tx, name=name, role="officer", offices=offices, password=PASSWORD, now=time.time(),
                      created_by=auth.host_actor())


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    clock = VirtualClock(T0)
    path = tmp_path_factory.mktemp("console-browser") / "gw.sqlite3"
    config = load_config(None, db_path=str(path), http_port=0, mqtt_host="", dev_test_keys=True)
    svc = GatewayService(config, enable_mqtt=False, clock=clock)
    svc.clock_ = clock
    svc.long = world.long_drive(svc.pipeline, clock, 3101, hours=10)  # 36,000 fixes, the cable cut at 40 %
    clock.advance(120)
    svc.other = world.short_drive(svc.pipeline, clock, 3102, declaration="50601/261126/0003102",
                                  vehicle="102KZD02", destination=world.OTHER_OFFICE)
    clock.advance(60)
    svc.third = world.short_drive(svc.pipeline, clock, 3103, declaration="50601/261126/0003103", vehicle="103KZD02")
    make_tokens(config.db_path, roles=("operator", "auditor"), passwords=True)
    add_officer(svc.store, "almaty", [world.DEST_OFFICE[0]])
    add_officer(svc.store, "shymkent", [world.OTHER_OFFICE[0]])
    svc.start()
    svc.base = svc.http.url
    yield svc
    svc.stop()


@pytest.fixture
def problems():
    found: list[str] = []
    yield found
    assert found == [], found  # no script error on any page


def test_a_ten_hour_escort_of_36000_fixes_is_drawn_in_under_a_second(gw, browser, shots, problems):
    page = new_page(browser, problems)
    log_in(page, gw.base, "operator", "operator-password-123")
    url = f"{gw.base}/console/#/escorts/{gw.long.escort_id}"
    times = []
    for _ in range(3):
        page.goto("about:blank")
        page.goto(url)  # a whole page load: HTML, scripts, data, basemap, route, track, markers
        page.wait_for_selector("main[data-drawn]", timeout=15000)
        times.append(page.evaluate("window.navsealDrawnAt") / 1000)
    drawn = statistics.median(times)
    print(f"\n36,000-fix escort page, load to drawn (s): {', '.join(f'{t:.3f}' for t in times)}; median {drawn:.3f}")
    assert drawn < 1.0, times
    assert page.get_attribute("#map", "data-track-fixes") == "36001"
    points = int(page.get_attribute("#map", "data-track-points"))
    assert 2 < points < 2000
    marker = page.locator('.ev-marker[data-kind="UNAUTHORIZED_OPENING"]')
    assert marker.count() == 1 and marker.is_visible()
    assert float(marker.get_attribute("data-lat")) == pytest.approx(gw.long.cut_at[0], abs=1e-6)
    assert float(marker.get_attribute("data-lon")) == pytest.approx(gw.long.cut_at[1], abs=1e-6)
    box, map_box = marker.bounding_box(), page.locator("#map").bounding_box()
    assert map_box["x"] <= box["x"] <= map_box["x"] + map_box["width"]
    assert map_box["y"] <= box["y"] <= map_box["y"] + map_box["height"]
    assert "Unauthorized opening" in page.inner_text("#verdict")
    shots.take(page, "escort-detail")
    # Zoomed in, the visible box comes again at the finer zoom: more of the fixes, only there.
    page.click('#events button:has-text("show on map")')
    page.wait_for_function("() => Number(document.querySelector('#map').dataset.trackZoom) >= 12", timeout=10000)
    assert int(page.get_attribute("#map", "data-track-points")) > 2
    page.click('input[name=colour][value=speed]')
    shots.take(page, "escort-detail-zoomed-speed")
    page.context.close()


def test_every_page_in_english_and_russian(gw, browser, shots, problems):
    page = new_page(browser, problems)
    log_in(page, gw.base, "operator", "operator-password-123")
    page.wait_for_selector("#escorts tbody tr[data-escort]")
    assert page.locator("#escorts tbody tr[data-escort]").count() == 3
    shots.take(page, "escorts")
    page.fill("#f-q", "102kzd")
    page.click("#f-apply")
    page.wait_for_function("() => document.querySelectorAll('#escorts tbody tr[data-escort]').length === 1")
    assert page.inner_text("#escorts tbody") .count("102KZD02") == 1
    page.select_option("#f-alarm", "any")
    page.fill("#f-q", "")
    page.click("#f-apply")
    page.wait_for_function("() => document.querySelectorAll('#escorts tbody tr[data-escort]').length === 1")
    assert page.locator("#escorts tbody tr").first.get_attribute("data-escort") == str(gw.long.escort_id)
    page.click("#nav-alarms")
    page.wait_for_selector('#alarm-rows tr[data-kind="UNAUTHORIZED_OPENING"]')
    shots.take(page, "alarms")
    page.click("#nav-seals")
    page.wait_for_selector('#seal-rows tr[data-seal="3101"]')
    assert "1.0.0" in page.inner_text('#seal-rows tr[data-seal="3101"]')
    shots.take(page, "seals")
    page.click("#new-activation") if page.locator("#new-activation").count() else page.goto(f"{gw.base}/console/#/activate")
    page.wait_for_selector("#activate-form")
    page.fill("#a-declaration", "not a declaration")
    assert "✗" in page.inner_text("#a-declaration-check") and page.is_disabled("#a-send")
    shots.take(page, "activation-form")
    page.select_option("#lang", "ru")
    page.goto(f"{gw.base}/console/#/escorts")
    page.wait_for_selector("#escorts tbody tr[data-escort]")
    assert page.inner_text("#nav-escorts") == "Сопровождения" and "Декларация" in page.inner_text("#escorts thead")
    shots.take(page, "escorts-ru")
    page.goto(f"{gw.base}/console/#/escorts/{gw.long.escort_id}")
    page.wait_for_selector("main[data-drawn]")
    assert "Заключение" in page.inner_text("#verdict")
    shots.take(page, "escort-detail-ru")
    page.context.close()


def test_an_officer_sees_only_their_offices_escorts(gw, browser, problems):
    page = new_page(browser, problems)
    log_in(page, gw.base, "shymkent", PASSWORD)
    page.wait_for_selector("#escorts tbody tr[data-escort]")
    assert [page.locator("#escorts tbody tr[data-escort]").nth(i).get_attribute("data-escort")
            for i in range(page.locator("#escorts tbody tr[data-escort]").count())] == [str(gw.other.escort_id)]
    page.goto(f"{gw.base}/console/#/escorts?q={gw.long.declaration}")
    page.wait_for_selector("#escorts tbody td.muted")  # "No escorts match."
    page.goto(f"{gw.base}/console/#/escorts/{gw.long.escort_id}")
    page.wait_for_selector(".error")
    assert "Not found" in page.inner_text("main") and page.locator("#map").count() == 0
    page.goto(f"{gw.base}/console/#/alarms")
    page.wait_for_selector("main[data-ready]")
    assert page.locator("#alarm-rows tr.alarm-row").count() == 0
    page.context.close()


def test_the_destination_officer_deactivates_with_the_clause_13_check_and_sees_the_verdict(gw, browser, shots,
                                                                                          problems):
    page = new_page(browser, problems)
    log_in(page, gw.base, "almaty", PASSWORD)
    page.goto(f"{gw.base}/console/#/escorts/{gw.long.escort_id}")
    page.wait_for_selector("main[data-drawn]")
    # Acknowledge the opening first (the alarm feed), as the office would on hearing of it.
    page.goto(f"{gw.base}/console/#/alarms")
    row = page.locator('#alarm-rows tr[data-kind="UNAUTHORIZED_OPENING"]')
    row.locator(".ack-note").fill("truck stopped at the post")
    row.locator(".ack-button").click()
    page.wait_for_function("() => document.querySelector('#alarm-rows tr[data-kind=UNAUTHORIZED_OPENING]')"
                           ".innerText.includes('acknowledged by almaty')")
    page.goto(f"{gw.base}/console/#/escorts/{gw.long.escort_id}")
    page.wait_for_selector("main[data-drawn]")
    page.click("#open-deactivate")
    page.fill("#d-seal", "3101")
    page.fill("#d-declaration", gw.long.declaration)
    page.fill("#d-vehicle", "101KZD03")  # misread plate
    assert page.is_disabled("#d-send") and "✗" in page.inner_text("#d-vehicle-check")
    page.fill("#d-vehicle", gw.long.vehicle.lower())
    assert page.is_enabled("#d-send") and "✓" in page.inner_text("#d-vehicle-check")
    shots.take(page, "deactivation-form")
    page.click("#d-send")
    page.wait_for_selector("#form-done")
    # The seal's next frame collects DEACTIVATE and it answers: the gateway gives the verdict.
    assert "DEACTIVATED" in [e["kind"] for e in world.answer_commands(gw.pipeline, gw.clock_, gw.long)]
    page.wait_for_selector("#verdict-result.not-clean", timeout=20000)
    assert "UNAUTHORIZED_OPENING" in page.inner_text("#verdict")
    assert "almaty" in page.inner_text("#clause8")  # deactivation requested by
    shots.take(page, "escort-verdict")
    page.context.close()
