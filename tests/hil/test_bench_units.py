"""The bench's own parts, without a seal: control protocol, NMEA generator (checked against the
firmware's parser), resources, the downlink counter, the pty transport and the Dut's matching."""

import json
import os
import queue
import threading
import tty

import pytest

from navseal.hil import benchctl, nmea_gen
from navseal.hil.bench import Bench, DownlinkCounter
from navseal.hil.dut import Dut, ExpectTimeout, UnexpectedFrame
from navseal.hil.interfaces import BenchError, LinkPort
from navseal.hil.ports import ControlPort, FdChannel, FramedLink, PyserialChannel, Transcript
from navseal.hil.resources import ResourceError, SealKeys, SerialPortResource
from navseal.protocol import NO_RSEQ, decode_frame, encode_frame, test_key
from navseal_fw.nmea import NmeaParser

# ---- bench-control line protocol ------------------------------------------------------------


def test_commands_round_trip_and_bad_ones_are_refused():
    line = benchctl.format_command("LOCK", "open", "closed")
    assert line == b"LOCK open closed\n"
    assert benchctl.parse_command(line[:-1]) == benchctl.Command("LOCK", ("open", "closed"))
    s = "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A"
    assert benchctl.parse_command(benchctl.format_command("NMEA", s)[:-1] + b"\r").args == (s,)
    for bad in (b"LOCK open", b"LOCK shut closed", b"BATT 101", b"BATT", b"CUTWRITE -1", b"FLY away",
                b"NMEA GPRMC", b"LINK sideways", "PING \xe9".encode("latin-1")):
        with pytest.raises(benchctl.ControlProtocolError):
            benchctl.parse_command(bad)
    with pytest.raises(benchctl.ControlProtocolError):
        benchctl.format_command("PING", "x" * 300)
    with pytest.raises(benchctl.ControlProtocolError):
        benchctl.format_command("PING", "a\nREBOOT")


def test_messages_from_the_seal_parse_into_kinds():
    m = benchctl.parse_message(b"READY seal=1001 boot=3 fw=0.1.0")
    assert (m.kind, m.fields) == ("READY", {"seal": "1001", "boot": "3", "fw": "0.1.0"})
    m = benchctl.parse_message(b"OK STATUS state=ACTIVE pending=4\r")
    assert (m.kind, m.verb, m.fields["pending"]) == ("OK", "STATUS", "4")
    m = benchctl.parse_message(b"ERR LOCK inputs did not settle")
    assert (m.kind, m.verb, m.text) == ("ERR", "LOCK", "inputs did not settle")
    assert benchctl.parse_message(benchctl.format_log("tx  HELLO\t1/0")[:-1]).text == "tx HELLO 1/0"
    with pytest.raises(benchctl.ControlProtocolError):
        benchctl.parse_message(b"\x00\x17garbage")


def test_line_splitter_survives_chunking_and_drops_overlong_lines():
    sp = benchctl.LineSplitter(max_line=16)
    assert sp.feed(b"PI") == []
    assert sp.feed(b"NG 1\r\nPING 2\nPI") == [b"PING 1", b"PING 2"]
    assert sp.feed(b"NG " + b"x" * 40 + b"\nOK\n") == [b"OK"]
    assert sp.too_long == 1


# ---- NMEA generator against the firmware's own parser ---------------------------------------


@pytest.mark.parametrize("lat, lon", [
    (432380000, 769450000), (-338688000, 1512093000), (515007000, -1246000), (-129999999, -770000001),
    (599999999, 1799999999),  # rounding carries into the next degree
])
def test_generated_fixes_parse_back_exactly_in_the_firmware(lat, lon):
    fix = nmea_gen.Fix(1764115200.0, lat, lon, speed_kmh=61.2, course_deg=93.0, sats=11, hdop=0.8)
    p = NmeaParser()
    n = p.feed("".join(s + "\r\n" for s in nmea_gen.epoch(fix)).encode())
    assert n == 1 and p.crc_fails == 0 and p.bad_fields == 0
    f = p.fix
    assert abs(f.lat_e7 - lat) <= 1 and abs(f.lon_e7 - lon) <= 1
    assert f.time == 1764115200
    assert abs(f.speed - 612) <= 1  # 0.1 km/h
    assert (f.quality, f.sats, f.hdop) == (1, 11, 8)


def test_no_fix_epoch_is_seen_as_no_fix():
    p = NmeaParser()
    p.feed("".join(s + "\r\n" for s in nmea_gen.epoch(nmea_gen.Fix(1764115200.0, 0, 0), valid=False)).encode())
    assert p.fix.count == 0 and p.no_fix == 1 and p.crc_fails == 0


def test_route_steps_at_the_requested_speed():
    fixes = list(nmea_gen.along([(432380000, 769450000), (432380000, 770450000)], 100.0, 72.0, 1.0))
    assert fixes[0].t == 100.0 and fixes[-1].lon_e7 == 770450000
    step_m = (fixes[2].lon_e7 - fixes[1].lon_e7) * 111_319.49e-7 * 0.7288  # cos(43.238 deg)
    assert abs(step_m - 20.0) < 0.5  # 72 km/h = 20 m/s
    assert all(b.t - a.t == 1.0 for a, b in zip(fixes, fixes[1:]))


