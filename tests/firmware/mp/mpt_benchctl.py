# navseal_fw.benchctl: the bench-control line handler, every verb, bad and over-long lines.
# Runs under CPython and MicroPython (mpunit).
from navseal_fw import benchctl as B


class FakeTarget:
    def __init__(self, features=("gnss", "lock", "battery", "reboot", "link_state")):
        self.features = tuple(features)
        self.gnss = bytearray()
        self.lock = (True, True)  # what the debounced inputs show
        self.raw = None
        self.settle = True  # lock_settled follows raw at once
        self.battery = 90
        self.link = None
        self.cut = None
        self.pulses = []

    def feed_gnss(self, data, now_ms):
        self.gnss.extend(data)

    def set_lock(self, cable, housing, now_ms):
        self.raw = (cable, housing)

    def lock_settled(self, cable, housing):
        if self.settle and self.raw is not None:
            self.lock = self.raw
        return self.lock == (cable, housing)

    def set_battery(self, pct):
        self.battery = pct

    def set_link(self, up, now_ms):
        self.link = up

    def cut_write(self, n):
        self.cut = n

    def status(self):
        return [("state", "INACTIVE"), ("pending", 0)]


def run(ctl, data, now=0):
    return ctl.feed(data, now) + ctl.poll(now)


def one(ctl, line, now=0):
    out = run(ctl, line, now)
    assert len(out) == 1, out
    return out[0]


def test_ping_and_crlf_and_chunking():
    ctl = B.BenchCtl(FakeTarget())
    assert one(ctl, b"PING abc\n") == b"OK PING abc\n"
    assert one(ctl, b"PING x1\r\n") == b"OK PING x1\n"
    assert ctl.feed(b"PI", 0) == [] and ctl.feed(b"NG z", 0) == []
    assert ctl.feed(b"\n", 0) == [b"OK PING z\n"]
    assert run(ctl, b"PING a\nPING b\n") == [b"OK PING a\n", b"OK PING b\n"]
    assert run(ctl, b"\n\r\n  \n") == []  # blank lines are not commands


def test_nmea_goes_to_the_gnss_input():
    t = FakeTarget()
    ctl = B.BenchCtl(t)
    s = "$GNRMC,120000.00,A,4314.2800,N,07656.7000,E,20.0,90.0,261126,,,A*6B"
    assert one(ctl, ("NMEA " + s + "\n").encode()) == b"OK NMEA\n"
    assert bytes(t.gnss) == (s + "\r\n").encode()
    assert one(ctl, b"NMEA GNRMC,no dollar\n").startswith(b"ERR NMEA ")


def test_lock_reply_waits_for_the_debounced_inputs():
    t = FakeTarget()
    t.settle = False
    ctl = B.BenchCtl(t)
    assert ctl.feed(b"LOCK open closed\nPING held\n", 100) == []
    assert t.raw == (False, True) and ctl.busy()
    assert ctl.poll(150) == []
    t.lock = (False, True)  # debounce done
    assert ctl.poll(160) == [b"OK LOCK open closed\n", b"OK PING held\n"]
    assert not ctl.busy()
    t.settle = True
    assert one(ctl, b"LOCK 1 0\n") == b"OK LOCK closed open\n"


def test_lock_that_never_settles_is_an_error_after_2s():
    t = FakeTarget()
    t.settle = False
    ctl = B.BenchCtl(t)
    assert ctl.feed(b"LOCK open open\n", 0) == []
    assert ctl.poll(B.LOCK_SETTLE_MS - 1) == []
    r = ctl.poll(B.LOCK_SETTLE_MS)
    assert r == [b"ERR LOCK inputs did not settle at open open\n"], r
    assert one(ctl, b"LOCK shut open\n").startswith(b"ERR LOCK ")
    assert one(ctl, b"LOCK open\n").startswith(b"ERR LOCK ")


def test_batt_link_status_features():
    t = FakeTarget()
    ctl = B.BenchCtl(t)
    assert one(ctl, b"BATT 42\n") == b"OK BATT 42\n" and t.battery == 42
    assert one(ctl, b"BATT unknown\n") == b"OK BATT unknown\n" and t.battery is None
    assert one(ctl, b"BATT 101\n").startswith(b"ERR BATT ") and t.battery is None
    assert one(ctl, b"LINK down\n") == b"OK LINK down\n" and t.link is False
    assert one(ctl, b"LINK up\n") == b"OK LINK up\n" and t.link is True
    assert one(ctl, b"LINK maybe\n").startswith(b"ERR LINK ")
    assert one(ctl, b"STATUS\n") == b"OK STATUS state=INACTIVE pending=0\n"
    assert one(ctl, b"FEATURES\n") == b"OK FEATURES gnss lock battery reboot link_state\n"


