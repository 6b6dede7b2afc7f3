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

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, TextIO

from navseal.gateway.config import GatewayConfig
from navseal.gateway.pipeline import ActivationRequest, CommandError, Pipeline
from navseal.gateway.store import SqliteStore
from navseal.protocol import encode_frame

from .clock import VirtualClock
from .expect import Report, SealFacts, check
from .routes import load_route
from .scenario import Action, Scenario
from .world import BROWNOUT, POWER_ON, SOFT, SealWorld, TruckWorld

LINK_LATENCY_S = 0.2
GATEWAY_TICK_SLACK_S = 1.0  # rules fire strictly after a deadline
DEFAULT_POWER_OFF_S = 60.0
MAX_POLLS_AT_ONE_INSTANT = 50


class SimulationError(RuntimeError):
    pass


class Simulator:
    def __init__(self, scenario: Scenario, *, db_path: str | None = None,
                 on_event: Callable[[dict[str, Any]], None] | None = None,
                 on_action: Callable[[float, str], None] | None = None) -> None:
        self.scenario = scenario
        self.clock = VirtualClock(scenario.start)
        self.on_event = on_event
        self.on_action = on_action
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
        self.action_log: list[tuple[float, str]] = []
        self.action_failures: list[tuple[str, str]] = []
        self._tick_at: float | None = None
        self._escort_ids: dict[int, int] = {}
        self._forged_seq = 1 << 30
        # World
        self.trucks = {tid: TruckWorld(t, scenario, seed=self._seed("truck", i))
                       for i, (tid, t) in enumerate(sorted(scenario.trucks.items()))}
        self.seals: dict[int, SealWorld] = {}
        for sid, spec in sorted(scenario.seals.items()):
            self.seals[sid] = SealWorld(spec, self.trucks[spec.truck], start=scenario.start,
                                        seed=self._seed("seal", sid), send_uplink=self._uplink)
            self.seals[sid]._next_poll = None  # type: ignore[attr-defined]
            self.seals[sid]._polls_now = (0.0, 0)  # type: ignore[attr-defined]
            self.pipeline.provision_seal(sid, spec.key)
        self.frames_up = 0
        self.frames_down = 0

    def _seed(self, what: str, n: int) -> int:
        digest = hashlib.sha256(f"{self.scenario.seed}|{what}|{n}".encode()).digest()
        return int.from_bytes(digest[:8], "big")

    # ------------------------------------------------------------------ gateway
    def _open_gateway(self) -> None:
        self.store = SqliteStore(self.db_path, synchronous="OFF")
        self.pipeline = Pipeline(self.store, self.config, self.clock)

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

    def _send_down(self, seal_id: int, frame: bytes) -> None:
        self.frames_down += 1
        seal = self.seals.get(seal_id)
        if seal is None:
            return

        def deliver() -> None:
            seal.downlink(frame, self.clock.now)
            self._schedule_seal(seal)

        self.clock.call_later(LINK_LATENCY_S, deliver)

    # ------------------------------------------------------------------ seals
    def _schedule_seal(self, seal: SealWorld) -> None:
        d = seal.next_deadline()
        if d is None:
            return
        now = self.clock.now
        if d <= now:
            t_prev, n = seal._polls_now  # type: ignore[attr-defined]
            n = n + 1 if t_prev == now else 1
            seal._polls_now = (now, n)  # type: ignore[attr-defined]
            d = now if n < MAX_POLLS_AT_ONE_INSTANT else now + 1.0
        pending = seal._next_poll  # type: ignore[attr-defined]
        if pending is not None and now <= pending <= d:
            return
        seal._next_poll = d  # type: ignore[attr-defined]
        self.clock.call_at(d, lambda: self._poll(seal, d))

    def _poll(self, seal: SealWorld, t: float) -> None:
        if seal._next_poll != t:  # type: ignore[attr-defined]
            return
        seal._next_poll = None  # type: ignore[attr-defined]
        seal.poll(self.clock.now)
        self._schedule_seal(seal)

    def _gnss(self, seal: SealWorld) -> None:
        seal.gnss_epoch(self.clock.now)
        self._schedule_seal(seal)
        self.clock.call_later(self.scenario.gnss_interval_s, lambda: self._gnss(seal))

    # ------------------------------------------------------------------ actions
    def _action_time(self, action: Action) -> float:
        if "at_km" in action.params:
            truck = self.trucks[action.params["at_km_truck"]]
            return truck.driver.time_at_km(action.params["at_km"])
        return self.scenario.start + action.at

    def _run_action(self, action: Action) -> None:
        now = self.clock.now
        self.action_log.append((now, action.do))
        if self.on_action:
            self.on_action(now, action.do)
        handler = getattr(self, f"_do_{action.do}")
        handler(action, now)
        for sid in action.seals:
            self._schedule_seal(self.seals[sid])
        self._gateway_changed()

    def _each(self, action: Action, fn: Callable[[SealWorld], None]) -> None:
        for sid in action.seals:
            fn(self.seals[sid])

    def _do_activate(self, action: Action, now: float) -> None:
        esc = self.scenario.escorts[action.params["escort"]]
        route = None
        if esc.corridor_m and esc.route:
            route = load_route(esc.route, self.scenario.path.parent).points
        for sid in esc.seals:
            req = ActivationRequest(
                seal_id=sid, declaration=esc.declaration, vehicle=esc.vehicle,
                departure_office_code=esc.departure.code, departure_office_name=esc.departure.name,
                dest_office_code=esc.destination.code, dest_office_name=esc.destination.name,
                period_start=now, period_end=now + esc.transit_period_s, route=route,
                corridor_m=esc.corridor_m if route else 0)
            self._command(action, lambda: self.pipeline.request_activation(req), sid)

    def _do_deactivate(self, action: Action, now: float) -> None:
        esc = self.scenario.escorts[action.params["escort"]]
        decl = action.params.get("declaration", esc.declaration)
        vehicle = action.params.get("vehicle", esc.vehicle)
        for sid in esc.seals:
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

    def _do_cable_cut(self, action: Action, now: float) -> None:
        self._each(action, lambda s: setattr(s.hal, "cable_closed", False))

    def _do_housing_open(self, action: Action, now: float) -> None:
        self._each(action, lambda s: setattr(s.hal, "housing_closed", False))

    def _do_lock_restored(self, action: Action, now: float) -> None:
        def restore(s: SealWorld) -> None:
            s.hal.cable_closed = True
            s.hal.housing_closed = True
        self._each(action, restore)

    def _do_coverage_lost(self, action: Action, now: float) -> None:
        self._each(action, lambda s: s.set_link(False, now))

    def _do_coverage_restored(self, action: Action, now: float) -> None:
        self._each(action, lambda s: s.set_link(True, now))

    def _do_reboot(self, action: Action, now: float) -> None:
        self._each(action, lambda s: s.boot(now, SOFT))

    def _do_power_cut(self, action: Action, now: float) -> None:
        off = action.params.get("duration", DEFAULT_POWER_OFF_S)

        def cut(s: SealWorld) -> None:
            s.power_off()
            self.clock.call_later(off, lambda: self._power_on(s, POWER_ON))
        self._each(action, cut)

    def _do_power_cut_during_write(self, action: Action, now: float) -> None:
        off = action.params.get("duration", DEFAULT_POWER_OFF_S)
        after = int(action.params.get("after_bytes", 9))

        def arm(s: SealWorld) -> None:
            s.arm_power_cut(after)
            self._await_cut(s, off, now + 24 * 3600)
        self._each(action, arm)

    def _await_cut(self, seal: SealWorld, off: float, give_up: float) -> None:
        """Watch for the armed cut to happen (at the seal's next flash write), then power on later."""
        if not seal.powered:
            self.clock.call_later(off, lambda: self._power_on(seal, BROWNOUT))
        elif self.clock.now < give_up:
            self.clock.call_later(1.0, lambda: self._await_cut(seal, off, give_up))

    def _power_on(self, seal: SealWorld, cause: int) -> None:
        seal.boot(self.clock.now, cause)
        self._schedule_seal(seal)

    def _do_gnss_lost(self, action: Action, now: float) -> None:
        self._each(action, lambda s: setattr(s, "gnss_ok", False))

    def _do_gnss_restored(self, action: Action, now: float) -> None:
        self._each(action, lambda s: setattr(s, "gnss_ok", True))

    def _do_gnss_jump(self, action: Action, now: float) -> None:
        self._jump(action, now, ramp=0.0)

    def _do_gnss_spoof(self, action: Action, now: float) -> None:
        self._jump(action, now, ramp=action.params.get("ramp", 600.0))

    def _jump(self, action: Action, now: float, ramp: float) -> None:
        dist = float(action.params.get("distance_m", 20000.0))
        bearing = float(action.params.get("bearing_deg", 90.0))
        self._each(action, lambda s: s.gnss_jump(now, dist, bearing, ramp))
        duration = action.params.get("duration")
        if duration:
            self.clock.call_later(duration, lambda: self._each(action, lambda s: s.gnss_clear_jump()))

    def _do_battery(self, action: Action, now: float) -> None:
        self._each(action, lambda s: s.set_battery(action.params["pct"], now))

    def _do_gateway_restart(self, action: Action, now: float) -> None:
        down = action.params.get("down_for", 30.0)
        self.gateway_up = False
        self._tick_at = None
        self.store.close()
        self.store._c.close()  # the process is gone: its connection with it
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

    def _do_forged_command(self, action: Action, now: float) -> None:
        sid = action.params["seal"]
        seal = self.seals[sid]
        mode = action.params.get("mode", "wrong_key")
        command = action.params["command"]
        if mode == "replay":
            frame = seal.last_command.get(command)
            if frame is None:
                self.action_failures.append((action.where(), f"seal {sid}: no {command} frame seen yet to replay"))
                return
        else:
            esc = None
            if "escort" in action.params:
                esc = self.scenario.escorts[action.params["escort"]]
            else:
                esc = next((e for e in self.scenario.escorts.values() if sid in e.seals), None)
            if mode == "wrong_key":
                key = hashlib.sha256(b"navseal attacker key").digest()
            else:  # other_seal: a genuine key, but not this seal's
                other = next((s for s in self.scenario.seals if s != sid), sid + 1)
                key = self.scenario.seals[other].key if other in self.scenario.seals else hashlib.sha256(b"x").digest()
            escort_id = self._escort_ids.get(sid, 1)
            if command == "deactivate":
                payload = {"escort_id": escort_id, "seal_number": sid,
                           "declaration": esc.declaration if esc else "X", "vehicle": esc.vehicle if esc else "X"}
                type_name = "DEACTIVATE"
            else:
                payload = {"escort_id": escort_id + 1000, "seal_number": sid, "declaration": "FORGED",
                           "vehicle": "FORGED", "dest_office_code": "00000", "dest_office_name": "nowhere",
                           "period_start": int(now), "period_end": int(now) + 3600, "corridor_m": 0, "route": []}
                type_name = "ACTIVATE"
            self._forged_seq += 1
            frame = encode_frame(type_name, seal_id=sid, boot=self.config.command_epoch, seq=self._forged_seq,
                                 time=int(now), payload=payload, key=key)
        # The attacker publishes straight on the seal's downlink topic.
        self.clock.call_later(LINK_LATENCY_S, lambda: (seal.downlink(frame, self.clock.now),
                                                       self._schedule_seal(seal)))

    # ------------------------------------------------------------------ run
    def run(self) -> Report:
        sc = self.scenario
        end = sc.start + sc.duration_s
        for i, seal in enumerate(self.seals.values()):
            # Seals boot a few seconds apart, as a fleet switched on one by one would.
            t_boot = sc.start + 0.5 * i

            def boot(s: SealWorld = seal) -> None:
                s.boot(self.clock.now, POWER_ON)
                self._schedule_seal(s)
            self.clock.call_at(t_boot, boot)
            phase = (self._seed("gnss-phase", seal.id) % 1000) / 1000.0
            self.clock.call_at(t_boot + phase, lambda s=seal: self._gnss(s))
        for action in sc.actions:
            t = self._action_time(action)
            if t > end:
                self.action_failures.append((action.where(), "the truck never gets there before the end of the run"))
                continue
            self.clock.call_at(t, lambda a=action: self._run_action(a))
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
                rejected_commands=seal.rejected_commands)
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


def event_line(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def write_report(report: Report, out: TextIO, *, name: str) -> None:
    for o in report.outcomes:
        mark = "PASS" if o.ok else "FAIL"
        out.write(f"{mark} {o.name}: {o.detail}\n")
    failed = len(report.failures)
    out.write(f"{name}: {len(report.outcomes) - failed} passed, {failed} failed\n")