def test_recorded_log_reader_skips_comments(tmp_path):
    log = tmp_path / "r.nmea"
    log.write_bytes(b"# receiver: test\r\n$GPGGA,1*00\r\n\r\nnoise\n$GPRMC,2*00\n")
    assert list(nmea_gen.read_log(str(log))) == ["$GPGGA,1*00", "$GPRMC,2*00"]


def test_a_recorded_log_moved_in_time_keeps_its_fixes_and_their_spacing():
    log = os.path.join(os.path.dirname(__file__), "..", "data", "nmea", "ublox-neo-m9n.nmea")
    old = list(nmea_gen.read_log(log))
    new = nmea_gen.redate(old, 1_800_000_000)  # 2027-01-15 08:00:00 UTC
    assert len(new) == len(old)
    p_old, p_new = NmeaParser(), NmeaParser()
    fixes_old, fixes_new = [], []
    for a, b in zip(old, new):
        assert a[3:6] == b[3:6]  # same sentences, same order
        if p_old.feed((a + "\r\n").encode()):
            fixes_old.append((p_old.fix.time, p_old.fix.lat_e7, p_old.fix.lon_e7))
        if p_new.feed((b + "\r\n").encode()):
            fixes_new.append((p_new.fix.time, p_new.fix.lat_e7, p_new.fix.lon_e7))
    # Every moved sentence still has a good checksum: the seal's parser takes the same fixes...
    assert p_new.crc_fails == p_old.crc_fails and len(fixes_new) == len(fixes_old) > 50
    # ...at the same places, spaced in time as recorded, the last one at the asked time.
    shift = 1_800_000_000 - fixes_old[-1][0]
    assert fixes_new == [(t + shift, lat, lon) for t, lat, lon in fixes_old]
    assert fixes_new[-1][0] == 1_800_000_000


# ---- resources and the downlink counter -----------------------------------------------------


def test_resources_are_validated(tmp_path):
    with pytest.raises(ResourceError):
        SerialPortResource("/dev/ttyUSB0", 115201)
    with pytest.raises(ResourceError):
        SerialPortResource("")
    assert SealKeys.parse("test").key_for(7) == test_key(7)
    keys = SealKeys.parse(f"1001={'ab' * 32}")
    assert keys.key_for(1001) == b"\xab" * 32
    with pytest.raises(ResourceError):
        keys.key_for(1002)  # listed keys only: no silent fallback to a test key
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"5": "01" * 32}))
    assert SealKeys.parse(str(path)).key_for(5) == b"\x01" * 32
    for bad in ("1001=zz", "1001", f"1001={'ab' * 31}"):
        with pytest.raises(ResourceError):
            SealKeys.parse(bad)


def test_downlink_counter_continues_above_its_last_number(tmp_path):
    path = str(tmp_path / "sub" / "dl.json")
    c = DownlinkCounter(path)
    assert [c.next(9) for _ in range(3)] == [(0, 1), (0, 2), (0, 3)]
    assert c.next(10) == (0, 1)
    assert DownlinkCounter(path).next(9) == (0, 4)


# ---- transport over a real pty --------------------------------------------------------------


@pytest.fixture
def pty_pair():
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


def test_framed_link_over_a_pty_with_noise(pty_pair):
    master, name = pty_pair
    key = test_key(1001)
    frames = [encode_frame("TIME", seal_id=1001, boot=0, seq=i, time=1764115200, payload={"unix_time": i}, key=key)
              for i in range(3)]
    near = FramedLink(FdChannel(master, "master"))
    far = FramedLink(PyserialChannel(SerialPortResource(name)))
    try:
        near.send(frames[0])
        near.send_raw(b"\x13\x37noise\x00")  # a burst of garbage ending in a delimiter
        near.send(frames[1])
        near.send_raw(b"\x00\x00")
        near.send(frames[2])
        got = [far.receive(timeout=3) for _ in range(3)]
        assert got == frames and far.receive(timeout=0.3) is None
        assert far.deframer.stats["cobs_error"] == 1
        far.send(frames[2])
        assert near.receive(timeout=3) == frames[2]
    finally:
        far.close()
        near.close()


def _fake_seal(name, stop):
    """The seal end of the control line: answers PING, refuses LOCK, logs, says READY once."""
    ch = PyserialChannel(SerialPortResource(name))
    sp = benchctl.LineSplitter()
    ch.write(benchctl.format_ready(1001, 1, "9.9.9") + b"garbage line\n")
    while not stop.is_set():
        for line in sp.feed(ch.read(0.05)):
            cmd = benchctl.parse_command(line)
            ch.write(benchctl.format_log(f"got {cmd.verb}"))
            if cmd.verb == "PING":
                ch.write(benchctl.format_reply(True, "PING", cmd.args[0]))
            elif cmd.verb == "LOCK":
                ch.write(benchctl.format_reply(False, "LOCK", "no relay"))
    ch.close()


