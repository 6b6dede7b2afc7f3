"""An event a webhook refuses for good (4xx) becomes a dead letter with an alarm (log, metric,
/healthz), the sink moves on to the next events, and an admin's audited replay sends it again:
on a real SQLite store, a real local webhook receiver, the real API and the real CLI."""

from __future__ import annotations

import json
import logging
import subprocess
import time

from prometheus_client import generate_latest

import pytest
from fixtures_postgres import engine_store
from gateway_harness import NAVSEAL, get_json, make_tokens, parse_metrics, post_json, wait_until
from navseal.gateway.config import SinkConfig, load_config
from navseal.gateway.outbox_worker import Backoff, OutboxWorker
from navseal.gateway.service import GatewayService
from navseal.gateway.sinks import WebhookSink
from navseal.gateway.store import SqliteStore
from webhook_target import WebhookTarget


def _events(store: SqliteStore, first: int, last: int) -> list[str]:
    now = time.time()
    events = [{"event_id": f"ev-{n}", "kind": "POSITION", "seal_id": 1, "emitted_at": "2026-11-29T00:00:00Z", "n": n}
              for n in range(first, last + 1)]
    with store.transaction() as tx:
        tx.insert_events(events, [None] * len(events), now)
    return [e["event_id"] for e in events]


@pytest.mark.usefixtures("store_engine")  # on SQLite, then on PostgreSQL
def test_a_refused_event_is_set_aside_and_the_sink_moves_on_then_replays(tmp_path, caplog):
    db = str(tmp_path / "gw.sqlite3")
    store = engine_store(db)
    target = WebhookTarget().start()
    target.refuse = {"ev-3": 422, "ev-4": 401}  # 422: this event is refused; 401: our credentials, retried
    alarms = []
    worker = OutboxWorker(WebhookSink("ops", target.url, timeout_s=2), lambda: engine_store(db),
                          batch_size=4, backoff=Backoff(0.02, 0.1), on_dead_letter=lambda *a: alarms.append(a))
    caplog.set_level(logging.ERROR, logger="navseal.gateway.outbox")
    worker.start()
    try:
        _events(store, 1, 10)
        worker.notify()
        # ev-4 is answered 401 (not the event's fault): retried, and it holds the ones after it.
        assert wait_until(lambda: target.refused.count("ev-4") >= 2)
        assert set(target.unique) == {"ev-1", "ev-2"}
        del target.refuse["ev-4"]
        assert target.wait_for(9, timeout=10)
        assert wait_until(lambda: store.outbox_depth("ops") == 0)
        assert [k for k, _ in target.requests] == [f"ev-{n}" for n in range(1, 11) if n != 3]
        (letter,) = store.dead_letters()
        assert (letter["sink"], letter["event_id"], letter["status"]) == ("ops", "ev-3", "dead")
        assert "HTTP 422" in letter["error"] and letter["event"]["n"] == 3
        assert [(sink, event["event_id"]) for sink, event, _ in alarms] == [("ops", "ev-3")]
        assert any("ev-3 refused for good" in r.getMessage() for r in caplog.records)
        assert store.dead_letter_counts() == {"ops": 1}

        # Replay while the receiver still refuses it: refused again, back to "dead", counted.
        with store.transaction() as tx:
            tx.request_dead_letter_replay(letter["dead_letter_id"], time.time())
        worker.notify()
        assert wait_until(lambda: store.dead_letters()[0]["refusals"] == 2)
        assert store.dead_letters()[0]["status"] == "dead"
        # The receiver is fixed; replayed once more: delivered.
        del target.refuse["ev-3"]
        with store.transaction() as tx:
            tx.request_dead_letter_replay(letter["dead_letter_id"], time.time())
        worker.notify()
        assert wait_until(lambda: store.dead_letters()[0]["status"] == "replayed")
        assert "ev-3" in target.unique and store.dead_letter_counts() == {}
    finally:
        worker.stop()
        target.stop()
        store.close()


