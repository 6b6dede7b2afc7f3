"""The rows an ingest batch reads for each of its seals, read once per batch (decision 0021).

Per frame the ingest reads its seal's row, the seal's open (or latest) escort, its open commands
and which of the frame's rseqs are stored already. On PostgreSQL each read is a round trip;
`SqliteTx.prefetch` reads them for every seal of a batch in four statements sent together before
the frames are processed (the seals' rows locked, in seal id order, on PostgreSQL), and the
transaction's reads of those are answered from here.

Kept true by the transaction's own writes: a seal's row is updated in place (so the ACK's
downlink seq is known without a read: the row is this transaction's); records written add their
rseqs to what is held; a write that may change which escort or which commands are open drops that
seal's entry, and the next read goes to the database. A frame that fails restores what was here
when it began (its savepoint). Rows are replaced, never changed in place, so a snapshot is a
shallow copy.
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
        # seal -> (lo, hi, spans): every stored (first, last) rseq span that meets [lo, hi]
        self.rseqs: dict[int, tuple[int, int, list[tuple[int, int]]]] = {}

    # -- savepoints --
    def save(self) -> tuple[dict[int, Any], ...]:
        return (dict(self.seals), dict(self.open_escort), dict(self.latest_escort), dict(self.commands),
                dict(self.rseqs))

    def restore(self, saved: tuple[dict[int, Any], ...]) -> None:
        self.seals, self.open_escort, self.latest_escort, self.commands, self.rseqs = (dict(d) for d in saved)

    def rseq_spans(self, seal_id: int, first: int, last: int) -> list[tuple[int, int]] | None:
        """The stored spans meeting [first, last], or None when that range is not held."""
        held = self.rseqs.get(seal_id)
        if held is None or first < held[0] or last > held[1]:
            return None
        return [span for span in held[2] if span[0] <= last and span[1] >= first]

    def records_written(self, seal_id: int, first: int, last: int) -> None:
        held = self.rseqs.get(seal_id)
        if held is not None:
            self.rseqs[seal_id] = (held[0], held[1], [*held[2], (first, last)])

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
         row_lock: str, rseqs: dict[int, tuple[int, int]],
         ranges: Callable[[list[tuple[int, int, int]]], tuple[str, list[Any]]], max_run: int) -> BatchRows:
    """The rows of seals `ids` (sorted, distinct) in up to four statements, all sent before any
    result is read (one round trip in PostgreSQL's pipeline mode). `ids_in(ids)`: the engine's
    `seal_id <clause>` and its parameters; `row_lock` locks the seals' rows (in seal id order: two
    batches lock their common seals in the same order and cannot deadlock on them). `rseqs`: per
    seal the [lo, hi] rseq range its frames carry, whose stored spans are read too (single rows and
    runs of at most `max_run` records); `ranges(triples)`: the engine's table of (seal, lo, hi)."""
    clause, args = ids_in(ids)
    seals = conn.execute(f"SELECT * FROM seals WHERE seal_id {clause} ORDER BY seal_id{row_lock}", args)
    escorts = conn.execute(
        f"SELECT * FROM escorts WHERE escort_id IN ("
        f"SELECT MAX(escort_id) FROM escorts WHERE seal_id {clause} GROUP BY seal_id UNION "
        f"SELECT MAX(escort_id) FROM escorts WHERE seal_id {clause} AND status IN ({_OPEN_MARKS}) GROUP BY seal_id) "
        f"ORDER BY escort_id", [*args, *args, *OPEN_ESCORT_STATUSES])
    commands = conn.execute(f"SELECT * FROM commands WHERE seal_id {clause} AND status IN ('queued', 'sent') "
                            f"ORDER BY command_id", args)
    spans = None
    if rseqs:
        table, targs = ranges([(seal_id, lo, hi) for seal_id, (lo, hi) in sorted(rseqs.items())])
        spans = conn.execute(
            f"WITH q(seal, lo, hi) AS ({table}) "
            "SELECT r.seal_id, r.rseq, r.rseq FROM q JOIN records r ON r.seal_id = q.seal "
            "AND r.rseq BETWEEN q.lo AND q.hi "
            "UNION ALL SELECT u.seal_id, u.first_rseq, u.last_rseq FROM q JOIN record_runs u ON u.seal_id = q.seal "
            "AND u.first_rseq BETWEEN q.lo - ? + 1 AND q.hi AND u.last_rseq >= q.lo", [*targs, max_run])
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
    if spans is not None:
        for seal_id, (lo, hi) in rseqs.items():
            rows.rseqs[seal_id] = (lo, hi, [])
        for seal_id, first, last in spans.fetchall():
            rows.rseqs[seal_id][2].append((first, last))
    return rows
