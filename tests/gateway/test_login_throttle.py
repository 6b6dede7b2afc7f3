"""Failed logins are counted in the store: per user name and per client address, within a window,
once across gateways sharing the store and across restarts."""

import pytest
from fixtures_postgres import engine_store
from pipeline_support import make_pipeline

from navseal.gateway.auth import LoginThrottle

# Every store these tests open is on SQLite, then on PostgreSQL (tests/fixtures_postgres.py).
pytestmark = pytest.mark.usefixtures("store_engine")


def _throttle(store, now, **kw):
    return LoginThrottle(store, **{"per_name": 3, "per_client": 5, "window_s": 60, **kw}, clock=lambda: now[0])


def test_window_per_name_per_client_and_success_clears(tmp_path):
    _, store, _ = make_pipeline(tmp_path)
    now = [1_000_000.0]
    t = _throttle(store, now)
    for _ in range(3):
        assert t.retry_after("ann", "10.0.0.1") == 0
        t.failed("ann", "10.0.0.1")
    assert t.retry_after("ann", "10.0.0.9") == 61  # the name is locked from any client
    now[0] += 30
    assert t.retry_after("ann", "10.0.0.9") == 31
    now[0] += 31
    assert t.retry_after("ann", "10.0.0.9") == 0  # the oldest failure left the window
    for name in ("bob", "cid", "dee", "fay"):
        t.failed(name, "10.0.0.1")
    assert t.retry_after("dan", "10.0.0.1") == 0  # four in the window: under the client's limit
    t.failed("gus", "10.0.0.1")
    assert t.retry_after("dan", "10.0.0.1") == 61  # five failures from one client, whatever the names
    assert t.retry_after("dan", "10.0.0.2") == 0
    for _ in range(3):
        t.failed("eve", "10.0.0.3")
    assert t.retry_after("eve", "10.0.0.4") > 0
    t.succeeded("eve")
    assert t.retry_after("eve", "10.0.0.4") == 0


def test_gateways_sharing_a_store_count_one_set_of_failures_and_a_restart_forgives_nothing(tmp_path):
    """Three instances (three throttles, three connections to one store): a guesser who spreads
    tries over them still gets per_name tries in the window, not three times that."""
    _, store, _ = make_pipeline(tmp_path)
    others = [engine_store(tmp_path / "gw.sqlite3") for _ in range(3)]
    try:
        now = [2_000_000.0]
        instances = [_throttle(s, now) for s in (store, *others[:2])]
        for i in range(3):
            assert instances[i].retry_after("root", f"10.1.0.{i}") == 0
            instances[i].failed("root", f"10.1.0.{i}")
        assert all(t.retry_after("root", "10.1.0.9") == 61 for t in instances)
        restarted = _throttle(others[2], now)
        assert restarted.retry_after("root", "10.1.0.9") == 61
    finally:
        for s in others:
            s.close()


def test_old_failures_are_deleted_as_new_ones_come(tmp_path):
    _, store, _ = make_pipeline(tmp_path)
    now = [3_000_000.0]
    t = _throttle(store, now)
    for i in range(50):
        t.failed(f"name{i}", "10.2.0.1")
    now[0] += 61
    t.failed("late", "10.2.0.2")
    with store.transaction() as tx:
        assert tx.login_failures("client", "10.2.0.1", 0, 100) == []
        assert tx.login_failures("client", "10.2.0.2", 0, 100) == [now[0]]
