"""`navseal demo`: the whole chain on one laptop, with nothing installed but this package.

Past 400 lines on purpose: the live view, the run and the files it leaves (tracks, summary)
are the demo's one job; the broker and the users are in demo_broker.py and demo_access.py.

An embedded MQTT broker (amqtt, see demo_broker.py) or `--broker URL`; the real gateway service
(pipeline on SQLite, outbox, JSON Lines sink); the seals of tools/scenarios/demo.toml (real
firmware cores) driving a shipped route over MQTT; the scripted escort compressed in time. A live
view while it runs (a redrawn table on a terminal, plain progress lines otherwise), then a summary
and the files: the operator event log (JSON Lines) and the tracks (GeoJSON, for any GIS).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .demo_access import console_url
from .emulator import Emulator
from .expect import Report
from .scenario import Scenario, format_duration

DEMO_SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "demo.toml"
ALARM_BITS = ("CABLE_CUT", "HOUSING_OPENED", "GNSS_LOST", "LOW_BATTERY", "JOURNAL_OVERFLOW", "ROUTE_DEVIATION",
              "GNSS_ANOMALY")


class DemoEmulator(Emulator):
    """The emulator with the demo's gateway wiring: the 3.1.1 ingest when the broker is amqtt."""

    def __init__(self, scenario: Scenario, *, embedded_broker, http_port: int = 8080, **kw: Any) -> None:
        super().__init__(scenario, **kw)
        self.embedded_broker = embedded_broker
        self.http_port = http_port
        self.ingest = None
        self.access = None
        self.on_gateway_started: Any = None  # called once the API is up (the demo prints where to log in)

    def _start_gateway(self) -> None:
        """The gateway with its HTTP API on loopback, seal keys encrypted under a master key in the
        output folder, and one user per role (demo_access.py)."""
        import dataclasses

        from navseal.gateway.mqtt_ingest import MqttIngest, MqttSettings
        from navseal.gateway.mosquitto_broker import free_port
        from navseal.gateway.secrets import new_master_key_file
        from navseal.gateway.service import GatewayService

        from .demo_access import create_demo_access

        master = self.workdir / "master.key"
        if not master.exists():
            new_master_key_file(master)
        config = dataclasses.replace(self._gateway_config_mqtt(), http_host="127.0.0.1", master_key_file=str(master),
                                     http_port=self.http_port if _port_free(self.http_port) else free_port())
        if self.embedded_broker is not None:
            config = dataclasses.replace(config, mqtt_host="")
        self.service = GatewayService(config, clock=self.clock, enable_mqtt=self.embedded_broker is None)
        for sid, spec in self.scenario.seals.items():
            self.service.pipeline.provision_seal(sid, spec.key)
        offices = sorted({code for e in self.scenario.escorts.values()
                          for code in (e.departure.code, e.destination.code)})
        self.access = create_demo_access(self.service, self.workdir, offices)
        self.service.start()
        if self.on_gateway_started is not None:
            self.on_gateway_started()
        if self.embedded_broker is None:  # a real broker: the gateway's own MQTT 5 ingest
            if self.service.mqtt is not None and not self.service.mqtt.subscribed.wait(10):
                raise RuntimeError("the demo gateway could not subscribe at the broker")
            return
        runner = self.service.runner
        # amqtt speaks MQTT 3.1.1 only: the gateway's own ingest in its 3.1.1 mode.
        settings = MqttSettings(host=self.embedded_broker.host, port=self.embedded_broker.port,
                                client_id="navseal-demo-gateway", topic_prefix=self.topic_prefix,
                                protocol="3.1.1")
        self.ingest = MqttIngest(settings, lambda raw, src, reply, ack: runner.submit(raw, src, reply, ack))
        self.ingest.start()
        if not self.ingest.subscribed.wait(10):
            raise RuntimeError("the demo gateway could not subscribe at the embedded broker")

    # The scripted actions go through the gateway's API like an office's would: activation as
    # demo-operator, deactivation as demo-officer; their names end up on the events and in the audit log.
    def _do_activate(self, action, now: float) -> None:
        from .routes import load_route
        from .sim import activation_request

        esc = self.scenario.escorts[action.params["escort"]]
        route = load_route(esc.route, self.scenario.path.parent).points if esc.corridor_m and esc.route else None
        for sid in esc.seals:
            rq = activation_request(esc, sid, now, route)
            body = {k: getattr(rq, k) for k in ("seal_id", "declaration", "vehicle", "departure_office_code",
                                                 "departure_office_name", "dest_office_code", "dest_office_name",
                                                 "period_start", "period_end", "corridor_m")}
            body["route"] = [list(p) for p in rq.route] if rq.route else None
            self._api_command(action, "/v1/escorts/activate", body, "operator", sid)

    def _do_deactivate(self, action, now: float) -> None:
        esc = self.scenario.escorts[action.params["escort"]]
        decl = action.params.get("declaration", esc.declaration)
        vehicle = action.params.get("vehicle", esc.vehicle)
        for sid in esc.seals:
            self._api_command(action, "/v1/escorts/deactivate",
                              {"seal_id": sid, "declaration": decl, "vehicle": vehicle}, "officer", sid)

    def _api_command(self, action, path: str, body: dict, role: str, sid: int) -> None:
        """POST as the demo user of `role`; the same bookkeeping as Emulator._command."""
        import urllib.error
        import urllib.request

        want = action.params.get("expect_error")
        request = urllib.request.Request(self.access.url + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Bearer {self.access.tokens[role]}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                escort = json.loads(resp.read())["escort"]
        except urllib.error.HTTPError as exc:
            answer = json.loads(exc.read() or b"{}")
            if answer.get("error") != want:
                self.action_failures.append((action.where(), f"seal {sid}: refused: {answer.get('error')}: "
                                                             f"{answer.get('message')}"))
            return
        self._escort_ids[sid] = escort["escort_id"]
        if want:
            self.action_failures.append((action.where(), f"seal {sid}: expected refusal {want!r}, accepted"))

    def _gateway_config_mqtt(self):
        return self._gateway_config()

    def shutdown(self) -> None:
        super().shutdown()
        if self.ingest is not None:
            self.ingest.stop()
            self.ingest = None


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class DemoResult:
    report: Report | None
    out_dir: Path
    events_path: Path
    track_paths: list[Path] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False
    wall_s: float = 0.0


class LiveView:
    """What the operator watches: seals, state, last position, events as they arrive, progress."""

    def __init__(self, emu: Emulator, scenario: Scenario, stream: TextIO, tty: bool) -> None:
        self.emu = emu
        self.scenario = scenario
        self.stream = stream
        self.tty = tty
        self.events: list[dict[str, Any]] = []
        self.script: list[str] = []  # the scripted actions so far, as "[1h40m] cable_cut seal 3004"
        self._offset = 0
        self._last_draw = 0.0
        self._last_line = 0.0
        self.truck_of = {sid: s.truck for sid, s in scenario.seals.items()}

    def action(self, now: float, text: str) -> None:
        line = f"[{format_duration(now - self.scenario.start)}] {text}"
        self.script.append(line)
        if not self.tty:
            self.stream.write(f"script {line}\n")

    def poll_events(self) -> list[dict[str, Any]]:
        path = self.emu.events_path
        if not path.exists():
            return []
        new = []
        with open(path, "rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1
        self._offset += end
        for line in data[:end].splitlines():
            if line.strip():
                new.append(json.loads(line))
        self.events += new
        return new

    def progress(self) -> tuple[float, str]:
        elapsed = max(0.0, self.emu.clock.now - self.scenario.start)
        frac = min(1.0, elapsed / self.scenario.duration_s)
        return frac, f"{format_duration(elapsed)} / {format_duration(self.scenario.duration_s)}"

    def update(self) -> None:
        new = self.poll_events()
        now = time.monotonic()
        if self.tty:
            if now - self._last_draw >= 0.25 or new:
                self._last_draw = now
                self.draw()
        else:
            for e in new:
                if e["kind"] != "POSITION":
                    self.stream.write(f"event {self._event_line(e)}\n")
            if now - self._last_line >= 5.0:
                self._last_line = now
                frac, text = self.progress()
                active = sum(1 for s in self.emu.seals.values() if s.core and s.core.escort.state == 1)
                self.stream.write(f"progress {frac * 100:3.0f}%  {text} virtual, {active}/{len(self.emu.seals)} "
                                  f"seals active, {len(self.events)} events\n")
            self.stream.flush()

    def _event_line(self, e: dict[str, Any]) -> str:
        t = e.get("occurred_at", "")[11:19]
        pos = e.get("position") or {}
        where = f" at {pos['lat']:.4f},{pos['lon']:.4f}" if pos.get("lat") is not None else ""
        extra = ""
        d = e.get("details") or {}
        if e["kind"] == "DEACTIVATED":
            extra = " clean" if d.get("clean") else " NOT clean"
        elif e["kind"] == "POSITION":
            extra = f" ({d.get('count')} positions)"
        elif e["kind"] == "SIGNAL_RESTORED":
            extra = f" (gap {format_duration(d.get('gap_s', 0))})"
        return f"{t} {e['kind']:<22} seal {e['seal_id']} {e.get('vehicle') or ''}{where}{extra}"

    def draw(self) -> None:
        frac, text = self.progress()
        width = 30
        bar = "#" * int(frac * width) + "." * (width - int(frac * width))
        access = getattr(self.emu, "access", None)
        console = (f"Web console: {console_url(access.url)}  log in as {console_login(access)}\n"
                   if access is not None else "")
        out = ["\x1b[H\x1b[2J",
               f"navseal demo: {self.scenario.description}\n",
               f"[{bar}] {frac * 100:3.0f}%  {text} virtual (x{self.emu.scale:.0f})   Ctrl-C stops\n", console, "\n",
               f"{'SEAL':<6} {'TRUCK':<8} {'STATE':<8} {'LINK':<5} {'ALARMS':<22} {'POSITION':<21} "
               f"{'KM':>6} {'KM/H':>5} {'BATT':>5} {'QUEUED':>6}\n"]
        now = self.emu.clock.now
        for sid, seal in self.emu.seals.items():
            v = seal.view(now)
            alarms = ",".join(name for i, name in enumerate(ALARM_BITS) if v.alarms & (1 << i)) or "-"
            pos = f"{v.lat:.4f} {v.lon:.4f}" if v.lat is not None else "no fix yet"
            state = v.state if v.powered else "OFF"
            out.append(f"{sid:<6} {self.truck_of[sid]:<8} {state:<8} {'up' if v.link_up else 'DOWN':<5} "
                       f"{alarms[:22]:<22} {pos:<21} {v.km or 0:6.1f} {v.speed_kmh:5.0f} "
                       f"{(v.battery if v.battery is not None else 0):4d}% {v.journal_pending:6d}\n")
        out.append("\nScript: " + ("  ".join(self.script[-3:]) or "-") + "\n")
        out.append("\nOperator events (latest last; POSITION batches counted):\n")
        shown = [e for e in self.events if e["kind"] != "POSITION"][-12:]
        for e in shown:
            out.append("  " + self._event_line(e) + "\n")
        n_pos = sum(1 for e in self.events if e["kind"] == "POSITION")
        out.append(f"  ... and {n_pos} POSITION batches\n")
        self.stream.write("".join(out))
        self.stream.flush()


def write_tracks(db_path: Path, out_dir: Path, scenario: Scenario, events: list[dict[str, Any]]) -> list[Path]:
    """One GeoJSON file per seal (its committed track as a LineString, alarms as Points) and one
    with all of them, from the gateway's store: what the operator has, not what the emulator did."""
    from navseal.gateway.store import SqliteStore

    store = SqliteStore(str(db_path), synchronous="NORMAL")
    paths = []
    all_features = []
    try:
        for sid in scenario.seals:
            fixes = [r for r in store.records(sid, limit=10_000_000)
                     if r["kind"] == "FIX" and r["lat"] is not None and r["fix_quality"]]
            fixes.sort(key=lambda r: (r["time"], r["rseq"]))
            features = []
            if len(fixes) >= 2:
                features.append({
                    "type": "Feature",
                    "properties": {"seal_id": sid, "truck": scenario.seals[sid].truck, "points": len(fixes),
                                   "from": _iso(fixes[0]["time"]), "to": _iso(fixes[-1]["time"])},
                    "geometry": {"type": "LineString",
                                 "coordinates": [[r["lon"] / 1e7, r["lat"] / 1e7] for r in fixes]},
                })
            for e in events:
                pos = e.get("position")
                if e["seal_id"] == sid and e["kind"] != "POSITION" and pos and pos.get("lat") is not None:
                    features.append({"type": "Feature",
                                     "properties": {"seal_id": sid, "kind": e["kind"], "alarm": e["alarm"],
                                                    "occurred_at": e["occurred_at"], "event_id": e["event_id"]},
                                     "geometry": {"type": "Point", "coordinates": [pos["lon"], pos["lat"]]}})
            path = out_dir / f"track-{sid}.geojson"
            path.write_text(json.dumps({"type": "FeatureCollection", "features": features}, indent=1))
            paths.append(path)
            all_features += features
    finally:
        store._c.close()
    combined = out_dir / "tracks.geojson"
    combined.write_text(json.dumps({"type": "FeatureCollection", "features": all_features}))
    return [combined] + paths


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def run_demo(*, scenario: Scenario, out_dir: Path, broker_url: str | None, wall_seconds: float,
             stream: TextIO = sys.stdout, tty: bool | None = None, http_port: int = 8080,
             stay: bool = False, stay_s: float | None = None) -> DemoResult:
    """Play the scenario live. With `stay`, the gateway and its web console stay up after the escort
    (for `stay_s` seconds, or until Ctrl-C) so an officer can look at the finished escort."""
    from .demo_broker import EmbeddedBroker

    if tty is None:
        tty = stream.isatty()
    out_dir = Path(out_dir)
    if out_dir.exists():
        for name in ("gateway.sqlite3", "gateway.sqlite3-wal", "gateway.sqlite3-shm"):
            (out_dir / name).unlink(missing_ok=True)
        for p in out_dir.glob("track*.geojson"):
            p.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
    scale = scenario.duration_s / max(wall_seconds, 1.0)
    embedded = None
    if broker_url is None:
        embedded = EmbeddedBroker()
        embedded.start()
        url = embedded.url
        stream.write(f"navseal demo: embedded MQTT broker (amqtt) on {url}\n")
    else:
        url = broker_url
        stream.write(f"navseal demo: using the MQTT broker at {url}\n")
    stream.write(f"navseal demo: {len(scenario.seals)} seals, {format_duration(scenario.duration_s)} of escort "
                 f"in about {format_duration(wall_seconds)} (x{scale:.0f}); output in {out_dir}/\n")
    stream.flush()
    emu = DemoEmulator(scenario, embedded_broker=embedded, workdir=out_dir, broker=url, scale=scale,
                       topic_prefix="seals", http_port=http_port)
    emu.on_gateway_started = lambda: _announce_access(emu, stream)
    view = LiveView(emu, scenario, stream, tty)
    emu.on_action = view.action
    interrupted = False
    t0 = time.monotonic()
    try:
        emu.run(on_idle=view.update, on_end=(lambda: _stay(emu, view, stream, stay_s)) if stay else None)
    except KeyboardInterrupt:
        interrupted = True
        emu.shutdown()
    finally:
        if embedded is not None:
            embedded.stop()
    wall = time.monotonic() - t0
    view.poll_events()
    events = emu.read_events()
    report = emu.check() if not interrupted else None
    tracks = write_tracks(emu.db_path, out_dir, scenario, events)
    counts: dict[str, int] = {}
    for e in events:
        counts[e["kind"]] = counts.get(e["kind"], 0) + 1
    return DemoResult(report=report, out_dir=out_dir, events_path=emu.events_path, track_paths=tracks,
                      counts=counts, interrupted=interrupted, wall_s=wall)


def _stay(emu: DemoEmulator, view: LiveView, stream: TextIO, seconds: float | None) -> None:
    """The escort is over; the console stays up until Ctrl-C (or `seconds`), saying so."""
    view.update()
    access = emu.access
    where = (f"{console_url(access.url)} (log in as {console_login(access)})" if access is not None
             else "the gateway")
    stream.write(f"\nnavseal demo: the escort is over; the web console stays on {where}"
                 + (f" for {seconds:.0f} s" if seconds is not None else "") + ": Ctrl-C ends the demo\n")
    stream.flush()
    deadline = None if seconds is None else time.monotonic() + seconds
    try:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic())))
    except KeyboardInterrupt:
        pass  # the escort finished: ending the stay is not an interruption


