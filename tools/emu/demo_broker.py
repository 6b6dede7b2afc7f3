"""The demo's embedded MQTT broker (amqtt, in process).

Why amqtt 0.12.1: `navseal demo` must run on a fresh machine with nothing but the Python
environment: no Mosquitto, no Docker, no root. amqtt is a pure-Python asyncio MQTT broker from
PyPI that runs inside our process on its own event-loop thread, with QoS 1 and persistent
sessions, and it measured about 5.4k QoS 1 msg/s to a paho subscriber here: a handful of seals
send a few frames a second. (HBMQTT, its predecessor, is unmaintained; gmqtt and paho are clients
only; Mosquitto needs a system package.) Its limit: it speaks MQTT 3.1.1 only.

So with the embedded broker the demo runs the gateway's own MqttIngest in its 3.1.1 mode
(`MqttSettings(protocol="3.1.1")`: fixed client id, clean_session False); with `--broker` (a real
broker such as Mosquitto) the same ingest speaks MQTT 5.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import warnings



def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class EmbeddedBroker:
    """amqtt on its own thread and event loop; `start()` returns once it listens."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.ERROR)
        self._thread = threading.Thread(target=self._run, name="amqtt-broker", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise RuntimeError("the embedded MQTT broker (amqtt) did not start")
        if self._error is not None:
            raise RuntimeError(f"the embedded MQTT broker (amqtt) failed: {self._error}")

    def _run(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from amqtt.broker import Broker

            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            config = {
                "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
                "sys_interval": 0,
                "auth": {"allow-anonymous": True, "plugins": ["auth_anonymous"]},
                "topic-check": {"enabled": False},
            }
            try:
                self._broker = Broker(config, loop=loop)
                loop.run_until_complete(self._broker.start())
            except BaseException as exc:  # reported by start()
                self._error = exc
                self._started.set()
                return
            self._started.set()
            loop.run_forever()

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is None or self._broker is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
        try:
            fut.result(timeout)
        except Exception:  # noqa: BLE001 - shutting down anyway
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)
