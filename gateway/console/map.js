// The escort map: an offline basemap (Natural Earth country shapes from world-atlas, drawn by
// Leaflet; an operator's own tiles underneath when configured), the declared route with its
// corridor at true width, the received track coloured by age or speed, and a marker for every
// event that has a position. Everything is drawn on one canvas (thousands of segments stay fast).
//
// The track comes from the server already simplified for the zoom it is shown at. Zoomed in past
// that, the visible box is asked for again at the finer zoom; zoomed back out, the overview returns.

import { clear, h } from "./dom.js";
import { fmtTime, t } from "./i18n.js";
import { kindInfo, sourceOf } from "./kinds.js";

const L = window.L;
const meta = (name) => (document.querySelector(`meta[name="${name}"]`) || {}).content || "";
const EARTH_M = 40075016.686;
const AGE_COLORS = ["#bbdefb", "#90caf9", "#64b5f6", "#42a5f5", "#1e88e5", "#1565c0", "#0d47a1", "#002171"];
const SPEED_BINS = [[5, "#9e9e9e"], [30, "#ef6c00"], [60, "#fbc02d"], [90, "#7cb342"], [Infinity, "#2e7d32"]];

export function missingLibraries() {
  const missing = meta("navseal-map-missing");
  return missing || (L ? "" : "leaflet.js");
}

// Started at once: the basemap downloads while the escort's data is fetched.
let countries = null;
function basemap() {
  if (!countries) {
    countries = fetch("/console/vendor/countries-50m.json").then((r) => (r.ok ? r.json() : null))
      .then((topo) => (topo && window.topojson ? window.topojson.feature(topo, topo.objects.countries) : null))
      .catch(() => null);
  }
  return countries;
}
if (L) basemap();

function metersPerPixel(lat, zoom) {
  return (EARTH_M * Math.cos((lat * Math.PI) / 180)) / (256 * 2 ** zoom);
}

function speedColor(kmh) {
  if (kmh == null) return "#9e9e9e";
  for (const [limit, color] of SPEED_BINS) if (kmh < limit) return color;
  return SPEED_BINS[SPEED_BINS.length - 1][1];
}

