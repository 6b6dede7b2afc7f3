// Page 3, the alarm feed: alarms of the user's escorts, newest first, live. Each shows when the
// offices must be told by (clause 11: within the hour), turns red when that passed before anyone
// acknowledged it (or a sink reported the notification late), and who acknowledged it and when.
// Acknowledging asks for an optional note; the gateway records who and when in its audit log.

import { api, query, session } from "./api.js";
import { errorBox } from "./app.js";
import { badge, clear, h } from "./dom.js";
import { fmtAge, fmtTime, t } from "./i18n.js";
import { kindInfo } from "./kinds.js";
import * as live from "./live.js";

const TICK_MS = 5000;

export async function render(main, params) {
  const me = session.me;
  const cursor = params.cursor;
  const page = await api(`/v1/alarms${query({ cursor, limit: 50 })}`);
  const skew = Date.parse(page.now) - Date.now(); // the gateway's clock minus ours: deadlines are on its clock
  const items = new Map();
  const list = h("tbody", { id: "alarm-rows" });
  const liveState = h("span", { class: "live-state", id: "live-state" });
  const pager = h("div", { class: "pager" });
  main.append(h("div", { class: "page-head" }, h("h1", {}, t("alarm_feed")), liveState),
    h("table", { class: "grid", id: "alarms" }, h("thead", {}, h("tr", {},
      [t("t_time"), t("t_kind"), t("a_seal"), t("a_vehicle"), t("a_declaration"), t("a_where"), t("notify_deadline"), ""]
        .map((c) => h("th", {}, c)))), list), pager);

  const showState = (s) => {
    clear(liveState).append(h("span", { class: `dot ${s === "live" ? "on" : "off"}` }), " ", s === "live" ? t("live") : t("reconnecting"));
  };
  showState(live.status());

  function deadlineCell(item) {
    if (!item.notify_deadline) return t("none");
    const left = (Date.parse(item.notify_deadline) - (Date.now() + skew)) / 1000;
    const acked = item.acks.length > 0;
    if (item.notify_overdue) return h("span", { class: "overdue" }, `${fmtTime(item.notify_deadline)} · ${t("notify_overdue")}`);
    return h("span", {}, fmtTime(item.notify_deadline), acked || left <= 0 ? "" : ` (${fmtAge(left)})`);
  }

  function ackCell(item) {
    const cell = h("div", { class: "acks" }, item.acks.map((a) =>
      h("div", { class: "ack" }, t("acked_by", { who: `${a.by.user}${a.by.office ? ` (${a.by.office})` : ""}`, when: fmtTime(a.at) }),
        a.note ? h("em", {}, ` — ${a.note}`) : "")));
    const mine = item.acks.some((a) => a.by.user === me.user);
    if ((me.role === "officer" || me.role === "operator") && !mine) {
      const note = h("input", { class: "ack-note", placeholder: t("ack_note"), maxlength: 500 });
      const button = h("button", { class: "ack-button", onclick: async () => {
        button.disabled = true;
        try {
          const answer = await api(`/v1/alarms/${item.event.event_id}/ack`, { method: "POST", body: { note: note.value.trim() || null } });
          addAck(answer.ack);
        } catch (err) {
          button.disabled = false;
          cell.append(errorBox(err));
        }
      } }, t("acknowledge"));
      cell.append(h("div", { class: "ack-form" }, note, button));
    } else if (!item.acks.length) {
      cell.append(h("span", { class: "muted" }, t("not_acked")));
    }
    return cell;
  }

  function row(item, fresh = false) {
    const e = item.event;
    const info = kindInfo(e.kind, e);
    const p = e.position;
    return h("tr", { class: `alarm-row${item.notify_overdue ? " late" : ""}${fresh ? " fresh" : ""}`,
      dataset: { eventId: e.event_id, kind: e.kind, outbox: item.outbox_id, ...(fresh ? { shownAt: String(Date.now()) } : {}) } },
    h("td", {}, fmtTime(e.occurred_at), fresh ? badge(t("new_alarm"), "#c62828", { class: "badge new" }) : null),
    h("td", {}, badge(info.letter, info.color, { class: "badge letter" }), " ", info.label),
    h("td", {}, String(e.seal_id)),
    h("td", {}, e.vehicle || t("none")),
    h("td", {}, e.escort_id ? h("a", { href: `#/escorts/${e.escort_id}` }, e.declaration || String(e.escort_id)) : t("none")),
    h("td", {}, p && p.lat != null ? `${p.lat.toFixed(4)}, ${p.lon.toFixed(4)}` : t("none")),
    h("td", { class: "deadline" }, deadlineCell(item)),
    h("td", {}, ackCell(item)));
  }

  function redraw(item, fresh) {
    const old = list.querySelector(`tr[data-event-id="${CSS.escape(item.event.event_id)}"]`);
    const next = row(item, fresh || (old && old.classList.contains("fresh")));
    if (old && old.dataset.shownAt) next.dataset.shownAt = old.dataset.shownAt;
    if (old) old.replaceWith(next);
    return next;
  }

  function addAck(ack) {
    const item = items.get(ack.event_id);
    if (!item || item.acks.some((a) => a.ack_id === ack.ack_id)) return;
    item.acks.push(ack);
    redraw(item);
  }

  const empty = h("tr", { id: "no-alarms" }, h("td", { colspan: 8, class: "muted" }, t("no_alarms")));
  for (const item of page.items) { items.set(item.event.event_id, item); list.append(row(item)); }
  if (!page.items.length) list.append(empty);
  if (page.next) pager.append(h("a", { class: "button", id: "page-older", href: `#/alarms${query({ cursor: page.next })}` }, t("older")));
  if (cursor) pager.append(h("a", { class: "button", href: "#/alarms" }, t("page_first")));
  live.markSeen();

  const unsubscribe = live.subscribe((kind, data) => {
    if (kind === "state") { showState(data); return; }
    if (kind === "alarm") {
      if (cursor) return; // an older page stays as it is
      if (items.has(data.event.event_id)) return;
      items.set(data.event.event_id, data);
      empty.remove();
      list.prepend(row(data, true));
    } else if (kind === "ack") {
      addAck(data);
    } else if (kind === "notify_overdue") {
      const item = items.get((data.event.details || {}).alarm_event_id);
      if (item && !item.notify_overdue) { item.notify_overdue = true; redraw(item); }
    }
  });
  const timer = setInterval(() => {
    for (const cell of list.querySelectorAll("tr.alarm-row")) {
      const item = items.get(cell.dataset.eventId);
      if (item) clear(cell.querySelector("td.deadline")).append(deadlineCell(item));
    }
  }, TICK_MS);
  main.dataset.ready = "1";
  return () => { unsubscribe(); clearInterval(timer); };
}
