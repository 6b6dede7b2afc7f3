"""Distances on the WGS84 ellipsoid for the route-corridor rule, and route input formats.

Distance from a fix to a route polyline: every vertex is converted once to Earth-centred (ECEF)
coordinates on the ellipsoid; for a fix we take the local East-North plane tangent to the ellipsoid
at the fix and measure the planar distance to each segment there. Within 30 km of the fix (our
segments are densified to at most ~36 km and a corridor is a few km) the tangent plane differs from
the geodesic distance by well under a metre (horizontal compression ~ d^3 / 2R^2: 0.3 m at 30 km),
and the curvature sag of a segment drops out because only E and N are used. `vincenty_m` (the
ellipsoidal inverse problem) is here so the tests can check that claim.

A grid of 0.1 degree cells indexes the segments so a fix near the route looks at a handful of
segments; it falls back to a full scan when nothing close is found.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from typing import Any, Iterable, Sequence

# WGS84
A = 6378137.0
F = 1 / 298.257223563
B = A * (1 - F)
E2 = F * (2 - F)

_CELL_DEG = 0.1
_M_PER_DEG_LAT_MIN = 110_574.0  # metres per degree of latitude at the equator (its minimum)


def ecef(lat_deg: float, lon_deg: float) -> tuple[float, float, float]:
    lat, lon = math.radians(lat_deg), math.radians(lon_deg)
    s, c = math.sin(lat), math.cos(lat)
    n = A / math.sqrt(1 - E2 * s * s)
    return (n * c * math.cos(lon), n * c * math.sin(lon), n * (1 - E2) * s)


class Route:
    """A polyline of (lat, lon) degrees; `distance_m(lat, lon)` is the distance to it in metres.

    Longitudes may run past +-180 (the wire's continuous longitudes, `unwrap`): a route across the
    antimeridian is measured the short way, and a fix at -179.9 finds the route at 180.1."""

    PIECE_M = 5_000.0

    def __init__(self, points: Sequence[Sequence[float]]) -> None:
        if not points:
            raise ValueError("a route needs at least one point")
        self.points = [(float(p[0]), float(p[1])) for p in points]
        for lat, lon in self.points:
            if not (-90 <= lat <= 90 and -540 <= lon <= 540):
                raise ValueError(f"route point ({lat}, {lon}) out of range")
        # The wire route's segments are straight lines in latitude/longitude (docs/protocol.md,
        # densify_route). A long one is not a straight line in space (on a 36 km east-west segment
        # at 43 N the two differ by up to ~24 m), so split it into pieces of at most PIECE_M along
        # the lat/lon line; between piece ends line and chord then differ by < 0.5 m.
        pieces = [self.points[0]]
        for (lat0, lon0), (lat1, lon1) in zip(self.points, self.points[1:]):
            approx = math.hypot((lat1 - lat0) * 111_000, (lon1 - lon0) * 111_000 * math.cos(math.radians(lat0)))
            n = max(1, math.ceil(approx / self.PIECE_M))
            for k in range(1, n + 1):
                pieces.append((lat0 + (lat1 - lat0) * k / n, lon0 + (lon1 - lon0) * k / n))
        self._pieces = pieces
        self._xyz = [ecef(lat, lon) for lat, lon in pieces]
        self._grid: dict[tuple[int, int], list[int]] = {}
        nseg = max(len(pieces) - 1, 1)
        for i in range(nseg):
            a = pieces[i]
            b = pieces[min(i + 1, len(pieces) - 1)]
            for key in _cells(min(a[0], b[0]), max(a[0], b[0]), min(a[1], b[1]), max(a[1], b[1])):
                self._grid.setdefault(key, []).append(i)
        self._nseg = nseg

    def distance_m(self, lat: float, lon: float) -> float:
        """Distance in metres from (lat, lon) degrees to the nearest point of the polyline."""
        basis = _enu_basis(lat, lon)
        candidates: set[int] = set()
        for turn in (0.0, 360.0, -360.0):  # the route's longitudes may be unwrapped past +-180
            ci, cj = _cell(lat, lon + turn)
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    candidates.update(self._grid.get((ci + di, cj + dj), ()))
        if candidates:
            best = min(self._segment_distance(basis, i) for i in candidates)
            # A segment outside the 3x3 block around the fix is at least one cell side away: the
            # smaller of a latitude tenth and a longitude tenth at the cell edge nearest the pole.
            edge_lat = min(89.0, abs(lat) + _CELL_DEG)
            min_side = _CELL_DEG * _M_PER_DEG_LAT_MIN * min(1.0, math.cos(math.radians(edge_lat)))
            if best <= min_side * 0.99:
                return best
        return min(self._segment_distance(basis, i) for i in range(self._nseg))

    def _segment_distance(self, basis: tuple, i: int) -> float:
        ox, oy, oz, ex, ey, nx, ny, nz = basis
        ax, ay, az = self._xyz[i]
        bx, by, bz = self._xyz[min(i + 1, len(self._xyz) - 1)]
        ax, ay, az = ax - ox, ay - oy, az - oz
        bx, by, bz = bx - ox, by - oy, bz - oz
        # East has no z component.
        ae, an = ax * ex + ay * ey, ax * nx + ay * ny + az * nz
        be, bn = bx * ex + by * ey, bx * nx + by * ny + bz * nz
        de, dn = be - ae, bn - an
        length2 = de * de + dn * dn
        t = 0.0 if length2 == 0 else max(0.0, min(1.0, -(ae * de + an * dn) / length2))
        pe, pn = ae + t * de, an + t * dn
        return math.hypot(pe, pn)


def _enu_basis(lat_deg: float, lon_deg: float) -> tuple:
    ox, oy, oz = ecef(lat_deg, lon_deg)
    lat, lon = math.radians(lat_deg), math.radians(lon_deg)
    sl, cl, so, co = math.sin(lat), math.cos(lat), math.sin(lon), math.cos(lon)
    # east = (-sin lon, cos lon, 0); north = (-sin lat cos lon, -sin lat sin lon, cos lat)
    return (ox, oy, oz, -so, co, -sl * co, -sl * so, cl)


def _cell(lat: float, lon: float) -> tuple[int, int]:
    return (math.floor(lat / _CELL_DEG), math.floor(lon / _CELL_DEG))


def _cells(lat0: float, lat1: float, lon0: float, lon1: float) -> Iterable[tuple[int, int]]:
    i0, j0 = _cell(lat0, lon0)
    i1, j1 = _cell(lat1, lon1)
    for i in range(i0, i1 + 1):
        for j in range(j0, j1 + 1):
            yield (i, j)


def vincenty_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Geodesic distance on WGS84 (Vincenty's inverse formula; sub-millimetre, not antipodal)."""
    if lat1 == lat2 and lon1 == lon2:
        return 0.0
    L = math.radians(lon2 - lon1)
    U1 = math.atan((1 - F) * math.tan(math.radians(lat1)))
    U2 = math.atan((1 - F) * math.tan(math.radians(lat2)))
    sU1, cU1, sU2, cU2 = math.sin(U1), math.cos(U1), math.sin(U2), math.cos(U2)
    lam = L
    for _ in range(200):
        sl, cl = math.sin(lam), math.cos(lam)
        sin_sigma = math.hypot(cU2 * sl, cU1 * sU2 - sU1 * cU2 * cl)
        if sin_sigma == 0:
            return 0.0
        cos_sigma = sU1 * sU2 + cU1 * cU2 * cl
        sigma = math.atan2(sin_sigma, cos_sigma)
        sin_alpha = cU1 * cU2 * sl / sin_sigma
        cos2_alpha = 1 - sin_alpha**2
        cos_2sm = cos_sigma - 2 * sU1 * sU2 / cos2_alpha if cos2_alpha else 0.0
        C = F / 16 * cos2_alpha * (4 + F * (4 - 3 * cos2_alpha))
        prev = lam
        lam = L + (1 - C) * F * sin_alpha * (
            sigma + C * sin_sigma * (cos_2sm + C * cos_sigma * (-1 + 2 * cos_2sm**2)))
        if abs(lam - prev) < 1e-12:
            break
    u2 = cos2_alpha * (A**2 - B**2) / B**2
    AA = 1 + u2 / 16384 * (4096 + u2 * (-768 + u2 * (320 - 175 * u2)))
    BB = u2 / 1024 * (256 + u2 * (-128 + u2 * (74 - 47 * u2)))
    d_sigma = BB * sin_sigma * (cos_2sm + BB / 4 * (cos_sigma * (-1 + 2 * cos_2sm**2)
                                                  - BB / 6 * cos_2sm * (-3 + 4 * sin_sigma**2) * (-3 + 4 * cos_2sm**2)))
    return B * AA * (sigma - d_sigma)


# ---------------------------------------------------------------------------------------------
# Route input: GeoJSON LineString (lon, lat order!) or GPX (trk/rte points). Output (lat, lon).
# ---------------------------------------------------------------------------------------------


def route_from_geojson(obj: Any) -> list[tuple[float, float]]:
    """A GeoJSON LineString, Feature or FeatureCollection (first LineString) -> [(lat, lon)]."""
    if isinstance(obj, (str, bytes)):
        obj = json.loads(obj)
    if not isinstance(obj, dict):
        raise ValueError("GeoJSON: expected an object")
    kind = obj.get("type")
    if kind == "FeatureCollection":
        for feature in obj.get("features") or []:
            geometry = (feature or {}).get("geometry") or {}
            if geometry.get("type") == "LineString":
                return route_from_geojson(geometry)
        raise ValueError("GeoJSON: no LineString in the FeatureCollection")
    if kind == "Feature":
        return route_from_geojson(obj.get("geometry") or {})
    if kind != "LineString":
        raise ValueError(f"GeoJSON: expected a LineString, got {kind!r}")
    coords = obj.get("coordinates")
    if not isinstance(coords, list) or len(coords) < 2:
        raise ValueError("GeoJSON: a LineString needs at least two positions")
    out = []
    for c in coords:
        if not isinstance(c, (list, tuple)) or len(c) < 2:
            raise ValueError(f"GeoJSON: bad position {c!r}")
        lon, lat = float(c[0]), float(c[1])  # GeoJSON is [lon, lat]
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ValueError(f"GeoJSON: position {c!r} out of range (GeoJSON order is [lon, lat])")
        out.append((lat, lon))
    return out


def route_from_gpx(text: str | bytes) -> list[tuple[float, float]]:
    """Track points (trkpt) or route points (rtept) of a GPX document, in order -> [(lat, lon)]."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ValueError(f"GPX: {exc}") from None
    points = [el for el in root.iter() if el.tag.rsplit("}", 1)[-1] in ("trkpt", "rtept")]
    if len(points) < 2:
        raise ValueError("GPX: needs at least two trkpt/rtept points")
    out = []
    for el in points:
        try:
            lat, lon = float(el.attrib["lat"]), float(el.attrib["lon"])
        except (KeyError, ValueError):
            raise ValueError(f"GPX: point without valid lat/lon: {el.attrib}") from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ValueError(f"GPX: point ({lat}, {lon}) out of range")
        out.append((lat, lon))
    return out


def load_route(path: str) -> list[tuple[float, float]]:
    """Route from a .geojson/.json or .gpx file."""
    with open(path, "rb") as fh:
        data = fh.read()
    if path.lower().endswith(".gpx") or data.lstrip().startswith(b"<"):
        return route_from_gpx(data)
    return route_from_geojson(data)


def unwrap(points: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
    """Continuous longitudes: each point's longitude moved by a multiple of 360 so that it differs
    from the previous one by at most 180 degrees (the short way; docs/protocol.md, ACTIVATE). A
    route across the antimeridian then carries longitudes past +-180, as the wire does."""
    out: list[tuple[float, float]] = []
    for lat, lon in points:
        lat, lon = float(lat), float(lon)
        if out:
            prev = out[-1][1]
            lon += 360.0 * round((prev - lon) / 360.0)
        out.append((lat, lon))
    return out


def to_wire_route(points: Sequence[Sequence[float]]) -> list[list[int]]:
    """(lat, lon) degrees -> the protocol's [lat_e5, lon_e5] integer pairs, longitudes continuous."""
    return [[round(lat * 1e5), round(lon * 1e5)] for lat, lon in unwrap(points)]
