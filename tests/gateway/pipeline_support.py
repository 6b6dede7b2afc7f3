"""For the gateway core's tests: a virtual clock and a scripted seal that builds real
frames with the project's codec (docs/protocol.md), so tests speak the wire format, not internals."""

from __future__ import annotations

from typing import Any, Iterable

import pytest

from navseal.gateway import events as ev
from navseal.gateway.config import GatewayConfig
from navseal.gateway.pipeline import Pipeline
from fixtures_postgres import current_engine, engine_overrides, engine_store  # noqa: F401
from navseal.protocol import decode_frame, encode_frame, evidence, test_key

T0 = 1_764_115_200  # 2025-11-26T00:00:00Z


class VirtualClock:
    def __init__(self, t: float = T0) -> None:
        self.t = float(t)

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> float:
        self.t += seconds
        return self.t


_DB_PATHS: dict[str, Any] = {}  # store path -> its engine
_STORES: list[Any] = []  # closed after the test (a PostgreSQL store holds a server connection)


def make_pipeline(tmp_path, clock: VirtualClock | None = None, name: str = "gw.sqlite3", **overrides: Any):
    """A pipeline on a store of the test's engine (fixtures_postgres.py: SQLite unless the module
    uses the `store_engine` fixture)."""
    clock = clock or VirtualClock()
    config = GatewayConfig(**engine_overrides(tmp_path / name), db_synchronous="NORMAL", **overrides)
    store = engine_store(config.db_path, synchronous=config.db_synchronous)
    _DB_PATHS[config.db_path] = current_engine()
    _STORES.append(store)
    return Pipeline(store, config, clock), store, clock


@pytest.fixture(autouse=True)
def every_event_keeps_the_contract():
    """Autouse (import it into a test module): after each test, every event stored by any pipeline
    the test made is validated against gateway/schema/event.schema.json."""
    _DB_PATHS.clear()
    yield
    while _STORES:
        _STORES.pop().close()
    for path, engine in sorted(_DB_PATHS.items()):
        store = engine.open(path)
        try:
            ev.validate(store.events(limit=1_000_000))
        finally:
            store.close()
    _DB_PATHS.clear()


def lock_status(cable: bool = True, housing: bool = True, battery: int | None = 80) -> dict:
    return {"cable_intact": cable, "housing_closed": housing, "battery_pct": battery}


class FakeSeal:
    """Builds uplink frames as a seal would: (boot, seq) strictly increasing, rseq shared by
    RECORDS and EVENT. Decodes the gateway's downlink with its own key."""

    def __init__(self, seal_id: int, boot: int = 1, key: bytes | None = None) -> None:
        self.seal_id = seal_id
        self.key = key or test_key(seal_id)
        self.boot = boot
        self.seq = 0
        self.rseq = 0

    def frame(self, type_name: str, payload: dict, *, time: float, flags: int = 0,
              seq: int | None = None, boot: int | None = None, key: bytes | None = None) -> bytes:
        if seq is None:
            self.seq += 1
            seq = self.seq
        return encode_frame(type_name, seal_id=self.seal_id, boot=self.boot if boot is None else boot,
                            seq=seq, time=int(time), payload=payload, key=key or self.key, flags=flags)

    def reboot(self) -> None:
        self.boot += 1
        self.seq = 0

    def hello(self, time: float) -> bytes:
        return self.frame("HELLO", {"fw_major": 1, "fw_minor": 0, "fw_patch": 0, "reset_cause": "POWER_ON",
                                    "config_hash": 0, "journal_pending": 0}, time=time)

    def records(self, time: float, points: Iterable[tuple[float, float]], *, step: int = 10,
                status: dict | None = None, quality: int = 1, first_rseq: int | None = None) -> bytes:
        points = list(points)
        first = self.rseq + 1 if first_rseq is None else first_rseq
        self.rseq = max(self.rseq, first + len(points) - 1)
        base = int(time) - step * (len(points) - 1) if points else int(time)
        recs = [{
            "dt": i * step, "lat": round(lat * 1e7), "lon": round(lon * 1e7), "speed": 600, "course": 45,
            "fix": {"quality": quality, "satellites": 9}, "hdop": 9, "status": status or lock_status(),
        } for i, (lat, lon) in enumerate(points)]
        return self.frame("RECORDS", {"first_rseq": first, "base_time": base, "count": len(recs),
                                      "records": recs}, time=time)

    def event(self, time: float, code: str, *, value: int = 0, pos: tuple[float, float] | None = (43.2, 76.9),
              status: dict | None = None) -> bytes:
        self.rseq += 1
        lat, lon = (round(pos[0] * 1e7), round(pos[1] * 1e7)) if pos else (None, None)
        return self.frame("EVENT", {"rseq": self.rseq, "time": int(time), "code": code, "lat": lat, "lon": lon,
                                    "status": status or lock_status(), "value": value}, time=time)

    def state(self, time: float, *, active: bool, escort_id: int = 0, pos: tuple[float, float] | None = (43.2, 76.9),
              cable: bool = True, housing: bool = True, battery: int = 80, fix_time: float | None = None,
              evidence_block: dict | None = None) -> bytes:
        alarms = {k: False for k in ("CABLE_CUT", "HOUSING_OPENED", "GNSS_LOST", "LOW_BATTERY",
                                     "JOURNAL_OVERFLOW", "ROUTE_DEVIATION", "GNSS_ANOMALY")}
        alarms["CABLE_CUT"] = not cable
        alarms["HOUSING_OPENED"] = not housing
        return self.frame("STATE", {
            "state": "ACTIVE" if active else "INACTIVE", "escort_id": escort_id if active else 0, "alarms": alarms,
            "battery_pct": battery, "journal_pending": 0, "journal_capacity": 10000,
            "fix_time": int(fix_time if fix_time is not None else time) if pos else 0,
            "lat": round(pos[0] * 1e7) if pos else None, "lon": round(pos[1] * 1e7) if pos else None,
            "lock": {"cable_intact": cable, "housing_closed": housing},
            "evidence": evidence_block or evidence(escort_id=escort_id, hw_rseq=self.rseq)}, time=time)

    def decode(self, frame: bytes):
        return decode_frame(frame, self.key)

    def command_result(self, time: float, command: bytes, result: str = "OK", *, state: str | None = None,
                       escort_id: int | None = None, evidence_block: dict | None = None) -> bytes:
        cmd = self.decode(command)
        if state is None:
            if cmd.type == "ACTIVATE":
                state = "ACTIVE" if result == "OK" else "INACTIVE"
            else:
                state = "INACTIVE" if result == "OK" else "ACTIVE"
        if escort_id is None:
            escort_id = cmd.payload.get("escort_id", 0) if state == "ACTIVE" else 0
        block = evidence_block or evidence(escort_id=cmd.payload.get("escort_id", 0), hw_rseq=self.rseq)
        return self.frame("COMMAND_RESULT", {"cmd_boot": cmd.boot, "cmd_seq": cmd.seq, "cmd_type": cmd.type,
                                             "result": result, "state": state, "escort_id": escort_id,
                                             "evidence": block}, time=time)


