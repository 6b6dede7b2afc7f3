"""Timers: what happens because time passed, not because a frame arrived.

`tick(now)` runs the timed rules on every monitored escort (SIGNAL_LOST, TRANSIT_OVERDUE,
DEACTIVATION_OVERDUE: gateway/rules.py; NOTIFY_OVERDUE per sink: gateway/notify_deadline.py; at the clause 14 deadline the verdict of an escort still
waiting for the seal's records, gateway/verdict.py) and resends due commands to seals that count as online
(gateway/commands.py); `next_deadline(now)` says when `tick` next has something to do, so a driver
can sleep until then. Only new authenticated frames prove a seal alive, so SIGNAL_LOST waits until
the pipeline has run `startup_grace_s`: after a gateway outage the broker first delivers what the
seals sent meanwhile, and a seal that did send must not be reported silent because the gateway was.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from . import verdict
from .commands import Commands, waits_for_seal
from .config import GatewayConfig
from .notify_deadline import NotifyDeadline
from .rules import EscortRules
from .store import ESCORT_EVIDENCE_PENDING, MONITORED_STATUSES, Store

log = logging.getLogger("navseal.gateway.pipeline.timers")


class Timers:
    """The timers room; see the module docstring. Called by `Pipeline` under its lock."""

    def __init__(self, store: Store, config: GatewayConfig, commands: Commands, started_at: float) -> None:
        self.store = store
        self.config = config
        self.commands = commands
        self.started_at = started_at
        self.notify = NotifyDeadline(store, config)

    @property
    def signal_not_before(self) -> float:
        return self.started_at + self.config.startup_grace_s

    def tick(self, now: float) -> tuple[list[tuple[int, bytes]], list[dict[str, Any]]]:
        """(downlink frames to send, new events), all committed in one transaction; raises on failure
        (then nothing of it was committed)."""
        out: list[tuple[int, bytes]] = []
        new: list[dict[str, Any]] = []
        with self.store.transaction() as tx:
            tx.exclusive("timers")  # one tick at a time across the gateway instances sharing the store
            for escort in tx.escorts_with_seal(MONITORED_STATUSES):
                rules, changes = self._evaluate(tx, escort, now)
                if not changes and not rules.events:
                    continue
                # Decide again with the seal's row locked: another instance's ingest may have
                # changed the escort since the read (one instance: the same row, nothing changes).
                fresh = tx.lock_escort(escort["escort_id"])
                if fresh is None or fresh["status"] not in MONITORED_STATUSES:
                    continue
                if fresh != escort:
                    rules, changes = self._evaluate(tx, fresh, now)
                if changes:
                    tx.update_escort(rules.id, **changes)
                if rules.events:
                    new += tx.insert_events(rules.events, [rules.id] * len(rules.events), now)
            for c in tx.head_commands():
                if (c["seal_last_seen_at"] or -math.inf) < now - self.config.online_window_s:
                    continue  # offline: sent when it next calls in
                if waits_for_seal(c):
                    continue
                out += self.commands.due(tx, c["seal_id"], now, bytes(c["seal_key"]))
        try:
            new += self.notify.check(now)  # clause 11 per sink, in its own transaction
        except Exception:  # what is committed above stands (and its downlinks go out); next tick retries
            log.exception("NOTIFY_OVERDUE check failed at %s", now)
        return out, new

    def _evaluate(self, tx: Any, escort: dict[str, Any], now: float) -> tuple[EscortRules, dict[str, Any]]:
        """The timed rules on one escort: (its rules with their events, the escort's changes). Reads
        only: nothing is written until the caller applies them."""
        rules = EscortRules(escort, self.config, now)
        rules.tick(now, escort["seal_last_seen_at"] or escort.get("confirmed_at"),
                   signal_not_before=self.signal_not_before)
        if rules.status == ESCORT_EVIDENCE_PENDING and now > (
                float(escort["deactivation_requested_at"]) + self.config.deactivation_deadline_s):
            verdict.settle(tx, rules, final=True)  # the clause 14 hour is over: verdict on what we hold
        return rules, rules.finish()

    def next_deadline(self, now: float) -> float | None:
        """The earliest time at which `tick` has something to do (None: nothing pending)."""
        times: list[float] = []
        with self.store.transaction() as tx:
            for escort in tx.escorts_with_seal(MONITORED_STATUSES):
                rules = EscortRules(escort, self.config, 0.0)
                times += rules.deadlines(escort["seal_last_seen_at"] or escort.get("confirmed_at"),
                                         signal_not_before=self.signal_not_before)
            for c in tx.head_commands():
                last_seen = c["seal_last_seen_at"]
                if last_seen is None or waits_for_seal(c):
                    continue
                due = c["next_attempt_at"] or c["created_at"]
                # Only worth waking for while the seal counts as online (tick sends only then);
                # an offline seal gets its command in the answer to its next frame.
                if max(due, now) <= last_seen + self.config.online_window_s:
                    times.append(due)
        if self.notify.due is not None:
            times.append(self.notify.due)
        # A deadline exactly at t is acted on by tick(t') for t' > t (rules use strict ">").
        return min(times) if times else None
