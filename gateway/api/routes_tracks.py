"""An escort's track (GeoJSON, simplified per zoom) and its events: public read routes.

Both read on the API's own store connection (`service.reader`), never inside the ingest's
transaction, and answer 404 alike for an escort that does not exist and for one outside an
officer's offices (an officer learns nothing about other offices' escorts).
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from typing import Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from .. import console_views as cv
from .. import track
from .access import office_scope
from .console_models import EventPage
from .errors import ApiError
from .routes_escorts import ERRORS, service

router = APIRouter()
EscortId = Path(ge=1, le=0xFFFFFFFF, description="the gateway's escort id")
GEOJSON = "application/geo+json"


def reader(svc: Any) -> Any:
    """The store the read routes use: the service's own read connection (WAL: reads never wait
    for ingest's write transaction), or its store when it has none."""
    return getattr(svc, "reader", None) or svc.store


def escort_in_scope(svc: Any, escort_id: int, offices: tuple[str, ...] | None) -> dict[str, Any]:
    escort = reader(svc).escort_with_seal(escort_id)
    if not cv.in_scope(escort, offices):
        raise ApiError(404, "not_found", f"no escort {escort_id}")
    return escort


def _box(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        west, south, east, north = (float(v) for v in text.split(","))
    except ValueError:
        raise ApiError(400, "bad_request", "bbox: west,south,east,north in degrees") from None
    if not all(math.isfinite(v) for v in (west, south, east, north)) or not (
            -180 <= west <= east <= 180 and -90 <= south <= north <= 90):
        raise ApiError(400, "bad_request", "bbox: west <= east within -180..180, south <= north within -90..90")
    return [west, south, east, north]


@router.get("/v1/escorts/{escort_id}/track", responses={**ERRORS, 200: {"content": {GEOJSON: {}}}},
            summary="The escort's track and declared route as GeoJSON, simplified for a zoom level",
            description="A FeatureCollection: the declared route (`role: route`, with `corridor_m`) and the "
                        "received track as LineStrings (`role: track`), cut where no fix came for `gap_s`; "
                        "each vertex's time, speed and journal number are in the feature's `times`, "
                        "`speeds_kmh`, `rseqs`. Without `zoom` the whole escort is fitted into "
                        "`width` x `height` pixels; with `bbox` only the track inside it is sent. Fixes are "
                        "dropped only where the line stays within `tolerance_px` pixels at that zoom. "
                        "`meta` says how many fixes there are and how many were sent.")
def escort_track(escort_id: int = EscortId,
                 zoom: int | None = Query(default=None, ge=0, le=track.MAX_ZOOM),
                 width: int = Query(default=1024, ge=64, le=8192), height: int = Query(default=768, ge=64, le=8192),
                 bbox: str | None = Query(default=None, max_length=100, description="west,south,east,north"),
                 tolerance_px: float = Query(default=track.DEFAULT_TOLERANCE_PX, ge=0.1, le=20),
                 gap_s: float = Query(default=track.DEFAULT_GAP_S, ge=10, le=7 * 86400),
                 offices=Depends(office_scope), svc: Any = Depends(service)) -> Response:
    escort = escort_in_scope(svc, escort_id, offices)
    box = _box(bbox)
    store = reader(svc)
    version = store.track_version(escort["seal_id"], escort_id)
    key = (getattr(store, "path", id(store)), escort_id, version, escort["route"], escort["corridor_m"], zoom, width,
           height, bbox, tolerance_px, gap_s)
    body = _CACHE.get(key)
    if body is None:
        fixes = store.track_fixes(escort["seal_id"], escort_id)
        collection = track.track_collection(
            fixes, route=cv.route_points(escort), corridor_m=escort["corridor_m"], zoom=zoom, width_px=width,
            height_px=height, box=box, tolerance_px=tolerance_px, gap_s=gap_s,
            meta={"escort_id": escort_id, "seal_id": escort["seal_id"]})
        body = json.dumps(collection, separators=(",", ":")).encode()
        _CACHE.put(key, body)
    return Response(body, media_type=GEOJSON)


class _Lru:
    """The last answers of the track route: an officer's browser asks for the same escort at the
    same size again and again (page loads, zooming back out), and a 36,000-fix track takes ~100 ms
    to read and simplify. Keyed by everything the answer depends on, the track's version included,
    so a new fix is never hidden."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[Any, bytes] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: Any) -> bytes | None:
        with self.lock:
            value = self.items.get(key)
            if value is not None:
                self.items.move_to_end(key)
            return value

    def put(self, key: Any, value: bytes) -> None:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)


_CACHE = _Lru(256)


def _kinds(text: str | None, name: str) -> tuple[str, ...]:
    if not text:
        return ()
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    if any(not k.replace("_", "").isalnum() or len(k) > 40 for k in kinds):
        raise ApiError(400, "bad_request", f"{name}: event kinds separated by commas, e.g. POSITION,ACTIVATED")
    return kinds


@router.get("/v1/escorts/{escort_id}/events", response_model=EventPage, responses=ERRORS,
            summary="The escort's operator events in commit order (paginated by outbox_id)")
def escort_events(escort_id: int = EscortId, after: int = Query(default=0, ge=0),
                  limit: int = Query(default=500, ge=1, le=1000),
                  kinds: str | None = Query(default=None, max_length=1000, description="only these, comma-separated"),
                  exclude: str | None = Query(default=None, max_length=1000,
                                              description="not these, e.g. POSITION (the track has them)"),
                  offices=Depends(office_scope), svc: Any = Depends(service)) -> Any:
    escort_in_scope(svc, escort_id, offices)
    rows = reader(svc).escort_events(escort_id, kinds=_kinds(kinds, "kinds"), exclude=_kinds(exclude, "exclude"),
                                     after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"escort_id": escort_id, "items": [{"outbox_id": o, "event": e} for o, e in rows],
            "next_after": rows[-1][0] if rows else after, "more": more}
