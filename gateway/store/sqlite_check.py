"""The SQLite store checked before the gateway trusts it, and its commit mark.

`check_store_file(path, init=...)` runs before `navseal gateway run` opens the database and raises
`StoreRefused` (one line, for the operator) when:
- there is no file and `init` was not asked for (a deleted database must not come back empty);
- the file is empty (0 bytes), is not a SQLite database, is shorter than its header says
  (truncated), or fails `PRAGMA quick_check` (damaged pages);
- the database made fewer commits than its commit mark says: committed data was lost (a `-wal`
  file deleted after a crash, an older copy put back).

The commit mark (`<db>.commit-mark`, 0600) holds the highest commit number the gateway saw
committed. Every write transaction of `SqliteStore` adds one to `commit_mark.seq` in the database
(migration 5); the store that owns the mark writes the new number into the file after each commit
(a `pwrite`, which survives the process being killed) and fsyncs it every `FSYNC_EVERY` commits
and at close (so it survives a power loss too, never ahead of the database: the WAL is fsynced at
each commit first). A database whose `seq` is below the mark lost commits.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import struct

MARK_SUFFIX = ".commit-mark"
FSYNC_EVERY = 256
_HEADER = b"SQLite format 3\x00"
_RECORD = "navseal commit mark {:020d}\n"


class StoreRefused(Exception):
    """The store is not fit to run on; the message is one line saying why and what to do."""


def mark_path(db_path: str) -> str:
    return str(db_path) + MARK_SUFFIX


def read_mark(path: str) -> int | None:
    """The commit number in a mark file (None when there is none); StoreRefused if unreadable."""
    try:
        with open(path, "rb") as f:
            text = f.read(64).decode("ascii", "replace")
    except FileNotFoundError:
        return None
    if not text:
        return None  # created, killed before its first write: no commit counted yet
    parts = text.split()
    if len(parts) != 4 or parts[:3] != ["navseal", "commit", "mark"] or not parts[3].isdigit():
        raise StoreRefused(f"{path}: not a commit mark file (damaged?); it guards {path[:-len(MARK_SUFFIX)]}: "
                           f"check that database, then remove the mark to start afresh")
    return int(parts[3])


class CommitMark:
    """The mark file, open for writing by the one store that commits ingest."""

    def __init__(self, path: str, fsync_every: int = FSYNC_EVERY) -> None:
        self.path = path
        self._fsync_every = max(1, fsync_every)
        self._unsynced = 0
        self.value: int | None = None
        created = not os.path.exists(path)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        if created:
            _fsync_dir(path)

    def committed(self, seq: int) -> None:
        self.value = seq
        os.pwrite(self._fd, _RECORD.format(seq).encode("ascii"), 0)
        self._unsynced += 1
        if self._unsynced >= self._fsync_every:
            self.sync()

    def sync(self) -> None:
        if self._unsynced:
            os.fsync(self._fd)
            self._unsynced = 0

    def close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                self.sync()
            os.close(self._fd)
            self._fd = -1


def _fsync_dir(path: str) -> None:
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_store_file(path: str, *, init: bool = False) -> str:
    """Refuse (StoreRefused) a database the gateway must not run on; see the module doc.
    Returns "new" when `init` may create it (no file), "ok" when it passed the checks."""
    path = str(path)
    if path == ":memory:" or path.startswith("file:"):
        return "ok"
    mark_file = mark_path(path)
    if not os.path.exists(path):
        mark = read_mark(mark_file)
        if mark is not None:
            raise StoreRefused(f"{path} is missing but its commit mark {mark_file} counts {mark} commits: the "
                               f"database was deleted or moved; put it back (with its -wal file), or remove the "
                               f"mark to start a new one with --init")
        if not init:
            raise StoreRefused(f"{path}: no database there; `navseal gateway run --init` creates a new one "
                               f"(only where no file exists)")
        return "new"
    size = os.path.getsize(path)
    if size == 0:
        raise StoreRefused(f"{path} is empty (0 bytes): truncated or overwritten, not a usable database; "
                           f"restore it from a backup (--init never writes over an existing file)")
    with open(path, "rb") as f:
        header = f.read(100)
    if len(header) < 100 or not header.startswith(_HEADER):
        raise StoreRefused(f"{path} is not a SQLite database (its header is damaged or it is another file); "
                           f"restore it from a backup")
    page_size = struct.unpack(">H", header[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    pages = struct.unpack(">I", header[28:32])[0]
    header_counts_pages = header[24:28] == header[92:96]  # the in-header size is valid (SQLite >= 3.7)
    if header_counts_pages and size < pages * page_size:
        raise StoreRefused(f"{path} is truncated: {size} bytes where its header says {pages * page_size}; "
                           f"restore it from a backup")
    db_seq = _quick_check(path)
    mark = read_mark(mark_file)
    if mark is not None and db_seq is not None and db_seq < mark:
        raise StoreRefused(f"{path} lost committed data: it holds {db_seq} commits but its commit mark "
                           f"{mark_file} counts {mark} (a -wal file deleted, or an older copy put back?); "
                           f"restore the database with its -wal file, or remove the mark to accept the loss")
    return "ok"


def _quick_check(path: str) -> int | None:
    """PRAGMA quick_check on the file (with its WAL); returns the database's commit number (None
    before migration 5). StoreRefused when SQLite finds it damaged."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreRefused(f"{path} cannot be opened: {exc}") from None
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
        # One line per problem; SQLite may add a "*** in database main ***" heading line to one.
        problems = [" ".join(line for line in str(r[0]).splitlines() if not line.startswith("***"))
                    for r in rows if r[0] != "ok"]
        if problems:
            raise StoreRefused(f"{path} is damaged ({len(problems)} problem(s) found by quick_check, the first: "
                               f"{problems[0]}); restore it from a backup")
        has_mark = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'commit_mark'").fetchone()
        if not has_mark:
            return None
        row = conn.execute("SELECT seq FROM commit_mark").fetchone()
        return int(row[0]) if row else 0
    except sqlite3.Error as exc:
        raise StoreRefused(f"{path} is damaged: {' '.join(str(exc).split())}; restore it from a backup") from None
    finally:
        conn.close()