def test_dead_letters_through_the_api_and_the_cli_are_audited(tmp_path):
    db = tmp_path / "gw.sqlite3"
    target = WebhookTarget().start()
    target.refuse = {"ev-2": 400}
    config = load_config(None, db_path=str(db), http_port=0, mqtt_host="", sink_retry_initial_s=0.02,
                         sink_retry_max_s=0.1, sinks=[SinkConfig(name="ops", type="webhook", url=target.url)])
    tokens = make_tokens(db)
    svc = GatewayService(config, enable_mqtt=False)
    svc.start()
    api = f"http://127.0.0.1:{svc.http.port}"
    try:
        _events(svc.store, 1, 3)
        svc.notify_sinks()
        assert target.wait_for(2, timeout=10)
        assert wait_until(lambda: svc.store.dead_letter_counts() == {"ops": 1})
        status, health = get_json(api + "/healthz", tokens["admin"])
        assert health["dead_letters"] == {"ops": 1}
        metrics = parse_metrics(generate_latest(svc.registry).decode())
        assert metrics['navseal_dead_letters_total{sink="ops"}'] == 1
        assert metrics['navseal_dead_letters_waiting{sink="ops"}'] == 1

        status, page = get_json(api + "/v1/dead-letters?status=dead", tokens["auditor"])
        assert status == 200 and [d["event_id"] for d in page["items"]] == ["ev-2"] and page["next"] is None
        dead_id = page["items"][0]["dead_letter_id"]
        status, _ = post_json(f"{api}/v1/dead-letters/{dead_id}/replay", {}, token=tokens["auditor"])
        assert status == 403  # only an admin replays
        status, _ = post_json(f"{api}/v1/dead-letters/999/replay", {}, token=tokens["admin"])
        assert status == 404

        # The CLI through the API: list, then replay once the receiver accepts it.
        env = {"NAVSEAL_TOKEN": tokens["admin"], "PATH": "/usr/bin:/bin"}
        out = subprocess.run([NAVSEAL, "gateway", "dead-letter", "list", "--api", api, "--json"],
                             capture_output=True, text=True, timeout=60, env=env)
        assert out.returncode == 0, out.stderr
        assert [d["event_id"] for d in json.loads(out.stdout)["items"]] == ["ev-2"]
        target.refuse.clear()
        out = subprocess.run([NAVSEAL, "gateway", "dead-letter", "replay", str(dead_id), "--api", api],
                             capture_output=True, text=True, timeout=60, env=env)
        assert out.returncode == 0 and "will be sent to ops again" in out.stdout, out.stderr
        assert wait_until(lambda: "ev-2" in target.unique)
        assert wait_until(lambda: svc.store.dead_letters()[0]["status"] == "replayed")
        rows = [r for r in svc.store.audit_rows() if r["action"] == "dead_letter.replay"]
        # The auditor's attempt stopped at the door (403, the access layer's own audit); the admin's
        # replay of a dead letter that does not exist is audited as refused, the real one as ok.
        assert [(r["actor_user"], r["target"], r["outcome"]) for r in rows][-2:] == [
            ("admin", "dead_letter:999", "refused"), ("admin", f"dead_letter:{dead_id}", "ok")]
    finally:
        svc.stop()
        target.stop()


def test_the_cli_on_the_database_replays_and_audits_under_the_host_account(tmp_path):
    db = tmp_path / "gw.sqlite3"
    store = SqliteStore(str(db))
    _events(store, 1, 1)
    dead_id = store.outbox_dead_letter("ops", 1, "ev-1", "webhook: HTTP 422 for event ev-1", time.time())
    store.close()
    out = subprocess.run([NAVSEAL, "gateway", "dead-letter", "replay", str(dead_id), "--db", str(db)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    again = subprocess.run([NAVSEAL, "gateway", "dead-letter", "replay", str(dead_id), "--db", str(db)],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "already waiting" in again.stderr
    store = SqliteStore(str(db))
    try:
        assert store.dead_letters()[0]["status"] == "replay"
        assert store.outbox_depth("ops") == 0  # the cursor moved past it when it was set aside
        rows = [r for r in store.audit_rows() if r["action"] == "dead_letter.replay"]
        assert [(r["via"], r["outcome"]) for r in rows] == [("db", "ok"), ("db", "refused")]
    finally:
        store.close()
