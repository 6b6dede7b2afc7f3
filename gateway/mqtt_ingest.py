"""MQTT ingest: seal frames from `<prefix>/+/up`, downlinks to `<prefix>/<seal_id>/down`.

paho-mqtt 2.x, callback API version 2, MQTT v5. The durability choices, and why:
- **Fixed client id, clean_start False, a session expiry**: the broker keeps our subscription and
  queues QoS 1 frames while the gateway is down (restart, upgrade, crash) and delivers them when it
  returns.
- **Manual PUBACK** (`manual_ack=True`): a frame is acknowledged to the broker only after the
  pipeline has committed it (or refused it for good). A gateway killed between receipt and commit
  gets the frame again from its session: no record lost even if the seal were not to re-send.
- **Order**: paho calls `on_message` from one network thread in arrival order, and the runner
  processes a single FIFO queue, so each seal's frames are handled in the order the broker sent
  them. (With a shared subscription the broker may hand one seal's frames to different instances;
  the pipeline's (boot, seq) window and the seal's stop-and-wait journal keep that safe.)
- **Shared subscription** (`shared_group`): `$share/<group>/<prefix>/+/up`, so several gateway
  instances (each with its own client id) split the seals' load.
- **Reconnect**: paho's loop thread reconnects with capped backoff; we subscribe again in every
  `on_connect` (harmless when the session kept it, needed when the broker lost it). A frame's
  acknowledgement is sent only on the connection that delivered it: after a reconnect the broker
  redelivers what was not acknowledged (same packet ids, which may since have been reused), and
  the copy is acknowledged instead.
- **Downlink window**: ACK downlinks are QoS 1, and the broker takes at most its Receive Maximum
  of them unacknowledged. paho could keep that window itself (`max_inflight_messages`), but then
  it walks every message in flight on each PUBACK from the broker (`_update_inflight`): a third of
  the network thread's time at a few hundred ACKs in flight. So paho's own limit is off and the
  driver keeps the window with two counters (published; PUBACKed, in `on_publish`): a downlink
  that would overfill it waits for room (backpressure on the runner), while connected and for at
  most DOWNLINK_WINDOW_WAIT_S. While disconnected paho keeps the downlinks and sends them all
  after the reconnect, as it did with its own limit on. Decision 0022.
- **Suspend/resume** (ingest paused on a store error, gateway/runner.py): `suspend()` disconnects,
  keeping the session, so nothing more arrives and nothing in flight is acknowledged; `resume()`
  connects again and the broker redelivers every frame not acknowledged.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from functools import partial
from typing import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

log = logging.getLogger("navseal.gateway.mqtt")

# Ack callback handed along with each frame: call it once the frame is committed or refused.
Ack = Callable[[], None]
Submit = Callable[[bytes, str, Callable[[bytes], None], Ack], None]

# Seals' topics whose parse is kept (see _on_message); past it the table starts again.
TOPIC_ROUTES_MAX = 100_000
# A downlink waits at most this long for room in the broker's window (see the module docstring).
DOWNLINK_WINDOW_WAIT_S = 10.0


@dataclass
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = "navseal-gateway"
    username: str | None = None
    password: str | None = None
    topic_prefix: str = "seals"
    shared_group: str | None = None
    session_expiry_s: int = 7 * 24 * 3600
    keepalive_s: int = 30
    reconnect_min_s: float = 0.2
    reconnect_max_s: float = 10.0
    # MQTT v5 Receive Maximum: unacknowledged QoS 1 frames the broker may have in flight to us.
    receive_maximum: int = 1000
    # "5" (default: session expiry, receive maximum, shared subscriptions) or "3.1.1" for brokers
    # that speak only 3.1.1 (the demo's embedded amqtt): there the persistent session is
    # clean_session=False, kept by the broker until it is told otherwise.
    protocol: str = "5"
    # TLS (see configure_tls): on when `tls`; `tls_ca` None trusts the system's CAs.
    tls: bool = False
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None

    def __post_init__(self) -> None:
        if self.protocol not in ("5", "3.1.1"):
            raise ValueError(f"mqtt protocol must be \"5\" or \"3.1.1\", not {self.protocol!r}")
        if self.protocol == "3.1.1" and self.shared_group:
            raise ValueError("shared subscriptions need MQTT 5 (protocol = \"5\")")

    @classmethod
    def from_mapping(cls, table: dict) -> "MqttSettings":
        known = {k: v for k, v in table.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    @property
    def subscription(self) -> str:
        topic = f"{self.topic_prefix}/+/up"
        return f"$share/{self.shared_group}/{topic}" if self.shared_group else topic


def configure_tls(client: mqtt.Client, ca: str | None = None, cert: str | None = None,
                  key: str | None = None) -> None:
    """TLS 1.2+ with the broker's certificate verified (chain to `ca`, host name checked):
    the one place the gateway's MQTT clients (ingest and the MQTT sink) set it up."""
    import ssl

    client.tls_set(ca_certs=ca, certfile=cert, keyfile=key, cert_reqs=ssl.CERT_REQUIRED,
                   tls_version=ssl.PROTOCOL_TLS_CLIENT)


