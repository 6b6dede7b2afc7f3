"""What the simulator and the emulator share: the seals of a scenario, their timers, and the
seal-side actions (tamper, coverage, power, GNSS, battery, forged commands).

A subclass supplies the clock (virtual or real time), where uplink frames go (`_uplink`), and the
gateway-side actions (`_do_activate`, `_do_deactivate`, `_do_gateway_restart`, `_do_sink_down`,
`_do_sink_up`). Everything here runs on the clock's one thread; other threads only post to it.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable

from navseal.protocol import encode_frame

from .clock import VirtualClock
from .scenario import Action, Scenario
from .world import BROWNOUT, POWER_ON, SOFT, SealWorld, TruckWorld

DEFAULT_POWER_OFF_S = 60.0
MAX_POLLS_AT_ONE_INSTANT = 50
ATTACKER_KEY = hashlib.sha256(b"navseal attacker key").digest()


def describe(action: Action) -> str:
    """'cable_cut seal 3004', 'activate escort truck-1', 'gateway_restart'."""
    p = action.params
    for key in ("escort", "seal", "truck", "sink"):
        if key in p and not (key == "truck" and "at_km" in p and "seal" in p):
            return f"{action.do} {key} {p[key]}"
    return action.do


class SealRunner:
    link_latency_s = 0.0  # subclasses that model the link set it

    def __init__(self, scenario: Scenario, clock: VirtualClock, *,
                 on_action: Callable[[float, str], None] | None = None,
                 min_poll_s: float = 0.0, flash_dir: str | None = None) -> None:
        self.scenario = scenario
        self.clock = clock
        self.on_action = on_action
        self.min_poll_s = min_poll_s  # fleet mode: poll a seal at most this often
        self.action_log: list[tuple[float, str]] = []
        self.action_failures: list[tuple[str, str]] = []
        self.skipped: list[str] = []  # actions this runner could not play as written (noted, not failed)
        self._escort_ids: dict[int, int] = {}
        self._forged_seq = 1 << 30
        self.frames_up = 0
        self.frames_down = 0
        shared: dict = {}
        self.trucks = {tid: TruckWorld(t, scenario, seed=self._seed("truck", i), shared=shared)
                       for i, (tid, t) in enumerate(sorted(scenario.trucks.items()))}
        self.seals: dict[int, SealWorld] = {}
        for sid, spec in sorted(scenario.seals.items()):
            seal = SealWorld(spec, self.trucks[spec.truck], start=scenario.start,
                             seed=self._seed("seal", sid), send_uplink=self._uplink,
                             flash_dir=None if flash_dir is None else f"{flash_dir}/{sid}")
            seal.next_poll = None  # type: ignore[attr-defined]
            seal.polls_now = (0.0, 0)  # type: ignore[attr-defined]
            self.seals[sid] = seal

    def _seed(self, what: str, n: int) -> int:
        digest = hashlib.sha256(f"{self.scenario.seed}|{what}|{n}".encode()).digest()
        return int.from_bytes(digest[:8], "big")

    # ------------------------------------------------------------------ subclass hooks
    def _uplink(self, seal_id: int, frame: bytes) -> None:
        raise NotImplementedError

    def _after_action(self) -> None:
        pass

    # ------------------------------------------------------------------ seal timers
    def start_seals(self, stagger_s: float = 0.5) -> None:
        """Boot every seal (a little apart, as a fleet switched on one by one) and start its GNSS."""
        n = max(1, len(self.seals))
        for i, seal in enumerate(self.seals.values()):
            t_boot = self.clock.now + (stagger_s * i if stagger_s * n < 60 else 60.0 * i / n)

            def boot(s: SealWorld = seal) -> None:
                s.boot(self.clock.now, POWER_ON)
                self._schedule_seal(s)
            self.clock.call_at(t_boot, boot)
            phase = (self._seed("gnss-phase", seal.id) % 1000) / 1000.0 * self.scenario.gnss_interval_s
            self.clock.call_at(t_boot + phase, lambda s=seal: self._gnss(s))

    def _schedule_seal(self, seal: SealWorld) -> None:
        d = seal.next_deadline()
        if d is None:
            return
        now = self.clock.now
        if self.min_poll_s and d < now + self.min_poll_s:
            d = now + self.min_poll_s
        if d <= now:
            t_prev, n = seal.polls_now  # type: ignore[attr-defined]
            n = n + 1 if t_prev == now else 1
            seal.polls_now = (now, n)  # type: ignore[attr-defined]
            d = now if n < MAX_POLLS_AT_ONE_INSTANT else now + 1.0
        pending = seal.next_poll  # type: ignore[attr-defined]
        if pending is not None and now <= pending <= d:
            return
        seal.next_poll = d  # type: ignore[attr-defined]
        self.clock.call_at(d, lambda: self._poll(seal, d))

    def _poll(self, seal: SealWorld, t: float) -> None:
        if seal.next_poll != t:  # type: ignore[attr-defined]
            return  # superseded by an earlier or later schedule
        seal.next_poll = None  # type: ignore[attr-defined]
        seal.poll(self.clock.now)
        self._schedule_seal(seal)

    def _gnss(self, seal: SealWorld) -> None:
        seal.gnss_epoch(self.clock.now)
        self._schedule_seal(seal)
        self.clock.call_later(self.scenario.gnss_interval_s, lambda: self._gnss(seal))

    def deliver_down(self, seal_id: int, frame: bytes) -> None:
        """A downlink frame reached the seal (on the clock's thread)."""
        self.frames_down += 1
        seal = self.seals.get(seal_id)
        if seal is None:
            return
        seal.downlink(frame, self.clock.now)
        self._schedule_seal(seal)

    # ------------------------------------------------------------------ actions
    def schedule_actions(self, end: float) -> None:
        for action in self.scenario.actions:
            t = self.action_time(action)
            if t > end:
                self.action_failures.append((action.where(), "the truck never gets there before the end of the run"))
                continue
            self.clock.call_at(t, lambda a=action: self._run_action(a))

    def action_time(self, action: Action) -> float:
        if "at_km" in action.params:
            truck = self.trucks[action.params["at_km_truck"]]
            return truck.driver.time_at_km(action.params["at_km"])
        return self.scenario.start + action.at

    def _run_action(self, action: Action) -> None:
        now = self.clock.now
        self.action_log.append((now, action.do))
        if self.on_action:
            self.on_action(now, describe(action))
        getattr(self, f"_do_{action.do}")(action, now)
        for sid in action.seals:
            self._schedule_seal(self.seals[sid])
        self._after_action()

    def _each(self, action: Action, fn: Callable[[SealWorld], Any]) -> None:
        for sid in action.seals:
            fn(self.seals[sid])

    def _do_cable_cut(self, action: Action, now: float) -> None:
        self._each(action, lambda s: s.set_lock(now, cable=False))

    def _do_housing_open(self, action: Action, now: float) -> None:
        self._each(action, lambda s: s.set_lock(now, housing=False))

    def _do_lock_restored(self, action: Action, now: float) -> None:
        which = action.params.get("input")  # one input closed again, the other left as it is
        self._each(action, lambda s: s.set_lock(now, cable=True if which in (None, "cable") else None,
                                                housing=True if which in (None, "housing") else None))

    def _do_lock_pulse(self, action: Action, now: float) -> None:
        self._each(action, lambda s: s.lock_pulse(now, action.params["input"], action.params["width"]))

    def _do_coverage_lost(self, action: Action, now: float) -> None:
        self._each(action, lambda s: s.set_coverage(False, now))

    def _do_coverage_restored(self, action: Action, now: float) -> None:
        self._each(action, lambda s: s.set_coverage(True, now))

    def _do_reboot(self, action: Action, now: float) -> None:
        self._each(action, lambda s: s.boot(now, SOFT))

    def _do_reboot_loop(self, action: Action, now: float) -> None:
        """`count` soft resets `every` apart, the first one now (a fault or an attacker cycling it)."""
        every = action.params.get("every", 30.0)
        for i in range(action.params["count"]):
            self.clock.call_at(now + i * every, lambda: self._each(action, lambda s: self._power_on(s, SOFT)))

    def _do_flash_wipe(self, action: Action, now: float) -> None:
        self._each(action, lambda s: s.wipe_flash(now))

    def _do_clock_jump(self, action: Action, now: float) -> None:
        self._each(action, lambda s: s.clock_jump(now, action.params["by"]))

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
            if s.arm_power_cut(after):
                self._await_cut(s, off, now + 24 * 3600)
                return
            self.skipped.append(f"{action.where()}: seal {s.id}: file flash cannot tear a write; plain power cut")
            s.power_off()
            self.clock.call_later(off, lambda: self._power_on(s, BROWNOUT))
        self._each(action, arm)

    def _await_cut(self, seal: SealWorld, off: float, give_up: float) -> None:
        """The armed cut happens at the seal's next flash write; power returns `off` later."""
        if not seal.powered:
            self.clock.call_later(off, lambda: self._power_on(seal, BROWNOUT))
        elif self.clock.now < give_up:
            self.clock.call_later(1.0, lambda: self._await_cut(seal, off, give_up))

    def _power_on(self, seal: SealWorld, cause: int) -> None:
        seal.boot(self.clock.now, cause)
        self._schedule_seal(seal)

    def _do_gnss_lost(self, action: Action, now: float) -> None:
        """No valid fix (a tunnel, or a jammer): the receiver keeps talking, the link is untouched."""
        self._each(action, lambda s: setattr(s, "gnss_ok", False))
        self._undo_after(action, lambda s: setattr(s, "gnss_ok", True))

    def _undo_after(self, action: Action, undo: Callable[[SealWorld], Any]) -> None:
        duration = action.params.get("duration")
        if duration:
            self.clock.call_later(duration, lambda: self._each(action, undo))

    def _do_gnss_mode(self, action: Action, now: float) -> None:
        self._each(action, lambda s: setattr(s.gnss, "mode", action.params["mode"]))
        self._undo_after(action, lambda s: setattr(s.gnss, "mode", "A"))

    def _do_gnss_time_shift(self, action: Action, now: float) -> None:
        self._each(action, lambda s: setattr(s.gnss, "time_shift_s", action.params["by"]))
        self._undo_after(action, lambda s: setattr(s.gnss, "time_shift_s", 0.0))

    def _do_gnss_bad_date(self, action: Action, now: float) -> None:
        self._each(action, lambda s: setattr(s.gnss, "bad_date", action.params["date"]))
        self._undo_after(action, lambda s: setattr(s.gnss, "bad_date", None))

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

    def _do_replay_frame(self, action: Action, now: float) -> None:
        """An attacker re-sends a byte copy of a frame the seal sent (no key needed), `count` times
        `every` apart, on the seal's own uplink or on `via_seal`'s."""
        sid = action.params["seal"]
        frame = self.seals[sid].last_uplink.get(action.params.get("frame", "last"))
        if frame is None:
            self.action_failures.append((action.where(), f"seal {sid}: no {action.params.get('frame', 'last')} "
                                                         "frame sent yet to replay"))
            return
        topic_seal = action.params.get("via_seal", sid)
        every = action.params.get("every") or 0.0
        for i in range(action.params.get("count", 1)):
            self.clock.call_at(now + i * every, lambda: self._inject_up(topic_seal, frame))

    def _inject_up(self, topic_seal: int, frame: bytes) -> None:
        """A frame that did not come from a seal appears on `topic_seal`'s uplink."""
        raise NotImplementedError

    def _do_forged_command(self, action: Action, now: float) -> None:
        """An attacker publishes a command straight on the seal's downlink."""
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
            if "escort" in action.params:
                esc = self.scenario.escorts[action.params["escort"]]
            else:
                esc = next((e for e in self.scenario.escorts.values() if sid in e.seals), None)
            if mode == "wrong_key":
                key = ATTACKER_KEY
            else:  # other_seal: a genuine key, but another seal's
                other = next((s for s in self.scenario.seals if s != sid), None)
                key = self.scenario.seals[other].key if other is not None else hashlib.sha256(b"other").digest()
            escort_id = self._escort_ids.get(sid, 1)
            if command == "ack":
                # Acknowledges what the seal has in flight (or its last frame): if the seal took it,
                # it would drop journal records the gateway never stored.
                core = seal.core
                seqs = sorted(getattr(core, "_if_seqs", ()) or ()) if core else []
                type_name = "ACK"
                payload = {"acked_boot": core.boot if core else 0, "acked_seq": seqs[-1] if seqs else 0,
                           "committed_rseq": (core.journal.next_rseq - 1) if core else 0}
            elif command == "deactivate":
                type_name = "DEACTIVATE"
                payload = {"escort_id": escort_id, "seal_number": sid,
                           "declaration": esc.declaration if esc else "X", "vehicle": esc.vehicle if esc else "X"}
            else:
                type_name = "ACTIVATE"
                payload = {"escort_id": escort_id + 1000, "seal_number": sid, "declaration": "FORGED",
                           "vehicle": "FORGED", "dest_office_code": "00000", "dest_office_name": "nowhere",
                           "period_start": int(now), "period_end": int(now) + 3600, "corridor_m": 0, "route": []}
            self._forged_seq += 1
            frame = encode_frame(type_name, seal_id=sid, boot=0, seq=self._forged_seq, time=int(now),
                                 payload=payload, key=key)
        self.clock.call_later(self.link_latency_s, lambda: self.deliver_down(sid, frame))
