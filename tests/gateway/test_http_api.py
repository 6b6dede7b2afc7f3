"""The local HTTP API in-process (no broker): commands, clear 4xx errors, metrics and health."""

from __future__ import annotations

import dataclasses
import json
import urllib.request

import pytest

from fixtures_postgres import engine_overrides
from gateway_harness import activation_body, get_json, make_tokens, parse_metrics, post_json
from navseal.bench.seal_frames import SealFrames
from navseal.gateway.config import load_config
from navseal.gateway.service import GatewayService
from navseal.protocol import decode_frame

# Every store these tests open is on SQLite, then on PostgreSQL (tests/fixtures_postgres.py).
pytestmark = pytest.mark.usefixtures("store_engine")


@pytest.fixture
def service(tmp_path):
    config = load_config(None, **engine_overrides(tmp_path / "gw.sqlite3"), http_port=0, mqtt_host="", dev_test_keys=True)
    svc = GatewayService(config, enable_mqtt=False)
    svc.tokens = make_tokens(config.db_path, roles=("operator", "auditor"))
    svc.op = svc.tokens["operator"]
    svc.start()
    svc.api = f"http://127.0.0.1:{svc.http.port}"
    yield svc
    svc.stop()


def provision(svc, seal_id: int = 1001) -> SealFrames:
    seal = SealFrames(seal_id)
    status, body = post_json(svc.api + "/v1/seals", {"seal_id": seal_id, "key": seal.key.hex()}, token=svc.op)
    assert (status, body) == (201, {"seal_id": seal_id, "provisioned": True, "rekeyed": False, "forced": False})
    return seal


GEOJSON = {"type": "LineString", "coordinates": [[76.945, 43.238], [77.5, 43.6], [79.9, 44.2]]}
GPX = """<?xml version="1.0"?><gpx version="1.1" xmlns="http://www.topografix.com/GPX/1/1"><trk><trkseg>
<trkpt lat="43.238" lon="76.945"/><trkpt lat="43.6" lon="77.5"/><trkpt lat="44.2" lon="79.9"/>
</trkseg></trk></gpx>"""


@pytest.mark.parametrize("route", [GEOJSON, GPX, [[43.238, 76.945], [44.2, 79.9]]], ids=["geojson", "gpx", "pairs"])
def test_activate_with_route_queues_the_command(service, route):
    provision(service)
    status, body = post_json(service.api + "/v1/escorts/activate", activation_body(1001, route=route, corridor_m=500),
                             token=service.op)
    assert status == 202, body
    escort = body["escort"]
    assert escort["status"] == "requested" and escort["seal_id"] == 1001
    assert escort["route_points"] >= 2 and escort["corridor_m"] == 500
    status, body = get_json(service.api + "/v1/escorts?seal_id=1001", service.op)
    assert status == 200
    [listed] = body["escorts"]
    assert listed["commands"][0]["type"] == "ACTIVATE" and listed["commands"][0]["status"] == "queued"
    assert listed["activated_by"] == {"user": "operator", "role": "operator", "office": "10228010", "via": "token"}
    assert get_json(service.api + "/v1/status?seal_id=1001", service.op) == (200, body)


def test_bad_inputs_get_clear_json_errors(service):
    provision(service)
    api, op = service.api, service.op
    good = activation_body(1001)
    cases = [
        (post_json(api + "/v1/escorts/activate", None, raw=b"{not json", token=op), 400, "bad_json"),
        (post_json(api + "/v1/escorts/activate", [1, 2], token=op), 400, "bad_request"),
        (post_json(api + "/v1/escorts/activate", {"seal_id": 1001}, token=op), 400, "bad_request"),
        (post_json(api + "/v1/escorts/activate", activation_body(1001, route={"type": "Point"}), token=op), 400,
         "bad_request"),
        (post_json(api + "/v1/escorts/activate", activation_body(4242), token=op), 404, "unknown_seal"),
        (post_json(api + "/v1/escorts/activate", {**good, "extra": 1}, token=op), 400, "bad_request"),
        (post_json(api + "/v1/escorts/deactivate", {"seal_id": 1001}, token=op), 400, "bad_request"),
        (post_json(api + "/v1/escorts/deactivate", {"seal_id": "x", "declaration": "a", "vehicle": "b"}, token=op),
         400, "bad_request"),
        (post_json(api + "/v1/seals", {"seal_id": 5, "key": "abcd"}, token=op), 400, "bad_request"),
        (get_json(api + "/v1/escorts?seal_id=abc", op), 400, "bad_request"),
        (get_json(api + "/v1/nothing", op), 404, "not_found"),
        (get_json(api + "/v1/escorts/activate", op), 405, "method_not_allowed"),
    ]
    for (status, body), want_status, want_code in cases:
        assert (status, body["error"]) == (want_status, want_code), body
        assert body["message"]
    # Mentions the field at fault.
    _, body = post_json(api + "/v1/escorts/activate", {"seal_id": 1001}, token=op)
    assert "declaration" in body["message"]
    _, body = post_json(api + "/v1/escorts/activate", {**good, "extra": 1}, token=op)
    assert "extra" in body["message"]