@dataclass
class MqttStats:
    received: int = 0
    bad_topic: int = 0
    connects: int = 0
    disconnects: int = 0
    downlinks: int = 0
    paused_dropped: int = 0


class MqttIngest:
    def __init__(self, settings: MqttSettings, submit: Submit) -> None:
        self.settings = settings
        self._submit = submit
        self.stats = MqttStats()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self._accepting = True
        self._suspended = False
        self._generation = 0  # one per connection: an ack goes only on the connection it came on
        self._prefix_parts = settings.topic_prefix.split("/")
        # Topic -> (source, reply) of the seals heard from: parsed once per seal, not per frame.
        self._topic_routes: dict[str, tuple[str, Callable[[bytes], None]]] = {}
        v5 = settings.protocol == "5"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            # 3.1.1 keeps the session through clean_session; v5 through clean_start at connect.
            **({} if v5 else {"clean_session": False}),
            manual_ack=True,
        )
        if settings.username:
            client.username_pw_set(settings.username, settings.password)
        if settings.tls:
            configure_tls(client, settings.tls_ca, settings.tls_cert, settings.tls_key)
        client.max_inflight_messages_set(0)  # the driver keeps the window (module docstring)
        client.max_queued_messages_set(0)  # downlinks queue while disconnected; bounded by seals
        client.reconnect_delay_set(settings.reconnect_min_s, settings.reconnect_max_s)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        self.client = client
        # The downlink window: `_published` is written only by the publishing thread (the runner),
        # `_puback_count` only by paho's network thread, so neither needs a lock.
        self.downlink_window = settings.receive_maximum
        self._published = 0
        self._puback_count = 0
        self._window_waiting = False
        self._window_room = threading.Event()
        self._window_stalled_at = -1  # PUBACK count when a wait timed out: no wait until it moves

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        if self.settings.protocol == "3.1.1":
            self.client.connect_async(self.settings.host, self.settings.port, keepalive=self.settings.keepalive_s)
            self.client.loop_start()
            return
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.settings.session_expiry_s
        props.ReceiveMaximum = self.settings.receive_maximum
        self.client.connect_async(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive_s,
            clean_start=False,
            properties=props,
        )
        self.client.loop_start()

    def pause(self) -> None:
        """Stop handing frames to the pipeline (graceful shutdown). Frames that still arrive are
        not acknowledged, so the broker keeps them in our session for the next start."""
        self._accepting = False

    def suspend(self) -> None:
        """Disconnect and stay away (the session and its unacknowledged frames stay at the broker)
        until `resume()`. Acknowledgements of frames already received are not sent."""
        if self._suspended:
            return
        self._suspended = True
        self._generation += 1
        log.warning("mqtt: suspending ingest (disconnect; the broker keeps the frames not acknowledged)")
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
        self.connected.clear()
        self.subscribed.clear()

    def resume(self) -> None:
        """Connect again after `suspend()`: the broker redelivers what was not acknowledged."""
        if not self._suspended:
            return
        self._suspended = False
        log.info("mqtt: resuming ingest (reconnecting)")
        self.start()

    @property
    def suspended(self) -> bool:
        return self._suspended

    def stop(self, timeout: float = 5.0) -> None:
        self._accepting = False
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()

    # -- downlink ----------------------------------------------------------------------------------
    def downlink_topic(self, seal_id: int) -> str:
        return f"{self.settings.topic_prefix}/{seal_id}/down"

    def publish_downlink(self, seal_id: int, frame: bytes) -> mqtt.MQTTMessageInfo:
        """QoS 1 to the seal's downlink topic. Call from one thread (the runner): see `_published`."""
        if (self._published - self._puback_count >= self.downlink_window
                and self._puback_count != self._window_stalled_at):
            self._wait_for_window()
        info = self.client.publish(self.downlink_topic(seal_id), frame, qos=1)
        self._published += 1
        self.stats.downlinks += 1
        return info

    @property
    def downlinks_in_flight(self) -> int:
        """Downlinks published and not yet PUBACKed by the broker."""
        return self._published - self._puback_count

    def _wait_for_window(self) -> None:
        """The broker holds a full window of our downlinks: wait until it acknowledges one, as long
        as we are connected (disconnected, paho keeps them for the reconnect) and at most
        DOWNLINK_WINDOW_WAIT_S (a broker that stops acknowledging but keeps the connection: then
        no downlink waits again until it acknowledges one)."""
        deadline = time.monotonic() + DOWNLINK_WINDOW_WAIT_S
        self._window_waiting = True
        try:
            while self._published - self._puback_count >= self.downlink_window:
                if not self.connected.is_set():
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.warning("mqtt: %d downlinks unacknowledged by the broker for %.0f s; sending more",
                                self.downlinks_in_flight, DOWNLINK_WINDOW_WAIT_S)
                    self._window_stalled_at = self._puback_count
                    return
                self._window_room.clear()
                if self._published - self._puback_count < self.downlink_window:
                    return
                self._window_room.wait(min(remaining, 0.05))
        finally:
            self._window_waiting = False

    # -- paho callbacks (network thread) ------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("mqtt: connect refused by %s:%d: %s", self.settings.host, self.settings.port, reason_code)
            return
        self.stats.connects += 1
        self._generation += 1
        # The broker's Receive Maximum (MQTT 5; absent: ours, as paho's own limit used to be).
        broker_window = getattr(properties, "ReceiveMaximum", None) if properties is not None else None
        self.downlink_window = min(self.settings.receive_maximum, broker_window or self.settings.receive_maximum)
        self.connected.set()
        log.info(
            "mqtt: connected to %s:%d as %s (session present: %s)",
            self.settings.host, self.settings.port, self.settings.client_id, flags.session_present,
        )
        if self.settings.protocol == "3.1.1":
            client.subscribe(self.settings.subscription, qos=1)
        else:
            client.subscribe(self.settings.subscription, options=SubscribeOptions(qos=1))

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        failed = [rc for rc in reason_codes if rc.is_failure]
        if failed:
            log.error("mqtt: subscription to %s refused: %s", self.settings.subscription, failed)
            return
        self.subscribed.set()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._puback_count += 1
        if self._window_waiting:
            self._window_room.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        self.subscribed.clear()
        self.stats.disconnects += 1
        if self._accepting:
            log.warning("mqtt: disconnected (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        if not self._accepting:
            self.stats.paused_dropped += 1
            return  # not acked: stays in the broker session
        # partial (C) of a bound method rather than a closure per frame: this runs for every frame.
        ack = partial(self._ack, message.mid, message.qos, self._generation)
        topic = message.topic
        route = self._topic_routes.get(topic)
        if route is None:
            seal_id = self._seal_from_topic(topic)
            if seal_id is None:
                self.stats.bad_topic += 1
                ack()  # garbage on a topic we matched: refuse for good, nothing to re-read
                return
            if len(self._topic_routes) >= TOPIC_ROUTES_MAX:
                self._topic_routes.clear()
            route = self._topic_routes[topic] = (f"mqtt:{seal_id}", partial(self.publish_downlink, seal_id))
        self.stats.received += 1
        self._submit(message.payload, route[0], route[1], ack)

    def _ack(self, mid: int, qos: int, generation: int) -> None:
        # Only on the connection that delivered it: after a reconnect the broker sends it again.
        if qos > 0 and generation == self._generation:
            self.client.ack(mid, qos)

    def _seal_from_topic(self, topic: str) -> int | None:
        parts = topic.split("/")
        n = len(self._prefix_parts)
        if len(parts) != n + 2 or parts[:n] != self._prefix_parts or parts[-1] != "up":
            return None
        try:
            return int(parts[n])
        except ValueError:
            return None
