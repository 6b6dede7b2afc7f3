"""The track route's simplification (gateway/track.py): what is dropped stays within the pixel
tolerance at the zoom asked for, corners and ends are kept, gaps cut the line, a box keeps the
line continuous at its edges, and a ceiling coarsens instead of truncating."""

from __future__ import annotations

import math
import random

import pytest

from navseal.gateway import track


def fix(i: int, lat: float, lon: float, t: int | None = None, speed: int | None = 600):
    return (i + 1, 1_764_115_200 + (i if t is None else t), round(lat * 1e7), round(lon * 1e7), speed)


def distance_to_segment(p, a, b) -> float:
    (px, py), (ax, ay), (bx, by) = p, a, b
    dx, dy = bx - ax, by - ay
    norm = dx * dx + dy * dy
    t = 0.0 if norm == 0 else max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / norm))
    return math.hypot(px - ax - t * dx, py - ay - t * dy)


def test_mercator_matches_the_web_map_projection():
    assert track.mercator(0, 0) == (0.5, 0.5)
    x, y = track.mercator(43.238, 76.945)  # Almaty, against the slippy-map tile formula (OSM wiki)
    lat = math.radians(43.238)
    assert x == pytest.approx((76.945 + 180) / 360, abs=1e-12)
    assert y == pytest.approx((1 - math.log(math.tan(lat) + 1 / math.cos(lat)) / math.pi) / 2, abs=1e-12)
    xs, ys = track.mercator_e7([432380000], [769450000])
    assert (xs[0], ys[0]) == pytest.approx((x, y), abs=1e-12)


@pytest.mark.parametrize("zoom", [6, 10, 14])
def test_every_dropped_fix_is_within_the_tolerance_of_the_line_drawn(zoom):
    rng = random.Random(zoom)
    fixes, lat, lon, heading = [], 43.0, 75.0, 0.0
    for i in range(5000):
        heading += rng.gauss(0, 0.05)
        lat += math.cos(heading) * 2e-4
        lon += math.sin(heading) * 2e-4
        fixes.append(fix(i, lat + rng.gauss(0, 2e-5), lon + rng.gauss(0, 2e-5)))
    fc = track.track_collection(fixes, route=None, corridor_m=0, zoom=zoom, gap_s=10_000)
    [part] = [f for f in fc["features"] if f["properties"]["role"] == "track"]
    kept = part["properties"]["rseqs"]
    assert kept[0] == 1 and kept[-1] == 5000 and fc["meta"]["fixes"] == 5000
    assert fc["meta"]["points"] == len(kept) < 5000
    px = track.TILE_PX * 2 ** zoom  # world units -> pixels at this zoom
    worst = 0.0
    for a, b in zip(kept, kept[1:]):
        pa = track.mercator(fixes[a - 1][2] / 1e7, fixes[a - 1][3] / 1e7)
        pb = track.mercator(fixes[b - 1][2] / 1e7, fixes[b - 1][3] / 1e7)
        for r in range(a + 1, b):
            p = track.mercator(fixes[r - 1][2] / 1e7, fixes[r - 1][3] / 1e7)
            worst = max(worst, distance_to_segment(p, pa, pb) * px)
    # Douglas-Peucker's guarantee (the radial pre-pass adds at most one more tolerance).
    assert worst <= 2 * track.DEFAULT_TOLERANCE_PX + 1e-6
    # Finer zoom, more points.
    finer = track.track_collection(fixes, route=None, corridor_m=0, zoom=zoom + 2, gap_s=10_000)
    assert finer["meta"]["points"] > fc["meta"]["points"]


