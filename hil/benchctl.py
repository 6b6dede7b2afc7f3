"""The bench-control line protocol (docs/hil.md, "Bench-control protocol"). Sans-I/O.

A second serial line next to the seal's data link carries short ASCII commands from the bench to
the seal and replies, log lines and boot notices back. Only a bench build of the firmware (and the
emulator runner, hil/emu_seal.py) listens on it. One command per line, LF-terminated (a CR before
the LF is ignored), at most MAX_LINE bytes. Every command gets exactly one reply line, in order:

    bench -> seal                      seal -> bench
    PING <token>                       OK PING <token>
    NMEA <sentence>                    OK NMEA            (sentence fed to the GNSS UART + CR LF)
    LOCK <cable> <housing>             OK LOCK ...        (each 'closed' or 'open': raw levels)
    LOCK PULSE <cable|housing> <ms>    OK LOCK PULSE ...  (an opening that just ended, between
                                                           two samples; feature lock_pulse)
    BATT <0..100|unknown>              OK BATT ...
    LINK <up|down>                     OK LINK ...        (the modem's network state)
    REBOOT                             OK REBOOT          (then a soft reset, then READY)
    CUTWRITE <n>                       OK CUTWRITE <n>    (power dies after n more flash bytes)
    STATUS                             OK STATUS k=v ...  (the seal's own view, for logs)
    FEATURES                           OK FEATURES f ...  (what this bench build implements)
                                       ERR <VERB> <reason>    (refused; reason is free text)
    asynchronous, at any time:         READY seal=<id> boot=<n> fw=<x.y.z>   (after every boot)
                                       LOG <text>                            (firmware log line)

Commands are upper case, arguments are single tokens except NMEA's sentence and LOG's text.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_LINE = 256
MAX_PULSE_MS = 10000  # LOCK PULSE: a longer opening is LOCK open ... LOCK closed
VERBS = ("PING", "NMEA", "LOCK", "BATT", "LINK", "REBOOT", "CUTWRITE", "STATUS", "FEATURES")
LEVELS = {"closed": True, "open": False, "1": True, "0": False}


class ControlProtocolError(ValueError):
    """A line that is not valid bench-control protocol."""


@dataclass(frozen=True)
class Command:
    verb: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class Message:
    """A line from the seal: kind is 'OK', 'ERR', 'READY' or 'LOG'."""

    kind: str
    verb: str  # the command a reply answers ('' for READY and LOG)
    text: str  # the rest of the line
    fields: dict  # key=value pairs of READY and STATUS replies


def _ascii_line(words: list[str]) -> bytes:
    line = " ".join(words)
    raw = line.encode("ascii")
    if b"\n" in raw or b"\r" in raw or len(raw) + 1 > MAX_LINE:
        raise ControlProtocolError(f"line not sendable ({len(raw)} bytes or embedded newline)")
    return raw + b"\n"


def format_command(verb: str, *args: object) -> bytes:
    if verb not in VERBS:
        raise ControlProtocolError(f"unknown verb {verb!r}")
    return _ascii_line([verb] + [str(a) for a in args])


def level_word(closed: bool) -> str:
    return "closed" if closed else "open"


def parse_command(line: bytes) -> Command:
    """Seal side: one line (without LF) -> Command. NMEA keeps its sentence as one argument."""
    try:
        text = line.decode("ascii").rstrip("\r")
    except UnicodeDecodeError:
        raise ControlProtocolError("not ASCII") from None
    verb, _, rest = text.strip().partition(" ")
    if verb not in VERBS:
        raise ControlProtocolError(f"unknown verb {verb[:16]!r}")
    if verb == "NMEA":
        if not rest.startswith("$"):
            raise ControlProtocolError("NMEA needs a sentence starting with '$'")
        return Command(verb, (rest,))
    args = tuple(rest.split())
    if verb == "LOCK" and args[:1] == ("PULSE",):
        if (len(args) != 3 or args[1] not in ("cable", "housing") or not args[2].isdigit()
                or len(args[2]) > 5 or not 1 <= int(args[2]) <= MAX_PULSE_MS):
            raise ControlProtocolError(f"LOCK PULSE needs cable|housing and 1..{MAX_PULSE_MS} ms")
        return Command(verb, args)
    if verb == "LOCK" and (len(args) != 2 or any(a not in LEVELS for a in args)):
        raise ControlProtocolError("LOCK needs two levels: closed|open closed|open")
    if verb == "BATT" and (len(args) != 1 or not (args[0] == "unknown" or _pct(args[0]))):
        raise ControlProtocolError("BATT needs 0..100 or 'unknown'")
    if verb == "LINK" and (len(args) != 1 or args[0] not in ("up", "down")):
        raise ControlProtocolError("LINK needs 'up' or 'down'")
    if verb == "CUTWRITE" and (len(args) != 1 or not args[0].isdigit()):
        raise ControlProtocolError("CUTWRITE needs a byte count")
    if verb == "PING" and len(args) != 1:
        raise ControlProtocolError("PING needs one token")
    return Command(verb, args)


def _pct(s: str) -> bool:
    # at most three digits, as the seal's parser (navseal_fw.benchctl) reads it: "00050" is refused
    # on both sides (hypothesis found the two disagreeing on leading zeros)
    return s.isdigit() and len(s) <= 3 and int(s) <= 100


def format_reply(ok: bool, verb: str, text: str = "") -> bytes:
    words = ["OK" if ok else "ERR", verb or "?"]
    if text:
        words.append(" ".join(text.split()))  # one line, whatever the reason held
    return _ascii_line(words)


def format_ready(seal_id: int, boot: int, fw: str) -> bytes:
    return _ascii_line(["READY", f"seal={seal_id}", f"boot={boot}", f"fw={fw}"])


def format_log(text: str) -> bytes:
    clean = " ".join(text.split()).encode("ascii", "replace").decode("ascii")
    return _ascii_line(["LOG", clean[: MAX_LINE - 6]])


def parse_message(line: bytes) -> Message:
    """Bench side: one line (without LF) from the seal -> Message. Raises ControlProtocolError."""
    text = line.decode("ascii", "replace").rstrip("\r")
    kind, _, rest = text.partition(" ")
    if kind in ("OK", "ERR"):
        verb, _, tail = rest.partition(" ")
        return Message(kind, verb, tail, _kv(tail))
    if kind == "READY":
        return Message(kind, "", rest, _kv(rest))
    if kind == "LOG":
        return Message(kind, "", rest, {})
    raise ControlProtocolError(f"unexpected line from the seal: {text[:80]!r}")


def _kv(text: str) -> dict:
    out = {}
    for word in text.split():
        if "=" in word:
            k, _, v = word.partition("=")
            out[k] = v
    return out


class LineSplitter:
    """Bytes in any chunking -> complete lines (without LF). Over-long lines are dropped and
    counted (``too_long``), so noise on the line cannot grow memory."""

    def __init__(self, max_line: int = MAX_LINE):
        self.max_line = max_line
        self._buf = bytearray()
        self._discarding = False
        self.too_long = 0

    def feed(self, data: bytes) -> list[bytes]:
        lines = []
        for chunk_end, piece in _split_keep(data):
            if not self._discarding:
                self._buf += piece
                if len(self._buf) > self.max_line:
                    self._buf.clear()
                    self._discarding = True
                    self.too_long += 1
            if chunk_end:
                if not self._discarding and self._buf:
                    lines.append(bytes(self._buf).rstrip(b"\r"))
                self._buf.clear()
                self._discarding = False
        return lines


def _split_keep(data: bytes):
    start = 0
    while True:
        end = data.find(b"\n", start)
        if end < 0:
            yield False, data[start:]
            return
        yield True, data[start:end]
        start = end + 1
