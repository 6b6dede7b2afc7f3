"""Sinks: where operator events go (the operator's tracking system).

A sink delivers one event (a JSON-able dict with an `event_id`) and either returns, meaning the
receiver has it, or raises `SinkError`. It keeps no queue and does no retrying: that policy lives in
the outbox worker (gateway/outbox_worker.py), which reads the durable outbox, calls `deliver` in
order and backs off when a sink fails. So a sink is a thin transport, testable on its own.

Kinds (config `[[sinks]]` tables, `type = ...`):
- `jsonl`:   one JSON object per line to a file (appended, flushed and fsync'd per batch) or stdout.
- `webhook`: HTTP POST of the event JSON, `Idempotency-Key: <event_id>`; 2xx is delivered; a 4xx
             that refuses this event (400, 409, 410, 413, 415, 422, ...) is a permanent refusal
             (`SinkRefused`: the worker keeps it as a dead letter and moves on); anything else
             (5xx, no answer, and the 4xx that say the receiver or our credentials are at fault:
             401, 403, 404, 405, 407, 408, 425, 429) is an error and will be retried.
- `mqtt`:    publish the event JSON at QoS 1 to `<topic>/<seal_id>/<kind>` (topic from config) and wait
             for the broker's PUBACK.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import threading
import urllib.parse
from typing import IO, Any, Iterable, Mapping

Event = Mapping[str, Any]


class SinkError(Exception):
    """The sink could not deliver; the outbox worker retries later. `retry_after` (seconds) is a
    hint from the receiver (HTTP Retry-After), or None."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.delivered = 0  # events of the batch delivered before this one failed (0: none known)


class SinkRefused(SinkError):
    """The receiver refused this event for good (it would refuse it again): the worker keeps it as
    a dead letter and delivers the next one. The refused event is the batch's `delivered`-th."""


# 4xx answers that are about the receiver or the gateway's credentials, not about the event: retried.
RETRIED_4XX = frozenset({401, 403, 404, 405, 407, 408, 425, 429})


def event_json(event: Event) -> bytes:
    # Compact, key order kept as built by the event module: byte-identical on every re-send.
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


class Sink:
    """Interface. `name` keys the sink's outbox cursor, so it must stay stable across restarts."""

    name: str
    kind: str

    def deliver_batch(self, events: Iterable[Event]) -> None:
        for i, event in enumerate(events):
            try:
                self.deliver(event)
            except SinkError as exc:
                exc.delivered = i
                raise

    def deliver(self, event: Event) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass


class JsonLinesSink(Sink):
    """`path = "-"` writes to stdout. A file is appended to; each batch is flushed and fsync'd
    before the worker marks it delivered, so a crash re-sends at most the last batch (same
    event_ids: the reader de-duplicates)."""

    kind = "jsonl"

    def __init__(self, name: str, path: str, *, fsync: bool = True) -> None:
        self.name = name
        self.path = path
        self._fsync = fsync and path != "-"
        self._file: IO[bytes] | None = None

    def _open(self) -> IO[bytes]:
        if self._file is None:
            if self.path == "-":
                self._file = sys.stdout.buffer
            else:
                os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
                self._file = open(self.path, "ab")
        return self._file

    def deliver_batch(self, events: Iterable[Event]) -> None:
        try:
            out = self._open()
            out.write(b"".join(event_json(event) + b"\n" for event in events))
            out.flush()
            if self._fsync:
                os.fsync(out.fileno())
        except OSError as exc:
            self._close_file()
            raise SinkError(f"jsonl {self.path}: {exc}") from exc

    def deliver(self, event: Event) -> None:
        self.deliver_batch([event])

    def _close_file(self) -> None:
        if self._file is not None and self.path != "-":
            try:
                self._file.close()
            except OSError:
                pass
        self._file = None

    def close(self) -> None:
        self._close_file()


