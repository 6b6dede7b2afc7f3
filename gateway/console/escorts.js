// Page 1, the escorts table: state, declaration, vehicle, seals, offices, last position age, alarm
// badges; filters by office, state, alarm and activation date; search by declaration, plate or
// seal. Pages come from the server (keyset cursors); the filters live in the address, so a filtered
// page can be bookmarked and the back button works. The first page refreshes itself.

import { api, query, session } from "./api.js";
import { badge, clear, h } from "./dom.js";
import { fmtAge, fmtTime, t } from "./i18n.js";
import { kindInfo } from "./kinds.js";

const STATES = ["awaiting_activation", "active", "deactivation_requested", "deactivated", "failed", "overdue"];
export const STATE_COLORS = {
  awaiting_activation: "#6d4c41", active: "#1565c0", deactivation_requested: "#00838f",
  deactivated: "#2e7d32", failed: "#616161", overdue: "#c62828",
};
const REFRESH_MS = 15000;

export function stateBadge(row) {
  const parts = [badge(t(`st_${row.state}`) || row.state, STATE_COLORS[row.state] || "#616161", { class: "badge state" })];
  if (row.overdue) parts.push(badge(t(`overdue_${row.overdue}`), STATE_COLORS.overdue, { class: "badge overdue" }));
  if (row.state === "deactivated" && row.clean === false) parts.push(badge(t("verdict_not_clean"), "#c62828"));
  return parts;
}

function localDayStart(value) {
  const [y, m, d] = value.split("-").map(Number);
  return new Date(y, m - 1, d);
}

function toHash(filters) { return `#/escorts${query(filters)}`; }

export async function render(main, params) {
  const filters = { state: params.state, office: params.office, alarm: params.alarm, from: params.from,
    to: params.to, q: params.q };
  const cursor = params.cursor;
  const trail = params.trail ? params.trail.split(",") : []; // cursors of the pages before ("-": the first)
  const me = session.me;

  const search = h("input", { id: "f-q", type: "search", placeholder: t("search"), value: filters.q || "", maxlength: 40 });
  const state = h("select", { id: "f-state" }, h("option", { value: "" }, `${t("filter_state")}: ${t("any")}`),
    STATES.map((s) => h("option", { value: s, selected: filters.state === s }, t(`st_${s}`))));
  const office = me.role === "officer"
    ? h("select", { id: "f-office" }, h("option", { value: "" }, `${t("filter_office")}: ${t("any")}`),
      me.offices.map((o) => h("option", { value: o, selected: filters.office === o }, o)))
    : h("input", { id: "f-office", placeholder: t("filter_office"), value: filters.office || "", pattern: "[0-9]{5,8}", size: 9 });
  const alarm = h("select", { id: "f-alarm" }, h("option", { value: "" }, `${t("filter_alarm")}: ${t("any")}`),
    h("option", { value: "any", selected: filters.alarm === "any" }, t("any_alarm")));
  const from = h("input", { id: "f-from", type: "date", value: filters.from || "", "aria-label": t("filter_from") });
  const to = h("input", { id: "f-to", type: "date", value: filters.to || "", "aria-label": t("filter_to") });
  const apply = (e) => {
    e.preventDefault();
    location.hash = toHash({ q: search.value.trim(), state: state.value, office: office.value.trim(), alarm: alarm.value,
      from: from.value, to: to.value });
  };
  const form = h("form", { class: "filters", id: "filters", onsubmit: apply },
    search, state, office, alarm, h("label", {}, t("filter_from"), from), h("label", {}, t("filter_to"), to),
    h("button", { type: "submit", id: "f-apply" }, t("apply")),
    h("button", { type: "button", class: "link", onclick: () => { location.hash = "#/escorts"; } }, t("reset")));
  const tbody = h("tbody", { id: "escort-rows" });
  const table = h("table", { class: "grid", id: "escorts" },
    h("thead", {}, h("tr", {}, [t("col_state"), t("col_declaration"), t("col_vehicle"), t("col_seals"), t("col_offices"),
      t("col_last_position"), t("col_alarms"), t("col_period_end")].map((c) => h("th", {}, c)))), tbody);
  const pager = h("div", { class: "pager" });
  const title = h("h1", {}, t("escorts_title"),
    me.role === "officer" ? h("small", { class: "muted" }, ` ${t("offices_you", { offices: me.offices.join(", ") })}`) : null);
  const actions = me.role === "operator" ? h("a", { class: "button", href: "#/activate", id: "new-activation" }, t("act_activate")) : null;
  main.append(h("div", { class: "page-head" }, title, actions), form, table, pager);

  const request = () => {
    const q = { state: filters.state, office: filters.office, alarm: filters.alarm, q: filters.q, cursor, limit: 50 };
    if (filters.from) q.since = localDayStart(filters.from).toISOString();
    if (filters.to) { const d = localDayStart(filters.to); d.setDate(d.getDate() + 1); q.until = d.toISOString(); }
    return api(`/v1/console/escorts${query(q)}`);
  };

  const draw = (page) => {
    if (alarm.options.length <= 2) {
      for (const kind of page.alarm_kinds) {
        alarm.append(h("option", { value: kind, selected: filters.alarm === kind }, kindInfo(kind, { alarm: true }).label));
      }
    }
    clear(tbody);
    if (!page.rows.length) tbody.append(h("tr", {}, h("td", { colspan: 8, class: "muted" }, t("no_escorts"))));
    for (const row of page.rows) {
      const open = () => { location.hash = `#/escorts/${row.escort_id}`; };
      tbody.append(h("tr", { class: "clickable", dataset: { escort: row.escort_id, declaration: row.declaration }, onclick: open },
        h("td", {}, stateBadge(row)),
        h("td", {}, h("a", { href: `#/escorts/${row.escort_id}` }, row.declaration)),
        h("td", {}, row.vehicle),
        h("td", {}, row.seals.join(", ")),
        h("td", { title: `${row.departure_office.name} → ${row.destination_office.name}` },
          `${row.departure_office.code} → ${row.destination_office.code}`),
        h("td", {}, row.last_position_age_s == null ? t("none") : t("ago", { age: fmtAge(row.last_position_age_s) })),
        h("td", { class: "alarms" }, row.alarms.map((a) => {
          const info = kindInfo(a.kind, { alarm: true });
          return badge(`${info.letter} ${a.count}`, a.unacknowledged ? info.color : "#9e9e9e",
            { title: `${info.label}: ${a.count}${a.unacknowledged ? ` (${a.unacknowledged} ${t("not_acked")})` : ""}`,
              class: "badge alarm", dataset: { kind: a.kind } });
        })),
        h("td", {}, fmtTime(row.period_end))));
    }
    clear(pager);
    if (cursor) {
      const previous = trail[trail.length - 1];
      pager.append(h("a", { class: "button", id: "page-newer", href: toHash({ ...filters,
        cursor: previous && previous !== "-" ? previous : undefined, trail: trail.slice(0, -1).join(",") || undefined }) },
      t("newer")));
      pager.append(h("a", { class: "button", href: toHash(filters) }, t("page_first")));
    }
    if (page.next) {
      pager.append(h("a", { class: "button", id: "page-older",
        href: toHash({ ...filters, cursor: page.next, trail: [...trail, cursor || "-"].join(",") }) }, t("older")));
    }
  };

  draw(await request());
  main.dataset.ready = "1";
  const timer = cursor ? null : setInterval(async () => {
    try { draw(await request()); } catch { /* the next tick tries again */ }
  }, REFRESH_MS);
  return () => clearInterval(timer);
}
