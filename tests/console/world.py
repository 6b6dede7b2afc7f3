"""Escorts for the console's tests, made the way a gateway gets them: real frames from scripted
seals through the gateway's pipeline (tests/gateway/pipeline_support.py `FakeSeal`).

`long_drive` is the issue's heavy case: a 10-hour escort at one fix a second (36,000 fixes) along
the shipped Kordai - Almaty route, with stops, speed changes, GNSS noise, a cable cut on the way and
the declared route with a 2 km corridor.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from pipeline_support import FakeSeal, lock_status

from navseal.emu.routes import load_route

DEST_OFFICE = ("50508", "Almaty customs post")
DEPARTURE_OFFICE = ("50601", "Kordai customs post")
OTHER_OFFICE = ("50401", "Shymkent customs post")


@dataclass
class Drive:
    seal: FakeSeal
    escort_id: int
    declaration: str
    vehicle: str
    cut_at: tuple[float, float] | None = None  # where the cable was cut (lat, lon), if it was


def activation(seal_id: int, t0: float, *, declaration: str, vehicle: str, departure=DEPARTURE_OFFICE,
               destination=DEST_OFFICE, route=None, corridor_m: int = 0, hours: float = 24) -> dict[str, Any]:
    return {"seal_id": seal_id, "declaration": declaration, "vehicle": vehicle,
            "departure_office_code": departure[0], "departure_office_name": departure[1],
            "dest_office_code": destination[0], "dest_office_name": destination[1],
            "period_start": t0, "period_end": t0 + hours * 3600, "route": route, "corridor_m": corridor_m}


def positions(route, seconds: int, *, seed: int = 7, noise_m: float = 3.0) -> list[tuple[float, float, float]]:
    """(lat, lon, speed_kmh) for each second of a drive along `route`: 50 minutes of driving at
    30-90 km/h, then a 10-minute stop, repeated; scaled so the drive ends at the route's end."""
    rng = random.Random(seed)
    speeds = []
    target = 60.0
    for s in range(seconds):
        if s % 3600 >= 3000:
            speeds.append(0.0)
            continue
        if s % 120 == 0:
            target = rng.uniform(30, 90)
        speeds.append(max(0.0, target + rng.gauss(0, 2)))
    total = sum(speeds) / 3.6
    scale = route.length_m / total if total else 1.0
    out, dist = [], 0.0
    for v in speeds:
        dist += v / 3.6 * scale
        lat, lon, _ = route.at(dist)
        dn, de = rng.gauss(0, noise_m), rng.gauss(0, noise_m)
        out.append((lat + dn / 111_320, lon + de / (111_320 * math.cos(math.radians(lat))), v * scale))
    return out


def send_fixes(pipeline, clock, seal: FakeSeal, fixes: list[tuple[float, float, float]], *, start: float,
               cable_from: int | None = None) -> None:
    """One fix a second from `start`, 120 to a RECORDS frame (the wire's maximum), the clock
    following the seal's; from index `cable_from` on the cable loop reads broken."""
    for first in range(0, len(fixes), 120):
        chunk = fixes[first:first + 120]
        base = int(start) + first
        records = [{"dt": i, "lat": round(lat * 1e7), "lon": round(lon * 1e7), "speed": round(v * 10),
                    "course": 0, "fix": {"quality": 1, "satellites": 9}, "hdop": 9,
                    "status": lock_status(cable=cable_from is None or first + i < cable_from)}
                   for i, (lat, lon, v) in enumerate(chunk)]
        seal.rseq += len(records)
        clock.t = max(clock.t, base + len(records))
        frame = seal.frame("RECORDS", {"first_rseq": seal.rseq - len(records) + 1, "base_time": base,
                                       "count": len(records), "records": records}, time=clock.t)
        result = pipeline.handle_uplink(frame, "test")
        assert result.accepted, result


