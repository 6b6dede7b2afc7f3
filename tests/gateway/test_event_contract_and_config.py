"""The operator event contract: stable ids, JSON Schema, notify lists; and the config loader."""

import json

import jsonschema
import pytest
from pipeline_support import every_event_keeps_the_contract  # noqa: F401 (autouse: validates every event)
from pipeline_support import FakeSeal, activate, make_pipeline

from navseal.gateway import events as ev
from navseal.gateway.config import ConfigError, GatewayConfig, load_config

# Every store these tests open is on SQLite, then on PostgreSQL (tests/fixtures_postgres.py).
pytestmark = pytest.mark.usefixtures("store_engine")

ESCORT = {"escort_id": 5, "declaration": "D1", "vehicle": "V1", "departure_office_code": "50508",
          "departure_office_name": "Almaty", "dest_office_code": "50513", "dest_office_name": "Khorgos"}


def test_event_id_is_stable_and_distinguishes_facts():
    a = ev.make_event("SIGNAL_LOST", seal_id=1, fact="x", escort=ESCORT, occurred_at=1, known_at=2, emitted_at=3)
    b = ev.make_event("SIGNAL_LOST", seal_id=1, fact="x", escort=ESCORT, occurred_at=10, known_at=20, emitted_at=30)
    assert a["event_id"] == b["event_id"]  # built again later: same id
    assert ev.make_event("SIGNAL_LOST", seal_id=2, fact="x", escort=ESCORT, occurred_at=1, known_at=2,
                         emitted_at=3)["event_id"] != a["event_id"]
    assert ev.make_event("SIGNAL_RESTORED", seal_id=1, fact="x", escort=ESCORT, occurred_at=1, known_at=2,
                         emitted_at=3)["event_id"] != a["event_id"]


def test_alarms_name_both_offices_and_the_schema_checks_it():
    alarm = ev.make_event("UNAUTHORIZED_OPENING", seal_id=1, fact="f", escort=ESCORT, occurred_at=1.5,
                          known_at=2, emitted_at=2.25, position=ev.position(432000000, 769000000, 1),
                          details={"source": "seal event CABLE_CUT rseq 7", "lock": None, "episode": 1,
                                   "position_stale": False})
    assert alarm["alarm"] and [n["role"] for n in alarm["notify"]] == ["departure", "destination"]
    assert alarm["occurred_at"] == "1970-01-01T00:00:01.500Z" and alarm["known_at"] == "1970-01-01T00:00:02Z"
    ev.validate([alarm])
    broken = dict(alarm, notify=[])
    with pytest.raises(jsonschema.ValidationError):
        ev.validate([broken])
    with pytest.raises(jsonschema.ValidationError):
        ev.validate([dict(alarm, kind="SOMETHING")])
    routine = ev.make_event("POSITION", seal_id=1, fact="p", escort=ESCORT, occurred_at=1, known_at=2,
                            emitted_at=2, details={"first_rseq": 1, "last_rseq": 1, "count": 1, "positions": [
                                {"rseq": 1, "time": ev.iso(1), "lat": 43.2, "lon": 76.9, "speed_kmh": 60.0,
                                 "course_deg": 90, "fix_quality": 1, "satellites": 9, "hdop": 0.9,
                                 "cable_intact": True, "housing_closed": True, "battery_pct": 80}]})
    assert routine["notify"] == [] and not routine["alarm"]
    ev.validate([routine])


def test_stored_events_are_resent_byte_identical(tmp_path):
    pipeline, store, clock = make_pipeline(tmp_path, sinks=[])
    seal = FakeSeal(1001)
    activate(pipeline, seal, clock)
    first = [json.dumps(i.event, sort_keys=True) for i in store.outbox_fetch("a", 100)]
    again = [json.dumps(i.event, sort_keys=True) for i in store.outbox_fetch("a", 100)]
    assert first == again and len(first) == 2  # ACTIVATED, POSITION


def test_config_defaults_live_in_one_place_and_toml_overrides_them(tmp_path):
    c = GatewayConfig()
    assert (c.signal_lost_after_s, c.deactivation_deadline_s, c.retention_years) == (3 * 3600, 3600, 5)
    path = tmp_path / "gw.toml"
    path.write_text("""
db_path = "x.sqlite3"
signal_lost_after_s = 600
[mqtt]
host = "broker"
topic_prefix = "kz/seals"
[[serial]]
port = "/dev/ttyUSB0"
[[sinks]]
name = "ops"
type = "webhook"
url = "http://ops.example/events"
[log]
level = "DEBUG"
[retention]
purge_interval_s = 60
""")
    c = load_config(path)
    assert (c.db_path, c.signal_lost_after_s, c.mqtt_host, c.mqtt_topic_prefix) == ("x.sqlite3", 600, "broker", "kz/seals")
    assert c.serial[0].port == "/dev/ttyUSB0" and c.sinks[0].url.endswith("/events") and c.log_level == "DEBUG"
    assert c.retention_purge_interval_s == 60
    for bad, message in (("signl_lost_after_s = 1", "unknown configuration key 'signl_lost_after_s'"),
                         ("[[sinks]]\nname = 'a'\ntype = 'ftp'", "got 'ftp'"),
                         ("signal_lost_after_s = 0", "signal_lost_after_s: input should be greater than 0"),
                         ("[mqtt]\nhots = 'x'", r"\[mqtt\] hots")):
        path.write_text(bad)
        with pytest.raises(ConfigError, match=message):
            load_config(path)


def test_every_kind_is_in_the_schema_and_in_the_docs():
    from pathlib import Path

    schema_kinds = ev.load_schema()["properties"]["kind"]["enum"]
    assert sorted(schema_kinds) == sorted(ev.KINDS)
    docs = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text()
    missing = [k for k in ev.KINDS if f"| `{k}` |" not in docs]
    assert missing == [], f"docs/events.md has no row for {missing}"
    assert ev.NON_ROUTINE_KINDS <= ev.ALARM_KINDS
