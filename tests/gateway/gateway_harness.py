"""Helpers for the gateway integration tests: the gateway as a real `navseal gateway run`
subprocess, seals as MQTT clients speaking real frames, and HTTP helpers."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from navseal.bench.seal_frames import SealFrames
from navseal.gateway import auth
from navseal.gateway.mosquitto_broker import free_port
from navseal.gateway.secrets import new_master_key_file
from fixtures_postgres import engine_store
from navseal.gateway.store.postgres import PgStore
from navseal.protocol import decode_frame

NAVSEAL = str(Path(sys.executable).with_name("navseal"))


def write_config(path: Path, broker, *, db: Path, http_port: int, sinks: list[dict] | None = None,
                 extra: str = "", dev_test_keys: bool = True, client_id: str = "gw-under-test",
                 mqtt: dict[str, Any] | None = None, store_url: str | None = None,
                 settings: dict[str, Any] | None = None) -> Path:
    """The gateway's TOML; a master key file (0600) beside it. `dev_test_keys`: the tests' seals
    (SealFrames) use the published test keys, which only a development gateway accepts. `mqtt`:
    more [mqtt] keys; `store_url`: PostgreSQL instead of `db`; `settings`: more top-level keys."""
    master = path.with_name("master.key")
    if not master.exists():
        new_master_key_file(master)
    lines = [
        f'db_path = "{db}"',
        f'master_key_file = "{master}"',
        f"dev_test_keys = {'true' if dev_test_keys else 'false'}",
        'db_synchronous = "NORMAL"',
        'log_format = "json"',
        'log_level = "INFO"',
        "sink_retry_initial_s = 0.05",
        "sink_retry_max_s = 0.5",
        *[f"{k} = {json.dumps(v)}" for k, v in (settings or {}).items()],
        "",
        "[mqtt]",
        f'host = "{broker.host}"',
        f"port = {broker.port}",
        f'client_id = "{client_id}"',
        *[f"{k} = {json.dumps(v)}" for k, v in (mqtt or {}).items()],
        "",
        "[http]",
        f"port = {http_port}",
        "",
    ]
    if store_url:
        lines += ["[store]", f"url = {json.dumps(store_url)}", ""]
    for sink in sinks or []:
        lines.append("[[sinks]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in sink.items()]
        lines.append("")
    path.write_text("\n".join(lines) + extra)
    return path


class GatewayProcess:
    """`navseal gateway run --config FILE` as a child process; stderr (JSON logs) to a file."""

    def __init__(self, config: Path, http_port: int, log_path: Path, tokens: dict[str, str] | None = None) -> None:
        self.config = config
        self.tokens = tokens or {}
        self.api = f"http://127.0.0.1:{http_port}"
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> "GatewayProcess":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([NAVSEAL, "gateway", "run", "--init", "--config", str(self.config)],
                                     stdout=subprocess.DEVNULL, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
            try:
                status, body = get_json(self.api + "/healthz")
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"gateway not healthy within {timeout}s:\n{self.log_path.read_text()}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def logs(self) -> list[dict]:
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
        return out

    def metrics(self) -> dict[str, float]:
        req = urllib.request.Request(self.api + "/metrics", headers=_headers(self.tokens.get("auditor")))
        with urllib.request.urlopen(req, timeout=10) as resp:
            return parse_metrics(resp.read().decode())


def parse_metrics(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


OFFICER_OFFICE = "10232010"  # the destination office of activation_body()


def make_tokens(db: Path | str, roles=("admin", "operator", "officer", "auditor"), *,
                passwords: bool = False, store_url: str | None = None) -> dict[str, str]:
    """One user per role (named after it; the officer bound to OFFICER_OFFICE) and an API token
    each, written straight into the gateway's database as `navseal gateway user ... --db` does.
    With `passwords`, each may also log in with "<role>-password-123" (argon2: ~0.2 s each)."""
    store = PgStore(store_url) if store_url else engine_store(db)
    tokens = {}
    try:
        with store.transaction() as tx:
            for role in roles:
                if tx.get_user(name=role) is None:
                    auth.add_user(tx, name=role, role=role, offices=[OFFICER_OFFICE] if role == "officer" else [],
                                  password=f"{role}-password-123" if passwords else None, now=time.time(),
                                  created_by=auth.host_actor())
                tokens[role] = auth.issue_token(tx, role, now=time.time())[1]
    finally:
        store.close()
    return tokens


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def get_json(url: str, token: str | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, headers=_headers(token))
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def post_json(url: str, body: Any, *, raw: bytes | None = None, token: str | None = None,
              method: str = "POST") -> tuple[int, Any]:
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **_headers(token)})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


class MqttSeal:
    """A seal on the broker: publishes frames on seals/<id>/up, collects decoded downlinks."""

    def __init__(self, broker, seal_id: int, **frames_kwargs) -> None:
        self.frames = SealFrames(seal_id, **frames_kwargs)
        self.seal_id = seal_id
        self.downlinks: "queue.Queue[bytes]" = queue.Queue()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"seal-{seal_id}", protocol=mqtt.MQTTv5)
        self.client.on_message = lambda c, u, m: self.downlinks.put(m.payload)
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe(f"seals/{seal_id}/down", qos=1)
        if not subscribed.wait(10):
            raise RuntimeError("seal could not subscribe")

    def send(self, frame: bytes) -> None:
        info = self.client.publish(f"seals/{self.seal_id}/up", frame, qos=1)
        info.wait_for_publish(10)

    def next_downlink(self, timeout: float = 10.0, type_name: str | None = None):
        """The next downlink (decoded with the seal's key), skipping others if type_name is given."""
        deadline = time.monotonic() + timeout
        while True:
            raw = self.downlinks.get(timeout=max(0.01, deadline - time.monotonic()))
            frame = decode_frame(raw, self.frames.key)
            if type_name is None or frame.type == type_name:
                return frame, raw

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def wait_until(predicate, timeout: float = 15.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


__all__ = ["GatewayProcess", "MqttSeal", "free_port", "get_json", "post_json", "read_jsonl",
           "wait_until", "write_config", "os"]


def activation_body(seal_id: int, *, declaration: str | None = None, vehicle: str = "123ABC02",
                    hours: float = 72, **extra) -> dict:
    now = time.time()
    body = {
        "seal_id": seal_id,
        "declaration": declaration or f"10228010/261126/{seal_id:07d}",
        "vehicle": vehicle,
        "departure_office_code": "10228010",
        "departure_office_name": "Almaty customs post",
        "dest_office_code": "10232010",
        "dest_office_name": "Khorgos customs post",
        "period_start": now - 60,
        "period_end": now + hours * 3600,
        "corridor_m": 0,
    }
    body.update(extra)
    return body


def bring_online_and_activate(api: str, seal: "MqttSeal", token: str, **activation) -> dict:
    """Provision, request activation (as `token`, an operator's), and play the seal's side until
    the escort is active: HELLO -> ACK + ACTIVATE -> COMMAND_RESULT OK -> first fix, lock intact."""
    status, body = post_json(api + "/v1/seals", {"seal_id": seal.seal_id, "key": seal.frames.key.hex()}, token=token)
    assert status == 201, body
    status, body = post_json(api + "/v1/escorts/activate", activation_body(seal.seal_id, **activation), token=token)
    assert status == 202, body
    seal.send(seal.frames.hello())
    _, activate_raw = seal.next_downlink(type_name="ACTIVATE")
    seal.send(seal.frames.command_result(activate_raw))
    seal.send(seal.frames.records(1))
    assert wait_until(lambda: get_json(f"{api}/v1/escorts?seal_id={seal.seal_id}", token)[1]["escorts"][0]["status"]
                      == "active"), "escort did not become active"
    return body["escort"]
