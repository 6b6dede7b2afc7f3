"""The gateway's sans-I/O core, as the one object drivers hold: bytes and time in; committed state,
downlink frames and events out.

`Pipeline` owns no socket, thread, loop or sleep: the drivers (gateway/mqtt_ingest.py,
serial_ingest.py, the HTTP API, the CLI, the simulator) call it and send what it returns. Time
comes from the injected `clock` (Unix seconds) and from `tick(now)`. It is a facade over the rooms
that do the work (docs/gateway.md, "Where things are"):

    handle_uplink(s)                  gateway/ingest.py     precheck, replay window, records, ACK
    request_(de)activation, commands  gateway/commands.py   command queue and the seal's answers
    tick, next_deadline               gateway/timers.py     timed rules and command retries
    status                            gateway/views.py
    purge                             gateway/retention.py  clause 18.3
    metrics, registry                 gateway/metrics.py    prometheus_client, one registry each

Thread-safety: every public method takes one lock, so drivers may call from several threads.
Several processes may share one SQLite file: all state is read inside the write transaction.
"""

from __future__ import annotations

import logging
import threading
import time as _time
from typing import Any, Callable, Sequence

from prometheus_client import CollectorRegistry

from . import audit, retention, seal_keys, views
from .auth import Actor
from .command_requests import SYSTEM_ACTOR, ActivationRequest, CommandError
from .commands import Commands
from .config import GatewayConfig
from .ingest import Ingest, IngestResult, SealKeys
from .metrics import PipelineMetrics
from .store import Store, StoreError
from .timers import Timers

log = logging.getLogger("navseal.gateway.pipeline")

Clock = Callable[[], float]