def test_activation_conflicts_and_deactivation_mismatch(service):
    provision(service)
    body = activation_body(1001)
    assert post_json(service.api + "/v1/escorts/activate", body, token=service.op)[0] == 202
    status, answer = post_json(service.api + "/v1/escorts/activate", body, token=service.op)
    assert (status, answer["error"]) == (409, "busy")
    status, answer = post_json(service.api + "/v1/escorts/deactivate",
                               {"seal_id": 1001, "declaration": "10228010/261126/9999999", "vehicle": body["vehicle"]},
                               token=service.op)
    assert (status, answer["error"]) == (409, "mismatch")


def test_command_reaches_the_seal_once_it_speaks_on_serial_like_transport(service):
    """Downlinks go back the way the seal spoke (here: a reply callback as serial uses)."""
    seal = provision(service)
    post_json(service.api + "/v1/escorts/activate", activation_body(1001), token=service.op)
    sent: list[bytes] = []
    service.runner.submit(seal.hello(), "serial:/dev/test", sent.append)
    deadline = __import__("time").monotonic() + 5
    while len(sent) < 2 and __import__("time").monotonic() < deadline:
        __import__("time").sleep(0.01)
    types = [decode_frame(raw, seal.key).type for raw in sent]
    assert types == ["ACK", "ACTIVATE"]


def test_metrics_and_health(service):
    seal = provision(service)
    replies: list[bytes] = []
    service.runner.submit(seal.records(10), "test", replies.append)
    service.runner.submit(b"garbage!", "test", replies.append)
    service.runner.call(lambda p: None)  # a barrier: both frames are done
    request = urllib.request.Request(service.api + "/metrics",
                                     headers={"Authorization": f"Bearer {service.tokens['auditor']}"})
    with urllib.request.urlopen(request) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    m = parse_metrics(text)
    assert m['navseal_frames_total{reason="",result="accepted"}'] == 1
    assert m['navseal_frames_total{reason="truncated",result="rejected"}'] == 1
    assert m["navseal_records_committed_total"] == 10
    assert m["navseal_ingest_latency_seconds_count"] == 2
    assert m["navseal_ingest_queue_length"] == 0
    assert "# TYPE navseal_ingest_latency_seconds histogram" in text
    status, health = get_json(service.api + "/healthz")  # public: no token
    assert status == 200 and health["status"] == "ok" and health["dev_test_keys"] is True


def test_health_degrades_when_the_runner_is_gone(tmp_path):
    config = load_config(None, **engine_overrides(tmp_path / "gw.sqlite3"), http_port=0, mqtt_host="")
    svc = GatewayService(config, enable_mqtt=False)
    svc.start()
    try:
        svc.runner.stop()
        status, health = get_json(f"http://127.0.0.1:{svc.http.port}/healthz")
        assert status == 503 and health["status"] == "degraded"  # a stranger learns the status only
        assert "pipeline runner stopped" in svc.health()["problems"]
    finally:
        svc.stop()


def test_config_file_drives_the_service(tmp_path):
    path = tmp_path / "gw.toml"
    path.write_text(f'db_path = "{tmp_path / "x.sqlite3"}"\n[http]\nport = 0\n[mqtt]\nhost = ""\n'
                    f'[[sinks]]\nname = "out"\ntype = "jsonl"\npath = "{tmp_path / "ev.jsonl"}"\n')
    config = load_config(path)
    svc = GatewayService(dataclasses.replace(config))
    try:
        assert svc.mqtt is None and [w.sink.name for w in svc.workers] == ["out"]
    finally:
        svc.store.close()
        svc.http.stop()
    assert json.loads(json.dumps(config.sinks[0].as_dict()))["type"] == "jsonl"
