"""Every list route of the API answers a page at a time: an opaque cursor, a limit with a maximum,
and the next page's cursor in the answer (null on the last). A seal's whole history included."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from gateway_harness import NAVSEAL, get_json, make_tokens
from navseal.gateway import auth
from navseal.gateway.config import load_config
from navseal.gateway.service import GatewayService

SEAL = 5001


@pytest.fixture
def gw(tmp_path):
    config = load_config(None, db_path=str(tmp_path / "gw.sqlite3"), http_port=0, mqtt_host="", dev_test_keys=True)
    svc = GatewayService(config, enable_mqtt=False)
    svc.tokens = make_tokens(config.db_path)
    svc.start()
    svc.api = svc.http.url
    yield svc
    svc.stop()


def _history(svc: GatewayService, n: int) -> list[int]:
    """A seal with `n` escorts behind it (deactivated, one after the other)."""
    svc.pipeline.provision_seal(SEAL, os.urandom(32))
    now = time.time()
    ids = []
    with svc.store.transaction() as tx:
        for i in range(n):
            ids.append(tx.insert_escort({
                "seal_id": SEAL, "declaration": f"10228010/261126/{i:07d}", "vehicle": "123ABC02",
                "departure_office_code": "10228010", "departure_office_name": "Almaty",
                "dest_office_code": "10232010", "dest_office_name": "Khorgos", "period_start": now - 86400,
                "period_end": now, "status": "deactivated", "requested_at": now - 86400, "deactivated_at": now}))
    return ids


def _pages(svc, path: str, key: str, token: str) -> tuple[list, int]:
    items, cursor, pages = [], None, 0
    while True:
        status, page = get_json(svc.api + path + (f"&cursor={cursor}" if cursor else ""), token)
        assert status == 200, page
        items += page[key]
        pages += 1
        cursor = page["next"]
        if cursor is None:
            return items, pages


def test_a_seals_whole_history_comes_a_page_at_a_time(gw):
    ids = _history(gw, 7)
    token = gw.tokens["auditor"]
    items, pages = _pages(gw, f"/v1/escorts?seal_id={SEAL}&limit=3", "escorts", token)
    assert [e["escort_id"] for e in items] == ids and pages == 3
    # The alias answers the same way; without a limit one page of at most 100 holds them all.
    status, page = get_json(gw.api + f"/v1/status?seal_id={SEAL}", token)
    assert [e["escort_id"] for e in page["escorts"]] == ids and page["next"] is None
    # A limit past the maximum and a cursor that is not one are refused.
    assert get_json(gw.api + f"/v1/escorts?seal_id={SEAL}&limit=501", token)[0] == 400
    assert get_json(gw.api + f"/v1/escorts?seal_id={SEAL}&cursor=abc", token)[0] == 400
    # The CLI follows the pages.
    out = subprocess.run([NAVSEAL, "gateway", "status", "--seal", str(SEAL), "--api", gw.api, "--json"],
                         capture_output=True, text=True, timeout=60, env={"NAVSEAL_TOKEN": token, "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert [e["escort_id"] for e in json.loads(out.stdout)["escorts"]] == ids


def test_users_come_a_page_at_a_time(gw):
    with gw.store.transaction() as tx:
        for i in range(5):
            auth.add_user(tx, name=f"user{i}", role="auditor", offices=[], password=None, now=time.time(),
                          created_by=auth.host_actor())
    items, pages = _pages(gw, "/v1/users?limit=2", "users", gw.tokens["admin"])
    names = [u["name"] for u in items]
    assert names == sorted(names) and len(names) == len(set(names)) == 4 + 5 and pages == 5
    assert get_json(gw.api + "/v1/users?cursor=no%20such%20name!", gw.tokens["admin"])[0] == 400
