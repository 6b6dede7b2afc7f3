"""A private PostgreSQL cluster for tests and benchmarks: initdb + pg_ctl from Debian's binaries
(/usr/lib/postgresql/*/bin; `bash tools/run setup` installs the `postgresql` package) in a
temporary directory, on a free port of 127.0.0.1, as the `postgres` OS user when run as root.
Durability is off (fsync, synchronous_commit, full_page_writes): for logic and relative figures,
not for data anyone keeps; `pg_ctl restart` still keeps everything.

    cluster = start_private_cluster()
    url = cluster.database("any key")   # a schema of its own in one database, as a store URL
    cluster.stop(); shutil.rmtree(cluster.root)
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
from typing import Any

DATABASE = "navseal_tests"


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
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql; `bash tools/run setup` "
                           "does it)")
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
