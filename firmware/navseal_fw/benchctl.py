# The bench-control line protocol, seal side (docs/hil.md "Bench-control line protocol").
# Sans-I/O: bytes in (feed), reply lines out; the seal is reached through a small target object.
# Only a bench build uses this (main.py, when navseal.json says "bench": true).
#
# Target interface (duck-typed; BenchTarget below on a board, a fake in the tests):
#   feed_gnss(data, now_ms)            NMEA bytes as if the receiver had sent them
#   set_lock(cable, housing, now_ms)   override the raw lock levels (bools: True = closed)
#   pulse_lock(which, width_ms, now_ms) (optional, feature "lock_pulse") an opening of "cable" or
#                                      "housing" width_ms wide that has just ended, as the pin
#                                      interrupts latch it: the seal's sampling never saw it
#   lock_settled(cable, housing)       True once the debounced inputs show these levels
#   set_battery(pct_or_None)           the battery level the seal reads
#   set_link(up, now_ms)               the modem's network state
#   status() -> [(key, value), ...]    the seal's own view, for logs
#   features -> tuple of str           what this build implements ("write_cut" enables CUTWRITE)
#   cut_write(n)                       arm a power cut after n flash bytes (only with write_cut)
#
# Every complete command line gets exactly one reply line, in order; nothing here raises on
# input: garbage (unknown verb, bad arguments, non-ASCII, over-long) is answered "ERR ...".
# REBOOT only sets reboot_requested: the driver sends the reply first, then resets.

MAX_LINE = 256  # bytes including the LF
LOCK_SETTLE_MS = 2000  # a LOCK reply waits at most this long for the debounced inputs
MAX_PULSE_MS = 10000  # LOCK PULSE: longer openings are LOCK open ... LOCK closed
MAX_HELD = 8  # complete lines kept while a LOCK reply is pending (the bench sends one at a time)
VERBS = ("PING", "NMEA", "LOCK", "BATT", "LINK", "REBOOT", "CUTWRITE", "STATUS", "FEATURES")
_LEVELS = {"closed": True, "open": False, "1": True, "0": False}


def level_word(closed):
    return "closed" if closed else "open"


def _clean(text):
    # one line of printable ASCII, whatever it held (control characters count as spaces)
    out = []
    for ch in text:
        o = ord(ch)
        out.append(ch if 32 <= o < 127 else (" " if o < 32 else "?"))
    return " ".join("".join(out).split())


def _line(text):
    # Replies are bounded too: a reply that would not fit (a 250-byte PING token) is cut.
    raw = _clean(text).encode()
    if len(raw) + 1 > MAX_LINE:
        raw = raw[:MAX_LINE - 1]
    return raw + b"\n"


def reply(ok, verb, text=""):
    words = ("OK " if ok else "ERR ") + (verb or "?")
    if text:
        words += " " + text
    return _line(words)


def ready_line(seal_id, boot, fw):
    return _line("READY seal=%d boot=%d fw=%s" % (seal_id, boot, fw))


def log_line(text):
    return _line("LOG " + _clean(text)[:MAX_LINE - 6])


def _is_pct(s):
    return s.isdigit() and len(s) <= 3 and int(s) <= 100