def activate(pipeline, clock, seal: FakeSeal, request: dict[str, Any], first_fix: tuple[float, float],
             actor=None) -> int:
    """Provision, request, let the seal confirm and send its first fix (clause 10): the escort id."""
    pipeline.provision_seal(seal.seal_id, seal.key)
    escort = pipeline.request_activation(request, actor=actor)
    result = pipeline.handle_uplink(seal.hello(clock.t), "test")
    (command,) = [b for sid, b in result.downlink if seal.decode(b).type == "ACTIVATE"]
    clock.advance(1)
    pipeline.handle_uplink(seal.command_result(clock.t, command), "test")
    clock.advance(1)
    result = pipeline.handle_uplink(seal.records(clock.t, [first_fix], step=1), "test")
    assert [e["kind"] for e in result.events][:1] == ["ACTIVATED"], result.events
    return escort["escort_id"]


def long_drive(pipeline, clock, seal_id: int = 3101, *, hours: float = 10, cut_fraction: float | None = 0.4,
               actor=None, declaration: str = "50601/261126/0003101", vehicle: str = "101KZD02") -> Drive:
    """A whole escort's drive: activation at the route's start, `hours` of fixes at one a second,
    the cable cut (an EVENT, then fixes with the loop open) `cut_fraction` of the way."""
    route = load_route("kordai-almaty")
    seal = FakeSeal(seal_id)
    request = activation(seal_id, clock.t, declaration=declaration, vehicle=vehicle, route=route.points,
                         corridor_m=2000, hours=hours + 14)
    escort_id = activate(pipeline, clock, seal, request, route.points[0], actor=actor)
    fixes = positions(route, int(hours * 3600))
    start = clock.t + 1
    cut = None if cut_fraction is None else int(len(fixes) * cut_fraction)
    if cut is None:
        send_fixes(pipeline, clock, seal, fixes, start=start)
        return Drive(seal, escort_id, declaration, vehicle)
    send_fixes(pipeline, clock, seal, fixes[:cut], start=start)
    lat, lon, _ = fixes[cut]
    clock.t = start + cut
    pipeline.handle_uplink(seal.event(clock.t, "CABLE_CUT", pos=(lat, lon), status=lock_status(cable=False)), "test")
    send_fixes(pipeline, clock, seal, fixes[cut:], start=start + cut, cable_from=0)
    return Drive(seal, escort_id, declaration, vehicle, cut_at=(lat, lon))


def short_drive(pipeline, clock, seal_id: int, *, declaration: str, vehicle: str, departure=DEPARTURE_OFFICE,
                destination=DEST_OFFICE, minutes: int = 20, actor=None, route_name: str = "almaty-khorgos") -> Drive:
    route = load_route(route_name)
    seal = FakeSeal(seal_id)
    request = activation(seal_id, clock.t, declaration=declaration, vehicle=vehicle, departure=departure,
                         destination=destination, route=route.points, corridor_m=1000)
    escort_id = activate(pipeline, clock, seal, request, route.points[0], actor=actor)
    part = [route.at(i * 25.0)[:2] + (90.0,) for i in range(minutes * 60)]  # on its way, at 90 km/h
    send_fixes(pipeline, clock, seal, part, start=clock.t + 1)
    return Drive(seal, escort_id, declaration, vehicle)


def answer_commands(pipeline, clock, drive: Drive) -> list[dict[str, Any]]:
    """The seal's next frame (a STATE) collects its queued command; it answers OK. New events."""
    clock.advance(5)
    result = pipeline.handle_uplink(drive.seal.state(clock.t, active=True, escort_id=drive.escort_id,
                                                     cable=drive.cut_at is None), "test")
    events = list(result.events)
    for sid, raw in result.downlink:
        frame = drive.seal.decode(raw)
        if frame.type in ("DEACTIVATE", "ACTIVATE"):
            clock.advance(2)
            events += pipeline.handle_uplink(drive.seal.command_result(clock.t, raw), "test").events
    return events
