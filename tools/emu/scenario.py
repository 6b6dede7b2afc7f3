"""Scenario files (TOML, docs/scenarios.md): seals, escorts, trucks and routes, timed actions, and
what the operator must (and must not) receive.

Past 400 lines on purpose: the file format's checks, one function per table and action, so
every error names its file and field the same way; it reads files and builds dataclasses only.

`load_scenario(path)` returns a `Scenario` of plain dataclasses or raises `ScenarioError` whose
message names the file and the field ("tools/scenarios/x.toml: actions[3].seal: seal 1002 is not
declared in [[seals]]"). Every table is checked for unknown keys: a misspelt expectation must not
silently expect nothing. Times in a scenario are offsets from `[scenario] start`, written as
durations ("90s", "15m", "3h", "1h30m", "2d") or numbers of seconds.

Past 400 lines on purpose: it is the one reader of one file format, and each table's checks sit
next to the table they check (expectations in `expect.py`, actions in `runner.py`).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .driver import Detour, DriveProfile, Stop

DEFAULT_START = _dt.datetime(2026, 11, 26, 4, 0, tzinfo=_dt.timezone.utc)

# Action name -> (required keys, optional keys). Target keys: `seal` (one seal) or `truck` (all
# its seals) for seal-side actions, `escort` for commands.
_TARGET = ("seal", "truck")
ACTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "activate": (("escort",), ("expect_error",)),
    "deactivate": (("escort",), ("seal", "declaration", "vehicle", "expect_error")),
    "cable_cut": ((), _TARGET),
    "housing_open": ((), _TARGET),
    "lock_restored": ((), _TARGET + ("input",)),
    "lock_pulse": (("input",), _TARGET + ("width",)),
    "coverage_lost": ((), _TARGET),
    "coverage_restored": ((), _TARGET),
    "reboot": ((), _TARGET),
    "reboot_loop": (("count",), _TARGET + ("every",)),
    "flash_wipe": ((), _TARGET),
    "clock_jump": (("by",), _TARGET),
    "power_cut": ((), _TARGET + ("duration",)),
    "power_cut_during_write": ((), _TARGET + ("duration", "after_bytes")),
    "gnss_lost": ((), _TARGET + ("duration",)),
    "gnss_restored": ((), _TARGET),
    "gnss_jump": ((), _TARGET + ("distance_m", "bearing_deg", "duration")),
    "gnss_spoof": ((), _TARGET + ("distance_m", "bearing_deg", "ramp", "duration")),
    "gnss_mode": (("mode",), _TARGET + ("duration",)),
    "gnss_time_shift": (("by",), _TARGET + ("duration",)),
    "gnss_bad_date": ((), _TARGET + ("date", "duration")),
    "battery": (("pct",), _TARGET),
    "gateway_restart": ((), ("down_for",)),
    "sink_down": ((), ("sink",)),
    "sink_up": ((), ("sink",)),
    "forged_command": (("seal", "command"), ("mode", "escort")),
    "replay_frame": (("seal",), ("frame", "via_seal", "every", "count")),
}
SEAL_ACTIONS = frozenset(k for k, (_, opt) in ACTIONS.items()
                         if "truck" in opt or k in ("forged_command", "replay_frame"))
FORGED_MODES = ("wrong_key", "replay", "other_seal")
FORGED_COMMANDS = ("deactivate", "activate", "ack")
RMC_MODES = "ADFPRSMEN"  # FAA mode letters the receiver may put in RMC field 12 (gnss_mode)
# Frames a replay_frame may pick by type (the last one of that type the seal sent before the action)
REPLAY_FRAMES = ("last", "HELLO", "STATE", "EVENT", "RECORDS", "COMMAND_RESULT")


class ScenarioError(ValueError):
    """A scenario that cannot be run; the message names the file and the field."""


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


@dataclass
class GnssSpec:
    noise_m: float = 2.5
    crc_error_rate: float = 0.002


@dataclass
class Truck:
    id: str
    plate: str
    route: str | None  # shipped route name or file (None with nmea_replay)
    reverse: bool = False
    profile: DriveProfile = field(default_factory=DriveProfile)
    gnss: GnssSpec = field(default_factory=GnssSpec)
    nmea_replay: str | None = None  # a recorded NMEA log instead of the route generator
    tunnels: list[tuple[float, float]] = field(default_factory=list)  # km ranges without GNSS fix
    no_coverage: list[tuple[float, float]] = field(default_factory=list)  # km ranges without a link
    time_offset_s: float = 0.0  # fleet mode: this truck is that far into the same drive
    loop: bool = False  # fleet mode: start the drive again on arrival


@dataclass
class SealSpec:
    id: int
    truck: str
    key: bytes
    compartment: str = ""
    battery_pct: float = 95.0
    battery_drain_pct_per_h: float = 0.2
    journal_capacity: int = 20000
    report_moving_s: int = 60
    report_stopped_s: int = 600
    heartbeat_s: int = 1800
    report_inactive_s: int = 3600
    clock_offset_s: float = 0.0  # the seal's clock at its first boot is this far ahead (< 0: behind)


@dataclass
class Office:
    code: str
    name: str


@dataclass
class EscortSpec:
    name: str
    seals: list[int]
    truck: str
    declaration: str
    vehicle: str
    departure: Office
    destination: Office
    transit_period_s: float
    corridor_m: int
    route: str | None  # None: the truck's route (or no route when the truck replays NMEA)


@dataclass
class Action:
    at: float  # seconds after start
    do: str
    index: int  # position in the file, for messages
    params: dict[str, Any] = field(default_factory=dict)
    seals: list[int] = field(default_factory=list)  # resolved targets of seal-side actions

    def where(self) -> str:
        return f"actions[{self.index}] ({self.do} at {format_duration(self.at)})"


@dataclass
class EventExpectation:
    kind: str
    index: int
    seal: int | None = None
    count: int | None = None
    min: int | None = None
    max: int | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    after: float | None = None  # occurred_at >= start + after
    before: float | None = None  # occurred_at <= start + before
    emitted_within: float | None = None  # emitted_at - occurred_at <= this (clause 11: 1 h)
    known_after: float | None = None  # known_at >= start + known_after
    known_before: float | None = None  # known_at <= start + known_before

    def describe(self) -> str:
        who = f" seal {self.seal}" if self.seal is not None else ""
        extra = f" with {self.fields}" if self.fields else ""
        return f"expect.events[{self.index}] {self.kind}{who}{extra}"


@dataclass
class OrderExpectation:
    kinds: list[str]
    index: int
    seal: int | None = None


@dataclass
class PositionsExpectation:
    """How many distinct positions (by journal rseq) the POSITION events delivered."""

    index: int
    seal: int | None = None
    count: int | None = None
    min: int | None = None
    max: int | None = None


@dataclass
class SealExpectation:
    seal: int
    index: int
    state: str | None = None  # "ACTIVE" / "INACTIVE" at the end of the run
    journal_pending: int | None = None
    min_rejected_commands: int | None = None
    evidence: dict[str, Any] = field(default_factory=dict)  # the seal's latched evidence: value or {min, max}


@dataclass
class Expectations:
    events: list[EventExpectation] = field(default_factory=list)
    order: list[OrderExpectation] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    seals: list[SealExpectation] = field(default_factory=list)
    positions: list[PositionsExpectation] = field(default_factory=list)
    no_duplicate_events: bool = True
    no_lost_records: bool = True
    schema_valid: bool = True


@dataclass
class Scenario:
    path: Path
    name: str
    description: str
    start: float  # Unix seconds
    duration_s: float
    seed: int
    gnss_interval_s: float
    gateway: dict[str, Any]
    trucks: dict[str, Truck]
    seals: dict[int, SealSpec]
    escorts: dict[str, EscortSpec]
    actions: list[Action]
    expect: Expectations
    sinks: list[str] = field(default_factory=lambda: ["operator"])

    def seals_of_truck(self, truck: str) -> list[int]:
        return [s.id for s in self.seals.values() if s.truck == truck]


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

_DUR = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)d)?\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m(?!s))?\s*"
                  r"(?:(\d+(?:\.\d+)?)s)?\s*(?:(\d+(?:\.\d+)?)ms)?\s*$")
LOCK_INPUTS = ("cable", "housing")
PULSE_MAX_S = 10.0  # a lock_pulse is short; a longer opening is cable_cut ... lock_restored


def parse_duration(value: Any) -> float:
    """'90s', '15m', '3h', '1h30m', '2d', '50ms', or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{value!r}: a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        m = _DUR.match(value)
        if m and any(m.groups()):
            d, h, mi, s, ms = (float(g) if g else 0.0 for g in m.groups())
            return d * 86400 + h * 3600 + mi * 60 + s + ms / 1000
    raise ValueError(f"{value!r} is not a duration (write e.g. \"90s\", \"15m\", \"3h\", \"1h30m\" or seconds)")


