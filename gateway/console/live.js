// The live alarm feed: one server-sent-event stream per tab while logged in. Pages subscribe to its
// messages (alarm, ack, notify_overdue); the navigation shows how many alarms came in since the
// alarms page was last looked at. EventSource reconnects by itself and sends the last message id
// back, so nothing is missed; if the server refused the stream (the session ended) it stops.

import { api } from "./api.js";
import { h } from "./dom.js";

const subscribers = new Set();
let source = null;
let unseen = 0;
let state = "off";
const badgeEl = h("span", { class: "count", id: "alarm-count", hidden: true });
let retryTimer = null;
let lastId = null; // "<outbox_id>:<ack_id>" of the last message: where a restarted stream resumes

export function badge() { return badgeEl; }
export function status() { return state; }

function setUnseen(n) {
  unseen = n;
  badgeEl.textContent = String(n);
  badgeEl.hidden = n === 0;
}

export function markSeen() { setUnseen(0); }

export function subscribe(fn) {
  subscribers.add(fn);
  return () => subscribers.delete(fn);
}

function publish(kind, data) {
  for (const fn of subscribers) {
    try { fn(kind, data); } catch (err) { console.error(err); }
  }
}

export async function start() {
  stop();
  let after = null, acksAfter = null;
  if (lastId) [after, acksAfter] = lastId.split(":").map(Number);
  if (after == null || acksAfter == null) {
    try {
      const page = await api("/v1/alarms?limit=1");
      after = page.stream_after;
      acksAfter = page.acks_after;
    } catch {
      retryTimer = setTimeout(() => start(), 5000);
      return;
    }
  }
  source = new EventSource(`/v1/alarms/stream?after=${after}&acks_after=${acksAfter}`);
  state = "connecting";
  source.onopen = () => { state = "live"; publish("state", state); };
  for (const kind of ["alarm", "ack", "notify_overdue"]) {
    source.addEventListener(kind, (e) => {
      if (e.lastEventId) lastId = e.lastEventId;
      const data = JSON.parse(e.data);
      if (kind === "alarm" && document.body.dataset.page !== "alarms") setUnseen(unseen + 1);
      publish(kind, data);
    });
  }
  source.onerror = () => {
    if (source && source.readyState === EventSource.CLOSED) {
      // Refused (e.g. the session ended): try again later; a 401 elsewhere shows the login form.
      state = "off";
      publish("state", state);
      source = null;
      retryTimer = setTimeout(() => start(), 5000);
    } else {
      state = "reconnecting";
      publish("state", state);
    }
  };
}

export function stop(forget = false) {
  if (forget) { lastId = null; setUnseen(0); }
  clearTimeout(retryTimer);
  if (source) source.close();
  source = null;
  state = "off";
}