def downlinks_of(result_or_list, seal: FakeSeal, type_name: str | None = None) -> list:
    """Decoded downlink frames (for `seal`) from an IngestResult or a tick() list."""
    items = result_or_list.downlink if hasattr(result_or_list, "downlink") else result_or_list
    frames = [seal.decode(b) for sid, b in items if sid == seal.seal_id]
    return [f for f in frames if type_name is None or f.type == type_name]


def activation_request(seal_id: int, *, t0: float = T0, route=None, corridor_m: int = 0,
                       vehicle: str = "123ABC02", declaration: str | None = None, hours: float = 48) -> dict:
    return {
        "seal_id": seal_id, "declaration": declaration or f"50508/261126/{seal_id:07d}", "vehicle": vehicle,
        "departure_office_code": "50508", "departure_office_name": "Almaty customs post",
        "dest_office_code": "50513", "dest_office_name": "Khorgos customs post",
        "period_start": t0, "period_end": t0 + hours * 3600, "route": route, "corridor_m": corridor_m,
    }


def activate(pipeline: Pipeline, seal: FakeSeal, clock: VirtualClock, *, pos=(43.2, 76.9), **kw) -> dict:
    """Provision, request activation, let the seal confirm and send its first fix: returns the escort."""
    pipeline.provision_seal(seal.seal_id, seal.key)
    escort = pipeline.request_activation(activation_request(seal.seal_id, t0=clock.t, **kw))
    res = pipeline.handle_uplink(seal.hello(clock.t), "test")
    (cmd,) = [b for sid, b in res.downlink if seal.decode(b).type == "ACTIVATE"]
    clock.advance(1)
    pipeline.handle_uplink(seal.command_result(clock.t, cmd), "test")
    clock.advance(1)
    res = pipeline.handle_uplink(seal.records(clock.t, [pos]), "test")
    assert [e["kind"] for e in res.events][:1] == ["ACTIVATED"], res
    return pipeline.status(escort_id=escort["escort_id"])[0]


def reencode(seal: "FakeSeal", decoded: Any) -> bytes:
    """Re-encode a decoded downlink frame exactly (same header) so the fake seal can answer it."""
    return encode_frame(decoded.type, seal_id=decoded.seal_id, boot=decoded.boot, seq=decoded.seq,
                        time=decoded.time, payload=decoded.payload, key=seal.key, flags=decoded.flags)
