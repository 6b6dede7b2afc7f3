"""An escort's track as GeoJSON, simplified for the zoom level it is drawn at (`GET /v1/escorts/{id}/track`).

A 10-hour escort at one fix a second is 36,000 fixes; a map 1,000 pixels wide shows at most a few
hundred distinct points of it at the zoom that fits the whole route. So the server sends what the
map can show: fixes are projected to Web Mercator (the map's projection), and a fix is dropped when
the line without it stays within `tolerance_px` screen pixels at the requested zoom (a radial
distance pass, then Douglas-Peucker on what is left, as simplify.js and Leaflet do on the client).
Zoomed in, the client asks again for the visible box only, at the finer tolerance; past the
zoom where a pixel is under the receiver's own noise nothing more is dropped.

The track is cut where the seal recorded no fix for `gap_s` (GNSS or power lost): a map must not
draw a straight line through hours nobody saw. Every vertex kept carries its fix's time, speed and
journal number, so the client can colour the line by age or speed and name any point.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

TILE_PX = 256  # Web Mercator: the world is 256 * 2**zoom pixels wide
MAX_ZOOM = 19
DEFAULT_TOLERANCE_PX = 1.0
DEFAULT_GAP_S = 600.0  # no fix for 10 minutes: draw a gap, not a line
MAX_POINTS = 20_000  # a ceiling per answer: the tolerance doubles until the track fits
ROUND = 6  # decimal places of a degree: ~0.1 m

Fix = tuple[int, int, int, int, "int | None"]  # (rseq, time, lat_e7, lon_e7, speed in 0.1 km/h)


def mercator(lat: float, lon: float) -> tuple[float, float]:
    """Degrees -> Web Mercator in world units (0..1 across, y down), as the map draws."""
    lat = max(-85.05112878, min(85.05112878, lat))
    s = math.sin(math.radians(lat))
    return lon / 360.0 + 0.5, 0.5 - math.log((1 + s) / (1 - s)) / (4 * math.pi)


def mercator_e7(lats: Sequence[int], lons: Sequence[int]) -> tuple[list[float], list[float]]:
    """`mercator` for many points in 1e-7 degrees (the store's unit), as two lists: the track
    route's hot loop (36,000 fixes in ~10 ms; a call per point costs ten times that)."""
    log, tan = math.log, math.tan
    k, quarter, inv = math.pi / 180 / 2 / 1e7, math.pi / 4, 1 / (2 * math.pi)
    limit = round(85.05112878 * 1e7)
    xs = [lon / 3.6e9 + 0.5 for lon in lons]
    if lats and (min(lats) < -limit or max(lats) > limit):  # beyond what the map draws: clamp
        lats = [max(-limit, min(limit, lat)) for lat in lats]
    ys = [0.5 - log(tan(quarter + lat * k)) * inv for lat in lats]
    return xs, ys


def tolerance_world(zoom: float, tolerance_px: float = DEFAULT_TOLERANCE_PX) -> float:
    return tolerance_px / (TILE_PX * 2.0 ** zoom)


def fit_zoom(bbox: Sequence[float], width_px: int, height_px: int, padding_px: int = 20) -> int:
    """The largest whole zoom at which `bbox` (west, south, east, north) fits the map's pixels."""
    west, south, east, north = bbox
    x0, y1 = mercator(south, west)
    x1, y0 = mercator(north, east)
    span_x, span_y = max(x1 - x0, 1e-12), max(y1 - y0, 1e-12)
    usable_w, usable_h = max(width_px - 2 * padding_px, 1), max(height_px - 2 * padding_px, 1)
    zoom = math.floor(math.log2(min(usable_w / (span_x * TILE_PX), usable_h / (span_y * TILE_PX))))
    return max(0, min(MAX_ZOOM, zoom))


def simplify(xs: Sequence[float], ys: Sequence[float], tolerance: float) -> list[int]:
    """Indices of the points kept (first and last always): radial distance, then Douglas-Peucker."""
    n = len(xs)
    if n <= 2:
        return list(range(n))
    sq = tolerance * tolerance
    # Radial pass: drop points closer than the tolerance to the last kept one (cheap, O(n); at an
    # overview zoom it removes most fixes, leaving Douglas-Peucker little to do).
    kept = [0]
    px, py = xs[0], ys[0]
    for i in range(1, n - 1):
        dx, dy = xs[i] - px, ys[i] - py
        if dx * dx + dy * dy > sq:
            kept.append(i)
            px, py = xs[i], ys[i]
    kept.append(n - 1)
    if len(kept) <= 2:
        return kept
    # Douglas-Peucker on the survivors, with an explicit stack (no recursion limit).
    keep = [False] * len(kept)
    keep[0] = keep[-1] = True
    stack = [(0, len(kept) - 1)]
    while stack:
        first, last = stack.pop()
        ax, ay = xs[kept[first]], ys[kept[first]]
        bx, by = xs[kept[last]], ys[kept[last]]
        dx, dy = bx - ax, by - ay
        norm = dx * dx + dy * dy
        worst, worst_d = -1, sq
        for j in range(first + 1, last):
            i = kept[j]
            qx, qy = xs[i] - ax, ys[i] - ay
            if norm > 0:
                t = (qx * dx + qy * dy) / norm
                if t < 0:
                    t = 0.0
                elif t > 1:
                    t = 1.0
                qx -= t * dx
                qy -= t * dy
            d = qx * qx + qy * qy
            if d > worst_d:
                worst, worst_d = j, d
        if worst >= 0:
            keep[worst] = True
            stack.append((first, worst))
            stack.append((worst, last))
    return [kept[j] for j in range(len(kept)) if keep[j]]


def _parts(times: Sequence[int], gap_s: float) -> list[tuple[int, int]]:
    """[start, end) index ranges without a gap longer than `gap_s` between consecutive fixes."""
    cuts = [i for i, (a, b) in enumerate(zip(times, times[1:]), 1) if b - a > gap_s]
    bounds = [0] + cuts + [len(times)]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def _in_box(lats: Sequence[int], lons: Sequence[int], start: int, end: int,
            box: Sequence[int] | None) -> list[tuple[int, int]]:
    """Sub-ranges of [start, end) inside `box` (lat/lon e7 bounds), each widened by one fix on each
    side so the line leaves the box instead of stopping at its edge."""
    if box is None:
        return [(start, end)]
    west, south, east, north = box
    runs, run_start = [], None
    for i in range(start, end):
        inside = south <= lats[i] <= north and west <= lons[i] <= east
        if inside and run_start is None:
            run_start = i
        elif not inside and run_start is not None:
            runs.append((max(start, run_start - 1), min(end, i + 1)))
            run_start = None
    if run_start is not None:
        runs.append((max(start, run_start - 1), end))
    merged: list[tuple[int, int]] = []
    for a, b in runs:  # runs that touch after widening are one line
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


def bbox_of(points: Iterable[tuple[float, float]]) -> list[float] | None:
    """[west, south, east, north] of (lat, lon) points in degrees, None when there are none."""
    lats, lons = [], []
    for lat, lon in points:
        lats.append(lat)
        lons.append(lon)
    if not lats:
        return None
    return [min(lons), min(lats), max(lons), max(lats)]


def track_collection(fixes: Sequence[Fix], *, route: Sequence[Sequence[float]] | None, corridor_m: int,
                     zoom: int | None = None, width_px: int = 1024, height_px: int = 768,
                     box: Sequence[float] | None = None, tolerance_px: float = DEFAULT_TOLERANCE_PX,
                     gap_s: float = DEFAULT_GAP_S, max_points: int = MAX_POINTS,
                     meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The GeoJSON FeatureCollection the track route answers (docs/console.md describes it).

    `fixes` in journal order; `route` as stored ([lat, lon] pairs); `zoom` None fits the whole
    escort (route and track) into `width_px` x `height_px`; `box` (west, south, east, north in
    degrees) keeps only the track inside it."""
    route_points = [(float(lat), float(lon)) for lat, lon in (route or [])]
    times = [f[1] for f in fixes]
    lats = [f[2] for f in fixes]
    lons = [f[3] for f in fixes]
    corners = [(lat, lon) for lat, lon in route_points]
    if fixes:
        corners += [(min(lats) / 1e7, min(lons) / 1e7), (max(lats) / 1e7, max(lons) / 1e7)]
    everything = bbox_of(corners)
    if zoom is None:
        zoom = fit_zoom(everything, width_px, height_px) if everything else 0
    box_e7 = None if box is None else [round(v * 1e7) for v in box]
    xs, ys = mercator_e7(lats, lons)
    ranges = [r for a, b in _parts(times, gap_s) for r in _in_box(lats, lons, a, b, box_e7)]
    tolerance_px = max(tolerance_px, 1e-3)
    while True:
        tolerance = tolerance_world(zoom, tolerance_px)
        parts = []
        for a, b in ranges:
            kept = simplify(xs[a:b], ys[a:b], tolerance)
            parts.append([a + k for k in kept])
        shown = sum(len(p) for p in parts)
        if shown <= max_points:
            break
        tolerance_px *= 2  # too many for one answer: coarser, never truncated
    features: list[dict[str, Any]] = []
    if len(route_points) >= 2:
        features.append({"type": "Feature", "id": "route",
                         "properties": {"role": "route", "corridor_m": corridor_m},
                         "geometry": {"type": "LineString",
                                      "coordinates": [[round(lon, ROUND), round(lat, ROUND)]
                                                      for lat, lon in route_points]}})
    for n, part in enumerate(parts):
        if not part:
            continue
        coords = [[round(fixes[i][3] / 1e7, ROUND), round(fixes[i][2] / 1e7, ROUND)] for i in part]
        geometry: dict[str, Any] = ({"type": "LineString", "coordinates": coords} if len(coords) >= 2
                                    else {"type": "Point", "coordinates": coords[0]})
        features.append({"type": "Feature", "id": f"track-{n}", "properties": {
            "role": "track", "part": n,
            "times": [fixes[i][1] for i in part],
            "speeds_kmh": [None if fixes[i][4] is None else fixes[i][4] / 10 for i in part],
            "rseqs": [fixes[i][0] for i in part],
        }, "geometry": geometry})
    return {
        "type": "FeatureCollection",
        "bbox": [round(v, ROUND) for v in everything] if everything else None,
        "features": features,
        "meta": {**(meta or {}), "zoom": zoom, "tolerance_px": tolerance_px, "fixes": len(fixes),
                 "points": shown, "parts": sum(1 for p in parts if p), "gap_s": gap_s,
                 "first_time": fixes[0][1] if fixes else None, "last_time": fixes[-1][1] if fixes else None,
                 "box": list(box) if box is not None else None},
    }
