// Page 2, one escort: the map (route, corridor, track, a marker for every alarm and restore), the
// events below it, the clause 8 data, the verdict with its reasons, and the actions the user's role
// allows (deactivation for the destination office and the operator, activating again for the
// operator). While the escort is open the page follows it: new events every few seconds, the track
// now and then.

import { api, query, session } from "./api.js";
import { errorBox } from "./app.js";
import { badge, clear, h } from "./dom.js";
import { fmtNumber, fmtTime, t } from "./i18n.js";
import { kindInfo, sourceOf } from "./kinds.js";
import { stateBadge } from "./escorts.js";
import { deactivationForm } from "./forms.js";
import { createMap, legend, mapUnavailable, missingLibraries } from "./map.js";

const EVENTS_EVERY_MS = 5000;
const TRACK_EVERY_MS = 30000;
const OPEN_STATES = ["awaiting_activation", "active", "deactivation_requested"];
const STATE_OF = { requested: "awaiting_activation", armed: "awaiting_activation", active: "active",
  deactivation_requested: "deactivation_requested", evidence_pending: "deactivation_requested",
  deactivated: "deactivated", failed: "failed" };

function actorText(a) {
  if (!a) return t("none");
  return `${a.user} (${a.role}${a.office ? `, ${a.office}` : ""})`;
}

function detailsText(details) {
  const skip = new Set(["positions", "evidence", "records", "lock", "source"]);
  return Object.entries(details || {}).filter(([k, v]) => !skip.has(k) && v !== null && typeof v !== "object")
    .map(([k, v]) => `${k}: ${v}`).join(" · ");
}

