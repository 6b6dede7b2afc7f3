"""The rows an ingest batch reads for each of its seals, read once per batch (decision 0021).

Per frame the ingest reads its seal's row, the seal's open (or latest) escort and its open
commands. On PostgreSQL each read is a round trip; `SqliteTx.prefetch` reads them for every seal
of a batch in three statements before the frames are processed (the seals' rows locked, in seal
id order, on PostgreSQL), and the transaction's reads of those seals are answered from here.

Kept true by the transaction's own writes: a seal's row is updated in place (so the ACK's
downlink seq is known without a read: the row is this transaction's), while a write that may
change which escort is open or which commands are open drops that seal's entry, and the next read
goes to the database. A savepoint's rollback restores what was here when it began. Rows are
replaced, never changed in place, so a snapshot is a shallow copy.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from .interface import OPEN_ESCORT_STATUSES

_OPEN_MARKS = ", ".join("?" for _ in OPEN_ESCORT_STATUSES)


class BatchRows:
    def __init__(self) -> None:
        self.seals: dict[int, dict[str, Any] | None] = {}  # None: no such seal
        self.open_escort: dict[int, dict[str, Any] | None] = {}
        self.latest_escort: dict[int, dict[str, Any] | None] = {}
        self.commands: dict[int, list[dict[str, Any]]] = {}  # open commands, by command_id

    # -- savepoints --
    def save(self) -> tuple[dict[int, Any], ...]:
        return dict(self.seals), dict(self.open_escort), dict(self.latest_escort), dict(self.commands)

    def restore(self, saved: tuple[dict[int, Any], ...]) -> None:
        self.seals, self.open_escort, self.latest_escort, self.commands = (dict(d) for d in saved)

    # -- what the transaction wrote --
    def seal_updated(self, seal_id: int, columns: dict[str, Any]) -> None:
        row = self.seals.get(seal_id)
        if row is not None:
            self.seals[seal_id] = {**row, **columns}

    def seal_written(self, seal_id: int) -> None:
        self.seals.pop(seal_id, None)

    def escort_written(self, seal_id: int | None) -> None:
        """An escort of `seal_id` inserted, or its status changed (None: of a seal not known here)."""
        if seal_id is None:
            self.open_escort.clear()
            self.latest_escort.clear()
        else:
            self.open_escort.pop(seal_id, None)
            self.latest_escort.pop(seal_id, None)

    def escort_updated(self, escort_id: int, columns: dict[str, Any]) -> None:
        held = False
        for table in (self.open_escort, self.latest_escort):
            for seal_id, row in list(table.items()):
                if row is not None and row["escort_id"] == escort_id:
                    held = True
                    if "status" in columns:
                        self.escort_written(seal_id)
                    else:
                        table[seal_id] = {**row, **columns}
        if "status" in columns and not held:
            self.escort_written(None)  # an escort of a seal not held here: its status may open one

    def command_written(self, seal_id: int | None) -> None:
        """A command of `seal_id` inserted or updated (None: of a seal not known here)."""
        if seal_id is None:
            self.commands.clear()
        else:
            self.commands.pop(seal_id, None)

    def command_seal(self, command_id: int) -> int | None:
        for seal_id, rows in self.commands.items():
            if any(r["command_id"] == command_id for r in rows):
                return seal_id
        return None


def read(conn: Any, ids: Sequence[int], ids_in: Callable[[Sequence[int]], tuple[str, list[Any]]],
         row_lock: str) -> BatchRows:
    """The rows of seals `ids` (sorted, distinct) in three statements, all sent before any result
    is read (one round trip in PostgreSQL's pipeline mode). `ids_in(ids)`: the engine's
    `seal_id <clause>` and its parameters; `row_lock` locks the seals' rows (in seal id order: two
    batches lock their common seals in the same order and cannot deadlock on them)."""
    clause, args = ids_in(ids)
    seals = conn.execute(f"SELECT * FROM seals WHERE seal_id {clause} ORDER BY seal_id{row_lock}", args)
    escorts = conn.execute(
        f"SELECT * FROM escorts WHERE escort_id IN ("
        f"SELECT MAX(escort_id) FROM escorts WHERE seal_id {clause} GROUP BY seal_id UNION "
        f"SELECT MAX(escort_id) FROM escorts WHERE seal_id {clause} AND status IN ({_OPEN_MARKS}) GROUP BY seal_id) "
        f"ORDER BY escort_id", [*args, *args, *OPEN_ESCORT_STATUSES])
    commands = conn.execute(f"SELECT * FROM commands WHERE seal_id {clause} AND status IN ('queued', 'sent') "
                            f"ORDER BY command_id", args)
    rows = BatchRows()
    for seal_id in ids:
        rows.seals[seal_id] = rows.open_escort[seal_id] = rows.latest_escort[seal_id] = None
        rows.commands[seal_id] = []
    for r in seals.fetchall():
        row = dict(r)
        row.pop("key")  # keys leave the store only through seal_key / head_commands, decrypted
        rows.seals[row["seal_id"]] = row
    for r in escorts.fetchall():  # by escort_id: the last one of a seal is its latest
        row = dict(r)
        rows.latest_escort[row["seal_id"]] = row
        if row["status"] in OPEN_ESCORT_STATUSES:
            rows.open_escort[row["seal_id"]] = row
    for r in commands.fetchall():
        row = dict(r)
        rows.commands[row["seal_id"]].append(row)
    return rows