class WebhookSink(Sink):
    """POST each event as JSON to `url`. One keep-alive connection, re-opened after any error."""

    kind = "webhook"

    def __init__(
        self,
        name: str,
        url: str,
        *,
        timeout_s: float = 10.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.url = url
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"webhook url must be http(s)://host[:port]/path, got {url!r}")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._timeout = timeout_s
        self._headers = dict(headers or {})
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self._timeout)
        return self._conn

    def deliver(self, event: Event) -> None:
        body = event_json(event)
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": str(event["event_id"]),
            **self._headers,
        }
        try:
            conn = self._connection()
            conn.request("POST", self._path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise SinkError(f"webhook {self.url}: {exc.__class__.__name__}: {exc}") from exc
        if not 200 <= response.status < 300:
            retry_after = _retry_after(response.getheader("Retry-After"))
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            if 400 <= response.status < 500 and response.status not in RETRIED_4XX:
                raise SinkRefused(f"webhook {self.url}: HTTP {response.status} for event {event['event_id']}")
            raise SinkError(f"webhook {self.url}: HTTP {response.status}", retry_after)
        if response.getheader("Connection", "").lower() == "close":
            self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: ignore, our own backoff applies


class MqttSink(Sink):
    """Publish events at QoS 1 on its own paho connection (not the ingest one, so a slow operator
    consumer cannot stall seal ingest) and wait for each PUBACK before reporting delivery."""

    kind = "mqtt"

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        topic: str,
        *,
        client_id: str,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 10.0,
        tls: tuple[str | None, str | None, str | None] | None = None,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.name = name
        self.topic = topic.rstrip("/")
        self._timeout = timeout_s
        self._connected = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        if username:
            self._client.username_pw_set(username, password)
        if tls is not None:  # (ca, cert, key), as the gateway's ingest connection
            from .mqtt_ingest import configure_tls

            configure_tls(self._client, *tls)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.reconnect_delay_set(0.1, 5)
        self._client.connect_async(host, port, keepalive=30)
        self._client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()

    def deliver_batch(self, events: Iterable[Event]) -> None:
        if not self._connected.wait(self._timeout):
            raise SinkError(f"mqtt sink {self.name}: not connected to the broker")
        infos = []
        for event in events:
            topic = f"{self.topic}/{event.get('seal_id', 'gateway')}/{event.get('kind', 'EVENT')}"
            infos.append(self._client.publish(topic, event_json(event), qos=1))
        for info in infos:
            try:
                info.wait_for_publish(self._timeout)
            except (RuntimeError, ValueError) as exc:
                raise SinkError(f"mqtt sink {self.name}: {exc}") from exc
            if not info.is_published():
                raise SinkError(f"mqtt sink {self.name}: no PUBACK within {self._timeout}s")

    def deliver(self, event: Event) -> None:
        self.deliver_batch([event])

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def build_sink(spec: Any, *, mqtt_host: str = "127.0.0.1", mqtt_port: int = 1883,
               mqtt_username: str | None = None, mqtt_password: str | None = None,
               client_id_prefix: str = "navseal-gateway",
               mqtt_tls: tuple[str | None, str | None, str | None] | None = None) -> Sink:
    """A sink from one `[[sinks]]` table (navseal.gateway.config.SinkConfig or a plain mapping).
    The MQTT sink publishes on the gateway's broker with its own client id."""
    get = spec.get if isinstance(spec, Mapping) else (lambda key, default=None: getattr(spec, key, default))
    kind = get("type")
    name = get("name") or kind
    timeout = float(get("timeout_s", 10.0) or 10.0)
    if kind == "jsonl":
        return JsonLinesSink(name, get("path") or "-")
    if kind == "webhook":
        if not get("url"):
            raise ValueError(f"sink {name}: webhook needs url")
        return WebhookSink(name, get("url"), timeout_s=timeout, headers=get("headers"))
    if kind == "mqtt":
        return MqttSink(
            name,
            mqtt_host,
            int(mqtt_port),
            get("topic") or "navseal/events",
            client_id=f"{client_id_prefix}-sink-{name}",
            username=mqtt_username,
            password=mqtt_password,
            timeout_s=timeout,
            tls=mqtt_tls,
        )
    raise ValueError(f"sink {name!r}: unknown type {kind!r} (jsonl, webhook, mqtt)")
