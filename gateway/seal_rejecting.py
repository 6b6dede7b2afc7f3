"""SEAL_REJECTING: a seal the gateway refuses frame after frame is as silent as a jammed one.

More than `seal_rejecting_after` frames of one provisioned seal in a row refused as replayed or
forged (its counters or key no longer match the gateway's: a flash wipe, a re-key gone wrong, an
attacker's copies) raise one SEAL_REJECTING alarm; its first accepted frame ends the run with
SEAL_REJECTING_ENDED. An admin recovers the seal with `navseal gateway seal rekey|reset-replay`.
The run is counted in this process's memory: a restart starts it again (the alarm then comes
`seal_rejecting_after` refusals later).
"""

from __future__ import annotations

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
        # seal id -> its current run of refused frames {n, since, reasons}
        self.refusals: dict[int, dict[str, Any]] = {}

    def refused_in_a_row(self, seal_id: int) -> int:
        return self.refusals.get(seal_id, {}).get("n", 0)

    def observe(self, results: Sequence[Any]) -> None:
        """The outcomes of one ingest batch (IngestResult: seal_id, result, reason), in order."""
        limit = self.config.seal_rejecting_after
        changes: list[tuple[str, int, dict[str, Any]]] = []
        for r in results:
            sid = r.seal_id
            if sid is None:
                continue
            if r.result == "rejected" and r.reason in _REFUSED_AS:
                run = self.refusals.setdefault(sid, {"n": 0, "since": self.clock(), "reasons": {}})
                run["n"] += 1
                run["reasons"][r.reason] = run["reasons"].get(r.reason, 0) + 1
                if run["n"] == limit + 1:
                    changes.append(("SEAL_REJECTING", sid, run))
            elif r.result == "accepted" and sid in self.refusals:
                ended = self.refusals.pop(sid)
                if ended["n"] > limit:
                    changes.append(("SEAL_REJECTING_ENDED", sid, ended))
        if changes:
            self._emit(changes, limit)

    def _emit(self, changes: list[tuple[str, int, dict[str, Any]]], limit: int) -> None:
        now = self.clock()
        with self.store.transaction() as tx:
            for kind, sid, run in changes:
                escort = tx.open_escort_for_seal(sid)
                event = ev.make_event(
                    kind, seal_id=sid, fact=f"rejecting:{run['since']}:{kind}", escort=escort,
                    occurred_at=run["since"] if kind == "SEAL_REJECTING" else now, known_at=now, emitted_at=now,
                    details={"refused_in_a_row": run["n"], "reasons": dict(run["reasons"]),
                             "since": ev.iso(run["since"]), "threshold": limit})
                new = tx.insert_events([event], [escort["escort_id"] if escort else None], now)
                self.metrics.events_created(new)