class BenchCtl:
    def __init__(self, target):
        self.target = target
        self._buf = bytearray()
        self._too_long = False  # discarding the rest of an over-long line
        self._held = []  # complete lines waiting for a pending LOCK reply
        self._lock = None  # (deadline_ms, cable, housing) while a LOCK reply is pending
        self.reboot_requested = False
        self.lines = 0
        self.errors = 0
        self.too_long = 0
        self.dropped = 0  # lines beyond MAX_HELD while a LOCK was pending

    # ---- input ---------------------------------------------------------------------------

    def feed(self, data, now_ms):
        """Bytes from the control UART (any chunking) -> list of reply lines (bytes, LF-ended)."""
        out = []  # type: list
        start = 0
        n = len(data)
        while start <= n:
            end = data.find(b"\n", start)
            piece = data[start:] if end < 0 else data[start:end]
            if not self._too_long:
                if len(self._buf) + len(piece) + 1 > MAX_LINE:
                    self._buf = bytearray()
                    self._too_long = True
                else:
                    self._buf.extend(piece)
            if end < 0:
                break
            if self._too_long:
                self.too_long += 1
                self._too_long = False
                self._submit(None, now_ms, out)
            else:
                line = bytes(self._buf)
                self._buf = bytearray()
                if line.endswith(b"\r"):
                    line = line[:-1]
                if line.strip():
                    self._submit(line, now_ms, out)
            start = end + 1
        return out

    def poll(self, now_ms):
        """The pending LOCK reply once the inputs settled (or timed out), then held lines."""
        out = []  # type: list
        self._check_lock(now_ms, out)
        while self._held and self._lock is None and not self.reboot_requested:
            self._do(self._held.pop(0), now_ms, out)
        return out

    def busy(self):
        """True while a reply is pending (the driver polls more often)."""
        return self._lock is not None

    def _submit(self, line, now_ms, out):
        if self._lock is not None or self._held or self.reboot_requested:
            if len(self._held) >= MAX_HELD:
                self.dropped += 1
                return
            self._held.append(line)
            return
        self._do(line, now_ms, out)

    # ---- commands ------------------------------------------------------------------------

    def _do(self, line, now_ms, out):
        self.lines += 1
        r = self._command(line, now_ms)
        if r is not None:
            if r.startswith(b"ERR"):
                self.errors += 1
            out.append(r)

    def _command(self, line, now_ms):
        if line is None:
            return reply(False, "?", "line too long (max %d bytes with LF)" % MAX_LINE)
        for b in line:
            if b < 32 or b > 126:
                return reply(False, "?", "not printable ASCII")
        text = line.decode().strip()
        sp = text.find(" ")
        verb = text if sp < 0 else text[:sp]
        rest = "" if sp < 0 else text[sp + 1:].strip()
        if verb not in VERBS:
            return reply(False, verb[:16], "unknown verb '%s'" % verb[:16])
        args = rest.split()
        t = self.target
        if verb == "PING":
            if len(args) != 1:
                return reply(False, verb, "PING needs one token")
            return reply(True, verb, args[0])
        if verb == "NMEA":
            if not rest.startswith("$"):
                return reply(False, verb, "NMEA needs a sentence starting with '$'")
            t.feed_gnss((rest + "\r\n").encode(), now_ms)
            return reply(True, verb)
        if verb == "LOCK" and args and args[0] == "PULSE":
            if (len(args) != 3 or args[1] not in ("cable", "housing") or not args[2].isdigit()
                    or len(args[2]) > 5 or not 1 <= int(args[2]) <= MAX_PULSE_MS):
                return reply(False, verb, "LOCK PULSE needs cable|housing and 1..%d ms" % MAX_PULSE_MS)
            if not hasattr(t, "pulse_lock"):
                return reply(False, verb, "PULSE unsupported")
            t.pulse_lock(args[1], int(args[2]), now_ms)
            return reply(True, verb, "PULSE %s %s" % (args[1], args[2]))
        if verb == "LOCK":
            if len(args) != 2 or args[0] not in _LEVELS or args[1] not in _LEVELS:
                return reply(False, verb, "LOCK needs two levels: closed|open closed|open")
            cable, housing = _LEVELS[args[0]], _LEVELS[args[1]]
            t.set_lock(cable, housing, now_ms)
            self._lock = (now_ms + LOCK_SETTLE_MS, cable, housing)
            return None  # answered by poll() once the debounced inputs show the levels
        if verb == "BATT":
            if len(args) != 1 or not (args[0] == "unknown" or _is_pct(args[0])):
                return reply(False, verb, "BATT needs 0..100 or 'unknown'")
            t.set_battery(None if args[0] == "unknown" else int(args[0]))
            return reply(True, verb, args[0])
        if verb == "LINK":
            if len(args) != 1 or args[0] not in ("up", "down"):
                return reply(False, verb, "LINK needs 'up' or 'down'")
            t.set_link(args[0] == "up", now_ms)
            return reply(True, verb, args[0])
        if verb == "REBOOT":
            self.reboot_requested = True
            return reply(True, verb)
        if verb == "CUTWRITE":
            if len(args) != 1 or not args[0].isdigit() or len(args[0]) > 9:
                return reply(False, verb, "CUTWRITE needs a byte count")
            if "write_cut" not in t.features:
                return reply(False, verb, "unsupported")
            t.cut_write(int(args[0]))
            return reply(True, verb, args[0])
        if verb == "STATUS":
            return reply(True, verb, " ".join("%s=%s" % kv for kv in t.status()))
        # FEATURES
        return reply(True, verb, " ".join(t.features))

    def _check_lock(self, now_ms, out):
        if self._lock is None:
            return
        deadline, cable, housing = self._lock
        words = level_word(cable) + " " + level_word(housing)
        if self.target.lock_settled(cable, housing):
            self._lock = None
            out.append(reply(True, "LOCK", words))
        elif now_ms >= deadline:
            self._lock = None
            self.errors += 1
            out.append(reply(False, "LOCK", "inputs did not settle at " + words))