def parse_signed_duration(value: Any) -> float:
    """A duration that may be negative ("-2h", "90s", -30): a clock set back or forward."""
    if isinstance(value, str) and value.strip().startswith("-"):
        return -parse_duration(value.strip()[1:])
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        return float(value)
    return parse_duration(value)


def format_duration(seconds: float) -> str:
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    out = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{sec}s" if sec or not (h or m) else "")
    return out


def parse_key(value: Any, seal_id: int) -> bytes:
    from navseal.protocol import test_key

    if value is None or value == "test":
        return test_key(seal_id)
    if isinstance(value, str) and re.fullmatch(r"[0-9a-fA-F]{64}", value):
        return bytes.fromhex(value)
    raise ValueError('use "test" (the documented test key) or 64 hex digits')


class _Table:
    """A TOML table being read: remembers its path for messages and which keys were used."""

    def __init__(self, loader: "_Loader", data: Any, path: str) -> None:
        if not isinstance(data, dict):
            loader.fail(path, f"must be a table, got {type(data).__name__}")
        self.loader = loader
        self.data = data
        self.path = path
        self.used: set[str] = set()

    def _where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, kind: type | tuple[type, ...] | None = None, default: Any = None, *,
            required: bool = False) -> Any:
        self.used.add(key)
        if key not in self.data:
            if required:
                self.loader.fail(self._where(key), "is required")
            return default
        value = self.data[key]
        if kind is not None:
            ok = isinstance(value, kind) and not (isinstance(value, bool) and kind in (int, float, (int, float)))
            if not ok:
                names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
                self.loader.fail(self._where(key), f"must be {names}, got {value!r}")
        return value

    def duration(self, key: str, default: Any = None, *, required: bool = False) -> float | None:
        value = self.get(key, None, default, required=required)
        if value is None:
            return None
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.loader.fail(self._where(key), str(exc))

    def table(self, key: str) -> "_Table":
        return _Table(self.loader, self.get(key, dict, {}), self._where(key))

    def tables(self, key: str) -> list["_Table"]:
        items = self.get(key, list, [])
        return [_Table(self.loader, item, f"{self._where(key)}[{i}]") for i, item in enumerate(items)]

    def done(self, allowed_extra: tuple[str, ...] = ()) -> None:
        unknown = set(self.data) - self.used - set(allowed_extra)
        if unknown:
            self.loader.fail(self.path or "(top level)", f"unknown key(s) {sorted(unknown)}")


