"""One seal in its simulated world: the real firmware core (navseal_fw.seal.SealCore) on a HAL
whose inputs the world sets: GNSS bytes from the truck's position, cable loop and housing switch,
a draining battery, cellular coverage, power.

The world is transport- and clock-agnostic: the simulator drives it from its virtual clock and
hands uplink frames to the in-process gateway; the emulator drives it in real time and hands
them to MQTT or a serial pty. Both call the same methods with the current time in Unix seconds.

Power: a power cut stops the core where it is (a `PowerCut` raised by the flash mid-write, or
simply no more calls), and power-on builds a new SealCore on the same flash, exactly as a board
that boots again. Everything the core did not persist is gone; that is the point of the test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from navseal_fw.hal import MemFlash, MemHal, PowerCut
from navseal_fw.hal_desktop import DesktopHal
from navseal_fw.seal import CONFIG_FILE, Config, SealCore
from navseal.protocol.schema import MSG_NAMES

from .driver import DriveState, RouteDriver
from .gnss import GnssSim
from .replay import NmeaReplay
from .routes import load_route
from .scenario import Scenario, SealSpec, Truck

# Protocol reset causes (docs/protocol.md HELLO)
POWER_ON, WATCHDOG, SOFT, BROWNOUT = 0, 1, 2, 3

SendUplink = Callable[[int, bytes], None]


class TruckWorld:
    """Where a truck is at any time: a planned drive along its route, or a recorded NMEA log.

    Trucks that share a route and a drive profile share one planned drive (fleet mode: ten
    thousand trucks are the same drive at different `time_offset_s`), so a fleet costs one plan.
    """

    def __init__(self, spec: Truck, scenario: Scenario, seed: int,
                 shared: dict | None = None) -> None:
        self.spec = spec
        self.driver: RouteDriver | None = None
        self.route = None
        self.start = scenario.start
        if spec.route is not None:
            key = (spec.route, spec.reverse, id(spec.profile))
            cached = shared.get(key) if shared is not None else None
            if cached is None:
                route = load_route(spec.route, scenario.path.parent)
                if spec.reverse:
                    route = route.reversed()
                cached = (route, RouteDriver(route, spec.profile, t0=scenario.start, seed=seed), spec.profile)
                if shared is not None:
                    shared[key] = cached
            self.route, self.driver = cached[0], cached[1]

    def state(self, now: float) -> DriveState | None:
        if self.driver is None:
            return None
        t = now + self.spec.time_offset_s
        if self.spec.loop and t > self.driver.t_arrive:
            t = self.start + (t - self.start) % max(self.driver.duration_s, 1.0)
        return self.driver.state(t)

    def in_tunnel(self, km: float) -> bool:
        return any(a <= km <= b for a, b in self.spec.tunnels)

    def in_dead_zone(self, km: float) -> bool:
        return any(a <= km <= b for a, b in self.spec.no_coverage)


class FileHal(DesktopHal):
    """The firmware's desktop HAL (the seal's flash is a directory of files) on the emulator's clock: the
    world sets `now_ms` before every call into the core, and Unix time follows the scenario."""

    def __init__(self, root: str, start: float) -> None:
        self.now_ms = 0
        super().__init__(root, clock_ms=lambda: self.now_ms)
        self.set_unix(int(start))


@dataclass
class SealView:
    """What a live view or a report shows of a seal."""

    seal_id: int
    powered: bool
    link_up: bool
    state: str
    alarms: int
    lat: float | None
    lon: float | None
    speed_kmh: float
    battery: int | None
    journal_pending: int
    km: float | None


class SealWorld:
    def __init__(self, spec: SealSpec, truck: TruckWorld, *, start: float, seed: int,
                 send_uplink: SendUplink, flash_dir: str | None = None) -> None:
        self.spec = spec
        self.id = spec.id
        self.truck = truck
        self.start = start
        self.send_uplink = send_uplink
        # In-memory flash (can tear a write at any byte: power-cut tests; cheap for fleets) or, for
        # the emulator, a directory of files per seal, as the firmware's desktop HAL keeps them.
        # The seal's clock: the scenario's time, or off by the seal's clock_offset (an RTC set wrong).
        clock0 = int(start + spec.clock_offset_s)
        self.hal = MemHal(MemFlash(), unix0=clock0) if flash_dir is None else FileHal(flash_dir, clock0)
        self.hal.battery = int(spec.battery_pct)
        self.battery = float(spec.battery_pct)
        self._battery_t = start
        self.gnss = GnssSim(seed, noise_m=truck.spec.gnss.noise_m, crc_error_rate=truck.spec.gnss.crc_error_rate)
        self.replay = NmeaReplay(truck.spec.nmea_replay) if truck.spec.nmea_replay else None
        self.config_values = {
            "seal_id": spec.id, "key": spec.key,
            "report_moving_s": spec.report_moving_s, "report_stopped_s": spec.report_stopped_s,
            "heartbeat_s": spec.heartbeat_s, "report_inactive_s": spec.report_inactive_s,
            "journal_capacity": spec.journal_capacity,
            # A segment is at most an eighth of the journal, so thinning has whole old segments
            # to work on even in the small journals the overflow scenarios use.
            "journal_seg_records": max(8, min(1021, spec.journal_capacity // 8)),
        }
        self.core: SealCore | None = None
        self.powered = False
        self.link_up = True
        self.coverage_forced_down = False  # coverage_lost action
        self.in_dead_zone = False  # the truck is in a no-coverage stretch of its route
        self.gnss_ok = True
        self._spoof: tuple[float, float, float, float] | None = None  # (t0, ramp, north, east)
        self.boots = 0
        self.power_cuts = 0
        self.thinned_before = 0  # journal thinning counted by earlier boots
        self.rejected_before = 0
        self.last_command: dict[str, bytes] = {}  # type -> last downlink command frame (for replays)
        self.last_uplink: dict[str, bytes] = {}  # type name ("last": any) -> last frame sent (replays)

    # --- time ---
    def _ms(self, now: float) -> int:
        return int(round((now - self.start) * 1000))

    # --- power ---
    def boot(self, now: float, cause: int = POWER_ON) -> None:
        if self.core is not None:
            self.thinned_before += self.core.journal.thinned
            self.rejected_before += self.core.rx_rejected
        if isinstance(self.hal, MemHal):
            self.hal.flash.power_on()
        self.hal.cause = cause
        self.hal.now_ms = self._ms(now)
        self.powered = True
        self.boots += 1
        self.core = SealCore(self._config(), self.hal, self._send)
        self._guard(lambda: self.core.start(self._ms(now)))
        if self.powered and not self.link_up:
            self._guard(lambda: self.core.on_link(False, self._ms(now)))

    def _config(self) -> Config:
        if isinstance(self.hal, MemHal):
            return Config(self.config_values)
        # A board reads its provisioning file from flash (what `navseal provision` writes).
        try:
            self.hal.size(CONFIG_FILE)
        except OSError:
            values = dict(self.config_values, key=self.config_values["key"].hex())
            self.hal.write_config(values)
        return Config.load(self.hal)

    def power_off(self) -> None:
        self.powered = False
        self.power_cuts += 1

    def arm_power_cut(self, after_bytes: int) -> bool:
        """The next flash write is cut after `after_bytes` bytes; the seal dies there. False when
        the flash cannot tear a write (files on the host)."""
        if not isinstance(self.hal, MemHal):
            return False
        self.hal.flash.cut_after(after_bytes)
        return True

    def _guard(self, fn: Callable[[], object]) -> None:
        if not self.powered:
            return
        try:
            fn()
        except PowerCut:
            self.power_off()

    def _send(self, frame: bytes) -> bool:
        if not self.link_up:
            return False
        name = MSG_NAMES.get(frame[3]) if len(frame) > 3 else None
        if name:
            self.last_uplink[name] = frame
        self.last_uplink["last"] = frame
        self.send_uplink(self.id, frame)
        return True

    # --- driving the core ---
    def next_deadline(self) -> float | None:
        if not self.powered or self.core is None:
            return None
        return self.start + self.core.next_deadline_ms() / 1000.0

    def poll(self, now: float) -> None:
        if not self.powered:
            return
        self._update_battery(now)
        self.hal.now_ms = self._ms(now)
        self._guard(lambda: self.core.poll(self._ms(now)))

    def gnss_epoch(self, now: float) -> None:
        """One receiver epoch at `now`: NMEA bytes into the core."""
        if not self.powered:
            return
        if self.replay is not None:
            data = self.replay.next_epoch(now) if self.gnss_ok else self.gnss.epoch(now, 0, 0, 0, 0, fix=False)
        else:
            st = self.truck.state(now)
            north, east = self._spoof_offset(now)
            self.gnss.offset_m = (north, east)
            fix = self.gnss_ok and not (self.truck.spec.tunnels and self.truck.in_tunnel(st.km))
            data = self.gnss.epoch(now, st.lat, st.lon, st.speed_kmh, st.course_deg, fix=fix)
            if self.truck.spec.no_coverage:
                self.in_dead_zone = self.truck.in_dead_zone(st.km)
                self.update_link(now)
        if data is None:
            return
        self.hal.now_ms = self._ms(now)
        self._guard(lambda: self.core.feed_gnss(data, self._ms(now)))

    def downlink(self, frame: bytes, now: float) -> None:
        if not self.powered or not self.link_up:
            return
        if len(frame) > 3 and frame[3] in (0x81, 0x82, 0x83):
            self.last_command[{0x81: "ack", 0x82: "activate", 0x83: "deactivate"}[frame[3]]] = frame
        self.hal.now_ms = self._ms(now)
        self._guard(lambda: self.core.on_downlink(frame, self._ms(now)))

    def set_coverage(self, up: bool, now: float) -> None:
        """coverage_lost / coverage_restored actions (combined with the route's dead zones)."""
        self.coverage_forced_down = not up
        self.update_link(now)

    def update_link(self, now: float) -> None:
        up = not (self.coverage_forced_down or self.in_dead_zone)
        if up != self.link_up:
            self.set_link(up, now)

    def set_link(self, up: bool, now: float) -> None:
        self.link_up = up
        if self.powered:
            self._guard(lambda: self.core.on_link(up, self._ms(now)))

    # --- world inputs ---
    def _update_battery(self, now: float) -> None:
        drain = self.spec.battery_drain_pct_per_h
        if drain:
            self.battery = max(0.0, self.battery - drain * (now - self._battery_t) / 3600.0)
        self._battery_t = now
        self.hal.battery = int(self.battery)

    def clock_jump(self, now: float, by_s: float) -> None:
        """The seal's clock (RTC) jumps by `by_s` (< 0: back); its monotonic timers do not."""
        self.hal.now_ms = self._ms(now)
        self.hal.set_unix(self.hal.unix() + int(by_s))

    def wipe_flash(self, now: float) -> None:
        """Everything on the seal's flash but its provisioning (id and key) is erased, and the seal
        starts again from power-on: boot counter, journal, escort and evidence gone."""
        self.power_off()
        if isinstance(self.hal, MemHal):
            self.hal.flash.power_on()
        for name in list(self.hal.listdir()):
            if name != CONFIG_FILE:
                self.hal.remove(name)
        self.boot(now, POWER_ON)

    def set_lock(self, now: float, *, cable: bool | None = None, housing: bool | None = None) -> None:
        """Change the tamper inputs: each change an edge in the HAL's pin-interrupt latch (the
        core dates the opening by it and samples at once), as on the board."""
        self.hal.set_lock(cable, housing, self._ms(now))
        changed = getattr(self.core, "lock_changed", None)
        if changed is not None and self.powered:
            self._guard(lambda: changed(self._ms(now)))

    def lock_pulse(self, now: float, which: str, width_s: float) -> None:
        """`which` was open for `width_s`, ending now, between two of the seal's samples: only the
        pin-interrupt latch knows (a powered-off seal sees nothing)."""
        if self.powered:
            self.hal.pulse(which, max(1, int(round(width_s * 1000))), self._ms(now))

    def set_battery(self, pct: float, now: float) -> None:
        self._battery_t = now
        self.battery = float(pct)
        self.hal.battery = int(pct)

    def gnss_jump(self, now: float, distance_m: float, bearing_deg: float, ramp_s: float = 0.0) -> None:
        rad = math.radians(bearing_deg)
        self._spoof = (now, ramp_s, distance_m * math.cos(rad), distance_m * math.sin(rad))

    def gnss_clear_jump(self) -> None:
        self._spoof = None

    def _spoof_offset(self, now: float) -> tuple[float, float]:
        if self._spoof is None:
            return 0.0, 0.0
        t0, ramp, north, east = self._spoof
        f = 1.0 if ramp <= 0 else min(1.0, max(0.0, (now - t0) / ramp))
        return north * f, east * f

    # --- reporting ---
    @property
    def thinned(self) -> int:
        return self.thinned_before + (self.core.journal.thinned if self.core else 0)

    @property
    def rejected_commands(self) -> int:
        return self.rejected_before + (self.core.rx_rejected if self.core else 0)

    def view(self, now: float) -> SealView:
        core = self.core
        st = self.truck.state(now)
        lat = lon = None
        if core is not None and core.lat != 0x7FFFFFFF:
            lat, lon = core.lat / 1e7, core.lon / 1e7
        return SealView(
            seal_id=self.id, powered=self.powered, link_up=self.link_up,
            state=("ACTIVE" if core and core.escort.state == 1 else "INACTIVE"),
            alarms=core.alarms() if core else 0, lat=lat, lon=lon,
            speed_kmh=(core.speed / 10 if core else 0.0), battery=self.hal.battery,
            journal_pending=core.journal.pending if core else 0, km=st.km if st else None)