export function createMap(container, { fetchTrack, onFocus, onTrack }) {
  const renderer = L.canvas({ padding: 0.5 });
  const map = L.map(container, { preferCanvas: true, renderer, zoomSnap: 1, worldCopyJump: true, attributionControl: true });
  map.attributionControl.setPrefix("Leaflet · Natural Earth");
  map.setView([48, 68], 4); // Kazakhstan until the escort is known (Leaflet needs a view before layers)
  const tileUrl = meta("navseal-tile-url");
  if (tileUrl) L.tileLayer(tileUrl, { attribution: meta("navseal-tile-attribution"), maxZoom: 19 }).addTo(map);
  const layers = {
    base: L.layerGroup().addTo(map), corridor: L.layerGroup().addTo(map), route: L.layerGroup().addTo(map),
    track: L.layerGroup().addTo(map), markers: L.layerGroup().addTo(map),
  };
  const state = { overview: null, shown: null, colorBy: "age", route: null, corridorM: 0, markers: new Map(),
    requestSeq: 0, span: null };

  const baseReady = basemap().then((geo) => {
    if (!geo) return;
    L.geoJSON(geo, { renderer, interactive: false,
      style: { color: "#8d8d8d", weight: 1, fillColor: tileUrl ? "transparent" : "#f4f1ea", fillOpacity: tileUrl ? 0 : 1 } })
      .addTo(layers.base);
    layers.base.eachLayer((l) => l.bringToBack && l.bringToBack());
  });

  function drawCorridor() {
    layers.corridor.clearLayers();
    if (!state.route || !state.corridorM) return;
    const lat = map.getCenter().lat;
    const weight = Math.max(2, state.corridorM / metersPerPixel(lat, map.getZoom()));
    L.polyline(state.route, { renderer, color: "#9575cd", opacity: 0.3, weight, lineCap: "round", lineJoin: "round",
      interactive: false }).addTo(layers.corridor);
  }

  function drawTrack(fc) {
    layers.track.clearLayers();
    state.shown = fc;
    const parts = fc.features.filter((f) => f.properties.role === "track");
    const times = parts.flatMap((f) => f.properties.times);
    const t0 = state.span ? state.span[0] : Math.min(...times), t1 = state.span ? state.span[1] : Math.max(...times);
    const colorAt = (props, i) => (state.colorBy === "speed" ? speedColor(props.speeds_kmh[i])
      : AGE_COLORS[Math.min(AGE_COLORS.length - 1, Math.floor(((props.times[i] - t0) / Math.max(1, t1 - t0)) * AGE_COLORS.length))]);
    let previousEnd = null;
    for (const f of parts) {
      const coords = f.geometry.type === "Point" ? [f.geometry.coordinates] : f.geometry.coordinates;
      const latlngs = coords.map(([lon, lat]) => [lat, lon]);
      if (previousEnd) { // a gap: nobody saw this stretch
        L.polyline([previousEnd, latlngs[0]], { renderer, color: "#757575", weight: 2, dashArray: "4 6", interactive: false })
          .addTo(layers.track);
      }
      previousEnd = latlngs[latlngs.length - 1];
      let run = [latlngs[0]];
      let color = colorAt(f.properties, 0);
      for (let i = 1; i < latlngs.length; i++) {
        const c = colorAt(f.properties, i);
        run.push(latlngs[i]);
        if (c !== color || i === latlngs.length - 1) {
          L.polyline(run, { renderer, color, weight: 4, interactive: false }).addTo(layers.track);
          run = [latlngs[i]];
          color = c;
        }
      }
      if (latlngs.length === 1) L.circleMarker(latlngs[0], { renderer, radius: 3, color }).addTo(layers.track);
    }
    container.dataset.trackPoints = String(fc.meta.points);
    container.dataset.trackFixes = String(fc.meta.fixes);
    container.dataset.trackZoom = String(fc.meta.zoom);
    if (onTrack) onTrack(fc);
  }

  function setTrack(fc, { fit = false } = {}) {
    const route = fc.features.find((f) => f.properties.role === "route");
    state.route = route ? route.geometry.coordinates.map(([lon, lat]) => [lat, lon]) : null;
    state.corridorM = route ? route.properties.corridor_m : 0;
    state.overview = fc;
    state.span = fc.meta.first_time != null ? [fc.meta.first_time, fc.meta.last_time] : null;
    layers.route.clearLayers();
    if (state.route) {
      L.polyline(state.route, { renderer, color: "#5e35b1", weight: 2, dashArray: "6 4", interactive: false }).addTo(layers.route);
    }
    if (fit && fc.bbox) {
      const [w, s, e, n] = fc.bbox;
      map.fitBounds([[s, w], [n, e]], { padding: [20, 20], animate: false, maxZoom: 15 });
    }
    drawCorridor();
    drawTrack(fc);
  }

  function setEvents(items) {
    layers.markers.clearLayers();
    state.markers.clear();
    for (const { event } of items) {
      const p = event.position;
      if (!p || p.lat == null || event.kind === "POSITION") continue;
      const info = kindInfo(event.kind, event);
      const icon = L.divIcon({ className: "", iconSize: [22, 22], iconAnchor: [11, 11],
        html: h("div", { class: `ev-marker${info.restore ? " restore" : ""}${event.alarm ? " alarm" : ""}`,
          style: { borderColor: info.color, background: info.restore ? "#fff" : info.color, color: info.restore ? info.color : "#fff" },
          dataset: { kind: event.kind, eventId: event.event_id, lat: p.lat, lon: p.lon } }, info.letter) });
      const marker = L.marker([p.lat, p.lon], { icon, title: info.label, riseOnHover: true,
        zIndexOffset: event.alarm ? 1000 : 0 });
      const source = sourceOf(event);
      marker.bindPopup(h("div", { class: "popup" }, h("strong", {}, info.label), h("br"), fmtTime(event.occurred_at), h("br"),
        `${t("t_source")}: ${source ? `${t("source_seal")}: ${source}` : t("source_gateway")}`, h("br"),
        `${p.lat.toFixed(5)}, ${p.lon.toFixed(5)}`));
      marker.on("click", () => onFocus && onFocus(event.event_id));
      marker.addTo(layers.markers);
      state.markers.set(event.event_id, marker);
    }
  }

  function focus(eventId) {
    const marker = state.markers.get(eventId);
    if (!marker) return;
    map.setView(marker.getLatLng(), Math.max(map.getZoom(), 12));
    marker.openPopup();
  }

  function setColorBy(mode) {
    state.colorBy = mode;
    if (state.shown) drawTrack(state.shown);
  }

  // Zoomed in past the overview: the visible box at the finer zoom.
  let pending = null;
  map.on("zoomend", drawCorridor);
  map.on("moveend", () => {
    clearTimeout(pending);
    pending = setTimeout(async () => {
      if (!state.overview) return;
      const zoom = map.getZoom();
      if (zoom <= state.overview.meta.zoom + 1) {
        if (state.shown !== state.overview) drawTrack(state.overview);
        return;
      }
      const b = map.getBounds().pad(0.5);
      const seq = ++state.requestSeq;
      const box = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v, i) =>
        Math.max(i % 2 ? -90 : -180, Math.min(i % 2 ? 90 : 180, v)).toFixed(5)).join(",");
      try {
        const fc = await fetchTrack({ zoom, bbox: box });
        if (seq === state.requestSeq) drawTrack(fc);
      } catch { /* keep what is drawn */ }
    }, 250);
  });

  return { map, setTrack, setEvents, focus, setColorBy, baseReady, invalidate: () => map.invalidateSize() };
}

export function legend(mode) {
  const row = (color, label) => h("span", { class: "legend-item" }, h("i", { style: { background: color } }), label);
  if (mode === "speed") {
    const labels = [t("legend_stopped"), `5–30 ${t("kmh")}`, `30–60 ${t("kmh")}`, `60–90 ${t("kmh")}`, `≥ 90 ${t("kmh")}`];
    return h("span", { class: "legend" }, SPEED_BINS.map(([, color], i) => row(color, labels[i])));
  }
  return h("span", { class: "legend" }, t("legend_old"), AGE_COLORS.map((c) => h("i", { style: { background: c } })), t("legend_new"));
}

export function mapUnavailable(el, files) {
  clear(el).append(h("div", { class: "error map-missing", id: "map-missing" }, t("map_missing", { files })));
}
