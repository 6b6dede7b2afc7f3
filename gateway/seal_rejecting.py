"""SEAL_REJECTING: a seal the gateway refuses frame after frame is as silent as a jammed one.

More than `seal_rejecting_after` frames of one provisioned seal in a row refused as replayed or
forged (its counters or key no longer match the gateway's: a flash wipe, a re-key gone wrong, an
attacker's copies) raise one SEAL_REJECTING alarm; its first accepted frame ends the run with
SEAL_REJECTING_ENDED. An admin recovers the seal with `navseal gateway seal rekey|reset-replay`.

The run is kept with the seal in the store (`seals.rejecting`, JSON {n, since, reasons}), read
and written under the seal's row lock: it survives a restart, and several gateways sharing one
PostgreSQL count one run between them. Accepted frames, the hot path, touch the store only for a
seal this process saw refused (or, after a start, for every seal once): a run another instance
saw is ended by the first accepted frame that instance gets (frames of a seal come round).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

from . import events as ev
from .config import GatewayConfig
from .metrics import PipelineMetrics
from .store import Store

_REFUSED_AS = ("replayed", "bad_mac")


class SealRejectingWatch:
    def __init__(self, store: Store, config: GatewayConfig, clock: Callable[[], float],
                 metrics: PipelineMetrics) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.metrics = metrics
        # Seals whose run this process must look at on their next accepted frame; None until the
        # store was asked once which seals have a run (after a start, a run may already be there).
        self._watched: set[int] | None = None

    def refused_in_a_row(self, seal_id: int) -> int:
        with self.store.transaction() as tx:
            row = tx.get_seal(seal_id)
        return json.loads(row["rejecting"])["n"] if row and row.get("rejecting") else 0

    def observe(self, results: Sequence[Any]) -> None:
        """The outcomes of one ingest batch (IngestResult: seal_id, result, reason), in order."""
        per_seal: dict[int, list[Any]] = {}
        for r in results:
            if r.seal_id is None:
                continue
            refused = r.result == "rejected" and r.reason in _REFUSED_AS
            if refused or r.result == "accepted":
                per_seal.setdefault(r.seal_id, []).append(r.reason if refused else None)
        if self._watched is None:
            self._watched = self._seals_with_a_run()
        todo = {sid: outcomes for sid, outcomes in per_seal.items()
                if sid in self._watched or any(o is not None for o in outcomes)}
        if todo:
            self._apply(todo)

    def _seals_with_a_run(self) -> set[int]:
        with self.store.transaction() as tx:
            return set(tx.rejecting_seal_ids())

    def _apply(self, todo: dict[int, list[str | None]]) -> None:
        assert self._watched is not None
        limit = self.config.seal_rejecting_after
        now = self.clock()
        with self.store.transaction() as tx:
            for sid, outcomes in todo.items():
                row = tx.get_seal(sid)  # PostgreSQL: locks the seal's row for this transaction
                if row is None:
                    self._watched.discard(sid)
                    continue
                run = json.loads(row["rejecting"]) if row.get("rejecting") else None
                changes: list[tuple[str, dict[str, Any]]] = []
                for reason in outcomes:
                    if reason is not None:
                        run = run or {"n": 0, "since": now, "reasons": {}}
                        run["n"] += 1
                        run["reasons"][reason] = run["reasons"].get(reason, 0) + 1
                        if run["n"] == limit + 1:
                            changes.append(("SEAL_REJECTING", dict(run, reasons=dict(run["reasons"]))))
                    elif run is not None:
                        if run["n"] > limit:
                            changes.append(("SEAL_REJECTING_ENDED", run))
                        run = None
                before = row.get("rejecting")
                after = json.dumps(run, sort_keys=True) if run is not None else None
                if after != before:
                    tx.update_seal(sid, rejecting=after)
                if run is not None:
                    self._watched.add(sid)
                else:
                    self._watched.discard(sid)
                for kind, r in changes:
                    escort = tx.open_escort_for_seal(sid)
                    event = ev.make_event(
                        kind, seal_id=sid, fact=f"rejecting:{r['since']}:{kind}", escort=escort,
                        occurred_at=r["since"] if kind == "SEAL_REJECTING" else now, known_at=now, emitted_at=now,
                        details={"refused_in_a_row": r["n"], "reasons": dict(r["reasons"]),
                                 "since": ev.iso(r["since"]), "threshold": limit})
                    new = tx.insert_events([event], [escort["escort_id"] if escort else None], now)
                    self.metrics.events_created(new)