def test_a_corner_survives_and_a_straight_line_is_two_points():
    straight = [fix(i, 43.0, 75.0 + i * 1e-3) for i in range(1000)]
    fc = track.track_collection(straight, route=None, corridor_m=0, zoom=15)
    assert fc["meta"]["points"] == 2
    corner = [fix(i, 43.0, 75.0 + i * 1e-3) for i in range(500)] + [fix(500 + i, 43.0 + i * 1e-3, 75.5) for i in range(500)]
    fc = track.track_collection(corner, route=None, corridor_m=0, zoom=15)
    coords = fc["features"][0]["geometry"]["coordinates"]
    assert len(coords) == 3 and coords[1] == [pytest.approx(75.499, abs=2e-3), pytest.approx(43.0, abs=2e-3)]


def test_a_time_gap_cuts_the_line_and_each_vertex_keeps_its_time_speed_and_rseq():
    fixes = [fix(i, 43.0, 75.0 + i * 1e-3, t=i, speed=100 * i) for i in range(10)]
    fixes += [fix(10 + i, 43.1, 75.1 + i * 1e-3, t=4000 + i, speed=None) for i in range(10)]
    fc = track.track_collection(fixes, route=[[43.0, 75.0], [43.1, 75.2]], corridor_m=500, zoom=12, gap_s=600)
    route, first, second = fc["features"]
    assert route["properties"] == {"role": "route", "corridor_m": 500}
    assert route["geometry"]["coordinates"] == [[75.0, 43.0], [75.2, 43.1]]
    assert first["properties"]["times"][0] == fixes[0][1] and first["properties"]["times"][-1] == fixes[9][1]
    assert first["properties"]["speeds_kmh"] == [0.0, 90.0] and second["properties"]["speeds_kmh"] == [None, None]
    assert second["properties"]["rseqs"] == [11, 20] and fc["meta"]["parts"] == 2
    assert fc["bbox"] == [75.0, 43.0, 75.2, 43.1]


def test_a_box_keeps_the_inside_with_one_fix_beyond_each_edge():
    fixes = [fix(i, 43.0, 75.0 + i * 1e-3) for i in range(1000)]  # 75.000 .. 75.999
    fc = track.track_collection(fixes, route=None, corridor_m=0, zoom=18, box=[75.2, 42.9, 75.3, 43.1])
    [part] = fc["features"]
    assert part["properties"]["rseqs"][0] == 200 and part["properties"]["rseqs"][-1] == 302
    assert fc["meta"]["box"] == [75.2, 42.9, 75.3, 43.1]


def test_too_many_points_coarsen_the_tolerance_instead_of_cutting_the_track():
    rng = random.Random(1)
    fixes = [fix(i, 43.0 + rng.uniform(0, 0.1), 75.0 + rng.uniform(0, 0.1)) for i in range(3000)]  # noise
    fc = track.track_collection(fixes, route=None, corridor_m=0, zoom=19, max_points=500)
    assert fc["meta"]["points"] <= 500 and fc["meta"]["tolerance_px"] > track.DEFAULT_TOLERANCE_PX
    rseqs = fc["features"][0]["properties"]["rseqs"]
    assert rseqs[0] == 1 and rseqs[-1] == 3000


def test_fit_zoom_fits_the_box_into_the_pixels():
    box = [74.7, 42.95, 76.95, 43.35]  # Kordai - Almaty
    z = track.fit_zoom(box, 1000, 600)
    x0, y1 = track.mercator(box[1], box[0])
    x1, y0 = track.mercator(box[3], box[2])
    assert (x1 - x0) * 256 * 2 ** z <= 960 < (x1 - x0) * 256 * 2 ** (z + 1) or (y1 - y0) * 256 * 2 ** (z + 1) > 560
    assert track.fit_zoom([75.0, 43.0, 75.0, 43.0], 800, 600) == track.MAX_ZOOM


def test_no_fixes_is_an_empty_track_with_the_route():
    fc = track.track_collection([], route=[[43.0, 75.0], [43.5, 75.5]], corridor_m=1000)
    assert [f["properties"]["role"] for f in fc["features"]] == ["route"]
    assert fc["meta"]["fixes"] == fc["meta"]["points"] == 0 and fc["meta"]["first_time"] is None
