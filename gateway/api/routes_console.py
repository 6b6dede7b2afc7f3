"""The web console's own files: the page, its scripts and styles, and the browser libraries.

Public (the login form must load before anyone is logged in) and without data: everything the
console shows comes from the authenticated API routes. Files are served from two fixed places
only, by name from a listing made at start (no path from the URL ever reaches the file system):
`gateway/console/` (this package's HTML, JS modules, CSS) and the npm packages installed at set-up
(`tools/web/node_modules`, or `[console] vendor_dir`): Leaflet, topojson-client and world-atlas's
Natural Earth country shapes. Nothing is fetched from a CDN or a tile server unless the operator
configured one (`[console] tile_url`).
"""

from __future__ import annotations

import html
import urllib.parse
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from .errors import ApiError
from .routes_escorts import service

router = APIRouter()
APP_DIR = Path(__file__).resolve().parent.parent / "console"
DEFAULT_VENDOR_DIR = Path(__file__).resolve().parents[2] / "tools" / "web" / "node_modules"
# URL name under /console/vendor/ -> file in the npm packages.
VENDOR_FILES = {
    "leaflet.js": "leaflet/dist/leaflet.js",
    "leaflet.css": "leaflet/dist/leaflet.css",
    "images/layers.png": "leaflet/dist/images/layers.png",
    "images/layers-2x.png": "leaflet/dist/images/layers-2x.png",
    "images/marker-icon.png": "leaflet/dist/images/marker-icon.png",
    "images/marker-icon-2x.png": "leaflet/dist/images/marker-icon-2x.png",
    "images/marker-shadow.png": "leaflet/dist/images/marker-shadow.png",
    "topojson-client.min.js": "topojson-client/dist/topojson-client.min.js",
    "countries-50m.json": "world-atlas/countries-50m.json",
}
MAP_FILES = ("leaflet.js", "leaflet.css", "topojson-client.min.js", "countries-50m.json")
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".json": "application/json", ".png": "image/png",
         ".svg": "image/svg+xml"}


def _listing(root: Path) -> dict[str, Path]:
    if not root.is_dir():
        return {}
    return {p.relative_to(root).as_posix(): p for p in root.rglob("*")
            if p.is_file() and p.suffix in TYPES and p.name != "index.html"}


APP_FILES = _listing(APP_DIR)


def vendor_dir(config: Any) -> Path:
    return Path(config.console_vendor_dir) if getattr(config, "console_vendor_dir", None) else DEFAULT_VENDOR_DIR


def vendor_missing(config: Any) -> list[str]:
    """Map libraries the console cannot find (it still works, without the map, and says why)."""
    root = vendor_dir(config)
    return [name for name in MAP_FILES if not (root / VENDOR_FILES[name]).is_file()]


def _tile_origin(url: str | None) -> str:
    if not url:
        return ""
    parts = urllib.parse.urlsplit(url.replace("{s}", "a"))
    host = parts.netloc.replace("a.", "*.", 1) if "{s}." in url else parts.netloc
    return f"{parts.scheme}://{host}"


def security_headers(config: Any) -> dict[str, str]:
    """The page may load its own files and, if configured, the operator's tiles; nothing else, and
    no other site may frame it."""
    tiles = _tile_origin(getattr(config, "console_tile_url", None))
    return {
        "Content-Security-Policy": (
            "default-src 'self'; script-src 'self'; connect-src 'self'; "
            f"img-src 'self' data:{' ' + tiles if tiles else ''}; style-src 'self' 'unsafe-inline'; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"),
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=307)


@router.get("/console/", include_in_schema=False)
def page(svc: Any = Depends(service)) -> HTMLResponse:
    config = svc.config
    text = (APP_DIR / "index.html").read_text(encoding="utf-8")
    values = {
        "TILE_URL": config.console_tile_url or "",
        "TILE_ATTRIBUTION": config.console_tile_attribution or "",
        "MAP_MISSING": ",".join(vendor_missing(config)),
    }
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", html.escape(value, quote=True))
    return HTMLResponse(text, headers={**security_headers(config), "Cache-Control": "no-store"})


@router.get("/console/app/{name:path}", include_in_schema=False)
def app_file(name: str) -> Response:
    path = APP_FILES.get(name)
    if path is None:
        raise ApiError(404, "not_found", f"no console file {name[:100]}")
    return FileResponse(path, media_type=TYPES[path.suffix], headers={"Cache-Control": "no-cache"})


@router.get("/console/vendor/{name:path}", include_in_schema=False)
def vendor_file(name: str, svc: Any = Depends(service)) -> Response:
    relative = VENDOR_FILES.get(name)
    path = vendor_dir(svc.config) / relative if relative else None
    if path is None or not path.is_file():
        raise ApiError(404, "not_found", f"no library file {name[:100]} (bash tools/run setup installs them)")
    return FileResponse(path, media_type=TYPES[path.suffix], headers={"Cache-Control": "public, max-age=86400"})
