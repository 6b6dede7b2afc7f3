"""Reusable scenario steps on top of the Dut: activation, a GNSS feed that runs in real time.

The feed is a thread that sends one receiver epoch per period, timed by an Event wait (it can be
stopped at once), with fix times from the bench clock so the seal's clock check stays quiet.
"""

from __future__ import annotations

import threading
from typing import Iterator

from . import nmea_gen
from .dut import Dut
from .frames import EscortData
from .interfaces import BenchError, GnssStimulus

# A stretch of the A2 east of Almaty, 1e-7 degree: enough for a few minutes at 60 km/h.
ROUTE_E7 = [(432380000, 769450000), (432420000, 770450000), (432600000, 771900000), (432700000, 773400000)]


def route_e7(spec: str) -> list[tuple[int, int]]:
    """A route of the emulator's (tools/routes: a shipped name such as "almaty-khorgos", or a
    GeoJSON/GPX path) as 1e-7 degree points. Thin shim over navseal.emu.routes."""
    from navseal.emu.routes import load_route

    return [(round(lat * 1e7), round(lon * 1e7)) for lat, lon in load_route(spec).points]


class GnssFeed:
    """Real-time 1 Hz NMEA along a route; ``valid(False)`` makes the receiver report no fix
    (RMC status V), ``pause()`` makes it silent; ``fixes`` counts valid epochs sent.
    ``route``: 1e-7 degree points, or a route name/path for ``route_e7``."""

    def __init__(self, gnss: GnssStimulus, clock, route: list[tuple[int, int]] | str = ROUTE_E7,
                 speed_kmh: float = 60.0, period_s: float = 1.0) -> None:
        self.gnss = gnss
        self.clock = clock
        self.period_s = period_s
        points = route_e7(route) if isinstance(route, str) else route
        self._route = nmea_gen.along(points, 0.0, speed_kmh, period_s)
        self._valid = True
        self._paused = False
        self._stop = threading.Event()
        self._sent = threading.Condition()
        self.fixes = 0
        self.last: nmea_gen.Fix | None = None
        self.failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="gnss-feed", daemon=True)

    def start(self) -> "GnssFeed":
        self._thread.start()
        return self

    def _next_fix(self) -> nmea_gen.Fix:
        try:
            f = next(self._route)
        except StopIteration:  # end of the route: stand still at the last point
            assert self.last is not None
            f = self.last
        return nmea_gen.Fix(float(self.clock.unix()), f.lat_e7, f.lon_e7, f.speed_kmh, f.course_deg)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if not self._paused:
                    fix = self._next_fix()
                    self.gnss.send_sentences(nmea_gen.epoch(fix, self._valid))
                    with self._sent:
                        if self._valid:
                            self.fixes += 1
                            self.last = fix
                        self._sent.notify_all()
                self._stop.wait(self.period_s)
        except BaseException as exc:  # noqa: BLE001 - reported by wait_fixes and stop
            self.failure = exc
            with self._sent:
                self._sent.notify_all()

    def valid(self, on: bool) -> None:
        self._valid = on

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    def wait_fixes(self, n: int, timeout: float = 10.0) -> nmea_gen.Fix:
        """Wait until ``n`` valid fixes have been sent in total; returns the latest."""
        with self._sent:
            ok = self._sent.wait_for(lambda: self.fixes >= n or self.failure is not None, timeout)
        if self.failure is not None:
            raise BenchError(f"GNSS feed failed: {self.failure!r}")
        if not ok or self.last is None:
            raise BenchError(f"GNSS feed sent {self.fixes} fixes, {n} wanted within {timeout} s")
        return self.last

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self.failure is not None and not isinstance(self.failure, BenchError):
            raise BenchError(f"GNSS feed failed: {self.failure!r}")


def activate(dut: Dut, escort: EscortData | None = None, expect_result: str = "OK", timeout: float = 5.0):
    """Send ACTIVATE; return its COMMAND_RESULT (asserting ``expect_result``)."""
    escort = escort or EscortData()
    seq = dut.send_command("ACTIVATE", escort.activate(dut.seal_id))
    res = dut.expect("COMMAND_RESULT", cmd_seq=seq, timeout=timeout)
    assert res.payload["result"] == expect_result, f"ACTIVATE -> {res.payload['result']}, wanted {expect_result}"
    if expect_result == "OK":
        dut.bench.last_escort = escort  # lets the next test's baseline deactivate a board
    return res


def deactivate(dut: Dut, escort: EscortData, expect_result: str = "OK", timeout: float = 5.0,
               attempts: int = 10, **override):
    """Send DEACTIVATE; return its COMMAND_RESULT (asserting ``expect_result``). A seal with
    journal records not yet acknowledged answers JOURNAL_PENDING ("not yet"): as the gateway
    does, the command goes again after the seal's next journal frame was acknowledged."""
    for _ in range(attempts):
        seq = dut.send_command("DEACTIVATE", escort.deactivate(dut.seal_id, **override))
        res = dut.expect("COMMAND_RESULT", cmd_seq=seq, timeout=timeout)
        if res.payload["result"] != "JOURNAL_PENDING" or expect_result == "JOURNAL_PENDING":
            break
        dut.expect(where=lambda f: f.type in ("RECORDS", "EVENT"), timeout=timeout)
    assert res.payload["result"] == expect_result, f"DEACTIVATE -> {res.payload['result']}, wanted {expect_result}"
    return res


def fixes_of(records_frame) -> Iterator[tuple[int, int, int]]:
    """(time, lat, lon) of each record in a RECORDS frame."""
    p = records_frame.payload
    for r in p["records"]:
        yield p["base_time"] + r["dt"], r["lat"], r["lon"]