class Pipeline:
    """See the module docstring. Construct once per process (or per store) and share it."""

    def __init__(self, store: Store, config: GatewayConfig | None = None, clock: Clock | None = None) -> None:
        self.store = store
        self.config = config or GatewayConfig()
        self.clock: Clock = clock or _time.time
        self._lock = threading.RLock()
        self.pipeline_metrics = PipelineMetrics()
        self._keys = SealKeys(store)
        self._commands = Commands(store, self.config, self.clock, self.pipeline_metrics)
        self._ingest = Ingest(store, self.config, self.clock, self.pipeline_metrics, self._keys, self._commands)
        self._timers = Timers(store, self.config, self._commands, started_at=self.clock())
        self.last_tick_events: list[dict[str, Any]] = []
        # Called (no arguments, from the caller's thread) when a command creates an earlier deadline,
        # so a driver sleeping until next_deadline() can wake up and tick.
        self.wakeup: Callable[[], None] | None = None

    @property
    def registry(self) -> CollectorRegistry:
        """This pipeline's Prometheus registry (the service adds its driver metrics to it)."""
        return self.pipeline_metrics.registry

    # -- ingest --
    def handle_uplink(self, raw: bytes, source: str = "") -> IngestResult:
        """One frame in; never raises. The ACK (if any) is in `result.downlink`, built after commit."""
        return self.handle_uplinks([(raw, source)])[0]

    def handle_uplinks(self, items: Sequence[tuple[bytes, str]]) -> list[IngestResult]:
        """Several frames in ONE transaction (one savepoint each), results in input order; ACKs
        are built only after the single commit. Faster than frame by frame (one fsync)."""
        with self._lock:
            return self._ingest.handle(items)

    @property
    def last_store_error(self) -> str | None:
        """The error of the last batch the store failed (results with reason "store_error")."""
        return self._ingest.last_store_error

    def probe_store(self) -> str | None:
        """Can ingest resume? Commits a write that needs free space (Store.write_probe): None if it
        committed, else the store's error."""
        with self._lock:
            try:
                self.store.write_probe()
            except StoreError as exc:
                return str(exc)
            return None

    # -- commands --
    def provision_seal(self, seal_id: int, key: bytes, *, actor: Actor | None = None, rekey: bool = True,
                       force: bool = False) -> dict[str, Any]:
        """Register a seal and its 32-byte key, or replace the key (gateway/seal_keys.py: re-keying
        needs `rekey`, and `force` under an open escort; audited as `actor`). Raises CommandError."""
        with self._lock:
            try:
                with self.store.transaction() as tx:
                    answer, new = seal_keys.provision(tx, int(seal_id), key, actor=actor or SYSTEM_ACTOR,
                                                      now=self.clock(), rekey=rekey, force=force, error=CommandError)
            except StoreError as exc:
                raise CommandError("bad_request", str(exc)) from None
            self._keys.forget(int(seal_id))
            self.pipeline_metrics.events_created(new)
        return answer

    def reset_replay_window(self, seal_id: int, *, actor: Actor | None = None) -> dict[str, Any]:
        """Admin: forget the seal's last accepted (boot, seq), so its next new frame is accepted
        whatever its counters (a seal whose flash was replaced restarts them; frames stored
        before stay duplicates). Audited as `actor`. Raises CommandError."""
        with self._lock:
            now = self.clock()
            with self.store.transaction() as tx:
                seal = tx.get_seal(int(seal_id))
                if seal is None:
                    raise CommandError("unknown_seal", f"seal {seal_id} is not provisioned")
                previous = {"boot": seal["last_boot"], "seq": seal["last_seq"]}
                tx.update_seal(int(seal_id), last_boot=None, last_seq=None)
                seq = audit.record(tx, actor or SYSTEM_ACTOR, "seal.reset_replay", f"seal:{seal_id}",
                                   {"previous": previous}, now=now)
            refused = self._ingest.rejecting.refused_in_a_row(int(seal_id))
        return {"seal_id": int(seal_id), "reset": True, "previous": previous, "refused_in_a_row": refused,
                "audit_seq": seq}

    def request_activation(self, request: ActivationRequest | dict[str, Any], *,
                           actor: Actor | None = None) -> dict[str, Any]:
        """Create the escort and queue ACTIVATE for the seal. Returns the escort (status dict).
        `actor` (who asked) is kept on the escort, carried by ACTIVATED and audited in the same
        transaction. Raises CommandError."""
        if isinstance(request, dict):
            request = ActivationRequest.from_dict(request)
        with self._lock:
            created = self._commands.request_activation(request, actor or SYSTEM_ACTOR)
        self._wake()
        return views.escort_view(created)

    def request_deactivation(self, seal_id: int, declaration: str, vehicle: str, *, actor: Actor | None = None,
                             offices: Sequence[str] | None = None) -> dict[str, Any]:
        """Clause 13: queue DEACTIVATE if seal, declaration and vehicle match the seal's escort;
        emits DEACTIVATION_REQUESTED and starts the one-hour deadline. `offices`: the caller may
        only deactivate escorts whose destination office is one of these ("forbidden" otherwise,
        before anything about the escort is revealed). Raises CommandError."""
        with self._lock:
            escort, new = self._commands.request_deactivation(seal_id, declaration, vehicle,
                                                              actor or SYSTEM_ACTOR, offices)
            if new is None:
                return views.escort_view(escort)  # asked twice: same request, nothing new
            self.pipeline_metrics.events_created(new)
        self._wake()
        return views.escort_view(escort)

    # -- time --
    def tick(self, now: float | None = None) -> list[tuple[int, bytes]]:
        """Run the timed rules (SIGNAL_LOST, TRANSIT_OVERDUE, DEACTIVATION_OVERDUE) and command
        retries at `now` (default: the clock). Returns downlink frames to send (seal_id, bytes).
        New events go to the outbox; `last_tick_events` holds them for the caller's logs."""
        with self._lock:
            now = self.clock() if now is None else now
            try:
                out, new = self._timers.tick(now)
            except Exception:
                log.exception("tick failed at %s; nothing of it was committed", now)
                self.pipeline_metrics.count("tick_errors")
                return []
            self.pipeline_metrics.events_created(new)
            self.last_tick_events = new
            return out

    def next_deadline(self) -> float | None:
        """The earliest time at which `tick` has something to do (None: nothing pending)."""
        with self._lock:
            return self._timers.next_deadline(self.clock())

    # -- views, metrics, retention --
    def status(self, *, seal_id: int | None = None, escort_id: int | None = None,
               declaration: str | None = None, vehicle: str | None = None,
               offices: Sequence[str] | None = None, after_id: int = 0,
               limit: int | None = None) -> list[dict[str, Any]]:
        """Escorts matching the filters (all open escorts when none is given), each with its seal's
        last seen time, last position and open commands; by escort_id after `after_id`, at most
        `limit`. `offices`: only escorts whose departure or destination office is one of these (an
        officer's scope; a store query, not a filter here)."""
        with self._lock:
            return views.status(self.store, self.config, self.clock(), seal_id=seal_id, escort_id=escort_id,
                                declaration=declaration, vehicle=vehicle, offices=offices, after_id=after_id,
                                limit=limit)

    def metrics(self) -> dict[str, Any]:
        """Snapshot of this pipeline's collectors (`registry`) for tests and tools:
        frames {(result, reason): n} (reason "" when accepted/duplicate), events {kind: n},
        counters {records_committed, records_duplicate, acks_sent, commands_sent, commands_acked,
        commands_failed, command_results_unmatched, tick_errors, ...}, alarm_latency_s and
        ingest_s histograms ({"buckets": [(le, cumulative)], "sum", "count"})."""
        return self.pipeline_metrics.snapshot()

    def purge(self, now: float | None = None) -> dict[str, int]:
        """Retention purge at `now` (gateway/retention.py): counts of deleted rows per table, and of
        escorts expired (ESCORT_EXPIRED emitted: in the outbox)."""
        with self._lock:
            now = self.clock() if now is None else now
            report = retention.purge(self.store, now, years=self.config.retention_years,
                                     utc_offset_h=self.config.retention_utc_offset_h,
                                     unescorted_days=self.config.retention_unescorted_days,
                                     horizon_days=self.config.retention_escort_horizon_days)
            self.pipeline_metrics.events_created(report.new_events)
            return report.as_dict()

    def _wake(self) -> None:
        if self.wakeup is not None:
            try:
                self.wakeup()
            except Exception:
                log.exception("wakeup callback failed")
