"""The HTTP server: uvicorn in a thread of its own, hardened against slow and broken clients.

uvicorn is asyncio: a connection costs a socket and a little memory, not a thread, so 500 idle
connections are 500 sockets, not 505 threads. What uvicorn leaves open, `GuardedH11Protocol` closes:

- a request must arrive whole (headers and body) within `request_timeout_s` of the connection
  opening or of the previous answer, whether the client sends nothing, trickles headers
  (slowloris) or stalls in the body; uvicorn alone times out only idle *kept-alive* connections;
- malformed HTTP (e.g. `Content-Length: -1`) is answered with the API's JSON error and the
  connection closed, instead of uvicorn's plain-text 400.

Limits (h11 defaults elsewhere): headers up to 16 KiB (`h11_max_incomplete_event_size`), at most
`max_connections` at once (503 beyond), bodies up to 1 MiB (the access gate, gateway/api/access.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("navseal.gateway.http")

MAX_HEADER_BYTES = 16 * 1024  # h11's default is 16 KiB too; said here so it is a decision


def guarded_protocol(request_timeout_s: float) -> type[H11Protocol]:
    class GuardedH11Protocol(H11Protocol):
        _request_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                # h11 writes the head and the body separately: with Nagle's algorithm the body
                # waits for the client's delayed ACK (~40 ms a request on loopback).
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._arm()

        def _arm(self) -> None:
            self._disarm()
            self._request_timer = self.loop.call_later(request_timeout_s, self._request_timed_out)

        def _disarm(self) -> None:
            if self._request_timer is not None:
                self._request_timer.cancel()
                self._request_timer = None

        def handle_events(self) -> None:
            super().handle_events()
            # The whole request is in (the app is answering): stop the clock until the answer is out.
            if self.cycle is not None and not self.cycle.more_body and not self.cycle.response_complete:
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # the next request on this connection gets its own time

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _request_timed_out(self) -> None:
            self._request_timer = None
            if self.transport.is_closing():
                return
            if self.cycle is not None and not self.cycle.more_body and not self.cycle.response_complete:
                return  # answering: not the client's fault
            log.info("http: closing a connection that did not send a whole request within %.0f s",
                     request_timeout_s, extra={"client": str(self.client)})
            if self.cycle is not None and not self.cycle.response_complete:
                self.cycle.disconnected = True
                self.cycle.message_event.set()
            self.transport.close()

        def send_400_response(self, msg: str) -> None:
            body = json.dumps({"error": "bad_http", "message": f"malformed HTTP request: {msg}"}).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                       (b"connection", b"close")]
            try:
                self.transport.write(self.conn.send(h11.Response(status_code=400, headers=headers,
                                                                 reason=b"Bad Request")))
                self.transport.write(self.conn.send(h11.Data(data=body)))
                self.transport.write(self.conn.send(h11.EndOfMessage()))
            except h11.LocalProtocolError:
                pass  # a response had already started: just close
            self.transport.close()

    return GuardedH11Protocol


class ApiServer:
    """Serve an ASGI app on (host, port) from a background thread; `port` 0 picks a free one."""

    def __init__(self, app: Any, host: str, port: int, *, tls_cert: str | None = None, tls_key: str | None = None,
                 request_timeout_s: float = 10.0, idle_timeout_s: float = 5.0, max_connections: int = 1000) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(128)
        self.host, self.port = self._sock.getsockname()[:2]
        self.scheme = "https" if tls_cert else "http"
        config = uvicorn.Config(
            app, http=guarded_protocol(request_timeout_s), lifespan="off", log_config=None, access_log=False,
            timeout_keep_alive=int(max(1, idle_timeout_s)), limit_concurrency=max_connections,
            h11_max_incomplete_event_size=MAX_HEADER_BYTES, ssl_certfile=tls_cert, ssl_keyfile=tls_key,
            timeout_graceful_shutdown=5, server_header=False, date_header=True,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="http-api", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        except BaseException:  # noqa: BLE001 - logged; /healthz then reports the API down
            log.exception("http server stopped with an error")

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        deadline = threading.Event()
        waited = 0.0
        while not self._server.started and self._thread.is_alive() and waited < timeout:
            deadline.wait(0.01)
            waited += 0.01
        if not self._server.started:
            raise RuntimeError(f"the HTTP API did not start on {self.url}")

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.should_exit = True
            self._thread.join(10)
        self._sock.close()
