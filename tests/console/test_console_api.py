"""The console's routes over real HTTP against an in-process gateway fed with real frames:
the escorts table's filters, pages and office scope; the track and events of an escort; the
alarm feed, its live stream and audited acknowledgements; the seals; retention of acknowledgements."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.parse
import urllib.request

import pytest

import world
from gateway_harness import get_json, post_json
from pipeline_support import VirtualClock
from navseal.gateway import auth
from navseal.gateway.config import load_config
from navseal.gateway.service import GatewayService

T0 = 1_795_000_000  # 2026-11-18


def add_users(store, spec: dict[str, tuple[str, list[str]]]) -> dict[str, str]:
    """{name: (role, offices)} -> {name: API token}, as `navseal gateway user add --db` would."""
    tokens = {}
    with store.transaction() as tx:
        for name, (role, offices) in spec.items():
            auth.add_user(tx, name=name, role=role, offices=offices, password=None, now=time.time(),
                          created_by=auth.host_actor())
            tokens[name] = auth.issue_token(tx, name, now=time.time())[1]
    return tokens


USERS = {
    "admin": ("admin", []), "operator": ("operator", []), "auditor": ("auditor", []),
    "dest": ("officer", [world.DEST_OFFICE[0]]),  # Almaty, destination of drives A and C
    "other": ("officer", [world.OTHER_OFFICE[0]]),  # Shymkent, destination of drive B
    "far": ("officer", ["70101"]),  # an office with no escorts at all
}


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    svc = _world(tmp_path_factory)
    yield svc
    svc.stop()


def _world(tmp_path_factory):
    """Three escorts (A cut open, B on its way, C failed) behind a running gateway service."""
    clock = VirtualClock(T0)
    path = tmp_path_factory.mktemp("console-api") / "gw.sqlite3"
    config = load_config(None, db_path=str(path), http_port=0, mqtt_host="", dev_test_keys=True)
    svc = GatewayService(config, enable_mqtt=False, clock=clock)
    svc.clock_ = clock
    svc.a = world.long_drive(svc.pipeline, clock, 3101, hours=1)
    clock.advance(60)
    svc.b = world.short_drive(svc.pipeline, clock, 3102, declaration="50601/261126/0003102", vehicle="102KZD02",
                              destination=world.OTHER_OFFICE)
    clock.advance(60)
    seal_c = world.FakeSeal(3103)
    svc.pipeline.provision_seal(3103, seal_c.key)
    svc.pipeline.request_activation(world.activation(3103, clock.t, declaration="50601/261126/0003103",
                                                     vehicle="103KZD02"))
    result = svc.pipeline.handle_uplink(seal_c.hello(clock.t), "test")
    (cmd,) = [raw for _, raw in result.downlink if seal_c.decode(raw).type == "ACTIVATE"]
    svc.pipeline.handle_uplink(seal_c.command_result(clock.advance(1), cmd, "LOCK_OPEN"), "test")
    svc.tokens = add_users(svc.store, USERS)
    svc.start()
    svc.api = svc.http.url
    return svc


def get(gw, path: str, user: str):
    status, body = get_json(gw.api + path, gw.tokens[user])
    return status, body


def rows(gw, user: str, query: str = "") -> list[dict]:
    status, body = get(gw, f"/v1/console/escorts{query}", user)
    assert status == 200, body
    return body["rows"]


# -- the escorts table --------------------------------------------------------------------------


def test_the_table_shows_each_escort_once_with_its_state_alarms_and_age(gw):
    table = rows(gw, "auditor")
    assert [r["seal_id"] for r in table] == [3103, 3102, 3101]  # newest first
    c, b, a = table
    assert (a["state"], a["overdue"], b["state"], c["state"]) == ("active", None, "active", "failed")
    assert [(x["kind"], x["count"], x["unacknowledged"]) for x in a["alarms"]] == [("UNAUTHORIZED_OPENING", 1, 1)]
    assert [x["kind"] for x in c["alarms"]] == ["ACTIVATION_FAILED"] and b["alarms"] == []
    assert a["lock"] == {"cable_intact": False, "housing_closed": True} and a["seals"] == [3101]
    assert a["last_position_age_s"] == pytest.approx(gw.clock_.t - a_last_fix(gw), abs=1)
    assert c["last_position_age_s"] is None or c["state"] == "failed"
    assert a["departure_office"] == {"code": "50601", "name": "Kordai customs post"}


def a_last_fix(gw) -> float:
    return gw.store.seal_rows(after=3100, limit=1)[0]["last_fix_time"]


@pytest.mark.parametrize("query, seals", [
    ("?state=active", [3102, 3101]),
    ("?state=failed", [3103]),
    ("?state=awaiting_activation", []),
    ("?alarm=any", [3103, 3101]),
    ("?alarm=UNAUTHORIZED_OPENING", [3101]),
    ("?office=50401", [3102]),
    ("?office=50601", [3103, 3102, 3101]),
    ("?q=50601/261126/000310", [3103, 3102, 3101]),
    ("?q=102k", [3102]),  # plates are matched in capitals
    ("?q=3101", [3101]),  # a seal number
    ("?q=9999", []),
    ("?state=active&alarm=any", [3101]),
    ("?since=2026-11-18T00:00:00Z&until=2026-11-19T00:00:00Z", [3103, 3102, 3101]),
    (f"?since={T0 + 1800}", [3103, 3102]),
    ("?until=2026-11-17T00:00:00Z", []),
])
def test_filters(gw, query, seals):
    assert [r["seal_id"] for r in rows(gw, "operator", query)] == seals


def test_overdue_is_a_filter_and_a_flag(tmp_path_factory):
    # A world of its own: its clock moves 30 h, and the service's timers may fire at that time
    # (TRANSIT_OVERDUE), which the shared world's alarm tests must not see.
    own = _world(tmp_path_factory)
    try:
        assert rows(own, "operator", "?state=overdue") == []
        own.clock_.t += 30 * 3600  # past every transit period (hours + 14 h, and 24 h)
        overdue = rows(own, "operator", "?state=overdue")
        assert {(r["seal_id"], r["overdue"]) for r in overdue} == {(3101, "transit"), (3102, "transit")}
    finally:
        own.stop()


def test_pages_are_keyset_pages_that_cover_everything_once(gw):
    first = get(gw, "/v1/console/escorts?limit=2", "operator")[1]
    assert [r["seal_id"] for r in first["rows"]] == [3103, 3102] and first["next"]
    second = get(gw, f"/v1/console/escorts?limit=2&cursor={first['next']}", "operator")[1]
    assert [r["seal_id"] for r in second["rows"]] == [3101] and second["next"] is None


def test_an_officer_sees_only_the_escorts_of_their_offices(gw):
    assert [r["seal_id"] for r in rows(gw, "dest")] == [3103, 3101]
    assert [r["seal_id"] for r in rows(gw, "other")] == [3102]
    assert rows(gw, "far") == [] and rows(gw, "far", "?q=3101") == []
    status, body = get(gw, "/v1/console/escorts?office=50401", "dest")
    assert (status, body["error"]) == (403, "forbidden")


@pytest.mark.parametrize("query", ["?state=nonsense!", "?alarm=NOT_A_KIND", "?cursor=abc", "?since=yesterday",
                                   "?office=12", "?limit=1000"])
def test_bad_filters_are_refused_naming_the_field(gw, query):
    status, body = get(gw, f"/v1/console/escorts{query}", "operator")
    assert status == 400 and body["error"] == "bad_request", body
    assert query.split("=")[0].strip("?") in body["message"]


# -- track and events ---------------------------------------------------------------------------


def test_the_track_is_geojson_of_the_route_and_the_fixes_simplified(gw):
    a = gw.a.escort_id
    req = urllib.request.Request(f"{gw.api}/v1/escorts/{a}/track?width=1000&height=600",
                                 headers={"Authorization": f"Bearer {gw.tokens['dest']}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.headers.get_content_type() == "application/geo+json"
        fc = json.loads(resp.read())
    assert fc["type"] == "FeatureCollection"
    route, *tracks = fc["features"]
    assert route["properties"] == {"role": "route", "corridor_m": 2000} and len(route["geometry"]["coordinates"]) == 58
    assert fc["meta"]["fixes"] == 3601  # the first fix (clause 10) and an hour at one a second
    assert 2 <= fc["meta"]["points"] < 400
    assert tracks[0]["properties"]["rseqs"][0] == 1 and tracks[-1]["properties"]["rseqs"][-1] == 3602  # the EVENT is 1 rseq
    zoomed = get(gw, f"/v1/escorts/{a}/track?zoom=16&bbox=74.6,42.9,74.8,43.1", "dest")[1]
    assert zoomed["meta"]["zoom"] == 16 and zoomed["meta"]["points"] > 0
    assert all(74.6 - 0.01 <= lon <= 74.8 + 0.01 for f in zoomed["features"] if f["properties"]["role"] == "track"
               for lon, _ in f["geometry"]["coordinates"])


def test_track_and_events_of_another_office_are_not_found(gw):
    a = gw.a.escort_id
    for path in (f"/v1/escorts/{a}/track", f"/v1/escorts/{a}/events"):
        assert get(gw, path, "other")[0] == 404
        assert get(gw, path, "dest")[0] == 200
    assert get(gw, "/v1/escorts/999999/track", "admin") == (404, {"error": "not_found", "message": "no escort 999999"})
    assert get(gw, f"/v1/escorts/{a}/track?bbox=1,2,3", "admin")[0] == 400


def test_events_page_by_commit_order_and_leave_positions_out_when_asked(gw):
    a = gw.a.escort_id
    everything = get(gw, f"/v1/escorts/{a}/events?limit=1000", "dest")[1]
    kinds = [i["event"]["kind"] for i in everything["items"]]
    assert kinds[0] == "ACTIVATED" and "POSITION" in kinds and "UNAUTHORIZED_OPENING" in kinds
    lean = get(gw, f"/v1/escorts/{a}/events?exclude=POSITION", "dest")[1]
    assert [i["event"]["kind"] for i in lean["items"]] == [k for k in kinds if k != "POSITION"]
    page = get(gw, f"/v1/escorts/{a}/events?limit=2", "dest")[1]
    assert page["more"] and len(page["items"]) == 2
    rest = get(gw, f"/v1/escorts/{a}/events?limit=1000&after={page['next_after']}", "dest")[1]
    assert [i["outbox_id"] for i in page["items"] + rest["items"]] == [i["outbox_id"] for i in everything["items"]]
    only = get(gw, f"/v1/escorts/{a}/events?kinds=UNAUTHORIZED_OPENING", "dest")[1]
    [opening] = only["items"]
    assert opening["event"]["position"]["lat"] == pytest.approx(gw.a.cut_at[0], abs=1e-6)


# -- alarms -------------------------------------------------------------------------------------


def alarm_of(gw, user: str, kind: str) -> dict:
    page = get(gw, "/v1/alarms", user)[1]
    return next(i for i in page["items"] if i["event"]["kind"] == kind)


def test_the_feed_is_newest_first_in_scope_with_the_clause_11_deadline(gw):
    page = get(gw, "/v1/alarms", "dest")[1]
    assert [i["event"]["kind"] for i in page["items"]] == ["ACTIVATION_FAILED", "UNAUTHORIZED_OPENING"]
    assert page["notify_deadline_s"] == 3600 and page["stream_after"] >= page["items"][0]["outbox_id"]
    item = page["items"][1]
    known = item["event"]["known_at"]
    assert item["notify_deadline"] == time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                    time.gmtime(round(_unix(known)) + 3600))
    assert get(gw, "/v1/alarms", "other")[1]["items"] == []


def _unix(iso: str) -> float:
    from navseal.gateway.events import parse_iso
    return parse_iso(iso)


def test_an_alarm_not_acknowledged_within_the_hour_is_overdue(gw):
    item = alarm_of(gw, "auditor", "UNAUTHORIZED_OPENING")
    deadline = _unix(item["notify_deadline"])
    assert gw.clock_.t < deadline and item["notify_overdue"] is False and item["acks"] == []
    saved = gw.clock_.t
    gw.clock_.t = deadline + 1
    try:
        assert alarm_of(gw, "auditor", "UNAUTHORIZED_OPENING")["notify_overdue"] is True
    finally:
        gw.clock_.t = saved


def test_acknowledging_records_who_and_when_once_and_audits_it(gw):
    item = alarm_of(gw, "dest", "ACTIVATION_FAILED")
    event_id = item["event"]["event_id"]
    path = f"{gw.api}/v1/alarms/{event_id}/ack"
    assert post_json(path, {"note": "x"}, token=gw.tokens["other"])[0] == 404  # not their office's
    assert post_json(path, {}, token=gw.tokens["auditor"])[0] == 403  # changes nothing, by the table
    before = gw.store.audit_high_water()
    status, body = post_json(path, {"note": "called the driver"}, token=gw.tokens["dest"])
    assert status == 201, body
    ack = body["ack"]
    assert ack["by"] == {"user": "dest", "role": "officer", "office": "50508", "via": "token"}
    assert ack["at"] and ack["note"] == "called the driver" and ack["event_id"] == event_id
    assert post_json(path, {}, token=gw.tokens["dest"]) [0] == 409
    rows_ = gw.store.audit_rows(after_seq=before)
    assert [(r["action"], r["outcome"], r["actor_user"]) for r in rows_] == [
        ("alarm.ack", "ok", "dest"), ("alarm.ack", "refused", "dest")]
    assert json.loads(rows_[0]["details"])["ack_id"] == ack["ack_id"]
    status, body = post_json(path, {}, token=gw.tokens["operator"])
    assert status == 201 and body["ack"]["by"]["office"] is None
    acks = alarm_of(gw, "dest", "ACTIVATION_FAILED")["acks"]
    assert [a["by"]["user"] for a in acks] == ["dest", "operator"]
    assert [r for r in rows(gw, "dest", "?q=3103")][0]["alarms"][0]["unacknowledged"] == 0


def test_acknowledging_what_is_no_alarm_is_refused(gw):
    page = get(gw, f"/v1/escorts/{gw.b.escort_id}/events?kinds=ACTIVATED", "operator")[1]
    event_id = page["items"][0]["event"]["event_id"]
    status, body = post_json(f"{gw.api}/v1/alarms/{event_id}/ack", {}, token=gw.tokens["operator"])
    assert (status, body["error"]) == (400, "bad_request")
    status, body = post_json(f"{gw.api}/v1/alarms/{event_id}/ack", {"note": "a\u202eb"}, token=gw.tokens["operator"])
    assert status == 400 and "note" in body["message"]


class Stream:
    """A live feed read on a thread: (event, id, data) messages as they come."""

    def __init__(self, url: str, token: str, headers: dict | None = None) -> None:
        parts = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        self.conn.request("GET", f"{parts.path}?{parts.query}",
                          headers={"Authorization": f"Bearer {token}", **(headers or {})})
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200 and self.resp.getheader("Content-Type").startswith("text/event-stream")
        self.messages: list[tuple[str, str, dict]] = []
        self.arrived: list[float] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        kind = ident = None
        try:
            while True:
                line = self.resp.readline().decode()
                if not line:
                    return
                line = line.rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("id: "):
                    ident = line[4:]
                elif line.startswith("data: "):
                    self.messages.append((kind, ident, json.loads(line[6:])))
                    self.arrived.append(time.monotonic())
        except (OSError, ValueError):  # closed by the test
            pass

    def wait(self, n: int, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return len(self.messages) >= n

    def close(self) -> None:
        # Not resp.close(): it would wait for the reading thread's lock until the next keepalive.
        self.conn.sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(5)
        self.conn.close()


def test_the_live_feed_brings_a_new_alarm_within_two_seconds_of_its_frame_and_resumes(gw):
    head = get(gw, "/v1/alarms", "dest")[1]
    stream = Stream(f"{gw.api}/v1/alarms/stream?after={head['stream_after']}&acks_after={head['acks_after']}",
                    gw.tokens["dest"])
    other = Stream(f"{gw.api}/v1/alarms/stream", gw.tokens["other"])
    try:
        seal = gw.a.seal
        gw.clock_.advance(10)
        frame = seal.event(gw.clock_.t, "HOUSING_OPENED", pos=(43.25, 76.9),
                           status=world.lock_status(cable=False, housing=False))
        sent = time.monotonic()
        gw.runner.submit(frame, "test", None, None)  # as a driver hands it over
        assert stream.wait(1), "no alarm on the live feed"
        kind, ident, item = stream.messages[0]
        assert kind == "alarm" and item["event"]["kind"] == "HOUSING_OPENED"
        assert stream.arrived[0] - sent < 2.0
        assert ident == f"{item['outbox_id']}:{head['acks_after']}"
        status, _ = post_json(f"{gw.api}/v1/alarms/{item['event']['event_id']}/ack", {}, token=gw.tokens["operator"])
        assert status == 201 and stream.wait(2)
        kind, ident, ack = stream.messages[1]
        assert kind == "ack" and ack["by"]["user"] == "operator" and ident.endswith(f":{ack['ack_id']}")
        time.sleep(0.5)
        assert other.messages == []  # another office's officer heard nothing of it
    finally:
        stream.close()
        other.close()
    # A browser reconnecting sends the last id: it gets what came after, and only that.
    resumed = Stream(f"{gw.api}/v1/alarms/stream", gw.tokens["dest"],
                     headers={"Last-Event-ID": f"{item['outbox_id'] - 1}:0"})
    try:
        assert resumed.wait(1)
        kinds = [(k, d.get("event", {}).get("kind")) for k, _, d in resumed.messages]
        assert kinds[0] == ("alarm", "HOUSING_OPENED")
    finally:
        resumed.close()


# -- seals and retention ------------------------------------------------------------------------


def test_seals_page_shows_firmware_contact_battery_backlog_and_escort(gw):
    status, body = get(gw, "/v1/seals", "operator")
    assert status == 200
    seals = {s["seal_id"]: s for s in body["rows"]}
    assert sorted(seals) == [3101, 3102, 3103]
    a = seals[3101]
    assert a["firmware"] == "1.0.0" and a["battery_pct"] == 80 and a["journal_backlog"] == 0
    assert a["escort"]["escort_id"] == gw.a.escort_id and a["escort"]["state"] == "active"
    assert seals[3103]["escort"] is None  # its activation failed: no open escort
    assert [s["seal_id"] for s in get(gw, "/v1/seals", "other")[1]["rows"]] == [3102]
    assert get(gw, "/v1/seals", "far")[1]["rows"] == []
    page = get(gw, "/v1/seals?limit=2", "operator")[1]
    assert [s["seal_id"] for s in page["rows"]] == [3101, 3102] and page["next"] == "3102"
    assert "key" not in json.dumps(body).replace("keys", "")


def test_retention_takes_an_escorts_acknowledgements_with_it(tmp_path):
    from pipeline_support import FakeSeal, activate, lock_status, make_pipeline

    pipeline, store, clock = make_pipeline(tmp_path)
    seal = FakeSeal(7)
    escort = activate(pipeline, seal, clock)
    clock.advance(10)
    [opening] = pipeline.handle_uplink(seal.event(clock.t, "CABLE_CUT", status=lock_status(cable=False)), "t").events
    with store.transaction() as tx:
        assert tx.insert_alarm_ack({"event_id": opening["event_id"], "escort_id": escort["escort_id"], "at": clock.t,
                                    "actor_user": "dest", "actor_role": "officer", "actor_office": "50513",
                                    "via": "token", "note": None}) == 1
    pipeline.request_deactivation(7, escort["declaration"], escort["vehicle"])
    result = pipeline.handle_uplink(seal.state(clock.advance(5), active=True, escort_id=escort["escort_id"],
                                               cable=False), "t")
    (command,) = [raw for _, raw in result.downlink if seal.decode(raw).type == "DEACTIVATE"]
    events = pipeline.handle_uplink(seal.command_result(clock.advance(1), command), "t").events
    assert "DEACTIVATED" in [e["kind"] for e in events]  # (with RISK_MARKED: the seal was opened)
    assert pipeline.purge(clock.t + 86400)["alarm_acks"] == 0
    report = pipeline.purge(clock.t + 6 * 366 * 86400)
    assert report["alarm_acks"] == 1 and report["escorts"] == 1
    assert store.alarm_acks() == []
