"""A real local HTTP server standing in for the operator's webhook receiver.

It de-duplicates by Idempotency-Key as a real receiver should, keeps every request (so tests can see
repeats), can answer errors on demand, and can be taken down and brought back on the same port.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from navseal.gateway.mosquitto_broker import free_port


class WebhookTarget:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/events"
        self.requests: list[tuple[str, dict]] = []  # (idempotency key, body) in arrival order
        self.unique: dict[str, dict] = {}
        self.fail_with: int | None = None  # answer this status instead of 200
        self.refuse: dict[str, int] = {}  # event_id -> status to answer for that event only (e.g. 422)
        self.refused: list[str] = []  # event_ids refused, in order
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()

    def start(self) -> "WebhookTarget":
        target = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with target._lock:
                    target._connections.add(self.connection)

            def finish(self) -> None:
                with target._lock:
                    target._connections.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if target.fail_with:
                    self.send_response(target.fail_with)
                    self.send_header("Retry-After", "0")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                key = self.headers.get("Idempotency-Key", "")
                event = json.loads(body)
                if key in target.refuse:
                    with target._changed:
                        target.refused.append(key)
                    self.send_response(target.refuse[key])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with target._changed:
                    target.requests.append((key, event))
                    target.unique.setdefault(key, event)
                    target._changed.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        # A receiver that goes down also drops its keep-alive connections.
        with self._lock:
            for conn in list(self._connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until `count` distinct events arrived."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.unique) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True
