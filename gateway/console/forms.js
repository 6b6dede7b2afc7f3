// Forms that change something: the clause 13 deactivation request and the clause 8 activation.
// The browser checks what it can before sending (the officer's three readings against the
// escort, the formats of numbers and codes) so a mistake is seen where it was made; the gateway
// checks everything again and its refusal is shown as it says it.

import { api } from "./api.js";
import { clear, h } from "./dom.js";
import { t } from "./i18n.js";

export const FORMATS = {
  declaration: /^[0-9]{5,8}\/[0-9]{6}\/[0-9]{7}$/,
  vehicle: /^[0-9A-ZА-ЯЁӘҒҚҢӨҰҮҺІ](?:[0-9A-ZА-ЯЁӘҒҚҢӨҰҮҺІ -]*[0-9A-ZА-ЯЁӘҒҚҢӨҰҮҺІ])?$/,
  office: /^[0-9]{5,8}$/,
  seal: /^[0-9]{1,10}$/,
};

function field(id, label, attrs = {}) {
  const input = h("input", { id, name: id, autocomplete: "off", ...attrs });
  const note = h("span", { class: "check", id: `${id}-check` });
  return { input, note, row: h("label", { class: "field" }, h("span", {}, label), input, note) };
}

function refusal(err) {
  return h("p", { class: "error", role: "alert", id: "form-error" }, `${t("error")}: ${err.message}`);
}

// Clause 13: the destination office sends seal number, declaration and vehicle; the officer reads
// them off the seal, the documents and the plate. Sending is possible only when all three match.
export function deactivationForm(escort, { onDone, onCancel }) {
  const expected = { seal: String(escort.seal_id), declaration: escort.declaration, vehicle: escort.vehicle };
  const fields = {
    seal: field("d-seal", t("f_seal"), { inputmode: "numeric" }),
    declaration: field("d-declaration", t("f_declaration")),
    vehicle: field("d-vehicle", t("f_vehicle")),
  };
  const send = h("button", { type: "submit", id: "d-send", disabled: true }, t("send"));
  const status = h("div");
  const check = () => {
    let all = true;
    for (const [name, f] of Object.entries(fields)) {
      const value = name === "vehicle" ? f.input.value.trim().toUpperCase() : f.input.value.trim();
      const ok = value === expected[name];
      all = all && ok;
      f.note.textContent = value ? (ok ? `✓ ${t("matches")}` : `✗ ${t("differs")}`) : "";
      f.note.className = `check ${value ? (ok ? "ok" : "bad") : ""}`;
    }
    send.disabled = !all;
  };
  for (const f of Object.values(fields)) f.input.addEventListener("input", check);
  const form = h("form", { class: "card form", id: "deactivate-form", onsubmit: async (e) => {
    e.preventDefault();
    send.disabled = true;
    clear(status);
    try {
      await api("/v1/escorts/deactivate", { method: "POST", body: { seal_id: Number(fields.seal.input.value.trim()),
        declaration: fields.declaration.input.value.trim(), vehicle: fields.vehicle.input.value.trim().toUpperCase() } });
      status.append(h("p", { class: "ok", id: "form-done" }, t("deact_sent")));
      setTimeout(onDone, 1200);
    } catch (err) {
      status.append(refusal(err));
      check();
    }
  } },
  h("h3", {}, t("deact_title")), h("p", { class: "muted" }, t("deact_help")),
  Object.values(fields).map((f) => f.row), status,
  h("div", { class: "buttons" }, send, h("button", { type: "button", class: "link", onclick: onCancel }, t("cancel"))));
  setTimeout(() => fields.seal.input.focus(), 0);
  return form;
}