export async function render(main, params) {
  const id = Number(params.id);
  const me = session.me;
  const mapEl = h("div", { id: "map", class: "map" });
  const t0 = performance.now();
  // The page's frame first, so the map has its size and the track is asked for at once, beside
  // the escort and its events (the track is the slowest answer).
  const skeleton = h("div", { class: "detail" }, h("div", { class: "map-column" }, mapEl), h("div", { class: "side" }));
  main.append(skeleton);
  const fetchTrack = (extra) => api(`/v1/escorts/${id}/track${query({ width: mapEl.clientWidth || 800,
    height: mapEl.clientHeight || 500, ...extra })}`);
  const missing = missingLibraries();
  const firstTrack = missing ? null : fetchTrack({});
  if (firstTrack) firstTrack.catch(() => {}); // a refusal is reported by the escort's own answer
  const [list, firstEvents] = await Promise.all([
    api(`/v1/escorts?escort_id=${id}`),
    api(`/v1/escorts/${id}/events?exclude=POSITION&limit=1000`),
  ]);
  skeleton.remove();
  if (!list.escorts.length) throw Object.assign(new Error(t("error_not_found")), { status: 404 });
  let escort = list.escorts[0];
  const events = [...firstEvents.items];
  let after = firstEvents.next_after;

  const heading = h("h1", { id: "escort-title" });
  const verdictBox = h("section", { class: "card", id: "verdict" });
  const dataBox = h("section", { class: "card", id: "clause8" });
  const actionsBox = h("section", { class: "card", id: "actions" });
  const timeline = h("tbody", { id: "timeline" });
  const trackInfo = h("span", { class: "muted", id: "track-info" });
  const legendBox = h("span", { id: "legend" });
  let colorBy = "age";
  const modes = h("span", { class: "modes" }, `${t("colour_by")}: `, ["age", "speed"].map((mode) =>
    h("label", {}, h("input", { type: "radio", name: "colour", value: mode, checked: mode === colorBy,
      onchange: () => { colorBy = mode; if (view) view.setColorBy(mode); clear(legendBox).append(legend(mode)); } }),
    t(mode === "age" ? "by_age" : "by_speed"))));
  legendBox.append(legend(colorBy));
  main.append(
    h("p", {}, h("a", { href: "#/escorts" }, t("back_to_list"))), heading,
    h("div", { class: "detail" },
      h("div", { class: "map-column" }, mapEl, h("div", { class: "map-bar" }, modes, legendBox, trackInfo)),
      h("div", { class: "side" }, verdictBox, actionsBox, dataBox)),
    h("h2", {}, t("timeline")),
    h("table", { class: "grid", id: "events" }, h("thead", {}, h("tr", {},
      [t("t_time"), t("t_kind"), t("t_source"), t("t_details"), ""].map((c) => h("th", {}, c)))), timeline));

  let view = null;
  let drawn;
  if (missing) {
    mapUnavailable(mapEl, missing);
    drawn = Promise.resolve();
  } else {
    view = createMap(mapEl, { fetchTrack, onFocus: (eventId) => highlight(eventId), onTrack: (fc) => drawTrackInfo(fc) });
    drawn = Promise.all([firstTrack.then((fc) => { view.setTrack(fc, { fit: true }); }),
      view.baseReady]);
    view.setEvents(events);
  }

  function drawTrackInfo(fc) {
    clear(trackInfo).append(fc.meta.fixes ? t("track_meta", { points: fmtNumber(fc.meta.points), fixes: fmtNumber(fc.meta.fixes) })
      : t("track_none"));
  }

  function highlight(eventId) {
    for (const row of timeline.querySelectorAll("tr.selected")) row.classList.remove("selected");
    const row = timeline.querySelector(`tr[data-event-id="${CSS.escape(eventId)}"]`);
    if (row) { row.classList.add("selected"); row.scrollIntoView({ block: "nearest" }); }
  }

  function drawHeading() {
    const state = STATE_OF[escort.status] || escort.status;
    clear(heading).append(`${t("escort")} ${escort.escort_id}: ${escort.declaration} · ${escort.vehicle} `,
      ...stateBadge({ state, overdue: null, clean: escort.clean }));
  }

  function drawTimeline() {
    clear(timeline);
    const sorted = [...events].sort((a, b) => (a.event.occurred_at < b.event.occurred_at ? -1 : 1));
    for (const { event } of sorted) {
      const info = kindInfo(event.kind, event);
      const source = sourceOf(event);
      timeline.append(h("tr", { dataset: { eventId: event.event_id, kind: event.kind }, class: event.alarm ? "alarm" : "" },
        h("td", {}, fmtTime(event.occurred_at)),
        h("td", {}, badge(info.letter, info.color, { class: "badge letter" }), " ", info.label),
        h("td", {}, source ? `${t("source_seal")}: ${source}` : t("source_gateway")),
        h("td", { class: "details" }, detailsText(event.details)),
        h("td", {}, event.position && view ? h("button", { class: "link", onclick: () => { view.focus(event.event_id); highlight(event.event_id); } },
          t("show_on_map")) : null)));
    }
  }

  function drawVerdict() {
    clear(verdictBox).append(h("h2", {}, t("verdict")));
    const done = [...events].reverse().find((e) => e.event.kind === "DEACTIVATED");
    if (done) {
      const d = done.event.details || {};
      verdictBox.append(h("p", { class: `verdict ${d.clean ? "clean" : "not-clean"}`, id: "verdict-result" },
        d.clean ? t("verdict_clean") : t("verdict_not_clean")));
      if (d.high_risk) verdictBox.append(h("p", {}, badge(t("high_risk"), "#c62828")));
      if ((d.reasons || []).length) {
        verdictBox.append(h("h3", {}, t("reasons")), h("ul", { id: "verdict-reasons" }, d.reasons.map((r) => h("li", {}, r))));
      }
      if ((d.non_routine || []).length) {
        verdictBox.append(h("h3", {}, t("non_routine")),
          h("ul", {}, d.non_routine.map((k) => h("li", {}, kindInfo(typeof k === "string" ? k : k.kind || String(k)).label))));
      }
      if (d.within_deadline != null) verdictBox.append(h("p", { class: "muted" }, d.within_deadline ? t("within_deadline") : t("late_deactivation")));
      verdictBox.append(h("p", { class: "muted" }, fmtTime(done.event.occurred_at)));
      return;
    }
    const state = STATE_OF[escort.status] || escort.status;
    verdictBox.append(h("p", { id: "verdict-result", class: "verdict pending" },
      escort.status === "evidence_pending" ? t("verdict_evidence")
        : state === "deactivation_requested" ? t("verdict_waiting") : t("verdict_pending", { state: t(`st_${state}`) })));
    const situations = [...new Set(events.filter((e) => e.event.alarm).map((e) => e.event.kind))];
    verdictBox.append(h("p", {}, `${t("situations_so_far")}: `,
      situations.length ? situations.map((k) => badge(kindInfo(k, { alarm: true }).label, kindInfo(k, { alarm: true }).color)) : t("none_so_far")));
  }

  function drawData() {
    const e = escort, s = e.seal || {};
    const lock = s.cable_intact == null ? t("unknown")
      : s.cable_intact === false ? t("lock_cable") : s.housing_closed === false ? t("lock_housing") : t("lock_ok");
    const rows = [
      [t("f_seal"), String(e.seal_id)], [t("f_declaration"), e.declaration], [t("f_vehicle"), e.vehicle],
      [t("f_departure"), `${e.departure_office.code} ${e.departure_office.name}`],
      [t("f_destination"), `${e.destination_office.code} ${e.destination_office.name}`],
      [t("f_period"), `${fmtTime(e.period_start)} – ${fmtTime(e.period_end)}`],
      [t("f_route"), e.route_points ? t("route_points", { n: e.route_points, m: e.corridor_m }) : t("no_route")],
      [t("f_activated_by"), actorText(e.activated_by)],
      [t("f_requested_by"), actorText(e.deactivation_requested_by)],
      [t("f_last_fix"), s.last_position ? `${fmtTime(s.last_position.time)}` : t("none")],
      [t("f_lock"), lock], [t("f_battery"), s.battery_pct == null ? t("none") : `${s.battery_pct} %`],
    ];
    clear(dataBox).append(h("h2", {}, t("clause8")), h("dl", {}, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])));
  }

  function drawActions() {
    clear(actionsBox).append(h("h2", {}, t("actions")));
    const state = STATE_OF[escort.status] || escort.status;
    const mayDeactivate = (me.role === "operator" || (me.role === "officer" && me.offices.includes(escort.destination_office.code)))
      && (state === "active" || state === "awaiting_activation");
    if (mayDeactivate) {
      const holder = h("div");
      actionsBox.append(h("button", { id: "open-deactivate", onclick: () => {
        clear(holder).append(deactivationForm(escort, { onDone: () => { clear(holder); refresh(true); }, onCancel: () => clear(holder) }));
      } }, t("act_deactivate")), holder);
    }
    if (me.role === "operator" && (state === "failed" || state === "deactivated")) {
      actionsBox.append(h("a", { class: "button", id: "activate-again", href: `#/activate?seal=${escort.seal_id}&from=${escort.escort_id}` },
        t("act_activate_again")));
    }
    if (actionsBox.childNodes.length === 1) actionsBox.append(h("p", { class: "muted" }, t("none")));
  }

  drawHeading(); drawVerdict(); drawData(); drawActions(); drawTimeline();
  await drawn;
  // What the browser test measures: data fetched, basemap, route, track and markers drawn.
  main.dataset.drawn = String(Math.round(performance.now() - t0));
  window.navsealDrawnAt = performance.now();

  let stopped = false;
  let lastTrack = Date.now();
  async function refresh(force = false) {
    if (stopped) return;
    try {
      const [more, again] = await Promise.all([
        api(`/v1/escorts/${id}/events?exclude=POSITION&limit=1000&after=${after}`),
        api(`/v1/escorts?escort_id=${id}`),
      ]);
      if (stopped) return;
      const changed = more.items.length || again.escorts[0].status !== escort.status;
      escort = again.escorts[0] || escort;
      if (more.items.length) { events.push(...more.items); after = more.next_after; }
      if (changed || force) {
        drawHeading(); drawVerdict(); drawData(); drawActions(); drawTimeline();
        if (view) view.setEvents(events);
      }
      if (view && (Date.now() - lastTrack > TRACK_EVERY_MS || force)) {
        lastTrack = Date.now();
        const fc = await fetchTrack({});
        if (!stopped) view.setTrack(fc);
      }
    } catch (err) {
      if (err.status && err.status !== 401) actionsBox.append(errorBox(err));
    }
  }
  const timer = setInterval(() => {
    if (OPEN_STATES.includes(STATE_OF[escort.status] || escort.status) || escort.status === "evidence_pending") refresh();
  }, EVENTS_EVERY_MS);
  return () => { stopped = true; clearInterval(timer); if (view) view.map.remove(); };
}
