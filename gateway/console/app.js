// The console's shell: who is logged in, the navigation, the language, and the router that puts
// one page at a time into <main>. Pages are modules with `render(main, params)` returning a function
// that stops whatever the page left running (timers, streams).

import { api, logIn, logOut, onUnauthorized, session, whoAmI } from "./api.js";
import { clear, h } from "./dom.js";
import { LANGUAGES, lang, setLanguage, t } from "./i18n.js";
import * as live from "./live.js";

const PAGES = {
  escorts: () => import("./escorts.js"),
  escort: () => import("./escort.js"),
  alarms: () => import("./alarms.js"),
  seals: () => import("./seals.js"),
  activate: () => import("./activate.js"),
};

const main = document.getElementById("main");
const header = document.getElementById("header");
let stopPage = null;
let renderId = 0;

export function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function parse() {
  const [path, q] = (location.hash.replace(/^#/, "") || "/escorts").split("?");
  const parts = path.split("/").filter(Boolean);
  const params = Object.fromEntries(new URLSearchParams(q || ""));
  if (parts[0] === "escorts" && parts[1]) return { page: "escort", params: { ...params, id: parts[1] } };
  return { page: PAGES[parts[0]] ? parts[0] : "escorts", params };
}

async function route() {
  const id = ++renderId;
  if (stopPage) { stopPage(); stopPage = null; }
  if (!session.me) { renderLogin(); return; }
  const { page, params } = parse();
  drawHeader(page);
  clear(main).append(h("p", { class: "muted" }, t("loading")));
  document.body.dataset.page = page;
  try {
    const module = await PAGES[page]();
    if (id !== renderId) return;
    clear(main);
    stopPage = (await module.render(main, params)) || null;
  } catch (err) {
    if (id !== renderId) return;
    clear(main).append(errorBox(err));
  }
}

export function errorBox(err) {
  const message = err.status === 403 ? t("error_forbidden") : err.status === 404 ? t("error_not_found") : err.message;
  return h("div", { class: "error", role: "alert" }, `${t("error")}: ${message}`);
}

function drawHeader(page) {
  const me = session.me;
  const link = (name, label, extra) => h("a", { href: `#/${name}`, class: page === name || (name === "escorts" && page === "escort") ? "active" : "",
    id: `nav-${name}` }, label, extra);
  const select = h("select", { id: "lang", "aria-label": "language", onchange: (e) => { setLanguage(e.target.value); route(); } },
    Object.entries(LANGUAGES).map(([code, name]) => h("option", { value: code, selected: code === lang }, name)));
  clear(header).append(
    h("span", { class: "brand" }, t("app")),
    h("nav", {}, link("escorts", t("nav_escorts")), link("alarms", t("nav_alarms"), live.badge()), link("seals", t("nav_seals"))),
    h("span", { class: "spacer" }),
    h("span", { class: "who", id: "who" }, `${me.user} · ${me.role}${me.offices.length ? " · " + me.offices.join(", ") : ""}`),
    select,
    h("button", { class: "link", id: "logout", onclick: async () => { live.stop(true); await logOut(); route(); } }, t("logout")),
  );
}

function renderLogin(message) {
  document.body.dataset.page = "login";
  clear(header).append(h("span", { class: "brand" }, t("app")), h("span", { class: "spacer" }),
    h("select", { id: "lang", "aria-label": "language", onchange: (e) => { setLanguage(e.target.value); renderLogin(message); } },
      Object.entries(LANGUAGES).map(([code, name]) => h("option", { value: code, selected: code === lang }, name))));
  const status = h("p", { class: "error", role: "alert", hidden: !message }, message || "");
  const name = h("input", { id: "login-name", name: "username", autocomplete: "username", required: true });
  const password = h("input", { id: "login-password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const form = h("form", { class: "login card", onsubmit: async (e) => {
    e.preventDefault();
    status.hidden = true;
    try {
      await logIn(name.value.trim(), password.value);
      live.start();
      route();
    } catch (err) {
      status.textContent = err.status === 401 ? t("login_failed") : `${t("error")}: ${err.message}`;
      status.hidden = false;
    }
  } },
  h("h1", {}, t("login_title")),
  h("label", {}, t("login_name"), name), h("label", {}, t("login_password"), password),
  status, h("button", { type: "submit", id: "login-submit" }, t("login_submit")));
  clear(main).append(form);
  name.focus();
}

onUnauthorized(() => {
  if (!session.me) return;
  session.me = null;
  live.stop();
  if (stopPage) { stopPage(); stopPage = null; }
  renderLogin(t("session_ended"));
});

window.addEventListener("hashchange", route);

(async () => {
  try {
    await whoAmI();
  } catch (err) {
    clear(main).append(errorBox(err));
    return;
  }
  if (session.me) live.start();
  route();
})();

export { api };
