"""A private PostgreSQL for the tests, and the store fixture over both engines.

`pg_cluster` (session): the server named by NAVSEAL_TEST_PG_URL (a URL to a database of a role
that may CREATE DATABASE), else a private cluster of its own (tools/pg_cluster.py: initdb + pg_ctl
from Debian's binaries on a free port, durability off: the tests check the gateway's logic, not
the disk).

One schema per store a test opens (its URL sets the search_path), in one database: a database
each would copy PostgreSQL's catalog (~7.5 MB) every time. The schemas a test made are dropped
when the next test starts.

`store_engine` (parametrized "sqlite" / "postgresql"): a module puts
`pytestmark = pytest.mark.usefixtures("store_engine")` and every store that `engine_store()` /
`engine_overrides()` make (tests/gateway/pipeline_support.py's `make_pipeline` uses them) is on
that engine.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

from navseal.pg_cluster import PgCluster, start_private_cluster

PG_URL_ENV = "NAVSEAL_TEST_PG_URL"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    url = os.environ.get(PG_URL_ENV)
    if url:
        cluster = PgCluster(url)
        yield cluster
        cluster.drop_all()
        return
    try:
        cluster = start_private_cluster()
    except RuntimeError as exc:
        pytest.fail(f"{exc}; or name a server in {PG_URL_ENV}")
    try:
        yield cluster
    finally:
        cluster.stop("immediate")
        shutil.rmtree(cluster.root, ignore_errors=True)  # type: ignore[attr-defined]


class Engine:
    """Where the stores of the running test live."""

    def __init__(self, name: str, cluster: PgCluster | None = None) -> None:
        self.name = name
        self.cluster = cluster

    def overrides(self, db_path: str | Path) -> dict[str, Any]:
        """GatewayConfig keyword arguments for a store at `db_path` (its database on PostgreSQL)."""
        if self.cluster is None:
            return {"db_path": str(db_path)}
        return {"db_path": str(db_path), "store_url": self.cluster.database(str(db_path))}

    def open(self, db_path: str | Path, **sqlite_kw: Any) -> Any:
        from navseal.gateway.store import SqliteStore
        from navseal.gateway.store.postgres import PgStore

        if self.cluster is None:
            return SqliteStore(str(db_path), **sqlite_kw)
        return PgStore(self.cluster.database(str(db_path)), cipher=sqlite_kw.get("cipher"))


SQLITE = Engine("sqlite")
_current: list[Engine] = [SQLITE]


def current_engine() -> Engine:
    return _current[-1]


def engine_overrides(db_path: str | Path) -> dict[str, Any]:
    return current_engine().overrides(db_path)


def engine_store(db_path: str | Path, **sqlite_kw: Any) -> Any:
    return current_engine().open(db_path, **sqlite_kw)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    engine = SQLITE if request.param == "sqlite" else Engine("postgresql", request.getfixturevalue("pg_cluster"))
    if engine.cluster is not None:
        engine.cluster.drop_all()  # the previous test's stores (their checks ran in its teardown)
    _current.append(engine)
    try:
        yield engine
    finally:
        _current.pop()