def test_control_port_commands_replies_logs_and_timeouts(pty_pair):
    master, name = pty_pair
    logs = []
    ctl = ControlPort(FdChannel(master, "master"), Transcript(), logs.append)
    stop = threading.Event()
    t = threading.Thread(target=_fake_seal, args=(name, stop), daemon=True)
    t.start()
    try:
        assert ctl.wait_ready(0, 5).fields["fw"] == "9.9.9"
        assert ctl.command("PING", "t1").text == "t1"
        with pytest.raises(BenchError, match="no relay"):
            ctl.command("LOCK", "open", "open")
        with pytest.raises(BenchError, match="no reply to STATUS"):
            ctl.command("STATUS", timeout=0.3)
        assert "got PING" in logs and ctl.garbage == 1
    finally:
        stop.set()
        t.join(timeout=3)
        ctl.close()


# ---- Dut matching against an in-memory link -------------------------------------------------


class MemLink(LinkPort):
    def __init__(self):
        self.inbox: "queue.Queue[bytes]" = queue.Queue()
        self.out: list[bytes] = []

    def send(self, frame):
        self.out.append(frame)

    def receive(self, timeout):
        try:
            return self.inbox.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self):
        pass


class MemBench(Bench):
    kind = "mem"

    def __init__(self):
        super().__init__(1001, SealKeys(), DownlinkCounter())
        self.link = MemLink()

    def close(self):
        pass


def uplink(type_name, seq, payload, key=test_key(1001)):
    return encode_frame(type_name, seal_id=1001, boot=4, seq=seq, time=1764115200, payload=payload, key=key)


EVENT = {"rseq": 12, "time": 1764115190, "code": "CABLE_CUT", "lat": None, "lon": None,
         "status": {"cable_intact": False, "housing_closed": True, "battery_pct": 84}, "value": 0}


def test_dut_expect_skips_but_keeps_and_acks_like_the_gateway():
    b = MemBench()
    d = Dut(b)
    try:
        hello = {"fw_major": 0, "fw_minor": 1, "fw_patch": 0, "reset_cause": "POWER_ON",
                 "config_hash": 0, "journal_pending": 1}
        b.link.inbox.put(uplink("HELLO", 0, hello))
        b.link.inbox.put(uplink("EVENT", 1, EVENT))
        ev = d.expect("EVENT", code="CABLE_CUT", timeout=3)
        assert ev.payload["rseq"] == 12 and d.frames("HELLO")  # skipped, not lost
        with pytest.raises(ExpectTimeout, match="last frames received"):
            d.expect("EVENT", timeout=0.3)
        d.wait_until(lambda: len(b.link.out) == 2, timeout=3, what="two ACKs")
        acks = [decode_frame(f, test_key(1001)) for f in b.link.out]
        assert [a.payload["committed_rseq"] for a in acks] == [NO_RSEQ, 12]
        assert [(a.boot, a.seq) for a in acks] == [(0, 1), (0, 2)]
        assert acks[1].payload["acked_boot"] == 4 and acks[1].payload["acked_seq"] == 1
        b.link.inbox.put(uplink("EVENT", 2, {**EVENT, "rseq": 13}))
        with pytest.raises(UnexpectedFrame):
            d.expect_none("EVENT", rseq=13, within=2)
        d.expect_none("EVENT", rseq=14, within=0.2)
        assert d.delivered_rseqs() == [12, 13]
        b.link.inbox.put(uplink("EVENT", 3, EVENT, key=test_key(1002)))  # wrong key: not ours
        d.wait_until(lambda: d.bad, timeout=3, what="the forged uplink noticed")
        with pytest.raises(AssertionError, match="bad_mac"):
            d.assert_clean()
    finally:
        d.close()


def test_unknown_feature_names_are_an_error_not_a_silent_skip():
    with pytest.raises(ValueError, match="unknown bench feature"):
        MemBench().lacking(["pwoer"])


def test_raw_gnss_feed_reaches_a_uart_as_parseable_nmea(pty_pair):
    from navseal.hil.serial_bench import RawNmeaGnss

    master, name = pty_pair
    gnss = RawNmeaGnss(SerialPortResource(name, 9600), Transcript())
    try:
        fix = nmea_gen.Fix(1764115200.0, 432380000, 769450000, 50.0)
        gnss.send_sentences(nmea_gen.epoch(fix))
        p = NmeaParser()
        uart = FdChannel(master, "uart")
        while p.fix.count == 0:
            data = uart.read(3.0)
            assert data, "no NMEA reached the UART side"
            p.feed(data)
        assert (p.fix.lat_e7, p.fix.lon_e7) == (432380000, 769450000)
    finally:
        gnss.close()


def test_relay_commands_are_run_and_their_failures_reported(tmp_path):
    from navseal.hil.serial_bench import RelayLock, _run

    out = tmp_path / "relay.log"
    RelayLock(f"sh -c 'echo cable={{cable}} housing={{housing}} >> {out}'").set_lock(False, True)
    assert out.read_text() == "cable=0 housing=1\n"
    with pytest.raises(BenchError, match="power off command"):
        _run("sh -c 'echo relay unplugged >&2; exit 3'", "power off")
