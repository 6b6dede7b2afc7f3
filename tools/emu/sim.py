"""`navseal simulate`: the whole chain in one process on a virtual clock.

Seals (the real firmware core on in-memory flash) -> an in-memory link with a small latency ->
the real gateway `Pipeline` on a real SQLite file -> its outbox -> the scenario's sinks (JSON
Lines). Every timer of every part is an entry in one `VirtualClock`, so the run jumps from one
thing that happens to the next: a ten-hour escort with a three-hour gap takes seconds, and the
same scenario and seed always give the same event stream (event ids, times, order).

What the link models: frames take `LINK_LATENCY_S` each way; while a seal has no coverage its
frames are not sent (the firmware keeps them in its journal) and commands to it are lost (the
gateway retries); while the gateway is down the broker keeps the uplink frames (a persistent MQTT
session with QoS 1 does exactly that) and hands them over when it is back.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Callable, TextIO

from navseal.gateway.config import GatewayConfig
from navseal.gateway.command_requests import ActivationRequest, CommandError
from navseal.gateway.pipeline import Pipeline
from navseal.gateway.store import SqliteStore

from .clock import VirtualClock
from .expect import Report, SealFacts, check, seal_evidence
from .routes import load_route
from .runner import SealRunner
from .scenario import Action, EscortSpec, Scenario

LINK_LATENCY_S = 0.2
GATEWAY_TICK_SLACK_S = 1.0  # rules fire strictly after a deadline


class SimulationError(RuntimeError):
    pass


class Simulator(SealRunner):
    link_latency_s = LINK_LATENCY_S

    def __init__(self, scenario: Scenario, *, db_path: str | None = None,
                 on_event: Callable[[dict[str, Any]], None] | None = None,
                 on_action: Callable[[float, str], None] | None = None, min_poll_s: float = 0.0) -> None:
        # min_poll_s: poll each seal at most this often (the firmware samples its lock inputs every
        # second; the pin-interrupt latch still dates every edge). Many short runs (property tests)
        # trade the seals' timer precision for speed with it; scenarios keep 0.
        super().__init__(scenario, VirtualClock(scenario.start), on_action=on_action, min_poll_s=min_poll_s)
        self.on_event = on_event
        self._tmpdir = None
        if db_path is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="navseal-sim-")
            db_path = os.path.join(self._tmpdir.name, "gateway.sqlite3")
        self.db_path = db_path
        try:
            self.config = GatewayConfig(db_path=db_path, db_synchronous="OFF", **scenario.gateway)
        except (TypeError, ValueError) as exc:
            raise SimulationError(f"{scenario.path}: [gateway]: {exc}") from None
        self.store: SqliteStore | None = None
        self.pipeline: Pipeline | None = None
        self._open_gateway()
        self.gateway_up = True
        self._broker_backlog: list[tuple[int, bytes]] = []
        self.sinks = list(scenario.sinks)
        self.sinks_down: set[str] = set()
        self.events: list[dict[str, Any]] = []  # as delivered to the first sink (the operator)
        self._tick_at: float | None = None
        for sid, spec in sorted(scenario.seals.items()):
            self.pipeline.provision_seal(sid, spec.key)

    # ------------------------------------------------------------------ gateway
    def _open_gateway(self) -> None:
        self.store = SqliteStore(self.db_path, synchronous="OFF")
        self.pipeline = Pipeline(self.store, self.config, self.clock)

    def _after_action(self) -> None:
        self._gateway_changed()

    def _gateway_changed(self) -> None:
        self._drain_sinks()
        self._schedule_tick()

    def _schedule_tick(self) -> None:
        if not self.gateway_up:
            return
        deadline = self.pipeline.next_deadline()
        if deadline is None:
            return
        t = max(deadline + GATEWAY_TICK_SLACK_S, self.clock.now)
        if self._tick_at is not None and self.clock.now <= self._tick_at <= t:
            return
        self._tick_at = t
        self.clock.call_at(t, lambda: self._tick(t))

    def _tick(self, t: float) -> None:
        if self._tick_at != t or not self.gateway_up:
            return
        self._tick_at = None
        for sid, frame in self.pipeline.tick(self.clock.now):
            self._send_down(sid, frame)
        self._gateway_changed()

    def _drain_sinks(self) -> None:
        if not self.gateway_up:
            return
        for i, name in enumerate(self.sinks):
            if name in self.sinks_down:
                continue
            while True:
                items = self.store.outbox_fetch(name, 500)
                if not items:
                    break
                if i == 0:
                    for item in items:
                        self.events.append(item.event)
                        if self.on_event:
                            self.on_event(item.event)
                self.store.outbox_mark_delivered(name, items[-1].outbox_id, self.clock.now)

    # ------------------------------------------------------------------ link
    def _uplink(self, seal_id: int, frame: bytes) -> None:
        self.frames_up += 1
        self.clock.call_later(LINK_LATENCY_S, lambda: self._deliver_up(seal_id, frame))

    def _deliver_up(self, seal_id: int, frame: bytes) -> None:
        if not self.gateway_up:
            self._broker_backlog.append((seal_id, frame))
            return
        result = self.pipeline.handle_uplink(frame, f"sim:{seal_id}")
        for sid, down in result.downlink:
            self._send_down(sid, down)
        self._gateway_changed()

    def _inject_up(self, topic_seal: int, frame: bytes) -> None:
        self.clock.call_later(LINK_LATENCY_S, lambda: self._deliver_up(topic_seal, frame))

    def _send_down(self, seal_id: int, frame: bytes) -> None:
        self.clock.call_later(LINK_LATENCY_S, lambda: self.deliver_down(seal_id, frame))

    # ------------------------------------------------------------------ gateway-side actions
    def _do_activate(self, action: Action, now: float) -> None:
        esc = self.scenario.escorts[action.params["escort"]]
        route = None
        if esc.corridor_m and esc.route:
            route = load_route(esc.route, self.scenario.path.parent).points
        for sid in esc.seals:
            req = activation_request(esc, sid, now, route)
            self._command(action, lambda: self.pipeline.request_activation(req), sid)

    def _do_deactivate(self, action: Action, now: float) -> None:
        esc = self.scenario.escorts[action.params["escort"]]
        decl = action.params.get("declaration", esc.declaration)
        vehicle = action.params.get("vehicle", esc.vehicle)
        for sid in action.seals or esc.seals:  # one seal of the escort, or all of them
            self._command(action, lambda: self.pipeline.request_deactivation(sid, decl, vehicle), sid)

    def _command(self, action: Action, call: Callable[[], dict], sid: int) -> None:
        want = action.params.get("expect_error")
        if not self.gateway_up:
            self.action_failures.append((action.where(), "gateway is down: command not accepted"))
            return
        try:
            result = call()
            if result and "escort_id" in result:
                self._escort_ids[sid] = result["escort_id"]
            if want:
                self.action_failures.append((action.where(), f"seal {sid}: expected refusal {want!r}, "
                                                             f"the gateway accepted it"))
        except CommandError as exc:
            if exc.code != want:
                self.action_failures.append((action.where(), f"seal {sid}: refused: {exc.code}: {exc.message}"))

    def _do_gateway_restart(self, action: Action, now: float) -> None:
        down = action.params.get("down_for", 30.0)
        self.gateway_up = False
        self._tick_at = None
        self.store.close()
        self.store._c.close()  # the process is gone, and its connection with it
        self.pipeline = None

        def up() -> None:
            self._open_gateway()
            self.gateway_up = True
            backlog, self._broker_backlog = self._broker_backlog, []
            for sid, frame in backlog:
                self._deliver_up(sid, frame)
            self._gateway_changed()
        self.clock.call_later(down, up)

    def _do_sink_down(self, action: Action, now: float) -> None:
        self.sinks_down.add(action.params.get("sink", self.sinks[0]))

    def _do_sink_up(self, action: Action, now: float) -> None:
        self.sinks_down.discard(action.params.get("sink", self.sinks[0]))

    # ------------------------------------------------------------------ run
    def run(self) -> Report:
        end = self.scenario.start + self.scenario.duration_s
        self.start_seals()
        self.schedule_actions(end)
        self.clock.run_until(end)
        if self.gateway_up:
            self._drain_sinks()
        return self.check()

    def facts(self) -> dict[int, SealFacts]:
        out = {}
        store = self.store if self.gateway_up else SqliteStore(self.db_path, synchronous="OFF")
        for sid, seal in self.seals.items():
            core = seal.core
            records = store.records(sid, limit=10_000_000)
            out[sid] = SealFacts(
                seal_id=sid,
                state="ACTIVE" if core and core.escort.state == 1 else "INACTIVE",
                journal_pending=core.journal.pending if core else 0,
                last_rseq=(core.journal.next_rseq - 1) if core else 0,
                stored_rseqs=len({r["rseq"] for r in records}),
                thinned=seal.thinned,
                refused=core.journal.refused if core else 0,
                rejected_commands=seal.rejected_commands,
                reported_thinned=sum(r["value"] or 0 for r in records if r["kind"] == "JOURNAL_OVERFLOW"),
                evidence=seal_evidence(core))
        return out

    def check(self) -> Report:
        report = check(self.scenario, self.events, self.facts())
        for where, problem in self.action_failures:
            report.add(where, False, problem)
        return report

    def close(self) -> None:
        if self.store is not None:
            try:
                self.store._c.close()
            except Exception:
                pass
        if self._tmpdir is not None:
            self._tmpdir.cleanup()


def activation_request(esc: EscortSpec, seal_id: int, now: float, route) -> ActivationRequest:
    """Clause 8 data of a scenario escort, for one of its seals."""
    return ActivationRequest(
        seal_id=seal_id, declaration=esc.declaration, vehicle=esc.vehicle,
        departure_office_code=esc.departure.code, departure_office_name=esc.departure.name,
        dest_office_code=esc.destination.code, dest_office_name=esc.destination.name,
        period_start=now, period_end=now + esc.transit_period_s, route=route,
        corridor_m=esc.corridor_m if route else 0)


def event_line(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def write_report(report: Report, out: TextIO, *, name: str) -> None:
    for o in report.outcomes:
        mark = "PASS" if o.ok else "FAIL"
        out.write(f"{mark} {o.name}: {o.detail}\n")
    failed = len(report.failures)
    out.write(f"{name}: {len(report.outcomes) - failed} passed, {failed} failed\n")
