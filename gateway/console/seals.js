// Page 4, the seals: firmware version, last contact, battery, lock, the journal backlog the seal
// last reported (records it still holds unacknowledged), and the escort it is on. Paginated by
// seal number; refreshes itself on the first page.

import { api, query, session } from "./api.js";
import { badge, clear, h } from "./dom.js";
import { fmtAge, fmtNumber, t } from "./i18n.js";
import { STATE_COLORS } from "./escorts.js";

const REFRESH_MS = 15000;

function lockText(lock) {
  if (!lock || lock.cable_intact == null) return t("unknown");
  if (lock.cable_intact === false) return t("lock_cable");
  if (lock.housing_closed === false) return t("lock_housing");
  return t("lock_ok");
}

export async function render(main, params) {
  const cursor = params.cursor;
  const me = session.me;
  const tbody = h("tbody", { id: "seal-rows" });
  const pager = h("div", { class: "pager" });
  main.append(h("h1", {}, t("seals_title")), h("table", { class: "grid", id: "seals" },
    h("thead", {}, h("tr", {}, [t("col_seal"), t("col_firmware"), t("col_last_seen"), t("col_battery"), t("col_lock"),
      t("col_backlog"), t("col_escort"), t("col_position"), ""].map((c) => h("th", {}, c)))), tbody), pager);

  const draw = (page) => {
    clear(tbody);
    if (!page.rows.length) tbody.append(h("tr", {}, h("td", { colspan: 9, class: "muted" }, t("no_seals"))));
    for (const s of page.rows) {
      const escort = s.escort;
      tbody.append(h("tr", { dataset: { seal: s.seal_id } },
        h("td", {}, String(s.seal_id)),
        h("td", {}, s.firmware || t("none")),
        h("td", {}, h("span", { class: `dot ${s.online ? "on" : "off"}`, title: s.online ? t("online") : t("offline") }), " ",
          s.last_seen_age_s == null ? t("none") : t("ago", { age: fmtAge(s.last_seen_age_s) })),
        h("td", { class: s.battery_pct != null && s.battery_pct < 20 ? "warn" : "" }, s.battery_pct == null ? t("none") : `${s.battery_pct} %`),
        h("td", { class: s.lock && (s.lock.cable_intact === false || s.lock.housing_closed === false) ? "warn" : "" }, lockText(s.lock)),
        h("td", {}, s.journal_backlog == null ? t("none")
          : `${fmtNumber(s.journal_backlog)}${s.journal_capacity ? ` / ${fmtNumber(s.journal_capacity)}` : ""}`),
        h("td", {}, escort ? [h("a", { href: `#/escorts/${escort.escort_id}` }, `${escort.declaration} · ${escort.vehicle}`), " ",
          badge(t(`st_${escort.state}`), STATE_COLORS[escort.state] || "#616161")] : h("span", { class: "muted" }, t("idle"))),
        h("td", {}, s.last_position ? `${s.last_position.lat.toFixed(4)}, ${s.last_position.lon.toFixed(4)}` : t("none")),
        h("td", {}, me.role === "operator" && !escort
          ? h("a", { class: "button small", href: `#/activate?seal=${s.seal_id}` }, t("activate_seal")) : null)));
    }
    clear(pager);
    if (cursor) pager.append(h("a", { class: "button", href: "#/seals" }, t("page_first")));
    if (page.next) pager.append(h("a", { class: "button", id: "page-older", href: `#/seals${query({ cursor: page.next })}` }, t("older")));
  };
  const load = () => api(`/v1/seals${query({ cursor, limit: 100 })}`);
  draw(await load());
  main.dataset.ready = "1";
  const timer = cursor ? null : setInterval(async () => { try { draw(await load()); } catch { /* next tick */ } }, REFRESH_MS);
  return () => clearInterval(timer);
}
