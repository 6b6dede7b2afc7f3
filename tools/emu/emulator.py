"""`navseal emulate`: the scenario's seals in real time (or `scale` times faster) over a real link.

Past 400 lines on purpose: one handler per scenario action, in real time, beside the
simulator's (sim.py); the scenario model, world and expectations are in their own modules.

Links:
- MQTT (`--broker mqtt://host:port`): one paho client for the whole fleet publishes each seal's
  frames on `<prefix>/<id>/up` (QoS 1) and subscribes `<prefix>/+/down`. (A real seal has its own
  connection; ten thousand TCP connections would measure the broker, not the seals.)
- Serial (`--serial auto` or a device path): COBS-framed frames over a tty, many seals multiplexed
  on one line as on a customs post's reader; `auto` opens a pseudo-terminal pair and gives the
  other end to the embedded gateway, so the bytes really cross a tty.

Gateway: by default the real gateway service runs in the same process (GatewayService from
navseal.gateway.service: MQTT or serial ingest, the pipeline on SQLite, a JSON Lines sink), on the
same scaled clock, and the scenario's commands go to it; at the end the events its sink wrote are
checked against the scenario's expectations. `gateway=False` runs the seals only, for an external
gateway (then the scenario's activate/deactivate are left to the operator and nothing is checked).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
import tty
import urllib.parse
from pathlib import Path
from typing import Any, Callable

from .clock import RealTimeClock
from .expect import Report, SealFacts, check, seal_evidence
from .routes import load_route
from .runner import SealRunner
from .scenario import Action, Scenario


class EmulatorError(RuntimeError):
    pass


def parse_broker(url: str) -> tuple[str, int]:
    u = urllib.parse.urlparse(url if "://" in url else f"mqtt://{url}")
    if u.scheme not in ("mqtt", "tcp"):
        raise EmulatorError(f"broker {url!r}: only mqtt://host:port is supported")
    return u.hostname or "127.0.0.1", u.port or 1883


# --------------------------------------------------------------------------------------------
# Links: frames from seals out, downlink frames in (posted to the clock's thread)
# --------------------------------------------------------------------------------------------


class MqttLink:
    def __init__(self, host: str, port: int, prefix: str, deliver: Callable[[int, bytes], None]) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.prefix = prefix
        self._deliver = deliver
        self.connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"navseal-emu-{os.getpid()}-{id(self)}",
                                  protocol=mqtt.MQTTv311, clean_session=True)
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(1000)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.host, self.port = host, port
        self.published = 0

    def start(self, timeout: float = 10.0) -> None:
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self.connected.wait(timeout):
            raise EmulatorError(f"no connection to the MQTT broker at {self.host}:{self.port}")

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            return
        client.subscribe(f"{self.prefix}/+/down", qos=1)
        self.connected.set()

    def _on_message(self, client, userdata, message) -> None:
        parts = message.topic.split("/")
        try:
            seal_id = int(parts[-2])
        except (ValueError, IndexError):
            return
        self._deliver(seal_id, bytes(message.payload))

    def send(self, seal_id: int, frame: bytes) -> None:
        self.published += 1
        self.client.publish(f"{self.prefix}/{seal_id}/up", frame, qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class FirmwareMqttLinks:
    """Each seal on its own MQTT connection through the firmware's own client
    (navseal_fw.link_mqtt.MqttLink: asyncio streams, persistent session, keepalive, capped
    backoff with jitter): the board's link code against a real broker. The links run as tasks
    of one asyncio loop in a thread of their own; frames cross to it with call_soon_threadsafe
    and downlinks come back through `deliver` (which must be thread-safe). For a handful of
    seals; the fleet uses the shared paho connection (MqttLink above)."""

    def __init__(self, host: str, port: int, prefix: str, deliver: Callable[[int, bytes], None]) -> None:
        import asyncio

        self.host, self.port, self.prefix = host, port, prefix
        self._deliver = deliver
        self.links: dict[int, Any] = {}
        self.published = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="emu-fw-mqtt", daemon=True)
        self._futures: list[Any] = []

    def bind(self, runner: "Emulator") -> None:
        from navseal_fw.link_mqtt import MqttLink as FwLink, tcp_opener

        for sid in runner.seals:
            self.links[sid] = FwLink(sid, tcp_opener(self.host, self.port),
                                     on_frame=lambda f, _s=sid: self._deliver(_s, f),
                                     prefix=self.prefix, keepalive_s=60)

    @staticmethod
    async def _serve(link) -> None:
        # The seal's loop's part: hand downlinks over once the link has read them.
        import asyncio

        task = asyncio.create_task(link.run())
        try:
            while True:
                await link.ready.wait()
                link.poll(0)
        finally:
            task.cancel()

    def start(self, timeout: float = 10.0) -> None:
        import asyncio

        self._thread.start()
        for link in self.links.values():
            self._futures.append(asyncio.run_coroutine_threadsafe(self._serve(link), self._loop))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(l.connected for l in self.links.values()):
            time.sleep(0.02)
        down = [sid for sid, link in self.links.items() if not link.connected]
        if down:
            raise EmulatorError(f"seals {down[:5]} could not connect to {self.host}:{self.port}: "
                                f"{self.links[down[0]].last_error!r}")

    def send(self, seal_id: int, frame: bytes) -> None:
        self._loop.call_soon_threadsafe(self.links[seal_id].send, frame)
        self.published += 1

    def close(self) -> None:
        for link in self.links.values():
            self._loop.call_soon_threadsafe(link.close)
        time.sleep(0.05)  # DISCONNECT goes out before the tasks are cancelled
        for fut in self._futures:
            fut.cancel()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5.0)


class SerialLink:
    """COBS frames over a tty. `open_pty()` makes a pseudo-terminal pair: we keep the master side
    and `peer_path` is the device the other party (the gateway) opens."""

    def __init__(self, deliver: Callable[[int, bytes], None], *, path: str | None = None) -> None:
        from navseal.protocol import SerialDeframer

        self._deliver = deliver
        self.deframer = SerialDeframer()
        self.peer_path: str | None = None
        self._serial = None
        if path is None:
            master, slave = os.openpty()
            tty.setraw(master)
            tty.setraw(slave)
            self._fd = master
            self._slave = slave  # kept open so the pty does not hang up before the gateway opens it
            self.peer_path = os.ttyname(slave)
        else:
            import serial

            self._serial = serial.Serial(path, 115200, timeout=0.2)
            self._fd = None
            self._slave = None
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self._thread = threading.Thread(target=self._read_loop, name="emu-serial", daemon=True)
        self.bytes_out = 0

    def start(self) -> None:
        self._thread.start()

    def _read(self) -> bytes:
        if self._serial is not None:
            return self._serial.read(4096)
        import select

        ready, _, _ = select.select([self._fd], [], [], 0.2)
        if not ready:
            return b""
        try:
            return os.read(self._fd, 4096)
        except OSError:
            return b""

    def _read_loop(self) -> None:
        while not self._stop.is_set():
            data = self._read()
            if not data:
                continue
            for body in self.deframer.feed(data):
                if len(body) >= 9:
                    self._deliver(int.from_bytes(body[5:9], "big"), body)

    def send(self, seal_id: int, frame: bytes) -> None:
        from navseal.protocol import encode_serial

        data = encode_serial(frame)
        with self._write_lock:
            self.bytes_out += len(data)
            if self._serial is not None:
                self._serial.write(data)
            else:
                view = memoryview(data)
                while view:
                    n = os.write(self._fd, view)
                    view = view[n:]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        if self._serial is not None:
            self._serial.close()
        for fd in (self._fd, self._slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass


class NullLink:
    """No transport: frames are counted and dropped, or answered by `acker` (benchmarks)."""

    def __init__(self, acker: Callable[[int, bytes], None] | None = None) -> None:
        self.acker = acker
        self.sent = 0

    def start(self) -> None:
        pass

    def send(self, seal_id: int, frame: bytes) -> None:
        self.sent += 1
        if self.acker is not None:
            self.acker(seal_id, frame)

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------------


class Emulator(SealRunner):
    def __init__(self, scenario: Scenario, *, workdir: str | Path, broker: str | None = None,
                 serial: str | None = None, scale: float = 1.0, gateway: bool = True,
                 link: Any = None, on_action: Callable[[float, str], None] | None = None,
                 min_poll_s: float = 0.0, topic_prefix: str = "seals", flash: str = "files",
                 mqtt_client: str = "paho") -> None:
        clock = RealTimeClock(scenario.start, scale)
        workdir = Path(workdir)
        flash_dir = None
        if flash == "files":
            # A fresh flash per run: leftovers of an earlier run would be another seal's history.
            import shutil

            flash_dir = workdir / "flash"
            shutil.rmtree(flash_dir, ignore_errors=True)
            flash_dir.mkdir(parents=True)
        elif flash != "memory":
            raise EmulatorError(f"flash {flash!r}: use 'files' or 'memory'")
        super().__init__(scenario, clock, on_action=on_action, min_poll_s=min_poll_s,
                         flash_dir=None if flash_dir is None else str(flash_dir))
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.events_path = self.workdir / "events.jsonl"
        self.db_path = self.workdir / "gateway.sqlite3"
        self.scale = scale
        self.broker = broker
        self.topic_prefix = topic_prefix
        self.with_gateway = gateway
        self.service = None
        if link is not None:
            self.link = link
        elif broker:
            host, port = parse_broker(broker)
            if mqtt_client == "firmware":
                self.link = FirmwareMqttLinks(host, port, topic_prefix, self._post_down)
                self.link.bind(self)
            elif mqtt_client == "paho":
                self.link = MqttLink(host, port, topic_prefix, self._post_down)
            else:
                raise EmulatorError(f"mqtt client {mqtt_client!r}: use 'paho' or 'firmware'")
        elif serial:
            self.link = SerialLink(self._post_down, path=None if serial == "auto" else serial)
        else:
            raise EmulatorError("give a broker URL or a serial device (or 'auto' for a pseudo-terminal)")

    # -- link --
    def _post_down(self, seal_id: int, frame: bytes) -> None:
        self.clock.post(lambda: self.deliver_down(seal_id, frame))

    def _uplink(self, seal_id: int, frame: bytes) -> None:
        self.frames_up += 1
        self.link.send(seal_id, frame)

    def _inject_up(self, topic_seal: int, frame: bytes) -> None:
        self.link.send(topic_seal, frame)  # on that seal's topic (MQTT) or line (serial)

    # -- the embedded gateway --
    def _gateway_config(self):
        from navseal.gateway.config import GatewayConfig, SerialConfig, SinkConfig

        values: dict[str, Any] = dict(self.scenario.gateway)
        # The emulated seals carry the published test keys: a development gateway (it says so loudly).
        values.update(db_path=str(self.db_path), db_synchronous="NORMAL", dev_test_keys=True,
                      sinks=[SinkConfig(name="operator", type="jsonl", path=str(self.events_path))],
                      mqtt_topic_prefix=self.topic_prefix)
        # Rule timers are virtual seconds; the outbox worker's retries are not scaled: keep them short.
        values.setdefault("sink_retry_initial_s", 0.2)
        values.setdefault("sink_retry_max_s", 2.0)
        if self.broker:
            host, port = parse_broker(self.broker)
            values.update(mqtt_host=host, mqtt_port=port, mqtt_client_id=f"navseal-emu-gw-{os.getpid()}")
        else:
            values.update(mqtt_host="")
            peer = getattr(self.link, "peer_path", None)
            if peer is None:
                raise EmulatorError("the embedded gateway needs --serial auto (a pty pair) or a broker")
            values.update(serial=[SerialConfig(port=peer)])
        return GatewayConfig(**values)

    def _start_gateway(self) -> None:
        from navseal.gateway.service import GatewayService

        self.service = GatewayService(self._gateway_config(), clock=self.clock, enable_mqtt=bool(self.broker),
                                      http=False)
        for sid, spec in self.scenario.seals.items():
            self.service.pipeline.provision_seal(sid, spec.key)
        self.service.start()
        if self.service.mqtt is not None and not self.service.mqtt.subscribed.wait(10):
            raise EmulatorError("the embedded gateway could not subscribe at the broker")

    def _call(self, fn: Callable[[Any], Any]) -> Any:
        return self.service.runner.call(fn, timeout=30.0)

    def _do_activate(self, action: Action, now: float) -> None:
        if self.service is None:
            self.skipped.append(f"{action.where()}: no embedded gateway: activate it on your gateway")
            return
        from .sim import activation_request

        esc = self.scenario.escorts[action.params["escort"]]
        route = load_route(esc.route, self.scenario.path.parent).points if esc.corridor_m and esc.route else None
        for sid in esc.seals:
            req = activation_request(esc, sid, now, route)
            self._command(action, lambda p, r=req: p.request_activation(r), sid)

    def _do_deactivate(self, action: Action, now: float) -> None:
        if self.service is None:
            self.skipped.append(f"{action.where()}: no embedded gateway: deactivate it on your gateway")
            return
        esc = self.scenario.escorts[action.params["escort"]]
        decl = action.params.get("declaration", esc.declaration)
        vehicle = action.params.get("vehicle", esc.vehicle)
        for sid in action.seals or esc.seals:  # one seal of the escort, or all of them
            self._command(action, lambda p, s=sid: p.request_deactivation(s, decl, vehicle), sid)

    def _command(self, action: Action, fn: Callable[[Any], Any], sid: int) -> None:
        from navseal.gateway.command_requests import CommandError

        want = action.params.get("expect_error")
        try:
            result = self._call(fn)
            if result and "escort_id" in result:
                self._escort_ids[sid] = result["escort_id"]
            if want:
                self.action_failures.append((action.where(), f"seal {sid}: expected refusal {want!r}, accepted"))
        except CommandError as exc:
            if exc.code != want:
                self.action_failures.append((action.where(), f"seal {sid}: refused: {exc.code}: {exc.message}"))

    def _do_gateway_restart(self, action: Action, now: float) -> None:
        if self.service is None:
            self.skipped.append(f"{action.where()}: no embedded gateway to restart")
            return
        down = action.params.get("down_for", 30.0) / self.scale
        self.service.stop()
        self.service = None
        threading.Timer(down, lambda: self.clock.post(self._start_gateway)).start()

    def _do_sink_down(self, action: Action, now: float) -> None:
        self.skipped.append(f"{action.where()}: sink outages are simulated only (navseal simulate)")

    _do_sink_up = _do_sink_down

    # -- run --
    def run(self, *, on_idle: Callable[[], None] | None = None, duration_s: float | None = None,
            on_end: Callable[[], None] | None = None) -> None:
        """Play the scenario; `on_end` runs after its last second, while the gateway still runs."""
        if self.events_path.exists():
            self.events_path.unlink()
        end = self.scenario.start + (duration_s if duration_s is not None else self.scenario.duration_s)
        self.link.start()
        try:
            if self.with_gateway:
                self._start_gateway()
            # The clock starts now: the scenario's start is this instant.
            self.clock._wall0 = time.monotonic()
            self.clock.now = self.scenario.start
            self.start_seals()
            self.schedule_actions(end)
            self.clock.run_until(end, on_idle=on_idle)
            if on_end is not None:
                on_end()
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        if getattr(self, "_shut", False):
            return
        self._shut = True
        if self.service is not None:
            self.service.stop()
        self.link.close()

    def read_events(self) -> list[dict[str, Any]]:
        import json

        if not self.events_path.exists():
            return []
        with open(self.events_path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]

    def facts(self) -> dict[int, SealFacts]:
        from navseal.gateway.store import SqliteStore

        store = SqliteStore(str(self.db_path), synchronous="NORMAL")
        out = {}
        try:
            for sid, seal in self.seals.items():
                core = seal.core
                records = store.records(sid, limit=10_000_000)
                out[sid] = SealFacts(
                    seal_id=sid, state="ACTIVE" if core and core.escort.state == 1 else "INACTIVE",
                    journal_pending=core.journal.pending if core else 0,
                    last_rseq=(core.journal.next_rseq - 1) if core else 0,
                    stored_rseqs=len({r["rseq"] for r in records}), thinned=seal.thinned,
                    refused=core.journal.refused if core else 0, rejected_commands=seal.rejected_commands,
                reported_thinned=sum(r["value"] or 0 for r in records if r["kind"] == "JOURNAL_OVERFLOW"),
                evidence=seal_evidence(core))
        finally:
            store._c.close()
        return out

    def check(self) -> Report:
        report = check(self.scenario, self.read_events(), self.facts())
        for where, problem in self.action_failures:
            report.add(where, False, problem)
        return report


# --------------------------------------------------------------------------------------------
# Fleet mode: many more seals than the scenario declares
# --------------------------------------------------------------------------------------------


def fleet_scenario(scenario: Scenario, n: int, *, first_id: int = 100_000,
                   report_s: int | None = None) -> Scenario:
    """The scenario plus background seals up to `n` in all: clones of its first seal, each on its
    own truck (a clone of the first truck leaving a little later, so the fleet spreads along the
    route). Background seals report every `report_s` even when not activated; the scenario's own
    seals and actions are unchanged."""
    sc = dataclasses.replace(scenario, seals=dict(scenario.seals), trucks=dict(scenario.trucks))
    template = next(iter(scenario.seals.values()))
    truck0 = scenario.trucks[template.truck]
    extra = max(0, n - len(scenario.seals))
    profile = dataclasses.replace(truck0.profile, stops=[], detours=[])  # one shared plan
    spread = 8 * 3600.0
    for i in range(extra):
        sid = first_id + i
        tid = f"fleet-{i}"
        sc.trucks[tid] = dataclasses.replace(truck0, id=tid, plate=f"F{i:06d}", profile=profile,
                                             time_offset_s=spread * i / max(extra, 1), loop=True)
        changes: dict[str, Any] = {"id": sid, "truck": tid}
        if report_s:
            changes.update(report_moving_s=report_s, report_stopped_s=report_s, report_inactive_s=report_s,
                           heartbeat_s=max(report_s * 15, 900))
        from navseal.protocol import test_key

        changes["key"] = test_key(sid)
        sc.seals[sid] = dataclasses.replace(template, **changes)
    return sc
