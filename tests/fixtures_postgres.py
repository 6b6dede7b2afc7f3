"""A private PostgreSQL for the tests, and the store fixture over both engines.

`pg_cluster` (session): the server named by NAVSEAL_TEST_PG_URL (a URL to a database of a role
that may CREATE DATABASE), else a cluster of its own: initdb + pg_ctl from
/usr/lib/postgresql/*/bin (Debian's `postgresql` package; `bash tools/run setup` installs it) in
a temporary directory, on a free port of 127.0.0.1, as the `postgres` OS user when the tests run
as root. Durability is off (fsync, synchronous_commit): the tests check the gateway's logic, not
the disk, and a restart by `pg_ctl restart` still keeps everything.

One schema per store a test opens (its URL sets the search_path), in one database: a database
each would copy PostgreSQL's catalog (~7.5 MB) every time. The schemas a test made are dropped
when the next test starts.

`store_engine` (parametrized "sqlite" / "postgresql"): a module puts
`pytestmark = pytest.mark.usefixtures("store_engine")` and every store that `engine_store()` /
`engine_overrides()` make (tests/gateway/pipeline_support.py's `make_pipeline` uses them) is on
that engine.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

DATABASE = "navseal_tests"
PG_URL_ENV = "NAVSEAL_TEST_PG_URL"


def pg_bin_dir() -> str | None:
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    return dirs[-1] if dirs else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    """A PostgreSQL server the tests may create databases on."""

    def __init__(self, admin_url: str, *, datadir: str | None = None, bindir: str | None = None,
                 as_user: str | None = None, port: int | None = None) -> None:
        self.admin_url = admin_url
        self.datadir, self.bindir, self.as_user, self.port = datadir, bindir, as_user, port
        self._made: set[str] = set()
        self._database_ready = False
        self._admin_conns: dict[str | None, Any] = {}

    # -- databases --
    def url(self, dbname: str) -> str:
        import psycopg

        info = psycopg.conninfo.conninfo_to_dict(self.admin_url)
        info["dbname"] = dbname
        return _url(info)

    def _admin(self, sql: str, dbname: str | None = None) -> None:
        import psycopg

        conn = self._admin_conns.get(dbname)
        if conn is None or conn.closed or conn.broken:
            conn = self._admin_conns[dbname] = psycopg.connect(
                self.url(dbname) if dbname else self.admin_url, autocommit=True)
        conn.execute(sql)

    def database(self, key: str) -> str:
        """The URL of the store for `key` (a test's store path): a schema of its own in one test
        database (its search_path; the store migrates it when it first opens it). The same key
        gives the same schema (a store reopened)."""
        name = "t_" + hashlib.sha1(key.encode()).hexdigest()[:20]
        if name not in self._made:
            if not self._database_ready:
                self._admin(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
                self._admin(f"CREATE DATABASE {DATABASE}")
                self._database_ready = True
            self._admin(f"DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}", DATABASE)
            self._made.add(name)
        return self.url(DATABASE) + f"?options=-csearch_path%3D{name}"

    def drop_all(self) -> None:
        """Drop the stores made so far (a finished test's)."""
        for name in sorted(self._made):
            self._admin(f"DROP SCHEMA IF EXISTS {name} CASCADE", DATABASE)
        self._made.clear()

    # -- the private server --
    def _pg(self, *args: str) -> list[str]:
        cmd = [os.path.join(self.bindir or "", args[0]), *args[1:]]
        return ["runuser", "-u", self.as_user, "--", *cmd] if self.as_user else cmd

    def start(self) -> None:
        opts = (f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 -c fsync=off "
                f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        subprocess.run(self._pg("pg_ctl", "-D", self.datadir, "-o", opts, "-l", f"{self.datadir}/log",
                                "-w", "-t", "60", "start"), check=True, capture_output=True)

    def stop(self, mode: str = "fast") -> None:
        for conn in self._admin_conns.values():
            conn.close()
        self._admin_conns.clear()
        subprocess.run(self._pg("pg_ctl", "-D", self.datadir, "-m", mode, "-w", "stop"), capture_output=True)

    def restart(self) -> None:
        self.stop()
        self.start()


def _url(info: dict[str, Any]) -> str:
    user = info.get("user", "")
    pw = f":{info['password']}" if info.get("password") else ""
    at = f"{user}{pw}@" if user else ""
    return f"postgresql://{at}{info.get('host', '')}:{info.get('port', 5432)}/{info['dbname']}"


def start_private_cluster() -> PgCluster:
    bindir = pg_bin_dir()
    if bindir is None:
        pytest.fail("PostgreSQL is not installed (apt-get install postgresql; `bash tools/run setup` does it) "
                    f"and {PG_URL_ENV} names no server")
    root = tempfile.mkdtemp(prefix="navseal-pg-")
    datadir = os.path.join(root, "data")
    as_user = "postgres" if os.geteuid() == 0 else None
    if as_user:
        shutil.chown(root, as_user)
    port = _free_port()
    cluster = PgCluster(f"postgresql://navseal@127.0.0.1:{port}/postgres", datadir=datadir, bindir=bindir,
                        as_user=as_user, port=port)
    subprocess.run(cluster._pg("initdb", "-D", datadir, "-U", "navseal", "--auth=trust", "-E", "UTF8",
                               "--locale=C", "--no-sync"), check=True, capture_output=True)
    cluster.start()
    cluster.root = root  # type: ignore[attr-defined]
    return cluster


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    url = os.environ.get(PG_URL_ENV)
    if url:
        cluster = PgCluster(url)
        yield cluster
        cluster.drop_all()
        return
    cluster = start_private_cluster()
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
