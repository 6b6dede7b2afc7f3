"""Routes: the shipped ones, GeoJSON/GPX files, and a polyline measured along its length.

Reading the formats is the gateway's job already (``navseal.gateway.geo``: GeoJSON LineString in
[lon, lat] order, GPX trkpt/rtept); this module reuses it so a route means the same thing to the
seal's driver and to the gateway's corridor rule, and adds what driving needs: cumulative distance,
the point and heading at a distance along the route.

Distances here are on a sphere of the mean Earth radius (haversine). That is within 0.5 % of the
ellipsoid, which is plenty for deciding where a simulated truck is; the gateway's corridor check
uses its own ellipsoidal code and the two never need to agree to the metre.
"""

from __future__ import annotations

import bisect
import json
import math
from pathlib import Path
from typing import Sequence

from navseal.gateway.geo import route_from_geojson, route_from_gpx

ROUTES_DIR = Path(__file__).resolve().parent.parent / "routes"
EARTH_R = 6371008.8  # mean Earth radius, metres (IUGG)


class RouteError(ValueError):
    """A route that cannot be used; the message names the file or the route."""


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_R * math.asin(min(1.0, math.sqrt(h)))


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial course from point 1 to point 2, degrees true, 0..360."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360.0


def offset_m(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    """Move a point by a small local offset (flat-Earth approximation, fine below ~100 km)."""
    dlat = math.degrees(north_m / EARTH_R)
    dlon = math.degrees(east_m / (EARTH_R * math.cos(math.radians(lat))))
    return lat + dlat, lon + dlon


class Route:
    """A polyline of (lat, lon) degrees with its cumulative length."""

    def __init__(self, points: Sequence[Sequence[float]], name: str = "route") -> None:
        pts = [(float(p[0]), float(p[1])) for p in points]
        if len(pts) < 2:
            raise RouteError(f"{name}: a route needs at least two points")
        self.name = name
        self.points = pts
        self.cum = [0.0]
        for (a, b), (c, d) in zip(pts, pts[1:]):
            self.cum.append(self.cum[-1] + haversine_m(a, b, c, d))
        self.length_m = self.cum[-1]
        if self.length_m <= 0:
            raise RouteError(f"{name}: all points are the same place")

    def at(self, dist_m: float) -> tuple[float, float, float]:
        """(lat, lon, course_deg) at `dist_m` metres along the route (clamped to its ends)."""
        d = min(max(dist_m, 0.0), self.length_m)
        i = bisect.bisect_right(self.cum, d) - 1
        i = min(max(i, 0), len(self.points) - 2)
        seg = self.cum[i + 1] - self.cum[i]
        (la, lo), (lb, lb_lon) = self.points[i], self.points[i + 1]
        f = 0.0 if seg <= 0 else (d - self.cum[i]) / seg
        lat = la + (lb - la) * f
        dlon = (lb_lon - lo + 180.0) % 360.0 - 180.0  # the short way round, across the antimeridian too
        lon = (lo + dlon * f + 180.0) % 360.0 - 180.0
        return lat, lon, bearing_deg(la, lo, lb, lb_lon)

    def reversed(self) -> "Route":
        return Route(list(reversed(self.points)), self.name + " (reversed)")

    def to_geojson(self, properties: dict | None = None) -> dict:
        return {
            "type": "Feature",
            "properties": dict(properties or {}, name=self.name),
            "geometry": {"type": "LineString", "coordinates": [[lon, lat] for lat, lon in self.points]},
        }


def shipped_routes() -> list[str]:
    return sorted(p.stem for p in ROUTES_DIR.glob("*.geojson"))


def load_route(spec: str, base_dir: Path | None = None) -> Route:
    """A shipped route by name ("almaty-khorgos"), or a .geojson/.json/.gpx path (relative paths
    are taken from `base_dir`, the scenario file's folder)."""
    path = Path(spec)
    candidates = []
    if not path.suffix:
        candidates.append(ROUTES_DIR / f"{spec}.geojson")
    else:
        if not path.is_absolute() and base_dir is not None:
            candidates.append(base_dir / path)
        candidates.append(path)
    for candidate in candidates:
        if candidate.is_file():
            return _read(candidate)
    names = ", ".join(shipped_routes())
    raise RouteError(f"route {spec!r}: no such file and not a shipped route (shipped: {names})")


def _read(path: Path) -> Route:
    data = path.read_bytes()
    try:
        if path.suffix.lower() == ".gpx" or data.lstrip().startswith(b"<"):
            points = route_from_gpx(data)
        else:
            points = route_from_geojson(json.loads(data))
    except (ValueError, json.JSONDecodeError) as exc:
        raise RouteError(f"{path}: {exc}") from None
    return Route(points, name=path.stem)
