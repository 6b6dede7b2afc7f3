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
from navseal.gateway.mosquitto_broker import free_port
from navseal.protocol import decode_frame

NAVSEAL = str(Path(sys.executable).with_name("navseal"))


def write_config(path: Path, broker, *, db: Path, http_port: int, sinks: list[dict] | None = None,
                 extra: str = "") -> Path:
    lines = [
        f'db_path = "{db}"',
        'db_synchronous = "NORMAL"',
        'log_format = "json"',
        'log_level = "INFO"',
        "sink_retry_initial_s = 0.05",
        "sink_retry_max_s = 0.5",
        "",
        "[mqtt]",
        f'host = "{broker.host}"',
        f"port = {broker.port}",
        'client_id = "gw-under-test"',
        "",
        "[http]",
        f"port = {http_port}",
        "",
    ]
    for sink in sinks or []:
        lines.append("[[sinks]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in sink.items()]
        lines.append("")
    path.write_text("\n".join(lines) + extra)
    return path


class GatewayProcess:
    """`navseal gateway run --config FILE` as a child process; stderr (JSON logs) to a file."""

    def __init__(self, config: Path, http_port: int, log_path: Path) -> None:
        self.config = config
        self.api = f"http://127.0.0.1:{http_port}"
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> "GatewayProcess":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([NAVSEAL, "gateway", "run", "--config", str(self.config)],
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
        with urllib.request.urlopen(self.api + "/metrics", timeout=10) as resp:
            return parse_metrics(resp.read().decode())


def parse_metrics(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def post_json(url: str, body: Any, *, raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
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


def bring_online_and_activate(api: str, seal: "MqttSeal", **activation) -> dict:
    """Provision, request activation, and play the seal's side until the escort is active:
    HELLO -> ACK + ACTIVATE -> COMMAND_RESULT OK -> first fix with the lock intact."""
    status, body = post_json(api + "/v1/seals", {"seal_id": seal.seal_id, "key": seal.frames.key.hex()})
    assert status == 201, body
    status, body = post_json(api + "/v1/escorts/activate", activation_body(seal.seal_id, **activation))
    assert status == 202, body
    seal.send(seal.frames.hello())
    _, activate_raw = seal.next_downlink(type_name="ACTIVATE")
    seal.send(seal.frames.command_result(activate_raw))
    seal.send(seal.frames.records(1))
    assert wait_until(lambda: get_json(f"{api}/v1/escorts?seal_id={seal.seal_id}")[1]["escorts"][0]["status"]
                      == "active"), "escort did not become active"
    return body["escort"]
