"""The store interface: what the gateway core needs from storage, whatever the engine.

Everything the gateway knows lives behind it: seals (keys, replay window, downlink counter, last fix),
escorts (clause 8 data, status, timestamps, rule state), records (the track and the seal's journal
events, unique per (seal, rseq)), accepted uplink frames (for exact-duplicate re-ACKs), events (the
operator JSON, unique by event_id), the outbox (one row per event; each sink keeps its own durable
cursor) and commands (ACTIVATE/DEACTIVATE/... with their downlink (boot, seq) and status).

Transactions: the core opens `store.transaction()` and does all the reads and writes of one frame
(or one batch of frames, one savepoint each) inside it; the ACK is built from what was committed and
released only after `transaction()` exits without error. Rows are plain dicts keyed by column.

`SqliteStore` (gateway/store/sqlite.py) implements it; another engine implements `Store` and
`StoreTx` with the same SQL shapes. Nothing outside gateway/store/ writes SQL.
"""

from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from .access import AccessTx
from .console import ConsoleReads, ConsoleTx

# Escort status values, in lifecycle order. "Monitored" ones are those the rules watch.
ESCORT_REQUESTED = "requested"  # ACTIVATE queued/sent, seal has not confirmed yet
ESCORT_ARMED = "armed"  # seal answered OK; waiting for its first fix with the lock intact
ESCORT_ACTIVE = "active"  # ACTIVATED emitted
ESCORT_DEACTIVATION_REQUESTED = "deactivation_requested"
ESCORT_EVIDENCE_PENDING = "evidence_pending"  # the seal confirmed DEACTIVATE; the verdict waits for its records
ESCORT_DEACTIVATED = "deactivated"
ESCORT_FAILED = "failed"  # ACTIVATION_FAILED emitted; no tracking
OPEN_ESCORT_STATUSES = (ESCORT_REQUESTED, ESCORT_ARMED, ESCORT_ACTIVE, ESCORT_DEACTIVATION_REQUESTED,
                        ESCORT_EVIDENCE_PENDING)
MONITORED_STATUSES = (ESCORT_ARMED, ESCORT_ACTIVE, ESCORT_DEACTIVATION_REQUESTED, ESCORT_EVIDENCE_PENDING)

# Dead letter status values.
DEAD_LETTER_DEAD = "dead"  # refused for good; waits for an admin
DEAD_LETTER_REPLAY = "replay"  # an admin asked to send it again; the sink's worker will
DEAD_LETTER_REPLAYED = "replayed"  # sent again and delivered
DEAD_LETTER_STATUSES = (DEAD_LETTER_DEAD, DEAD_LETTER_REPLAY, DEAD_LETTER_REPLAYED)

# Command status values.
CMD_QUEUED = "queued"
CMD_SENT = "sent"
CMD_ACKED = "acked"
CMD_FAILED = "failed"
CMD_CANCELLED = "cancelled"
OPEN_COMMAND_STATUSES = (CMD_QUEUED, CMD_SENT)

class StoreError(Exception):
    """The store could not do what was asked (I/O, constraint); the caller must not ACK."""


class BatchFailed(StoreError):
    """A statement of a `pipelined_transaction` failed on the server: nothing of it is committed,
    but the store works. Running the unit again in `transaction()` finds the statement at fault
    (a savepoint then isolates it)."""


@dataclass
class OutboxItem:
    outbox_id: int
    event: dict[str, Any]


