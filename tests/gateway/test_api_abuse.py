"""The HTTP API against a stranger on the network: each abuse case of the access issue, against the
real server (uvicorn in the gateway service) over real sockets."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from gateway_harness import activation_body, make_tokens, post_json
from navseal.gateway.config import load_config
from navseal.gateway.service import GatewayService
from navseal.protocol import test_key

REQUEST_TIMEOUT_S = 1.0
IDLE_TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("abuse")
    config = load_config(None, db_path=str(tmp / "gw.sqlite3"), http_port=0, mqtt_host="", dev_test_keys=True,
                         http_request_timeout_s=REQUEST_TIMEOUT_S, http_idle_timeout_s=IDLE_TIMEOUT_S)
    svc = GatewayService(config, enable_mqtt=False)
    svc.tokens = make_tokens(config.db_path, roles=("admin", "operator"))
    svc.start()
    svc.api = svc.http.url
    status, _ = post_json(svc.api + "/v1/seals", {"seal_id": 1001, "key": test_key(1001).hex()},
                          token=svc.tokens["operator"])
    assert status == 201
    yield svc
    svc.stop()


def connect(svc) -> socket.socket:
    sock = socket.create_connection((svc.http.host, svc.http.port), timeout=10)
    return sock


def read_until_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection (fails if it never does)."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        except socket.timeout:
            break
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"the server did not close the connection within {timeout} s; got {data[:200]!r}")


def responses(data: bytes) -> list[tuple[int, dict]]:
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        out.append((status, json.loads(rest[:length])))
        data = rest[length:]
    return out


def request(svc, method: str, path: str, body: bytes, *, token: str | None = None, extra: str = "") -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}{extra}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def post(svc, path: str, body: bytes, role: str = "operator") -> tuple[int, dict]:
    sock = connect(svc)
    try:
        sock.sendall(request(svc, "POST", path, body, token=svc.tokens[role], extra="Connection: close\r\n"))
        return responses(read_until_closed(sock))[0]
    finally:
        sock.close()


def test_an_oversized_body_is_refused_unread_and_the_connection_closed(gw):
    """The rest of a refused body must never run as the next request (it used to create a seal)."""
    smuggled = request(gw, "POST", "/v1/seals", json.dumps({"seal_id": 666, "key": "ab" * 32}).encode(),
                       token=gw.tokens["admin"])
    body = b" " * (1024 * 1024 + 1 - len(smuggled)) + smuggled
    sock = connect(gw)
    try:
        sock.sendall(request(gw, "POST", "/v1/escorts/activate", b"", token=gw.tokens["operator"])
                     .replace(b"Content-Length: 0", f"Content-Length: {len(body)}".encode()))
        try:
            sock.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed while we were still sending: what we want
        answers = responses(read_until_closed(sock))
    finally:
        sock.close()
    assert [(status, body["error"]) for status, body in answers] == [(413, "too_large")]
    assert gw.store.seal_key(666) is None


def test_a_chunked_body_that_grows_past_the_limit_is_refused(gw):
    sock = connect(gw)
    try:
        sock.sendall(f"POST /v1/escorts/activate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {gw.tokens['operator']}"
                     f"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b"x" * 65536
        try:
            for _ in range(20):  # 1.25 MiB
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        answers = responses(read_until_closed(sock))
    finally:
        sock.close()
    assert [(status, body["error"]) for status, body in answers] == [(413, "too_large")]


def test_a_negative_content_length_is_refused_at_once(gw):
    sock = connect(gw)
    try:
        t0 = time.monotonic()
        sock.sendall(b"POST /v1/seals HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n" + b"a" * 1000)
        answers = responses(read_until_closed(sock, timeout=5))
        elapsed = time.monotonic() - t0
    finally:
        sock.close()
    # Answered (the request timer closes silently, it does not answer) and closed, not buffered.
    assert [(status, body["error"]) for status, body in answers] == [(400, "bad_http")]
    assert elapsed < 3 * REQUEST_TIMEOUT_S


@pytest.mark.parametrize("behaviour", ["silent", "slow_headers", "stalled_body"])
def test_idle_and_slow_clients_are_timed_out(gw, behaviour):
    sock = connect(gw)
    stop = threading.Event()
    try:
        t0 = time.monotonic()
        if behaviour == "stalled_body":
            sock.sendall(request(gw, "POST", "/v1/seals", b"", token=gw.tokens["admin"])
                         .replace(b"Content-Length: 0", b"Content-Length: 100") + b'{"seal_id":')
        elif behaviour == "slow_headers":
            def trickle() -> None:  # a byte every 0.1 s: each one used to reset nothing, forever
                for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 1000:
                    if stop.wait(0.1):
                        return
                    try:
                        sock.send(bytes([byte]))
                    except OSError:
                        return
            threading.Thread(target=trickle, daemon=True).start()
        read_until_closed(sock, timeout=REQUEST_TIMEOUT_S * 5)
        elapsed = time.monotonic() - t0
    finally:
        stop.set()
        sock.close()
    assert REQUEST_TIMEOUT_S * 0.8 <= elapsed < REQUEST_TIMEOUT_S * 4


def test_an_idle_kept_alive_connection_is_closed(gw):
    sock = connect(gw)
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        t0 = time.monotonic()
        data = read_until_closed(sock, timeout=IDLE_TIMEOUT_S * 5)
        elapsed = time.monotonic() - t0
    finally:
        sock.close()
    assert data.startswith(b"HTTP/1.1 200") and elapsed < IDLE_TIMEOUT_S * 4


def test_hundreds_of_idle_connections_cost_no_threads_and_are_all_closed(gw):
    threads_before = threading.active_count()
    socks = [connect(gw) for _ in range(500)]
    try:
        # Meanwhile a real client is served.
        status, body = post(gw, "/v1/escorts/deactivate", json.dumps({"seal_id": 1001}).encode())
        assert status == 400
        assert threading.active_count() <= threads_before + 2
        deadline = time.monotonic() + REQUEST_TIMEOUT_S * 10
        open_ = list(socks)
        while open_ and time.monotonic() < deadline:
            still = []
            for s in open_:
                s.setblocking(False)
                try:
                    if s.recv(1) != b"":
                        still.append(s)
                except BlockingIOError:
                    still.append(s)
                except ConnectionResetError:
                    pass
            open_ = still
            time.sleep(0.1) if open_ else None
        assert not open_, f"{len(open_)} of 500 idle connections still open"
    finally:
        for s in socks:
            s.close()


@pytest.mark.parametrize("name, body, field", [
    ("deep JSON", b"[" * 100_000 + b"]" * 100_000, None),
    ("5000-digit integer", b'{"seal_id": ' + b"9" * 5000 + b"}", None),
    ("400-digit seal id", None, "seal_id"),
    ("latitude 95 / longitude 500", None, "route"),
    ("a transit period in 1970", None, "period_end"),
    ("a transit period in 9999", None, "period_start"),
    ("NaN as a time", None, "period_end"),
    ("NUL in the vehicle", None, "vehicle"),
    ("right-to-left override in the vehicle", None, "vehicle"),
    ("right-to-left mark in an office name", None, "dest_office_name"),
    ("seal id 6001.9", None, "seal_id"),
    ("seal id as a string", None, "seal_id"),
    ("declaration with no date", None, "declaration"),
])
def test_abusive_activation_bodies_are_refused_naming_the_field(gw, name, body, field):
    good = activation_body(1001)
    bad = {
        "400-digit seal id": {"seal_id": 10 ** 400},
        "latitude 95 / longitude 500": {"route": [[95.0, 500.0], [43.0, 77.0]]},
        "a transit period in 1970": {"period_start": 0, "period_end": 86400},
        "a transit period in 9999": {"period_start": "9999-12-30T00:00:00Z", "period_end": "9999-12-31T00:00:00Z"},
        "NaN as a time": {"period_end": float("nan")},
        "NUL in the vehicle": {"vehicle": "123\x00ABC"},
        "right-to-left override in the vehicle": {"vehicle": "123\u202eCBA02"},
        "right-to-left mark in an office name": {"dest_office_name": "Khorgos\u200f"},
        "seal id 6001.9": {"seal_id": 6001.9},
        "seal id as a string": {"seal_id": "6001"},
        "declaration with no date": {"declaration": "10228010/999999/0000001"},
    }.get(name)
    raw = body if body is not None else json.dumps({**good, **bad}).encode()
    status, answer = post(gw, "/v1/escorts/activate", raw)
    assert status == 400 and answer["error"] in ("bad_json", "bad_request"), answer
    if field:
        assert answer["message"].startswith(field), answer
    assert gw.store.counts()["escorts"] == 0
