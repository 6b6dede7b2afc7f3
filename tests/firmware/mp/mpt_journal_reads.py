# Flash reads per journal frame, under CPython and MicroPython (mpunit).
# The journal keeps a read cursor in RAM, so sending a frame reads the records it sends (plus
# the one that ended the batch), and an ACK of what was sent reads nothing, wherever in a
# 1,023-record segment the records are. Before the cursor, every frame re-read its segment
# from the start (~650 reads a frame in the simulator).
from navseal_fw import journal as J
from navseal_fw.hal import MemHal

T0 = 1764115200
SEG = 1021  # the default segment: the worst case for a scan from the start


class _CountingFile:
    def __init__(self, hal, f):
        self._hal = hal
        self._f = f

    def readinto(self, buf):
        self._hal.reads += 1
        n = self._f.readinto(buf)
        self._hal.read_bytes += n
        return n

    def read(self, n=-1):
        self._hal.reads += 1
        out = self._f.read(n)
        self._hal.read_bytes += len(out)
        return out

    def seek(self, pos, whence=0):
        return self._f.seek(pos, whence)

    def tell(self):
        return self._f.tell()

    def close(self):
        self._f.close()


class CountingHal(MemHal):
    # MemHal whose files count read calls (reads) and bytes read (read_bytes).
    def __init__(self, flash=None):
        MemHal.__init__(self, flash, unix0=T0)
        self.reads = 0
        self.read_bytes = 0

    def open(self, name, mode="rb"):
        f = MemHal.open(self, name, mode)
        if "r" in mode:
            return _CountingFile(self, f)
        return f


def _pos(j, i):
    return j.append_position(T0 + i, 430000000 + i, 760000000 - i, 500, 45, 0x48, 9, 0xC5)


def _journal(hal=None):
    hal = hal or CountingHal()
    j = J.Journal(hal, capacity=20 * SEG, seg_records=SEG)
    j.recover()
    return hal, j


def _send_and_ack(hal, j, batch):
    # One frame: peek, then the ACK of exactly what was peeked. -> (kind, count, peek reads,
    # release reads)
    r0 = hal.reads
    kind = j.peek(batch)
    r1 = hal.reads
    count = 0
    if kind != J.KIND_NONE:
        count = j.b_last - j.b_first + 1
        assert j.release(j.b_last) == count
    return kind, count, r1 - r0, hal.reads - r1


def test_backlog_frames_read_what_they_send():
    hal, j = _journal()
    events = 0
    for i in range(2500):  # spans three segments
        if i % 97 == 50:
            j.append_event(T0 + i, 2, 0, 0, 0xC0, i)
            events += 1
        else:
            _pos(j, i)
    frames = 0
    sent = 0
    total = hal.reads
    while True:
        kind, count, peek_reads, release_reads = _send_and_ack(hal, j, 60)
        if kind == J.KIND_NONE:
            break
        frames += 1
        sent += count
        # The records sent, plus the event or the end that stopped the batch.
        assert peek_reads <= count + 1, (frames, count, peek_reads)
        assert release_reads == 0, (frames, release_reads)
    assert sent == 2500 and j.pending == 0
    assert hal.reads - total <= sent + events, hal.reads - total


def test_trickle_one_record_a_frame_deep_in_a_segment():
    # The steady state of a moving seal: one position, one frame, one ACK, 1,000 times over
    # the same segment. Each frame reads one record, not the segment up to it.
    hal, j = _journal()
    worst = 0
    for i in range(1000):
        _pos(j, i)
        kind, count, peek_reads, release_reads = _send_and_ack(hal, j, 60)
        assert kind == J.KIND_RECORDS and count == 1
        if peek_reads + release_reads > worst:
            worst = peek_reads + release_reads
    assert worst == 1, worst


def test_partial_ack_and_retransmission_read_only_their_records():
    hal, j = _journal()
    for i in range(900):
        _pos(j, i)
    for _ in range(10):
        _send_and_ack(hal, j, 60)  # 600 released: deep into the segment
    r0 = hal.reads
    assert j.peek(60) == J.KIND_RECORDS and (j.b_first, j.b_last) == (601, 660)
    assert hal.reads - r0 == 60
    # A retransmission re-reads the batch, nothing before it.
    r0 = hal.reads
    assert j.peek(60) == J.KIND_RECORDS and j.b_first == 601
    assert hal.reads - r0 == 60
    # The gateway committed only part of it: the release reads those records and the next one.
    r0 = hal.reads
    assert j.release(610) == 10
    assert hal.reads - r0 <= 11
    r0 = hal.reads
    assert j.peek(60) == J.KIND_RECORDS and (j.b_first, j.b_last) == (611, 670)
    assert hal.reads - r0 == 60
    # An ACK far ahead of anything peeked (no peek): whole segments pass on the table alone.
    _pos(j, 900)
    for i in range(901, 1500):
        _pos(j, i)
    r0 = hal.reads
    assert j.release(1200) == 1200 - 610
    assert hal.reads - r0 <= 1200 - SEG + 1  # only the records of the second segment
    assert j.pending == 1500 - 1200
    assert j.peek(60) == J.KIND_RECORDS and j.b_first == 1201


def test_cursor_is_derived_once_after_a_reboot():
    hal, j = _journal()
    for i in range(800):
        _pos(j, i)
    for _ in range(10):
        _send_and_ack(hal, j, 60)
    j.close()
    hal2 = CountingHal(hal.flash)
    j2 = J.Journal(hal2, capacity=20 * SEG, seg_records=SEG)
    assert j2.recover() == 200
    # Recovery reads the last segment (tail check) and up to the cursor, once; after that,
    # frames cost their own records again.
    kind, count, peek_reads, release_reads = _send_and_ack(hal2, j2, 60)
    assert (kind, count, peek_reads, release_reads) == (J.KIND_RECORDS, 60, 60, 0)
    assert j2.b_first == 601