class StoreTx(AccessTx, ConsoleTx, abc.ABC):
    """What the pipeline does inside one transaction. Rows are plain dicts keyed by column.
    Users, tokens, sessions and audit rows (AccessTx, access.py) and alarm acknowledgements
    (ConsoleTx, console.py) are in the same transaction."""

    # seals
    @abc.abstractmethod
    def get_seal(self, seal_id: int) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def rejecting_seal_ids(self) -> list[int]:
        """Seals with a run of refused frames going on (`rejecting` set: SEAL_REJECTING)."""

    @abc.abstractmethod
    def update_seal(self, seal_id: int, **columns: Any) -> None: ...

    @abc.abstractmethod
    def put_seal_key(self, seal_id: int, key: bytes, now: float) -> bool:
        """Create the seal with this key, or replace its key; True when the seal existed."""

    @abc.abstractmethod
    def seal_ids(self) -> list[int]: ...

    @abc.abstractmethod
    def next_downlink_seq(self, seal_id: int) -> int:
        """Allocate the next downlink `seq` for this seal (persisted, strictly increasing)."""

    def update_seal_next_seq(self, seal_id: int, **columns: Any) -> int:
        """update_seal, then next_downlink_seq (one statement where the store can: once per frame)."""
        self.update_seal(seal_id, **columns)
        return self.next_downlink_seq(seal_id)

    # uplink frames
    @abc.abstractmethod
    def get_uplink(self, seal_id: int, boot: int, seq: int) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def insert_uplink(self, row: dict[str, Any]) -> None: ...

    # escorts
    @abc.abstractmethod
    def get_escort(self, escort_id: int) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def open_escort_for_seal(self, seal_id: int) -> dict[str, Any] | None:
        """The seal's escort that is not finished (requested/armed/active/deactivation_requested)."""

    @abc.abstractmethod
    def latest_escort_for_seal(self, seal_id: int) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def insert_escort(self, row: dict[str, Any]) -> int: ...

    @abc.abstractmethod
    def update_escort(self, escort_id: int, **columns: Any) -> None: ...

    @abc.abstractmethod
    def find_escorts(self, *, offices: Sequence[str] | None = None, after_id: int = 0, limit: int | None = None,
                     **where: Any) -> list[dict[str, Any]]:
        """Escorts matching `where`, in escort_id order after `after_id`, at most `limit`; with
        `offices`, only those whose departure or destination office is one of them (an officer's scope)."""

    @abc.abstractmethod
    def escorts_with_status(self, statuses: Sequence[str], *, offices: Sequence[str] | None = None,
                            after_id: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Escorts in these statuses, in escort_id order after `after_id`, at most `limit`."""

    @abc.abstractmethod
    def escorts_with_seal(self, statuses: Sequence[str]) -> list[dict[str, Any]]:
        """Escorts in these statuses, each with its seal's `seal_last_seen_at` (one query: timers)."""

    @abc.abstractmethod
    def lock_escort(self, escort_id: int) -> dict[str, Any] | None:
        """The escort as `escorts_with_seal` gives it, its seal's row locked until the transaction
        ends: ingest of that seal by any gateway instance waits (a timer's decision on fresh data)."""

    def exclusive(self, name: str) -> None:
        """Hold `name` until this transaction ends: one such transaction at a time across every
        gateway instance sharing the store (timers, retention). A store that one instance writes
        needs nothing here (SQLite: BEGIN IMMEDIATE already serializes its transactions)."""

    # records
    @abc.abstractmethod
    def existing_rseqs(self, seal_id: int, first: int, last: int) -> set[int]: ...

    @abc.abstractmethod
    def count_rseqs(self, seal_id: int, first: int, last: int) -> int:
        """How many records of the seal are stored with rseq in [first, last] (the verdict's
        completeness check)."""

    @abc.abstractmethod
    def insert_records(self, rows: Sequence[dict[str, Any]]) -> None:
        """Single records (the seal's EVENT records), one row each."""

    @abc.abstractmethod
    def insert_fix_run(self, seal_id: int, escort_id: int | None, first_rseq: int, base_time: int,
                       body: bytes, received_at: float) -> None:
        """Store consecutive new position records as one run: `body` is their wire bytes as the
        RECORDS frame carried them (RECORD_SIZE each, at most one frame's worth); record i is rseq
        `first_rseq + i`. The caller stores only rseqs not stored yet (`existing_rseqs`)."""

    # events + outbox
    @abc.abstractmethod
    def insert_events(self, events: Sequence[dict[str, Any]], escort_ids: Sequence[int | None],
                      now: float) -> list[dict[str, Any]]:
        """Insert events not yet stored (by event_id) and one outbox row each; return the new ones."""

    # commands
    @abc.abstractmethod
    def insert_command(self, row: dict[str, Any]) -> int: ...

    @abc.abstractmethod
    def update_command(self, command_id: int, **columns: Any) -> None: ...

    @abc.abstractmethod
    def open_commands(self, seal_id: int | None = None) -> list[dict[str, Any]]:
        """Queued or sent commands, oldest first (all seals when seal_id is None)."""

    @abc.abstractmethod
    def commands_for_escort(self, escort_id: int) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    def head_commands(self) -> list[dict[str, Any]]:
        """Per seal, its oldest open command, with `seal_last_seen_at` and `seal_key` (timers)."""

    # retention (the calendar is gateway/retention.py's; the store only finds and deletes)
    @abc.abstractmethod
    def deactivated_escorts(self) -> list[dict[str, Any]]:
        """`escort_id` and `deactivated_at` of every deactivated escort still stored."""

    @abc.abstractmethod
    def ended_escorts(self) -> list[dict[str, Any]]:
        """`escort_id` and `ended_at` of every escort deactivated (`deactivated_at`) or, never
        deactivated, expired (`expired_at`), still stored."""

    @abc.abstractmethod
    def escorts_to_expire(self, open_ended_before: float, failed_before: float) -> list[dict[str, Any]]:
        """Escorts never deactivated nor expired: open ones whose period ended before
        `open_ended_before`, failed ones that failed before `failed_before`."""

    @abc.abstractmethod
    def delete_unescorted(self, received_before: float, limit: int,
                          after: Any = None) -> tuple[dict[str, int], Any]:
        """Delete records and uplinks outside any escort received before `received_before`, looking
        at up to `limit` of each from `after` (the position the previous call returned; None: from
        the start). Returns rows deleted per table and the position to go on from (None: done)."""

    @abc.abstractmethod
    def delete_escort(self, escort_id: int) -> dict[str, int]:
        """Delete the escort and all its data; rows deleted per table (escorts, records, events,
        outbox, commands, uplinks, alarm_acks)."""

    @abc.abstractmethod
    def get_dead_letter(self, dead_letter_id: int) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def request_dead_letter_replay(self, dead_letter_id: int, now: float) -> dict[str, Any] | None:
        """Mark a dead letter for sending again by its sink's worker (status "replay"); the row
        after the change, or None when there is no such dead letter."""

    def prefetch(self, seal_ids: Iterable[int], rseqs: dict[int, tuple[int, int]] | None = None) -> None:
        """The frames of a batch will read these seals' rows, open or latest escorts, open
        commands, and (`rseqs`: seal -> (lo, hi)) which of their records' rseqs are stored: read
        them now, in a few statements (PostgreSQL: the seals' rows locked in seal id order), and
        answer those reads from them for the rest of the transaction, kept up to date by its writes
        (gateway/store/batch_rows.py). Optional: without it every read asks."""

    @abc.abstractmethod
    def savepoint(self) -> contextlib.AbstractContextManager[None]:
        """Nested unit: rolled back alone if the block raises (one frame of a batch)."""


class Store(ConsoleReads, abc.ABC):
    """Storage interface; `SqliteStore` implements it. Every method is thread-safe. The web console's
    and the public read routes' queries are `ConsoleReads` (console.py)."""

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[StoreTx]:
        """One atomic, durable unit: commits on normal exit, rolls back if the block raises."""

    def pipelined_transaction(self) -> contextlib.AbstractContextManager[StoreTx]:
        """`transaction()`, but the engine may send a statement without waiting for its result
        until the result is read (PostgreSQL's pipeline mode, decision 0021). A statement that
        fails on the server then fails the whole transaction with BatchFailed, raised wherever it
        is seen. SQLite (in-process, no round trips): `transaction()`."""
        return self.transaction()

    # keys
    @abc.abstractmethod
    def provision_seal(self, seal_id: int, key: bytes, now: float) -> None:
        """Create the seal or replace its key (keeps its history and counters)."""

    @abc.abstractmethod
    def seal_key(self, seal_id: int) -> bytes | None: ...

    # outbox (read by the outbox workers, gateway/outbox_worker.py, each on its own store object)
    @abc.abstractmethod
    def outbox_fetch(self, sink: str, limit: int = 100) -> list[OutboxItem]:
        """Events after this sink's cursor, oldest first (so per-seal order is kept). Where several
        gateway instances share the store, only the one holding the sink's lease gets rows (the
        others get none until it is gone): each sink is delivered by one instance at a time."""

    @abc.abstractmethod
    def outbox_mark_delivered(self, sink: str, upto_outbox_id: int, now: float | None = None) -> None:
        """Advance the sink's durable cursor to `upto_outbox_id` (never backwards)."""

    @abc.abstractmethod
    def outbox_note_failure(self, sink: str, error: str, next_attempt_at: float, now: float) -> None:
        """Record a failed delivery attempt at the cursor (attempts, next_attempt_at, last_error)."""

    @abc.abstractmethod
    def outbox_depth(self, sink: str) -> int: ...

    @abc.abstractmethod
    def outbox_status(self) -> dict[str, dict[str, Any]]:
        """Per known sink: cursor, depth, attempts, next_attempt_at, last_error."""

    # dead letters: events a sink refused for good (gateway/outbox_worker.py)
    @abc.abstractmethod
    def outbox_dead_letter(self, sink: str, outbox_id: int, event_id: str, error: str, now: float) -> int:
        """In one transaction: keep the event as a dead letter of `sink` (status "dead") and move the
        sink's cursor past `outbox_id`. Returns the dead letter's id."""

    @abc.abstractmethod
    def dead_letters(self, *, sink: str | None = None, status: str | None = None, after_id: int = 0,
                     limit: int = 100) -> list[dict[str, Any]]:
        """Dead letters in id order after `after_id`, each with its `event` (None once purged)."""

    @abc.abstractmethod
    def dead_letter_settled(self, dead_letter_id: int, *, delivered: bool, error: str | None, now: float) -> None:
        """A replay ended: "replayed" when delivered, else "dead" again with the new error."""

    @abc.abstractmethod
    def dead_letter_counts(self) -> dict[str, int]:
        """Per sink, dead letters waiting (status "dead")."""

    # reading
    @abc.abstractmethod
    def events(self, *, seal_id: int | None = None, escort_id: int | None = None,
               kind: str | None = None, after_outbox_id: int = 0, limit: int = 1000) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    def records(self, seal_id: int, *, escort_id: int | None = None, limit: int = 100_000) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    def audit_rows(self, *, after_seq: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """Audit rows in sequence order after `after_seq` (gateway/audit.py)."""

    @abc.abstractmethod
    def audit_high_water(self) -> int:
        """The highest audit sequence number ever assigned (deleted rows included)."""

    @abc.abstractmethod
    def write_probe(self) -> None:
        """Commit (then delete) a write of some tens of kB: StoreError while the store cannot take
        writes (disk full, I/O errors). Ingest resumes after a store error once this succeeds."""

    @abc.abstractmethod
    def counts(self) -> dict[str, int]:
        """Row counts per table (for tests, status and metrics)."""

    @abc.abstractmethod
    def close(self) -> None: ...