# ---- the seal side of a bench build: what main.py's loop runs (app.run, bench_uart) --------

BENCH_POLL_MS = 20  # control line: 115200 baud fills 1 KB rxbuf in ~90 ms
BENCH_SETTLE_POLL_MS = 5  # while a LOCK reply waits for the debounced inputs


class BenchTarget:
    """What the bench-control handler (navseal_fw.benchctl) may do to this seal: the board's
    input overrides and the core's entry points. No write_cut on a board (a real power cut
    needs a relay), so CUTWRITE is answered "ERR CUTWRITE unsupported"."""

    def __init__(self, board, core):
        self.board = board
        self.core = core
        feats = ["gnss", "lock", "battery", "reboot", "link_state"]
        if hasattr(board, "bench_pulse"):
            feats.append("lock_pulse")
        if core.journal.capacity <= 256:
            feats.append("small_journal")
        self.features = tuple(feats)

    def feed_gnss(self, data, now_ms):
        self.core.feed_gnss(data, now_ms)

    def set_lock(self, cable, housing, now_ms):
        self.board.bench_set_lock(cable, housing)
        self.core.lock_changed(now_ms)  # as the pin-change interrupt would

    def pulse_lock(self, which, width_ms, now_ms):
        self.board.bench_pulse(which, width_ms)  # into the pin-interrupt latch, edges dated
        self.core.lock_changed(now_ms)

    def lock_settled(self, cable, housing):
        lock = self.core.lock
        return bool(lock.cable.closed) == cable and bool(lock.housing.closed) == housing

    def set_battery(self, pct):
        self.board.bench_set_battery(pct)

    def set_link(self, up, now_ms):
        self.core.on_link(up, now_ms)

    def cut_write(self, n):
        raise NotImplementedError("no write_cut on a board")

    def status(self):
        from navseal_fw.app import status_pairs

        return status_pairs(self.core)


async def serve(board, core, uart, stop):
    """The bench-control line as a task of app.run (bench builds only)."""
    from navseal_fw import seal
    from navseal_fw.aio import sleep_ms

    ctl = BenchCtl(BenchTarget(board, core))
    fw = "%d.%d.%d" % seal.FW_VERSION
    uart.write(log_line("boot: reset cause %d, bench build" % board.reset_cause()))
    uart.write(ready_line(core.cfg.seal_id, core.boot, fw))
    while not stop.done:
        data = uart.read()
        now = board.ticks_ms()
        out = ctl.feed(data, now) if data else []
        if ctl.busy():
            # A LOCK is waiting for the debounce: the control task may be asleep for up to
            # MAX_SLEEP_MS, so sample the inputs from here (poll is safe at any time).
            core.poll(now)
        out += ctl.poll(now)
        for line in out:
            uart.write(line)
        if ctl.reboot_requested:
            board.reboot()  # on a board this does not return
            return
        await sleep_ms(BENCH_SETTLE_POLL_MS if ctl.busy() else BENCH_POLL_MS)