class _Loader:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, message: str) -> None:
        raise ScenarioError(f"{self.path}: {where}: {message}")


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def load_scenario(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    return scenario_from_dict(data, path)


def scenario_from_dict(data: dict[str, Any], path: Path) -> Scenario:
    loader = _Loader(path)
    top = _Table(loader, data, "")

    head = top.table("scenario")
    name = head.get("name", str, path.stem)
    description = head.get("description", str, "")
    start_value = head.get("start", (_dt.datetime, str), DEFAULT_START)
    if isinstance(start_value, str):
        try:
            start_value = _dt.datetime.fromisoformat(start_value.replace("Z", "+00:00"))
        except ValueError:
            loader.fail("scenario.start", f"{start_value!r} is not an ISO date-time")
    if start_value.tzinfo is None:
        loader.fail("scenario.start", "needs a UTC offset (write e.g. 2026-11-26T04:00:00Z)")
    start = start_value.timestamp()
    duration = head.duration("duration", required=True)
    seed = head.get("seed", int, 1)
    gnss_interval = head.duration("gnss_interval", "5s")
    if gnss_interval <= 0:
        loader.fail("scenario.gnss_interval", "must be > 0")
    sinks = head.get("sinks", list, ["operator"])
    head.done()

    gateway = _gateway(loader, top.table("gateway"))

    defaults = top.table("seal_defaults")
    seal_defaults = _seal_settings(defaults, {})
    defaults.done()

    trucks: dict[str, Truck] = {}
    for t in top.tables("trucks"):
        truck = _truck(loader, t)
        if truck.id in trucks:
            loader.fail(f"{t.path}.id", f"truck {truck.id!r} declared twice")
        trucks[truck.id] = truck
    if not trucks:
        loader.fail("trucks", "at least one [[trucks]] is required")

    seals: dict[int, SealSpec] = {}
    for t in top.tables("seals"):
        sid = t.get("id", int, required=True)
        if not (1 <= sid <= 0xFFFFFFFF):
            loader.fail(f"{t.path}.id", "must be 1 .. 4294967295")
        if sid in seals:
            loader.fail(f"{t.path}.id", f"seal {sid} declared twice")
        truck_id = t.get("truck", str, required=True)
        if truck_id not in trucks:
            loader.fail(f"{t.path}.truck", f"truck {truck_id!r} is not declared in [[trucks]]")
        try:
            key = parse_key(t.get("key", str, "test"), sid)
        except ValueError as exc:
            loader.fail(f"{t.path}.key", str(exc))
        settings = _seal_settings(t, seal_defaults)
        seals[sid] = SealSpec(id=sid, truck=truck_id, key=key, compartment=t.get("compartment", str, ""),
                              **settings)
        t.done()
    if not seals:
        loader.fail("seals", "at least one [[seals]] is required")

    escorts: dict[str, EscortSpec] = {}
    for t in top.tables("escorts"):
        esc = _escort(loader, t, trucks, seals)
        if esc.name in escorts:
            loader.fail(f"{t.path}.name", f"escort {esc.name!r} declared twice")
        escorts[esc.name] = esc

    actions = []
    for i, t in enumerate(top.tables("actions")):
        actions.append(_action(loader, t, i, trucks, seals, escorts, sinks, duration))
    actions.sort(key=lambda a: (a.at, a.index))

    expect = _expectations(loader, top.table("expect"), seals)
    top.done()
    return Scenario(path=path, name=name, description=description, start=start, duration_s=duration,
                    seed=seed, gnss_interval_s=gnss_interval, gateway=gateway, trucks=trucks,
                    seals=seals, escorts=escorts, actions=actions, expect=expect, sinks=sinks)


def _gateway(loader: _Loader, t: _Table) -> dict[str, Any]:
    """[gateway]: GatewayConfig field names; fields ending in _s also take duration strings."""
    from navseal.gateway.config import GatewayConfig

    fields = {f.name for f in dataclasses.fields(GatewayConfig)}
    out: dict[str, Any] = {}
    for key in list(t.data):
        if key not in fields:
            loader.fail(f"gateway.{key}", "not a gateway configuration field (see navseal.gateway.config)")
        if key.endswith("_s"):
            out[key] = t.duration(key)
        else:
            out[key] = t.get(key)
    return out


def _seal_settings(t: _Table, base: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, attr in (("battery", "battery_pct"), ("battery_drain_per_h", "battery_drain_pct_per_h")):
        if t.has(key):
            value = t.get(key, (int, float))
            if not 0 <= value <= 100:
                t.loader.fail(t._where(key), "must be 0 .. 100")
            out[attr] = float(value)
    if t.has("journal_capacity"):
        value = t.get("journal_capacity", int)
        if value < 64:
            t.loader.fail(t._where("journal_capacity"), "must be at least 64 records")
        out["journal_capacity"] = value
    if t.has("clock_offset"):
        try:
            out["clock_offset_s"] = parse_signed_duration(t.get("clock_offset"))
        except ValueError as exc:
            t.loader.fail(t._where("clock_offset"), str(exc))
    for key in ("report_moving", "report_stopped", "report_inactive", "heartbeat"):
        if t.has(key):
            value = t.duration(key)
            if not 1 <= value <= 65535:
                t.loader.fail(t._where(key), "must be 1 s .. 65535 s (the CONFIG frame's u16)")
            out[f"{key}_s"] = int(value)
    return out


def _truck(loader: _Loader, t: _Table) -> Truck:
    tid = t.get("id", str, required=True)
    plate = t.get("plate", str, required=True)
    route = t.get("route", str)
    replay = t.get("nmea_replay", str)
    if (route is None) == (replay is None):
        loader.fail(t.path, "give exactly one of 'route' (a shipped route or a GeoJSON/GPX file) "
                            "and 'nmea_replay' (a recorded NMEA log)")
    if replay is not None:
        rp = Path(replay)
        if not rp.is_absolute():
            rp = (loader.path.parent / rp).resolve()
        if not rp.is_file():
            loader.fail(f"{t.path}.nmea_replay", f"no such file: {rp}")
        replay = str(rp)
    profile = DriveProfile(
        cruise_kmh=float(t.get("cruise_kmh", (int, float), 80)),
        urban_kmh=float(t.get("urban_kmh", (int, float), 40)),
        urban_km=float(t.get("urban_km", (int, float), 8)),
        variation=float(t.get("speed_variation", (int, float), 0.1)),
        depart_after_s=t.duration("depart_after", 0) or 0.0,
    )
    for s in t.tables("stops"):
        dur = s.duration("duration", required=True)
        profile.stops.append(Stop(at_km=float(s.get("at_km", (int, float), required=True)), duration_s=dur,
                                  kind=s.get("kind", str, "rest")))
        s.done()
    for d in t.tables("detours"):
        a = float(d.get("from_km", (int, float), required=True))
        b = float(d.get("to_km", (int, float), required=True))
        if b <= a:
            loader.fail(f"{d.path}.to_km", "must be greater than from_km")
        profile.detours.append(Detour(a, b, float(d.get("offset_m", (int, float), required=True))))
        d.done()
    zones: dict[str, list[tuple[float, float]]] = {"tunnels": [], "no_coverage": []}
    for key in zones:
        for z in t.tables(key):
            a = float(z.get("from_km", (int, float), required=True))
            b = float(z.get("to_km", (int, float), required=True))
            if b <= a:
                loader.fail(f"{z.path}.to_km", "must be greater than from_km")
            zones[key].append((a, b))
            z.done()
    g = t.table("gnss")
    gnss = GnssSpec(noise_m=float(g.get("noise_m", (int, float), 2.5)),
                    crc_error_rate=float(g.get("crc_error_rate", (int, float), 0.002)))
    if not 0 <= gnss.crc_error_rate <= 1:
        loader.fail(f"{g.path}.crc_error_rate", "must be 0 .. 1")
    g.done()
    if route is not None:
        from .routes import RouteError, load_route

        try:
            load_route(route, loader.path.parent)
        except RouteError as exc:
            loader.fail(f"{t.path}.route", str(exc))
    if (zones["tunnels"] or zones["no_coverage"]) and route is None:
        loader.fail(t.path, "'tunnels' and 'no_coverage' are km ranges along a route: a replayed log has none")
    truck = Truck(id=tid, plate=plate, route=route, reverse=t.get("reverse", bool, False), profile=profile,
                  gnss=gnss, nmea_replay=replay, tunnels=zones["tunnels"], no_coverage=zones["no_coverage"])
    t.done()
    return truck


def _office(loader: _Loader, t: _Table, key: str) -> Office:
    o = t.table(key)
    office = Office(code=o.get("code", str, required=True), name=o.get("name", str, required=True))
    o.done()
    if not office.code:
        loader.fail(f"{o.path}.code", "must not be empty")
    return office


def _escort(loader: _Loader, t: _Table, trucks: dict[str, Truck], seals: dict[int, SealSpec]) -> EscortSpec:
    name = t.get("name", str, required=True)
    seal_ids = t.get("seals", list, required=True)
    if not seal_ids:
        loader.fail(f"{t.path}.seals", "needs at least one seal")
    for sid in seal_ids:
        if sid not in seals:
            loader.fail(f"{t.path}.seals", f"seal {sid!r} is not declared in [[seals]]")
    truck_ids = {seals[sid].truck for sid in seal_ids}
    if len(truck_ids) != 1:
        loader.fail(f"{t.path}.seals", f"all seals of one escort must be on one truck, got {sorted(truck_ids)}")
    truck = trucks[truck_ids.pop()]
    declaration = t.get("declaration", str, required=True)
    vehicle = t.get("vehicle", str, truck.plate)
    for key, value, limit in (("declaration", declaration, 40), ("vehicle", vehicle, 16)):
        if not value or len(value.encode()) > limit:
            loader.fail(f"{t.path}.{key}", f"must be 1 .. {limit} bytes of UTF-8 (docs/protocol.md)")
    departure = _office(loader, t, "departure_office")
    destination = _office(loader, t, "destination_office")
    if len(destination.code.encode()) > 16 or len(destination.name.encode()) > 64:
        loader.fail(f"{t.path}.destination_office", "code <= 16 bytes, name <= 64 bytes (docs/protocol.md)")
    period = t.duration("transit_period", required=True)
    corridor = t.get("corridor_m", int, 2000)
    if not 0 <= corridor <= 65535:
        loader.fail(f"{t.path}.corridor_m", "must be 0 .. 65535")
    route = t.get("route", str)
    if route is None and truck.route is None:
        corridor = 0  # a truck replaying NMEA has no planned route
    esc = EscortSpec(name=name, seals=list(seal_ids), truck=truck.id, declaration=declaration, vehicle=vehicle,
                     departure=departure, destination=destination, transit_period_s=period,
                     corridor_m=corridor, route=route if route is not None else truck.route)
    t.done()
    return esc


def _action(loader: _Loader, t: _Table, index: int, trucks: dict[str, Truck], seals: dict[int, SealSpec],
            escorts: dict[str, EscortSpec], sinks: list[str], duration: float) -> Action:
    do = t.get("do", str, required=True)
    if do not in ACTIONS:
        loader.fail(f"{t.path}.do", f"unknown action {do!r}; known: {', '.join(ACTIONS)}")
    required, optional = ACTIONS[do]
    if t.has("at") == t.has("at_km"):
        loader.fail(t.path, "give exactly one of 'at' (time after start) and 'at_km' (when the truck reaches km)")
    params: dict[str, Any] = {}
    at = t.duration("at") if t.has("at") else None
    if t.has("at_km"):
        params["at_km"] = float(t.get("at_km", (int, float)))
        params["at_km_truck"] = t.get("truck", str) if t.has("truck") else None
    for key in required:
        if not t.has(key):
            loader.fail(f"{t.path}.{key}", f"is required for {do!r}")
    for key in list(t.data):
        if key in ("do", "at", "at_km"):
            continue
        if key == "truck" and "at_km" in params and key not in optional:
            continue  # only says which truck's km
        if key not in required and key not in optional:
            loader.fail(f"{t.path}.{key}", f"not a parameter of {do!r} (it takes {', '.join(required + optional) or 'none'})")
        value = t.get(key)
        if key in ("duration", "ramp", "down_for", "width", "every"):
            value = t.duration(key)
        elif key == "by":
            try:
                value = parse_signed_duration(value)
            except ValueError as exc:
                loader.fail(f"{t.path}.by", str(exc))
        params[key] = value
    action = Action(at=at if at is not None else -1.0, do=do, index=index, params=params)
    # Targets
    if "seal" in params:
        if params["seal"] not in seals:
            loader.fail(f"{t.path}.seal", f"seal {params['seal']!r} is not declared in [[seals]]")
        action.seals = [params["seal"]]
    elif "truck" in params and do in SEAL_ACTIONS:
        if params["truck"] not in trucks:
            loader.fail(f"{t.path}.truck", f"truck {params['truck']!r} is not declared in [[trucks]]")
        action.seals = [s.id for s in seals.values() if s.truck == params["truck"]]
    elif do in SEAL_ACTIONS:
        loader.fail(t.path, f"{do!r} needs 'seal' or 'truck'")
    if "escort" in params and params["escort"] not in escorts:
        loader.fail(f"{t.path}.escort", f"escort {params['escort']!r} is not declared in [[escorts]]")
    if "sink" in params and params["sink"] not in sinks:
        loader.fail(f"{t.path}.sink", f"sink {params['sink']!r} is not one of scenario.sinks {sinks}")
    if do == "battery" and not (isinstance(params["pct"], (int, float)) and 0 <= params["pct"] <= 100):
        loader.fail(f"{t.path}.pct", "must be 0 .. 100")
    if do == "lock_pulse":
        if params["input"] not in LOCK_INPUTS:
            loader.fail(f"{t.path}.input", f"must be one of {LOCK_INPUTS}")
        if not 0.001 <= params.setdefault("width", 0.05) <= PULSE_MAX_S:
            loader.fail(f"{t.path}.width", f"must be 1ms .. {PULSE_MAX_S:g}s")
    if do == "lock_restored" and params.get("input", "cable") not in LOCK_INPUTS:
        loader.fail(f"{t.path}.input", f"must be one of {LOCK_INPUTS} (or left out: both inputs)")
    if do == "deactivate" and "seal" in params and params["seal"] not in escorts[params["escort"]].seals:
        loader.fail(f"{t.path}.seal", f"seal {params['seal']} is not a seal of escort {params['escort']!r}")
    if do in ("clock_jump", "gnss_time_shift") and params["by"] == 0:
        loader.fail(f"{t.path}.by", "must not be zero")
    if do == "gnss_mode" and not (isinstance(params["mode"], str) and len(params["mode"]) == 1
                                  and params["mode"] in RMC_MODES):
        loader.fail(f"{t.path}.mode", f"must be one FAA mode letter of {RMC_MODES!r} "
                                      "(S simulator, M manual, E estimated, N no fix, A/D/F/P/R fixes)")
    if do == "gnss_bad_date" and not re.fullmatch(r"\d{6}", str(params.setdefault("date", "310226"))):
        loader.fail(f"{t.path}.date", "must be six digits ddmmyy, e.g. \"310226\" (31 February)")
    if do == "reboot_loop":
        if not (isinstance(params["count"], int) and 1 <= params["count"] <= 100_000):
            loader.fail(f"{t.path}.count", "must be 1 .. 100000")
        if params.setdefault("every", 30.0) < 1.0:
            loader.fail(f"{t.path}.every", "must be at least 1s")
    if do == "replay_frame":
        if params.setdefault("frame", "last") not in REPLAY_FRAMES:
            loader.fail(f"{t.path}.frame", f"must be one of {REPLAY_FRAMES}")
        via = params.get("via_seal")
        if via is not None and via not in seals:
            loader.fail(f"{t.path}.via_seal", f"seal {via!r} is not declared in [[seals]]")
        if not (isinstance(params.setdefault("count", 1), int) and 1 <= params["count"] <= 10_000):
            loader.fail(f"{t.path}.count", "must be 1 .. 10000")
        if params["count"] > 1 and not params.get("every"):
            loader.fail(f"{t.path}.every", "is required when count > 1")
    if do == "forged_command":
        if params["command"] not in FORGED_COMMANDS:
            loader.fail(f"{t.path}.command", f"must be one of {FORGED_COMMANDS}")
        if params.get("mode", "wrong_key") not in FORGED_MODES:
            loader.fail(f"{t.path}.mode", f"must be one of {FORGED_MODES}")
    if at is not None and at > duration:
        loader.fail(f"{t.path}.at", f"{format_duration(at)} is after the end of the run ({format_duration(duration)})")
    if "at_km" in params:
        truck_id = params.get("at_km_truck")
        if truck_id is None:
            if action.seals:
                truck_id = seals[action.seals[0]].truck
            elif "escort" in params:
                truck_id = escorts[params["escort"]].truck
            else:
                loader.fail(f"{t.path}.at_km", "needs a truck: give 'truck', 'seal' or 'escort'")
            params["at_km_truck"] = truck_id
        if truck_id not in trucks or trucks[truck_id].route is None:
            loader.fail(f"{t.path}.at_km", f"truck {truck_id!r} has no route to measure km on")
    return action


def _expectations(loader: _Loader, t: _Table, seals: dict[int, SealSpec]) -> Expectations:
    from navseal.gateway.events import KINDS

    exp = Expectations()
    exp.no_duplicate_events = t.get("no_duplicate_events", bool, True)
    exp.no_lost_records = t.get("no_lost_records", bool, True)
    exp.schema_valid = t.get("schema_valid", bool, True)
    for kind in t.get("absent", list, []):
        if kind not in KINDS:
            loader.fail("expect.absent", f"{kind!r} is not an event kind ({', '.join(KINDS)})")
        exp.absent.append(kind)
    for i, e in enumerate(t.tables("events")):
        kind = e.get("kind", str, required=True)
        if kind not in KINDS:
            loader.fail(f"{e.path}.kind", f"{kind!r} is not an event kind ({', '.join(KINDS)})")
        ex = EventExpectation(kind=kind, index=i, seal=e.get("seal", int), count=e.get("count", int),
                              min=e.get("min", int), max=e.get("max", int), fields=e.get("fields", dict, {}),
                              after=e.duration("after"), before=e.duration("before"),
                              emitted_within=e.duration("emitted_within"),
                              known_after=e.duration("known_after"), known_before=e.duration("known_before"))
        from .expect import FieldPathError, check_field_expectation

        for fpath, want in ex.fields.items():
            try:
                check_field_expectation(fpath, want)
            except FieldPathError as exc:
                loader.fail(f"{e.path}.fields.{fpath}", str(exc))
        if ex.seal is not None and ex.seal not in seals:
            loader.fail(f"{e.path}.seal", f"seal {ex.seal} is not declared in [[seals]]")
        if ex.count is not None and (ex.min is not None or ex.max is not None):
            loader.fail(e.path, "give 'count' or 'min'/'max', not both")
        if ex.count is None and ex.min is None and ex.max is None:
            ex.min = 1
        e.done()
        exp.events.append(ex)
    for i, o in enumerate(t.tables("order")):
        kinds = o.get("kinds", list, required=True)
        for k in kinds:
            if k not in KINDS:
                loader.fail(f"{o.path}.kinds", f"{k!r} is not an event kind")
        seal = o.get("seal", int)
        if seal is not None and seal not in seals:
            loader.fail(f"{o.path}.seal", f"seal {seal} is not declared in [[seals]]")
        exp.order.append(OrderExpectation(kinds=kinds, index=i, seal=seal))
        o.done()
    for i, p in enumerate(t.tables("positions")):
        seal = p.get("seal", int)
        if seal is not None and seal not in seals:
            loader.fail(f"{p.path}.seal", f"seal {seal} is not declared in [[seals]]")
        px = PositionsExpectation(index=i, seal=seal, count=p.get("count", int), min=p.get("min", int),
                                  max=p.get("max", int))
        if px.count is not None and (px.min is not None or px.max is not None):
            loader.fail(p.path, "give 'count' or 'min'/'max', not both")
        if px.count is None and px.min is None and px.max is None:
            loader.fail(p.path, "give 'count' or 'min'/'max'")
        p.done()
        exp.positions.append(px)
    for i, s in enumerate(t.tables("seals")):
        sid = s.get("id", int, required=True)
        if sid not in seals:
            loader.fail(f"{s.path}.id", f"seal {sid} is not declared in [[seals]]")
        state = s.get("state", str)
        if state is not None and state not in ("ACTIVE", "INACTIVE"):
            loader.fail(f"{s.path}.state", "must be \"ACTIVE\" or \"INACTIVE\"")
        from .expect import EVIDENCE_FIELDS, FieldPathError, check_field_expectation

        evidence = s.get("evidence", dict, {})
        for name, want in evidence.items():
            if name not in EVIDENCE_FIELDS:
                loader.fail(f"{s.path}.evidence.{name}", f"not an evidence field ({', '.join(EVIDENCE_FIELDS)})")
            try:
                check_field_expectation(name, want)
            except FieldPathError as exc:
                loader.fail(f"{s.path}.evidence.{name}", str(exc))
        exp.seals.append(SealExpectation(seal=sid, index=i, state=state,
                                         journal_pending=s.get("journal_pending", int),
                                         min_rejected_commands=s.get("min_rejected_commands", int),
                                         evidence=evidence))
        s.done()
    t.done()
    return exp