def test_cutwrite_unsupported_without_write_cut_feature():
    t = FakeTarget()
    ctl = B.BenchCtl(t)
    assert one(ctl, b"CUTWRITE 5\n") == b"ERR CUTWRITE unsupported\n" and t.cut is None
    t2 = FakeTarget(features=("write_cut",))
    ctl2 = B.BenchCtl(t2)
    assert one(ctl2, b"CUTWRITE 27\n") == b"OK CUTWRITE 27\n" and t2.cut == 27
    assert one(ctl2, b"CUTWRITE -1\n").startswith(b"ERR CUTWRITE ")


def test_reboot_replies_then_requests_and_holds_later_lines():
    ctl = B.BenchCtl(FakeTarget())
    assert not ctl.reboot_requested
    assert run(ctl, b"REBOOT\nPING late\n") == [b"OK REBOOT\n"]
    assert ctl.reboot_requested


def test_garbage_is_answered_never_raised():
    ctl = B.BenchCtl(FakeTarget())
    assert one(ctl, b"HELLO there\n") == b"ERR HELLO unknown verb 'HELLO'\n"
    assert one(ctl, b"ping x\n") == b"ERR ping unknown verb 'ping'\n"
    assert one(ctl, b"PING\n").startswith(b"ERR PING ")
    assert one(ctl, b"\xff\xfe PING\n") == b"ERR ? not printable ASCII\n"
    assert one(ctl, b"PING \x00\n") == b"ERR ? not printable ASCII\n"
    long_verb = b"X" * 100
    r = one(ctl, long_verb + b"\n")
    assert r.startswith(b"ERR " + b"X" * 16 + b" unknown verb") and len(r) <= B.MAX_LINE
    assert ctl.errors == 6


def test_overlong_line_gets_one_error_and_memory_stays_bounded():
    ctl = B.BenchCtl(FakeTarget())
    ok_line = b"NMEA $" + b"a" * (B.MAX_LINE - 7) + b"\n"  # exactly MAX_LINE with the LF
    assert len(ok_line) == B.MAX_LINE
    assert one(ctl, ok_line) == b"OK NMEA\n"
    token = b"t" * (B.MAX_LINE - 9)  # the longest token whose reply still fits
    assert one(ctl, b"PING " + token + b"\n") == b"OK PING " + token + b"\n"
    assert len(one(ctl, b"PING " + token + b"xyz\n")) == B.MAX_LINE  # reply cut, not raised
    big = b"PING " + b"b" * (B.MAX_LINE - 5)  # one byte too many with the LF
    for i in range(0, len(big), 7):
        assert ctl.feed(big[i:i + 7], 0) == []
        assert len(ctl._buf) < B.MAX_LINE
    for _ in range(20):  # and noise without any LF never grows the buffer
        assert ctl.feed(b"z" * 100, 0) == []
        assert len(ctl._buf) < B.MAX_LINE
    r = run(ctl, b"\nPING after\n")
    assert r == [b"ERR ? line too long (max 256 bytes with LF)\n", b"OK PING after\n"], r
    assert ctl.too_long == 1


def test_ready_and_log_lines():
    assert B.ready_line(1001, 7, "0.1.0") == b"READY seal=1001 boot=7 fw=0.1.0\n"
    assert B.log_line("rx  ACK\n0/7") == b"LOG rx ACK 0/7\n"
    assert len(B.log_line("x" * 1000)) <= B.MAX_LINE


class PulseTarget(FakeTarget):
    def pulse_lock(self, which, width_ms, now_ms):
        self.pulses.append((which, width_ms, now_ms))


def test_lock_pulse():
    t = PulseTarget()
    ctl = B.BenchCtl(t)
    assert one(ctl, b"LOCK PULSE cable 50\n", 700) == b"OK LOCK PULSE cable 50\n"
    assert t.pulses == [("cable", 50, 700)]
    for bad in (b"LOCK PULSE cable\n", b"LOCK PULSE lid 50\n", b"LOCK PULSE cable 0\n",
                b"LOCK PULSE cable 10001\n", b"LOCK PULSE cable -5\n", b"LOCK PULSE cable 5 6\n"):
        assert one(ctl, bad).startswith(b"ERR LOCK "), bad
    assert len(t.pulses) == 1

    ctl = B.BenchCtl(FakeTarget())  # a target without pulses (an older bench build)
    assert one(ctl, b"LOCK PULSE housing 50\n") == b"ERR LOCK PULSE unsupported\n"
