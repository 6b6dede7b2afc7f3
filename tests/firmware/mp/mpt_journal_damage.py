# Flash damage costs the damaged record only, under CPython and MicroPython (mpunit). The same
# cases as tests/firmware/test_journal_damage.py with fewer bits per record (the interpreter is
# slower); that file also has the property test and the power cuts during a repair. A segment
# header has two copies: either one suffices.
import struct

from navseal_fw import journal as J
from navseal_fw.hal import MemFlash, MemHal

T0 = 1764115200


def _pos(j, i):
    return j.append_position(T0 + i, 430000000 + i, 760000000 - i, 500, 45, 0x48, 9, 0xC5)


def _fill(hal, n, seg_records, events, capacity=200):
    j = J.Journal(hal, capacity=capacity, seg_records=seg_records)
    j.recover()
    for k in range(1, n + 1):
        if k in events:
            assert j.append_event(T0 + k, 2, 1, 2, 0xC0, k) == k
        else:
            assert _pos(j, k) == k
    j.close()


def _reboot(hal, seg_records, capacity=200):
    j = J.Journal(hal, capacity=capacity, seg_records=seg_records)
    j.recover()
    return j


def _drain(j):
    # -> [(rseq, is_event)] of everything sent, each ACKed; contents checked against rseq.
    out = []
    while j.peek() != J.KIND_NONE:
        if j.b_kind == J.KIND_EVENT:
            assert j.ev_value == j.b_first
            out.append((j.b_first, True))
        else:
            for k in range(j.b_count):
                lat = struct.unpack(">i", j.batch[16 * k + 2:16 * k + 6])[0]
                assert lat == 430000000 + j.b_first + k
                out.append((j.b_first + k, False))
        j.release(j.b_last)
    assert j.pending == 0
    return out


def _flip(hal, rseq, bit):
    names = [n for n in hal.listdir() if n.endswith(".seg")]
    names.sort()
    for name in names:
        raw = hal.flash.raw(name)
        base = struct.unpack(">I", raw[4:8])[0]
        off = J.SEG_HDR
        while off + J.REC_SIZE <= len(raw):
            if base + (((raw[off] << 8) | raw[off + 1]) & 0x7FFF) == rseq:
                raw[off + bit // 8] ^= 1 << (bit % 8)
                return
            off += J.REC_SIZE
    raise AssertionError("rseq not on flash")


def _copy_hal(snap):
    flash = MemFlash()
    files = {}
    for name in snap:
        files[name] = bytearray(snap[name])
    flash._files = files
    return MemHal(flash)


def test_the_reported_case_record_2_of_5():
    hal = MemHal()
    _fill(hal, 5, 8, (4,))
    _flip(hal, 2, 37)
    j = _reboot(hal, 8)
    assert j.corrupt == 1 and j.pending == 4
    assert _drain(j) == [(1, False), (3, False), (4, True), (5, False)]
    assert _pos(j, 6) == 6


def test_each_record_of_the_open_segment():
    base = MemHal()
    _fill(base, 6, 8, (1, 4))
    snap = base.flash.snapshot()
    for victim in range(1, 7):
        for bit in (0, 9, 15, 23, 40, 77, 130, 145, 152, 159):  # offset, dt, body, check
            hal = _copy_hal(snap)
            _flip(hal, victim, bit)
            j = _reboot(hal, 8)
            want = [(r, r in (1, 4)) for r in range(1, 7) if r != victim]
            assert _drain(j) == want, (victim, bit)
            assert j.corrupt == (0 if victim == 6 else 1), (victim, bit)
            assert _pos(j, 9) == 7  # the rotted newest record's rseq is not issued again


def test_each_record_of_closed_segments():
    base = MemHal()
    _fill(base, 10, 4, (3, 6, 8))
    snap = base.flash.snapshot()
    for victim in range(1, 9):
        for bit in (2, 17, 66, 150):
            hal = _copy_hal(snap)
            _flip(hal, victim, bit)
            j = _reboot(hal, 4)
            want = [(r, r in (3, 6, 8)) for r in range(1, 11) if r != victim]
            assert _drain(j) == want, (victim, bit)
            assert j.corrupt == 1, (victim, bit)


def test_damage_then_a_torn_tail():
    hal = MemHal()
    _fill(hal, 5, 8, (4,))
    _flip(hal, 3, 9)
    hal.flash.raw("j00000001.seg").extend(b"\x00\x05\x00\x05\x11\x22\x33")
    j = _reboot(hal, 8)
    assert j.corrupt == 1 and j.repaired == 1 and j.next_rseq == 6
    assert _drain(j) == [(1, False), (2, False), (4, True), (5, False)]


def test_damaged_thinning_input_keeps_the_other_events():
    hal = MemHal()
    _fill(hal, 20, 4, (5, 10, 15, 20), capacity=24)
    _flip(hal, 2, 77)
    _flip(hal, 5, 5)  # an event rots: that one is lost, no other
    j = _reboot(hal, 4, capacity=24)
    for k in range(21, 40):
        if k % 5 == 0:
            j.append_event(T0 + k, 2, 1, 2, 0xC0, k)
        else:
            _pos(j, k)
    assert j.thinned > 0 and j.corrupt == 2
    events = []
    while j.peek() != J.KIND_NONE:
        if j.b_kind == J.KIND_EVENT and j.ev_code == 2:
            events.append(j.ev_value)  # its time index (overflow events shift rseq)
        j.release(j.b_last)
    assert events == [10, 15, 20, 25, 30, 35], events


def test_each_header_copy_of_a_closed_and_of_the_open_segment():
    base = MemHal()
    _fill(base, 10, 4, (3, 6, 8))
    snap = base.flash.snapshot()
    want = [(r, r in (3, 6, 8)) for r in range(1, 11)]
    for seg in ("j00000002.seg", "j00000003.seg"):
        for bit in (0, 13, 38, 63, 71, 100, 127, 128, 141, 166, 191, 199, 228, 255):
            hal = _copy_hal(snap)
            hal.flash.raw(seg)[bit // 8] ^= 1 << (bit % 8)
            j = _reboot(hal, 4)
            assert j.repaired == 1 and j.corrupt == 0, (seg, bit)
            raw = hal.flash.raw(seg)
            assert raw[0:16] == raw[16:32], (seg, bit)  # rewritten with two good copies
            assert _drain(j) == want, (seg, bit)
            assert _pos(j, 20) == 11
