"""A truck driving a route: speed profile, stops (border queue, rest, fuel) and optional detours.

The whole drive is planned once, when the driver is built, as a table of knots (time, distance):
between two knots the truck moves at constant speed, a stop is two knots at the same distance.
`state(t)` is then a bisect and an interpolation, so a fleet of thousands of trucks costs nothing
between reports, and the same seed always gives the same drive.

Speed: `cruise_kmh` on the open road, `urban_kmh` within `urban_km` of either end (leaving the
city, approaching the border post), and a slow random variation (traffic, hills) of +-`variation`
drawn per `_CHUNK_M` from the seeded generator. A detour is a lateral offset from the route, rising
and falling smoothly between two distances: that is how a scenario makes a truck leave its corridor
and come back.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field

from .routes import Route, offset_m

_CHUNK_M = 2000.0  # distance over which the speed is constant


@dataclass
class Stop:
    at_km: float  # distance along the route; negative counts back from the end
    duration_s: float
    kind: str = "rest"  # "rest", "border_queue", "fuel", "inspection": shown, not interpreted


@dataclass
class Detour:
    from_km: float
    to_km: float
    offset_m: float  # peak lateral offset, positive to the right of the direction of travel


@dataclass
class DriveProfile:
    cruise_kmh: float = 80.0
    urban_kmh: float = 40.0
    urban_km: float = 8.0
    variation: float = 0.1
    depart_after_s: float = 0.0  # waiting at the office of departure before moving
    stops: list[Stop] = field(default_factory=list)
    detours: list[Detour] = field(default_factory=list)


@dataclass
class DriveState:
    lat: float
    lon: float
    speed_kmh: float
    course_deg: float
    km: float
    moving: bool
    stop_kind: str | None  # why the truck stands, if it does: "departure", a Stop kind, "arrived"
    arrived: bool


class RouteDriver:
    def __init__(self, route: Route, profile: DriveProfile | None = None, *, t0: float = 0.0,
                 seed: int = 0) -> None:
        self.route = route
        self.profile = profile or DriveProfile()
        self.t0 = t0
        self._times: list[float] = []
        self._dists: list[float] = []
        self._stop_kind: list[str | None] = []  # per knot interval: why speed is 0
        self._plan(random.Random(seed))

    # --- planning ---
    def _speed_mps(self, d: float, factor: float) -> float:
        p = self.profile
        urban = d < p.urban_km * 1000 or d > self.route.length_m - p.urban_km * 1000
        kmh = p.urban_kmh if urban else p.cruise_kmh * factor
        return max(kmh, 1.0) / 3.6

    def _plan(self, rng: random.Random) -> None:
        p = self.profile
        length = self.route.length_m
        stops = sorted(
            ((s.at_km * 1000 if s.at_km >= 0 else length + s.at_km * 1000), s) for s in p.stops
        )
        stops = [(min(max(d, 0.0), length), s) for d, s in stops]
        t, d = self.t0, 0.0
        self._knot(t, d, None)
        if p.depart_after_s > 0:
            t += p.depart_after_s
            self._knot(t, d, "departure")
        si = 0
        while True:
            while si < len(stops) and stops[si][0] <= d + 1e-6:
                t += stops[si][1].duration_s
                self._knot(t, d, stops[si][1].kind)
                si += 1
            if d >= length:
                break
            chunk_end = min((math.floor(d / _CHUNK_M) + 1) * _CHUNK_M, length)
            if si < len(stops):
                chunk_end = min(chunk_end, stops[si][0])
            factor = 1.0 + rng.uniform(-p.variation, p.variation)
            t += (chunk_end - d) / self._speed_mps(d, factor)
            d = chunk_end
            self._knot(t, d, None)
        self.t_arrive = t

    def _knot(self, t: float, d: float, why: str | None) -> None:
        self._times.append(t)
        self._dists.append(d)
        self._stop_kind.append(why)  # describes the interval ENDING at this knot

    # --- queries ---
    @property
    def duration_s(self) -> float:
        return self.t_arrive - self.t0

    def time_at_km(self, km: float) -> float:
        """First time the truck reaches `km` along the route."""
        d = min(max(km * 1000, 0.0), self.route.length_m)
        i = bisect.bisect_left(self._dists, d)
        if i >= len(self._dists):
            return self.t_arrive
        if i == 0 or self._dists[i] == self._dists[i - 1]:
            return self._times[i]
        d0, d1 = self._dists[i - 1], self._dists[i]
        t0, t1 = self._times[i - 1], self._times[i]
        return t0 + (t1 - t0) * (d - d0) / (d1 - d0)

    def state(self, t: float) -> DriveState:
        times = self._times
        if t >= self.t_arrive:
            lat, lon, course = self.route.at(self.route.length_m)
            return DriveState(lat, lon, 0.0, course, self.route.length_m / 1000, False, "arrived", True)
        i = bisect.bisect_right(times, t)
        if i == 0:
            d, speed, why = 0.0, 0.0, "departure"
        else:
            ta, tb = times[i - 1], times[i]
            da, db = self._dists[i - 1], self._dists[i]
            speed = (db - da) / (tb - ta) if tb > ta else 0.0
            d = da + speed * (t - ta)
            why = self._stop_kind[i] if speed == 0 else None
        lat, lon, course = self.route.at(d)
        lateral = self._detour_offset(d)
        if lateral:
            # Right of the direction of travel is course + 90 degrees.
            rad = math.radians(course + 90.0)
            lat, lon = offset_m(lat, lon, lateral * math.cos(rad), lateral * math.sin(rad))
        return DriveState(lat, lon, speed * 3.6, course, d / 1000, speed > 0, why, False)

    def _detour_offset(self, d: float) -> float:
        for det in self.profile.detours:
            a, b = det.from_km * 1000, det.to_km * 1000
            if a < d < b:
                # Smooth rise and fall: sin^2 over the detour, flat-topped for long detours.
                x = (d - a) / (b - a)
                ramp = min(1.0, math.sin(math.pi * x) * 1.6)
                return det.offset_m * ramp
        return 0.0
