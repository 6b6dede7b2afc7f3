"""The device under test as a test sees it: send commands, expect frames, act as the gateway.

    seq = dut.send_command("ACTIVATE", escort.activate(dut.seal_id))
    res = dut.expect("COMMAND_RESULT", cmd_seq=seq, timeout=5)       # -> decoded Frame
    dut.expect_none("EVENT", code="CABLE_CUT", within=1.5)
    dut.ack(frame)                                                   # gateway's ACK

A pump thread reads the link, decodes and authenticates every frame with the seal's key, keeps
all of them in ``received`` (in arrival order) and, while ``auto_ack`` is on, acknowledges each one
as the gateway does after committing it. ``expect`` scans forward from a cursor, so frames a
test did not ask for are skipped but never lost. ``coverage(False)`` drops frames in both
directions (they are kept in ``lost``), which is what a seal in a radio hole sees.
Every wait is a condition wait with a deadline.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from navseal.protocol import NO_RSEQ, DecodeError, Frame, decode_frame, encode_frame

from .bench import Bench
from .frames import last_rseq, rseqs, summary
from .interfaces import BenchError

Predicate = Callable[[Frame], bool]
_SLICE_S = 0.2  # how often a wait re-checks the bench for a dead seal


class ExpectTimeout(AssertionError):
    """Nothing matching arrived in time (an AssertionError: pytest shows it as a test failure)."""


class UnexpectedFrame(AssertionError):
    """Something arrived that the test said must not."""


def _matches(frame: Frame, type_name: str | None, where: Predicate | None, fields: dict) -> bool:
    if type_name is not None and frame.type != type_name:
        return False
    for name, want in fields.items():
        have = frame.payload.get(name, getattr(frame, name, _MISSING)) if isinstance(frame.payload, dict) else _MISSING
        if have is _MISSING or have != want:
            return False
    return where is None or bool(where(frame))


_MISSING = object()


def _describe(type_name: str | None, where: Predicate | None, fields: dict) -> str:
    parts = [type_name or "any frame"]
    parts += [f"{k}={v!r}" for k, v in fields.items()]
    if where is not None:
        parts.append(f"where {getattr(where, '__name__', 'predicate')}")
    return " ".join(parts)


class Dut:
    def __init__(self, bench: Bench, auto_ack: bool = True) -> None:
        self.bench = bench
        self.seal_id = bench.seal_id
        self.key = bench.key
        self.auto_ack = auto_ack
        self.received: list[Frame] = []
        self.lost: list[Frame] = []
        self.bad: list[tuple[str, bytes]] = []  # (error code, raw) for frames that failed to decode
        self.sent: list[bytes] = []
        self.commands: dict[int, bytes] = {}  # seq -> frame of every send_command (and ACK)
        self._cursor = 0
        self._covered = True
        self._cv = threading.Condition()
        self._tx_lock = threading.Lock()  # seq allocation and write are one step: no reordering
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self._log_mark = bench.log_mark()
        self._pump = threading.Thread(target=self._run, name="dut-pump", daemon=True)
        self._pump.start()

    # ---- receiving ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                body = self.bench.link.receive(timeout=0.1)
                if body is not None:
                    self._on_frame(body)
        except BaseException as exc:  # noqa: BLE001 - surfaced by every later wait
            self._failure = exc
            with self._cv:
                self._cv.notify_all()

    def _on_frame(self, body: bytes) -> None:
        try:
            frame = decode_frame(body, self.key)
        except DecodeError as exc:
            self.bench.transcript.add("<<", f"!! undecodable frame ({exc}): {body.hex()}")
            with self._cv:
                self.bad.append((exc.code, body))
                self._cv.notify_all()
            return
        if not self._covered:
            self.bench.transcript.add("<<", f"(lost: no coverage) {summary(frame)}")
            with self._cv:
                self.lost.append(frame)
                self._cv.notify_all()  # wait_until may be watching what the radio hole swallows
            return
        self.bench.transcript.add("<<", summary(frame))
        # ACK first, as a gateway answers a committed frame: a test that sees the frame received
        # may rely on its ACK having gone out (e.g. cut coverage right after it).
        if self.auto_ack:
            self.ack(frame)
        with self._cv:
            self.received.append(frame)
            self._cv.notify_all()

    def _check(self) -> None:
        if self._failure is not None:
            raise BenchError(f"link pump failed: {self._failure!r}")
        fault = self.bench.fault()
        if fault:
            raise BenchError(fault)

    def expect(self, type_name: str | None = None, where: Predicate | None = None,
               timeout: float = 5.0, **fields: Any) -> Frame:
        """The first frame after the cursor matching type, payload/header fields and predicate.
        Moves the cursor past it. Raises ExpectTimeout (with what did arrive) after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                while self._cursor < len(self.received):
                    frame = self.received[self._cursor]
                    self._cursor += 1
                    if _matches(frame, type_name, where, fields):
                        return frame
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cv.wait(min(remaining, _SLICE_S))
                self._check()
        recent = [summary(f) for f in self.received[-8:]]
        raise ExpectTimeout(f"no {_describe(type_name, where, fields)} within {timeout} s; "
                            f"last frames received: {recent or 'none'}")

    def expect_none(self, type_name: str | None = None, where: Predicate | None = None,
                    within: float = 1.0, **fields: Any) -> None:
        """Nothing matching arrives (after the cursor) for ``within`` seconds. The cursor stays."""
        deadline = time.monotonic() + within
        i = self._cursor
        with self._cv:
            while True:
                while i < len(self.received):
                    frame = self.received[i]
                    i += 1
                    if _matches(frame, type_name, where, fields):
                        raise UnexpectedFrame(f"{summary(frame)} arrived, matching {_describe(type_name, where, fields)}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._cv.wait(min(remaining, _SLICE_S))
                self._check()

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait (on frame arrivals) until ``condition()`` holds, e.g. enough records delivered."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ExpectTimeout(f"{what}: not reached within {timeout} s")
                self._cv.wait(min(remaining, _SLICE_S))
                self._check()

    def mark(self) -> int:
        """Index into ``received`` to look at frames from here on (see ``frames``)."""
        with self._cv:
            return len(self.received)

    def skip_to_end(self) -> None:
        """Move the cursor past everything received so far."""
        with self._cv:
            self._cursor = len(self.received)

    def frames(self, type_name: str | None = None, since: int = 0) -> list[Frame]:
        with self._cv:
            return [f for f in self.received[since:] if type_name is None or f.type == type_name]

    # ---- sending -----------------------------------------------------------------------------

    def build_command(self, type_name: str, payload: dict, *, key: bytes | None = None,
                      seal_id: int | None = None, time_s: int | None = None) -> tuple[int, bytes]:
        """An authenticated downlink frame with the bench's next (epoch, seq), not sent:
        -> (seq, frame). Using up a seq without sending is harmless (the window only rises)."""
        epoch, seq = self.bench.downlink.next(self.seal_id)
        frame = encode_frame(type_name, seal_id=self.seal_id if seal_id is None else seal_id,
                             boot=epoch, seq=seq, time=self.bench.clock.unix() if time_s is None else time_s,
                             payload=payload, key=self.key if key is None else key)
        return seq, frame

    def send_command(self, type_name: str, payload: dict, *, key: bytes | None = None,
                     seal_id: int | None = None, time_s: int | None = None) -> int:
        """Build an authenticated downlink frame (bench key, next (epoch, seq)) and send it.
        Returns the frame's seq (COMMAND_RESULT names it in ``cmd_seq``)."""
        with self._tx_lock:
            seq, frame = self.build_command(type_name, payload, key=key, seal_id=seal_id, time_s=time_s)
            self.commands[seq] = frame
            self._write(frame)
        return seq

    def send_frame(self, frame: bytes) -> None:
        """Send bytes exactly as given (a replay of an earlier frame, a hand-made one)."""
        with self._tx_lock:
            self._write(frame)

    def _write(self, frame: bytes) -> None:
        try:
            desc = summary(decode_frame(frame))
        except DecodeError as exc:
            desc = f"<{exc.code}> {len(frame)} bytes"
        if not self._covered:
            self.bench.transcript.add(">>", f"(lost: no coverage) {desc}")
            return
        self.bench.transcript.add(">>", desc)
        self.sent.append(frame)
        self.bench.link.send(frame)

    def ack(self, frame: Frame, committed_rseq: int | None = None) -> int:
        """Acknowledge ``frame`` as the gateway does once its store committed it."""
        if committed_rseq is None:
            last = last_rseq(frame)
            committed_rseq = NO_RSEQ if last is None else last
        return self.send_command("ACK", {"acked_boot": frame.boot, "acked_seq": frame.seq,
                                         "committed_rseq": committed_rseq})

    # ---- coverage ----------------------------------------------------------------------------

    def coverage(self, on: bool, seal_knows: bool = False) -> None:
        """Radio coverage: while off, nothing crosses the link in either direction.
        ``seal_knows``: also tell the seal (LINK down/up, as its modem would), so it stops
        sending and resends at once when coverage returns; otherwise it finds out only by
        missing ACKs (retransmissions with backoff), as over a serial line or a half-open TCP."""
        if on:
            self._covered = True
        if seal_knows:
            self.bench.set_link(on)
        if not on:
            self._covered = False
        self.bench.transcript.add("bench", f"coverage {'restored' if on else 'lost'}"
                                  + (" (seal told)" if seal_knows else ""))

    # ---- delivered journal -------------------------------------------------------------------

    def delivered_rseqs(self, since: int = 0) -> list[int]:
        """Journal sequence numbers received (and so acknowledged) in order, repeats removed:
        what a gateway stores after de-duplicating retransmissions."""
        seen: set[int] = set()
        out = []
        for f in self.frames(since=since):
            for r in rseqs(f):
                if r not in seen:
                    seen.add(r)
                    out.append(r)
        return out

    # ---- logs --------------------------------------------------------------------------------

    @property
    def log_lines(self) -> list[str]:
        """Firmware log lines since this Dut was created."""
        return self.bench.logs_since(self._log_mark)

    def close(self) -> None:
        self._stop.set()
        self._pump.join(timeout=2)

    def assert_clean(self) -> None:
        """Every frame the seal sent decoded and authenticated (called after each test)."""
        if self.bad:
            codes = ", ".join(code for code, _ in self.bad[:5])
            raise AssertionError(f"the seal sent {len(self.bad)} frame(s) that failed to decode: {codes}")
