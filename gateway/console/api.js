// The gateway's HTTP API from the browser: the session cookie goes with every request (same
// origin); changes also send the session's CSRF token. A 401 means the session ended: the app
// shows the login form again.

export const session = { me: null, csrf: null };
const listeners = { unauthorized: [] };

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

export function onUnauthorized(fn) { listeners.unauthorized.push(fn); }

export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && session.csrf) headers["X-CSRF-Token"] = session.csrf;
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal,
    credentials: "same-origin", cache: "no-store",
  });
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { message: text }; }
  }
  if (!response.ok) {
    if (response.status === 401 && path !== "/v1/session") listeners.unauthorized.forEach((fn) => fn());
    throw new ApiError(response.status, data && data.error, data && data.message);
  }
  return data;
}

export async function whoAmI() {
  try {
    session.me = await api("/v1/me");
    session.csrf = session.me.csrf;
  } catch (err) {
    if (err.status !== 401) throw err;
    session.me = null;
  }
  return session.me;
}

export async function logIn(name, password) {
  session.me = await api("/v1/session", { method: "POST", body: { name, password } });
  session.csrf = session.me.csrf;
  return session.me;
}

export async function logOut() {
  try { await api("/v1/session", { method: "DELETE" }); } catch { /* already ended */ }
  session.me = null;
  session.csrf = null;
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}
