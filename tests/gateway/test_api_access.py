"""Access and trust at the HTTP API: the role x route table, refusals audited and harmless, an
officer's office scope, re-keying, test keys, sessions with CSRF, and the OpenAPI document."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from fixtures_postgres import engine_overrides
from gateway_harness import OFFICER_OFFICE, activation_body, get_json, make_tokens, post_json
from pipeline_support import FakeSeal
from navseal.bench.seal_frames import SealFrames
from navseal.gateway.api import MissingRule, build_app, check_rules, openapi_document, routes
from navseal.gateway.api.policy import PUBLIC, ROUTE_ROLES
from navseal.gateway.auth import ROLES, token_id_of
from navseal.gateway.config import ConfigError, load_config
from navseal.gateway.service import GatewayService
from navseal.protocol import test_key

DOCS = Path(__file__).resolve().parents[2] / "docs"
ALL = ROLES + (PUBLIC,)

# Every store these tests open is on SQLite, then on PostgreSQL (tests/fixtures_postgres.py).
pytestmark = pytest.mark.usefixtures("store_engine")


def start(tmp_path, **overrides) -> GatewayService:
    config = load_config(None, **engine_overrides(tmp_path / "gw.sqlite3"), http_port=0, mqtt_host="", **overrides)
    svc = GatewayService(config, enable_mqtt=False)
    svc.tokens = make_tokens(config.db_path, passwords=True)
    svc.start()
    svc.api = svc.http.url
    return svc


@pytest.fixture
def gw(tmp_path):
    svc = start(tmp_path, dev_test_keys=True)
    yield svc
    svc.stop()


def call(svc, method: str, path: str, body=None, role: str | None = None, headers: dict | None = None):
    token = svc.tokens.get(role) if role else None
    data = json.dumps(body).encode() if body is not None else (b"{}" if method == "POST" else None)
    req = urllib.request.Request(svc.api + path, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {}),
                                          **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            if resp.headers.get_content_type() == "text/event-stream":
                return resp.status, None  # a live feed: admitted; it would run until the server ends it
            raw = resp.read()
            return resp.status, (json.loads(raw) if raw and resp.headers.get_content_type() == "application/json"
                                 else raw.decode())
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, json.loads(raw) if raw else None


def concrete(path: str) -> str:
    return (path.replace("{name}", "nobody").replace("{token_id}", "0" * 16).replace("{escort_id}", "1")
            .replace("{event_id}", "0" * 32).replace("{name:path}", "nothing.js"))


def audit_rows(svc) -> list[dict]:
    return svc.store.audit_rows(limit=100_000)


# -- the table ------------------------------------------------------------------------------


def test_every_route_has_a_rule_and_an_app_with_a_new_route_without_one_refuses_to_build():
    assert set(routes(build_app(None))) == set(ROUTE_ROLES)
    app = build_app(None)

    @app.get("/v1/new-thing")
    def new_thing() -> dict:
        return {}

    with pytest.raises(MissingRule, match="/v1/new-thing"):
        check_rules(app)


def test_the_table_in_docs_is_the_enforced_table():
    text = (DOCS / "gateway.md").read_text().split("### Who may call what", 1)[1]
    lines = [line for line in text.splitlines() if line.startswith("|")]
    start = next(i for i, line in enumerate(lines) if line.startswith("| method | path | admin"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    documented = {}
    for line in lines[start + 2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != len(header):
            break
        method, path = cells[0], cells[1].strip("`")
        documented[(method, path)] = frozenset(role for role, mark in zip(header[2:], cells[2:]) if mark == "x")
    assert documented == dict(ROUTE_ROLES)


def test_every_route_with_every_role_allows_exactly_the_table(gw):
    """Each route x (admin, operator, officer, auditor, no credentials): allowed ones pass the gate
    (whatever the handler then says about the dummy body), the others get 401/403 and change nothing."""
    before = gw.store.counts()
    for (method, path), allowed in sorted(ROUTE_ROLES.items()):
        for role in ALL:
            status, body = call(gw, method, concrete(path), role=None if role == PUBLIC else role)
            if role in allowed or PUBLIC in allowed:
                assert status not in (401, 403), (method, path, role, status, body)
            elif role == PUBLIC:
                assert (status, body["error"]) == (401, "unauthorized"), (method, path, role)
            else:
                assert (status, body["error"]) == (403, "forbidden"), (method, path, role, status, body)
    assert gw.store.counts() == before  # nothing changed: no seal, escort, event
    refused = [r for r in audit_rows(gw) if r["action"] == "request.refused"]
    expected = sum(1 for allowed in ROUTE_ROLES.values() if PUBLIC not in allowed
                   for role in ALL if role not in allowed)
    assert len(refused) == expected and all(r["outcome"] == "refused" for r in refused)


def test_a_refused_request_changes_nothing_and_is_audited(gw):
    seal = SealFrames(1001)
    for role, want in ((None, 401), ("auditor", 403), ("officer", 403)):
        status, body = call(gw, "POST", "/v1/seals", {"seal_id": 1001, "key": seal.key.hex()}, role=role)
        assert status == want, body
    status, body = call(gw, "POST", "/v1/seals", {"seal_id": 1001, "key": seal.key.hex()},
                        headers={"Authorization": "Bearer nst_0123456789abcdef_" + "A" * 43})
    assert (status, body["error"]) == (401, "unauthorized")
    assert gw.store.counts()["seals"] == 0 and gw.store.seal_key(1001) is None
    refused = [(r["actor_user"], r["actor_role"], r["target"]) for r in audit_rows(gw) if r["outcome"] == "refused"]
    assert all(json.loads(r["details"])["client"] == "127.0.0.1" for r in audit_rows(gw) if r["outcome"] == "refused")
    assert refused == [("anonymous", "anonymous", "POST /v1/seals"), ("auditor", "auditor", "POST /v1/seals"),
                       ("officer", "officer", "POST /v1/seals"), ("anonymous", "anonymous", "POST /v1/seals")]


def test_a_disabled_user_and_a_revoked_token_are_refused_at_once(gw):
    assert call(gw, "GET", "/v1/me", role="auditor")[0] == 200
    status, user = call(gw, "POST", "/v1/users/auditor/disable", {}, role="admin")
    assert status == 200 and user["disabled"] is True
    assert call(gw, "GET", "/v1/me", role="auditor")[0] == 401  # even though its check was cached
    status, issued = call(gw, "POST", "/v1/users/operator/tokens", {"label": "ci"}, role="admin")
    assert status == 201
    gw.tokens["ci"] = issued["token"]
    assert call(gw, "GET", "/v1/me", role="ci")[1]["user"] == "operator"
    assert call(gw, "DELETE", f"/v1/tokens/{issued['token_id']}", role="admin")[0] == 204
    assert call(gw, "GET", "/v1/me", role="ci")[0] == 401


# -- decisions carry who made them ------------------------------------------------------------


def test_officer_sees_and_deactivates_only_the_escorts_of_their_offices(gw):
    for seal_id in (1001, 1002):
        assert call(gw, "POST", "/v1/seals", {"seal_id": seal_id, "key": test_key(seal_id).hex()}, role="operator")[0] == 201
    mine = activation_body(1001)  # destination OFFICER_OFFICE
    other = activation_body(1002, dest_office_code="10299999", departure_office_code="10288888")
    assert mine["dest_office_code"] == OFFICER_OFFICE
    for body in (mine, other):
        assert call(gw, "POST", "/v1/escorts/activate", body, role="operator")[0] == 202
    status, listed = call(gw, "GET", "/v1/escorts", role="officer")
    assert status == 200 and [e["seal_id"] for e in listed["escorts"]] == [1001]
    assert call(gw, "GET", "/v1/escorts?seal_id=1002", role="officer")[1] == {"escorts": [], "next": None}
    assert [e["seal_id"] for e in call(gw, "GET", "/v1/status", role="auditor")[1]["escorts"]] == [1001, 1002]

    status, body = call(gw, "POST", "/v1/escorts/deactivate",
                        {k: other[k] for k in ("seal_id", "declaration", "vehicle")}, role="officer")
    assert (status, body["error"]) == (403, "forbidden") and other["declaration"] not in body["message"]
    status, body = call(gw, "POST", "/v1/escorts/deactivate",
                        {k: mine[k] for k in ("seal_id", "declaration", "vehicle")}, role="officer")
    assert status == 202 and body["escort"]["status"] == "deactivation_requested"
    assert body["escort"]["deactivation_requested_by"] == {"user": "officer", "role": "officer",
                                                           "office": OFFICER_OFFICE, "via": "token"}
    [requested] = gw.store.events(kind="DEACTIVATION_REQUESTED")
    assert requested["details"]["requested_by"]["user"] == "officer"
    rows = [(r["action"], r["actor_user"], r["actor_office"], r["outcome"]) for r in audit_rows(gw)
            if r["action"].startswith("escort.")]
    assert rows == [("escort.activate", "operator", "10228010", "ok"), ("escort.activate", "operator", "10288888", "ok"),
                    ("escort.deactivate", "officer", None, "refused"),
                    ("escort.deactivate", "officer", OFFICER_OFFICE, "ok")]


def test_rekeying_an_escorted_seal_needs_an_admin_and_force_and_is_evented(gw):
    assert call(gw, "POST", "/v1/seals", {"seal_id": 1001, "key": test_key(1001).hex()}, role="operator")[0] == 201
    assert call(gw, "POST", "/v1/escorts/activate", activation_body(1001), role="operator")[0] == 202
    new_key = bytes(range(32)).hex()
    status, body = call(gw, "POST", "/v1/seals", {"seal_id": 1001, "key": new_key}, role="operator")
    assert (status, body["error"]) == (403, "forbidden")
    status, body = call(gw, "POST", "/v1/seals", {"seal_id": 1001, "key": new_key, "force": True}, role="operator")
    assert (status, body["error"]) == (403, "forbidden")
    status, body = call(gw, "POST", "/v1/seals", {"seal_id": 1001, "key": new_key}, role="admin")
    assert (status, body["error"]) == (409, "escorted")
    assert gw.store.seal_key(1001) == test_key(1001) and gw.store.events(kind="SEAL_REKEYED") == []
    status, body = call(gw, "POST", "/v1/seals", {"seal_id": 1001, "key": new_key, "force": True}, role="admin")
    assert status == 201 and body == {"seal_id": 1001, "provisioned": True, "rekeyed": True, "forced": True}
    assert gw.store.seal_key(1001) == bytes(range(32))
    [event] = gw.store.events(kind="SEAL_REKEYED")
    assert event["escort_id"] == 1 and event["details"]["forced"] is True
    assert event["details"]["rekeyed_by"] == {"user": "admin", "role": "admin", "office": None, "via": "token"}
    rows = [(r["action"], r["actor_role"], r["outcome"]) for r in audit_rows(gw) if r["target"] == "seal:1001"]
    assert rows == [("seal.provision", "operator", "ok"), ("seal.provision", "operator", "refused"),
                    ("seal.provision", "operator", "refused"), ("seal.provision", "admin", "refused"),
                    ("seal.rekey", "admin", "ok")]


def test_a_production_gateway_refuses_test_keys(tmp_path):
    svc = start(tmp_path)  # no dev_test_keys
    try:
        status, health = get_json(svc.api + "/healthz")
        assert health["dev_test_keys"] is False
        status, body = call(svc, "POST", "/v1/seals", {"seal_id": 1001, "key": test_key(1001).hex()}, role="admin")
        assert (status, body["error"]) == (400, "test_key")
        assert svc.store.seal_key(1001) is None
        assert call(svc, "POST", "/v1/seals", {"seal_id": 1001, "key": "ab" * 32}, role="admin")[0] == 201
    finally:
        svc.stop()
    # A test key that got into the store anyway (e.g. an old database): the gateway will not start.
    config = load_config(None, **engine_overrides(tmp_path / "gw.sqlite3"), http_port=0, mqtt_host="")
    svc = GatewayService(config, enable_mqtt=False, http=False)
    svc.pipeline.provision_seal(1002, test_key(1002))
    with pytest.raises(ConfigError, match="seal.*1002.*published test key"):
        svc.start()
    svc.store.close()


# -- sessions ------------------------------------------------------------------------------------


def test_browser_session_cookie_is_secure_and_changes_need_the_csrf_token(gw):
    body = json.dumps({"name": "admin", "password": "admin-password-123"}).encode()
    req = urllib.request.Request(gw.api + "/v1/session", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as resp:
        cookie = resp.headers["Set-Cookie"]
        me = json.loads(resp.read())
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "secure", "samesite", "path"} <= attributes and "samesite=strict" in cookie.lower()
    session = {"Cookie": cookie.split(";")[0]}
    assert me["user"] == "admin" and me["via"] == "session" and me["csrf"]
    assert call(gw, "GET", "/v1/me", headers=session)[1]["user"] == "admin"
    new_user = {"name": "bob", "role": "auditor"}
    status, body = call(gw, "POST", "/v1/users", new_user, headers=session)
    assert (status, body["error"]) == (403, "forbidden") and "CSRF" in body["message"]
    status, body = call(gw, "POST", "/v1/users", new_user, headers={**session, "X-CSRF-Token": me["csrf"]})
    assert status == 201 and body["name"] == "bob"
    assert call(gw, "DELETE", "/v1/session", headers={**session, "X-CSRF-Token": me["csrf"]})[0] == 204
    assert call(gw, "GET", "/v1/me", headers=session)[0] == 401
    status, body = post_json(gw.api + "/v1/session", {"name": "admin", "password": "wrong-password-1"})
    assert (status, body["error"]) == (401, "unauthorized")


def test_password_guessing_is_throttled_per_name_and_audited(gw):
    wrong = {"name": "officer", "password": "not-the-password-1"}
    for _ in range(5):
        assert post_json(gw.api + "/v1/session", wrong)[0] == 401
    # The sixth try is refused before any check: even the right password waits out the window.
    req = urllib.request.Request(gw.api + "/v1/session", method="POST", headers={"Content-Type": "application/json"},
                                 data=json.dumps({"name": "officer", "password": "officer-password-123"}).encode())
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=30)
    assert refused.value.code == 429 and 800 < int(refused.value.headers["Retry-After"]) <= 901
    assert json.loads(refused.value.read())["error"] == "too_many_attempts"
    # Another name from the same client is not locked out by these five.
    assert post_json(gw.api + "/v1/session", {"name": "admin", "password": "admin-password-123"})[0] == 200
    reasons = [json.loads(r["details"]).get("reason") for r in audit_rows(gw) if r["action"] == "session.login"
               and r["target"] == "user:officer"]
    assert reasons == ["wrong name or password"] * 5 + ["too many failed logins"]


def test_health_tells_strangers_the_status_only_and_users_what_is_inside(gw):
    status, public = get_json(gw.api + "/healthz")
    assert status == 200 and public == {"status": "ok", "dev_test_keys": True}
    status, inside = call(gw, "GET", "/healthz", role="auditor")
    assert status == 200 and inside["problems"] == [] and isinstance(inside["outbox_depth"], dict)
    assert inside["queue"] == 0


def test_a_token_records_when_it_was_last_used(gw):
    token_id = token_id_of(gw.tokens["auditor"])
    with gw.store.transaction() as tx:
        assert tx.get_token(token_id)["last_used_at"] is None
    assert call(gw, "GET", "/v1/me", role="auditor")[0] == 200
    with gw.store.transaction() as tx:
        first = tx.get_token(token_id)["last_used_at"]
    assert first is not None and abs(first - time.time()) < 60
    assert call(gw, "GET", "/v1/me", role="auditor")[0] == 200  # within a minute: not written again
    with gw.store.transaction() as tx:
        assert tx.get_token(token_id)["last_used_at"] == first


# -- every route, used as meant ----------------------------------------------------------------


def test_every_documented_route_works_for_its_role(gw):
    """One pass through the whole API with the roles the table allows; every route of the OpenAPI
    document answers 2xx at least once here."""
    seen: set[tuple[str, str]] = set()

    def ok(method, path, fmt=None, body=None, role=None, want=(200, 201, 202, 204), **kw):
        status, answer = call(gw, method, path, body, role=role, **kw)
        assert status in want, (method, path, status, answer)
        seen.add((method, fmt or path.split("?")[0]))
        return answer

    ok("GET", "/healthz")
    ok("GET", "/openapi.json")
    ok("POST", "/v1/seals", body={"seal_id": 1001, "key": test_key(1001).hex()}, role="operator")
    ok("POST", "/v1/escorts/activate", body=activation_body(1001), role="operator")
    ok("GET", "/v1/escorts?seal_id=1001", role="officer")
    ok("GET", "/v1/status", role="auditor")
    ok("POST", "/v1/escorts/deactivate", body={k: activation_body(1001)[k] for k in ("seal_id", "declaration", "vehicle")},
       role="operator")
    ok("GET", "/v1/outbox", role="auditor")
    metrics = ok("GET", "/metrics", role="admin")
    assert "navseal_frames_total" in metrics
    assert ok("GET", "/v1/audit?after_seq=0&limit=2", role="auditor")["next_after_seq"] == 2
    ok("GET", "/v1/users", role="admin")
    ok("POST", "/v1/users", body={"name": "carol", "role": "officer", "offices": ["50508"]}, role="admin")
    token = ok("POST", "/v1/users/carol/tokens", "/v1/users/{name}/tokens", body={"expires_in_s": 3600}, role="admin")
    ok("DELETE", f"/v1/tokens/{token['token_id']}", "/v1/tokens/{token_id}", role="admin")
    ok("POST", "/v1/users/carol/disable", "/v1/users/{name}/disable", role="admin")
    ok("GET", "/v1/me", role="operator")
    me = ok("POST", "/v1/session", body={"name": "officer", "password": "officer-password-123"})
    assert me["role"] == "officer"
    ok("DELETE", "/v1/session", role="officer")
    # The console's reads, and an alarm (a seal that refuses ACTIVATE) to acknowledge.
    ok("POST", "/v1/seals", body={"seal_id": 1002, "key": test_key(1002).hex()}, role="admin")
    ok("POST", "/v1/escorts/activate", body=activation_body(1002), role="operator")
    seal = FakeSeal(1002)
    result = gw.pipeline.handle_uplink(seal.hello(gw.clock()), "test")
    (command,) = [raw for _, raw in result.downlink if seal.decode(raw).type == "ACTIVATE"]
    gw.pipeline.handle_uplink(seal.command_result(gw.clock(), command, "LOCK_OPEN"), "test")
    rows = ok("GET", "/v1/console/escorts?alarm=any", "/v1/console/escorts", role="officer")["rows"]
    assert [(r["seal_id"], r["state"]) for r in rows] == [(1002, "failed")]
    ok("GET", f"/v1/escorts/{rows[0]['escort_id']}/track", "/v1/escorts/{escort_id}/track", role="auditor")
    ok("GET", f"/v1/escorts/{rows[0]['escort_id']}/events", "/v1/escorts/{escort_id}/events", role="officer")
    [alarm] = ok("GET", "/v1/alarms", role="officer")["items"]
    assert alarm["event"]["kind"] == "ACTIVATION_FAILED" and alarm["acks"] == []
    ok("GET", "/v1/alarms/stream?after=0&acks_after=0", "/v1/alarms/stream", role="officer")
    ok("POST", f"/v1/alarms/{alarm['event']['event_id']}/ack", "/v1/alarms/{event_id}/ack", body={"note": "seen"},
       role="officer")
    assert [s["seal_id"] for s in ok("GET", "/v1/seals", role="auditor")["rows"]] == [1001, 1002]
    # A seal's trust, for an admin: a new key, a replay window reset (both audited).
    new_key = bytes(range(32)).hex()
    assert ok("POST", "/v1/seals/1001/rekey", "/v1/seals/{seal_id}/rekey", body={"key": new_key, "force": True},
              role="admin")["rekeyed"] is True
    reset = ok("POST", "/v1/seals/1002/reset-replay", "/v1/seals/{seal_id}/reset-replay", role="admin")
    assert reset["reset"] is True and reset["previous"]["boot"] == 1
    assert call(gw, "POST", "/v1/seals/4242/reset-replay", role="admin")[0] == 404
    actions = [r["action"] for r in gw.store.audit_rows(limit=10_000)]
    assert "seal.rekey" in actions and "seal.reset_replay" in actions
    # Dead letters: an event a sink refused for good, listed and sent again.
    dead_id = gw.store.outbox_dead_letter("ops", 1, alarm["event"]["event_id"], "HTTP 422", gw.clock())
    assert [d["dead_letter_id"] for d in ok("GET", "/v1/dead-letters", role="auditor")["items"]] == [dead_id]
    assert ok("POST", f"/v1/dead-letters/{dead_id}/replay", "/v1/dead-letters/{dead_letter_id}/replay",
              role="admin")["status"] == "replay"
    # The console's own files: public, no data in them.
    assert "navseal" in ok("GET", "/")
    ok("GET", "/console/")
    ok("GET", "/console/app/app.js", "/console/app/{name:path}")
    ok("GET", "/console/vendor/leaflet.js", "/console/vendor/{name:path}")
    documented = {(m.upper(), p) for p, ops in openapi_document()["paths"].items() for m in ops}
    console_files = {r for r in ROUTE_ROLES if r[1] == "/" or r[1].startswith("/console/")}
    assert documented | {("GET", "/openapi.json")} | console_files == seen == set(ROUTE_ROLES)


def test_openapi_document_in_docs_is_the_one_the_gateway_serves(gw):
    served = get_json(gw.api + "/openapi.json")[1]
    assert served == openapi_document()
    assert json.loads((DOCS / "openapi.json").read_text()) == served, \
        "docs/openapi.json is stale: regenerate with `navseal gateway openapi > docs/openapi.json`"