def console_login(access) -> str:
    return f"demo-officer / {access.passwords['officer']}"


def _announce_access(emu: DemoEmulator, stream: TextIO) -> None:
    access = emu.access
    if access is None:
        return
    stream.write(f"navseal demo: web console on {console_url(access.url)}: log in as {console_login(access)}; "
                 f"gateway API on {access.url}; users demo-admin, demo-operator, demo-officer "
                 f"({', '.join(access.offices)}), demo-auditor; passwords and tokens in {access.file}\n")
    stream.flush()


def write_summary(result: DemoResult, events: list[dict[str, Any]], stream: TextIO) -> None:
    w = stream.write
    w("\n" + ("navseal demo interrupted" if result.interrupted else "navseal demo finished")
      + f" after {result.wall_s:.0f} s\n")
    w("Operator events: " + ", ".join(f"{k} {n}" for k, n in sorted(result.counts.items())) + "\n")
    for e in events:
        if e["kind"] == "DEACTIVATED":
            d = e["details"]
            why = "" if d.get("clean") else " (" + "; ".join(d.get("reasons") or []) + ")"
            w(f"  seal {e['seal_id']} {e.get('vehicle')}: escort ended {'clean' if d.get('clean') else 'NOT clean'}{why}\n")
    if result.report is not None:
        failed = result.report.failures
        w(f"Scenario checks: {len(result.report.outcomes) - len(failed)} passed, {len(failed)} failed\n")
        for o in failed:
            w(f"  FAIL {o.name}: {o.detail}\n")
    w(f"Event log (JSON Lines): {result.events_path}\n")
    w(f"Tracks (GeoJSON): {result.track_paths[0]}" + (f" and {len(result.track_paths) - 1} per-seal files "
                                                     f"track-<seal>.geojson" if len(result.track_paths) > 1 else "")
      + "\n")
    w(f"Gateway store (SQLite): {result.out_dir / 'gateway.sqlite3'}\n")
    stream.flush()