function localInput(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

// Clause 8: what the office of departure gives the operator. `from`: an earlier escort to copy.
export function activationForm({ seal, from, onDone }) {
  const now = new Date();
  const end = new Date(now.getTime() + 3 * 86400000);
  const f = {
    seal: field("a-seal", t("f_seal"), { inputmode: "numeric", value: seal || (from && from.seal_id) || "" }),
    declaration: field("a-declaration", t("f_declaration"), { value: from ? from.declaration : "", placeholder: "10228010/261126/0000001" }),
    vehicle: field("a-vehicle", t("f_vehicle"), { value: from ? from.vehicle : "", placeholder: "123ABC02" }),
    depCode: field("a-dep-code", t("f_dep_code"), { value: from ? from.departure_office.code : "" }),
    depName: field("a-dep-name", t("f_dep_name"), { value: from ? from.departure_office.name : "" }),
    destCode: field("a-dest-code", t("f_dest_code"), { value: from ? from.destination_office.code : "" }),
    destName: field("a-dest-name", t("f_dest_name"), { value: from ? from.destination_office.name : "" }),
    start: field("a-start", t("f_period_start"), { type: "datetime-local", value: localInput(now) }),
    end: field("a-end", t("f_period_end"), { type: "datetime-local", value: localInput(end) }),
    corridor: field("a-corridor", t("f_corridor_m"), { type: "number", min: 0, max: 100000, value: from ? from.corridor_m : 2000 }),
  };
  const routeFile = h("input", { id: "a-route", type: "file", accept: ".geojson,.json,.gpx,application/geo+json,application/gpx+xml" });
  const formats = [["seal", FORMATS.seal, "bad_seal"], ["declaration", FORMATS.declaration, "bad_declaration"],
    ["vehicle", FORMATS.vehicle, "bad_plate"], ["depCode", FORMATS.office, "bad_office"], ["destCode", FORMATS.office, "bad_office"]];
  const send = h("button", { type: "submit", id: "a-send" }, t("send"));
  const status = h("div");
  const check = () => {
    let ok = true;
    for (const [name, pattern, message] of formats) {
      const value = f[name].input.value.trim();
      const good = pattern.test(name === "vehicle" ? value.toUpperCase() : value);
      f[name].note.textContent = value && !good ? `✗ ${t(message)}` : "";
      f[name].note.className = `check ${value && !good ? "bad" : ""}`;
      ok = ok && good;
    }
    for (const name of ["depName", "destName", "start", "end"]) ok = ok && !!f[name].input.value.trim();
    send.disabled = !ok;
    return ok;
  };
  for (const x of Object.values(f)) x.input.addEventListener("input", check);
  const form = h("form", { class: "card form", id: "activate-form", onsubmit: async (e) => {
    e.preventDefault();
    if (!check()) return;
    send.disabled = true;
    clear(status);
    const body = {
      seal_id: Number(f.seal.input.value.trim()), declaration: f.declaration.input.value.trim(),
      vehicle: f.vehicle.input.value.trim().toUpperCase(),
      departure_office_code: f.depCode.input.value.trim(), departure_office_name: f.depName.input.value.trim(),
      dest_office_code: f.destCode.input.value.trim(), dest_office_name: f.destName.input.value.trim(),
      period_start: new Date(f.start.input.value).toISOString(), period_end: new Date(f.end.input.value).toISOString(),
      corridor_m: Number(f.corridor.input.value || 0),
    };
    try {
      const file = routeFile.files && routeFile.files[0];
      if (file) {
        const text = await file.text();
        body.route = text.trimStart().startsWith("<") ? text : JSON.parse(text);
      }
      const answer = await api("/v1/escorts/activate", { method: "POST", body });
      status.append(h("p", { class: "ok", id: "form-done" }, t("act_sent", { id: answer.escort.escort_id })));
      setTimeout(() => onDone(answer.escort), 1200);
    } catch (err) {
      status.append(refusal(err));
      send.disabled = false;
    }
  } },
  h("h2", {}, t("act_title")), h("p", { class: "muted" }, t("act_help")),
  Object.values(f).map((x) => x.row), h("label", { class: "field" }, h("span", {}, t("f_route_file")), routeFile), status,
  h("div", { class: "buttons" }, send));
  check();
  return form;
}
