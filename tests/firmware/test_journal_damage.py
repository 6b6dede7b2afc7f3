"""journal.Journal and flash damage: a bad record (bit rot, a bad write) costs that record only.

Records are fixed size and checked, so recovery, the readers and the thinning/compaction rewrite
go on past a bad record at the next record boundary. Bad records followed by a valid one are
damage: skipped and counted in `journal.corrupt`. Bad bytes after the last valid record of the
open segment are a torn tail (power cut): trimmed, counted in `repaired`.
"""

import struct
from binascii import crc32

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from navseal_fw import journal as J
from navseal_fw.hal import MemFlash, MemHal, PowerCut

T0 = 1764115200


def _pos(j, i):
    return j.append_position(T0 + i, 430000000 + i, 760000000 - i, 500 + i, 45, 0x48, 9, 0xC5)


def _ev(j, i, code=2):
    return j.append_event(T0 + i, code, 1, 2, 0xC0, i)


def _fill(hal, n, seg_records, capacity=200, events=(4,)):
    """n records with rseq 1..n; the ones in `events` are events. -> (journal, {rseq: is_event})"""
    j = J.Journal(hal, capacity=capacity, seg_records=seg_records)
    j.recover()
    kinds = {}
    for k in range(1, n + 1):
        r = _ev(j, k) if k in events else _pos(j, k)
        assert r == k
        kinds[r] = k in events
    j.close()
    return j, kinds


def _reboot(hal, seg_records, capacity=200):
    j = J.Journal(hal, capacity=capacity, seg_records=seg_records)
    j.recover()
    return j


def _drain(j):
    """Send and ACK everything: -> [(rseq, is_event)] in order; the events' values are checked."""
    out = []
    while j.peek() != J.KIND_NONE:
        if j.b_kind == J.KIND_EVENT:
            assert j.ev_value == j.b_first and j.ev_time == T0 + j.b_first
            out.append((j.b_first, True))
        else:
            for k in range(j.b_count):
                lat = struct.unpack_from(">i", j.batch, 16 * k + 2)[0]
                assert lat == 430000000 + j.b_first + k  # the record is the one written
                out.append((j.b_first + k, False))
        j.release(j.b_last)
    assert j.pending == 0
    return out


def _segments(hal):
    return sorted(n for n in hal.listdir() if n.endswith(".seg"))


def _where(hal, rseq):
    """(segment file, byte offset) of the record with this rseq (read from flash)."""
    for name in _segments(hal):
        raw = hal.flash.raw(name)
        base = struct.unpack(">I", raw[4:8])[0]
        for off in range(J.SEG_HDR, len(raw) - J.REC_SIZE + 1, J.REC_SIZE):
            if base + (struct.unpack(">H", raw[off:off + 2])[0] & 0x7FFF) == rseq:
                return name, off
    raise AssertionError("rseq %d not on flash" % rseq)


def _flip(hal, rseq, bit):
    name, off = _where(hal, rseq)
    hal.flash.raw(name)[off + bit // 8] ^= 1 << (bit % 8)


def _copy_hal(snap):
    flash = MemFlash()
    flash._files = {k: bytearray(v) for k, v in snap.items()}
    return MemHal(flash)


def test_the_reported_case_damage_in_record_2_of_5_costs_record_2_only():
    hal = MemHal()
    _fill(hal, 5, seg_records=8)
    _flip(hal, 2, 37)
    j = _reboot(hal, 8)
    assert j.pending == 4 and j.corrupt == 1 and j.next_rseq == 6
    assert _drain(j) == [(1, False), (3, False), (4, True), (5, False)]
    # The segment was rewritten without the damage: appends go on, a reboot finds nothing bad.
    assert _pos(j, 6) == 6
    j.close()
    j2 = _reboot(hal, 8)
    assert j2.corrupt == 0 and j2.pending == 1


def test_every_bit_of_every_record_of_the_open_segment():
    base = MemHal()
    _fill(base, 6, seg_records=8, events=(1, 4))
    snap = base.flash.snapshot()
    for victim in range(1, 7):
        for bit in range(J.REC_SIZE * 8):
            hal = _copy_hal(snap)
            _flip(hal, victim, bit)
            j = _reboot(hal, 8)
            got = _drain(j)
            if victim == 6:
                # No valid record after it: indistinguishable from a torn tail, trimmed. Its
                # rseq is not issued again (it may have been sent before it rotted).
                assert j.corrupt == 0 and j.repaired == 1, bit
                assert _pos(j, 9) == 7
            else:
                assert j.corrupt == 1, (victim, bit)
                assert _pos(j, 9) == 7
            want = [(r, r in (1, 4)) for r in range(1, 7) if r != victim]
            assert got == want, (victim, bit, got)


def test_every_bit_of_every_record_of_closed_segments():
    # seg_records=4: segments 1-4, 5-8 (closed) and 9-10 (open); events at 3, 6 and 8.
    events = (3, 6, 8)
    base = MemHal()
    _fill(base, 10, seg_records=4, events=events)
    snap = base.flash.snapshot()
    for victim in range(1, 9):
        for bit in range(0, J.REC_SIZE * 8, 3):  # every third bit: all bytes, all bit lanes
            hal = _copy_hal(snap)
            _flip(hal, victim, bit)
            j = _reboot(hal, 4)
            got = _drain(j)
            want = [(r, r in events) for r in range(1, 11) if r != victim]
            assert got == want, (victim, bit, got)
            assert j.corrupt == 1, (victim, bit, j.corrupt)
            assert _pos(j, 20) == 11


def test_damage_after_a_partial_release_and_across_reboots_is_counted_once():
    hal = MemHal()
    j, _ = _fill(hal, 10, seg_records=4, events=(7,))
    j = _reboot(hal, 4)
    assert j.peek() == J.KIND_RECORDS and j.b_last == 6
    j.release(2)  # partial ACK: 1-2 delivered, the cursor stands in the first segment
    j.close()
    _flip(hal, 3, 0)  # the next record to send, in a closed segment
    _flip(hal, 5, 100)  # the middle of the second closed segment
    j = _reboot(hal, 4)
    # Retransmissions read the same slots again; the damage is still counted once.
    for _ in range(3):
        assert j.peek() == J.KIND_RECORDS and (j.b_first, j.b_last) == (4, 4)
    assert j.corrupt == 1  # record 3: the cursor moved past it for good
    assert _drain(j) == [(4, False), (6, False), (7, True), (8, False), (9, False), (10, False)]
    assert j.corrupt == 2


def test_damage_followed_by_a_torn_tail():
    hal = MemHal()
    _fill(hal, 5, seg_records=8)
    _flip(hal, 3, 9)
    name = _segments(hal)[-1]
    hal.flash.raw(name).extend(b"\x00\x06\x00\x05\x11\x22\x33")  # record 6 cut short by a power cut
    j = _reboot(hal, 8)
    assert j.corrupt == 1 and j.repaired == 1
    assert j.next_rseq == 6  # the torn record was never complete, never sent: its rseq is free
    assert _drain(j) == [(1, False), (2, False), (4, True), (5, False)]
    assert _pos(j, 6) == 6
    j.close()
    j = _reboot(hal, 8)
    assert j.corrupt == 0 and j.repaired == 0 and _drain(j) == [(6, False)]


def _forge(hal, rseq, offset):
    """Give the record of `rseq` another rseq offset and a check that passes."""
    name, off = _where(hal, rseq)
    raw = hal.flash.raw(name)
    struct.pack_into(">H", raw, off, offset)
    struct.pack_into(">H", raw, off + 18, crc32(bytes(raw[off:off + 18])) & 0xFFFF)


def test_a_checked_record_with_rseq_out_of_order_is_damage():
    # A check that passes by chance (16 bits) must not break rseq order: a "valid" record whose
    # rseq is not above the previous valid one is skipped as damage (recovery's scan of the open
    # segment, the rewrite), and so is one above its segment's last rseq (the readers of
    # closed segments, which recovery does not scan).
    for offset in (1, 0):  # record 3 claims rseq 2 (its predecessor's), or rseq 1
        hal = MemHal()
        _fill(hal, 5, seg_records=8)
        _forge(hal, 3, offset)
        j = _reboot(hal, 8)
        assert j.corrupt == 1, offset
        assert _drain(j) == [(1, False), (2, False), (4, True), (5, False)], offset
    hal = MemHal()
    _fill(hal, 10, seg_records=4, events=(7,))
    _forge(hal, 2, 5)  # closed segment 1-4: record 2 claims rseq 6
    j = _reboot(hal, 4)
    got = [r for r, _ in _drain(j)]
    assert got == [1, 3, 4, 5, 6, 7, 8, 9, 10] and j.corrupt == 1
    # The last record of a closed segment is all recovery reads of it: if it passes its check
    # by chance but claims fewer rseq than the segment has records, the segment is scanned.
    hal = MemHal()
    _fill(hal, 10, seg_records=4, events=(3,))
    _forge(hal, 4, 1)  # closed segment 1-4: record 4 claims rseq 2
    j = _reboot(hal, 4)
    assert j.corrupt == 1 and j.repaired == 1
    assert [r for r, _ in _drain(j)] == [1, 2, 3, 5, 6, 7, 8, 9, 10]


def test_damaged_input_to_thinning_keeps_every_event_and_all_other_records_counted():
    # capacity 24, segments of 4: thinning rewrites and merges the oldest closed segments.
    hal = MemHal()
    j = J.Journal(hal, capacity=24, seg_records=4)
    j.recover()
    issued, events = [], set()
    for k in range(1, 21):
        if k % 5 == 0:
            events.add(_ev(j, k))
        else:
            issued.append(_pos(j, k))
    j.close()
    damaged = (2, 6)  # positions in the two oldest segments: the thinning input
    for r in damaged:
        _flip(hal, r, 77)
    _flip(hal, 10, 5)  # an event can rot too (it is the record lost, the others stay)
    j = J.Journal(hal, capacity=24, seg_records=4)
    j.recover()
    assert j.corrupt == 0  # closed segments: found when read, not by the O(segments) recovery
    for k in range(21, 40):
        if k % 5 == 0:
            events.add(_ev(j, k))
        else:
            _pos(j, k)
    assert j.thinned > 0
    assert j.corrupt == 3  # the rewrites met all three and dropped them
    got = []
    overflow = 0
    while j.peek() != J.KIND_NONE:
        if j.b_kind == J.KIND_EVENT:
            if j.ev_code == J.EVENT_JOURNAL_OVERFLOW:
                overflow += j.ev_value
            else:
                got.append(j.b_first)
        else:
            got.extend(range(j.b_first, j.b_last + 1))
        j.release(j.b_last)
    assert events - {10} <= set(got), sorted(events - set(got))
    assert not set(damaged + (10,)) & set(got)
    assert got == sorted(set(got))
    # Damaged records are not counted as thinned: the overflow events report thinning only.
    assert overflow == j.thinned
    assert j.corrupt == 3


def test_damaged_input_to_compaction_of_released_records():
    hal = MemHal()
    j = J.Journal(hal, capacity=16, seg_records=4)
    j.recover()
    for k in range(1, 13):
        _pos(j, k)
    assert j.peek() == J.KIND_RECORDS
    j.release(2)  # 1-2 delivered; segment 1-4 stays on flash
    _flip(hal, 4, 33)  # unreleased, ahead of the cursor, in the segment compaction rewrites
    _flip(hal, 1, 33)  # released, behind the cursor: dropped, never counted as lost evidence
    events = [_ev(j, k) for k in range(13, 18)]  # full: compaction first, then thinning
    got = []
    while j.peek() != J.KIND_NONE:
        got.extend(range(j.b_first, j.b_last + 1))
        j.release(j.b_last)
    assert set(events) <= set(got) and 3 in got and 4 not in got
    assert j.corrupt == 1


# ---- property: random journal, random rot of unreleased records, reboot, more traffic ---------

@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(2, 20),  # below capacity: phase one does not thin
    ev_every=st.integers(2, 7),
    acked=st.integers(0, 30),
    rot=st.lists(st.tuples(st.integers(0, 29), st.integers(0, J.REC_SIZE * 8 - 1)), max_size=4),
    more=st.integers(0, 30),
)
def test_rot_costs_only_the_rotted_records(n, ev_every, acked, rot, more):
    cap, seg = 24, 4
    hal = MemHal()
    j = J.Journal(hal, capacity=cap, seg_records=seg)
    j.recover()
    events = set()
    for k in range(1, n + 1):
        if k % ev_every == 0:
            events.add(_ev(j, k))
        else:
            _pos(j, k)
    issued = set(range(1, n + 1))
    j.release(min(acked, n))
    acked = j.acked
    j.close()
    # Rot unreleased records (not the newest: with nothing valid after it, it is a torn tail).
    victims = {}
    for idx, bit in rot:
        r = acked + 1 + idx % max(1, n - acked)
        if r < n and r not in victims:
            victims[r] = (_where(hal, r), bit)  # all found before any flip changes an rseq
    for (name, off), bit in victims.values():
        hal.flash.raw(name)[off + bit // 8] ^= 1 << (bit % 8)
    victims = set(victims)
    j = J.Journal(hal, capacity=cap, seg_records=seg)
    j.recover()
    for k in range(n + 1, n + 1 + more):
        if k % ev_every == 0:
            events.add(_ev(j, k))
            issued.add(max(events))
        else:
            issued.add(_pos(j, k))  # 0 if refused (full of events)
    got = []
    while j.peek() != J.KIND_NONE:
        got.extend(range(j.b_first, j.b_last + 1))
        j.release(j.b_last)
    assert got == sorted(set(got))
    lost_events = {r for r in events if r > acked and r not in got}
    assert lost_events <= victims, (lost_events, victims)
    assert not victims & set(got)
    if j.thinned == 0:
        # No thinning: everything unreleased and not rotted arrives, each rot counted once.
        assert set(got) == {r for r in issued if r > acked} - victims
        assert j.corrupt == len(victims)
    else:
        assert j.corrupt <= len(victims)
    assert j.next_rseq > max(issued)


def test_a_rotted_newest_record_is_trimmed_but_its_rseq_never_issued_again():
    # Whole but bad, with nothing valid after it: trimmed like a torn tail. It may have been
    # sent (ACK lost), so its rseq is reserved, persistently: not issued after more reboots,
    # even when an earlier repair left a gap before it.
    hal = MemHal()
    _fill(hal, 3, seg_records=8)
    _flip(hal, 1, 70)  # damage in the middle: the repair drops rseq 1 and rebases on 2
    j = _reboot(hal, 8)
    assert j.corrupt == 1 and j.next_rseq == 4
    j.close()
    _flip(hal, 3, 3)  # the newest record rots
    j = _reboot(hal, 8)
    assert j.corrupt == 0 and j.repaired == 1 and j.next_rseq == 4
    j.close()
    _flip(hal, 2, 150)  # and then the only one left: the segment goes
    j = _reboot(hal, 8)
    # Conservative: a tail is placed above the last reservation (3), as a record written after
    # it would be, so rseq 4 is skipped too. Skipped, never reused.
    assert j.next_rseq == 5 and _segments(hal) == []
    j.close()
    for _ in range(2):
        j = _reboot(hal, 8)
        assert j.next_rseq == 5 and j.pending == 0
        j.close()
    j = _reboot(hal, 8)
    assert _pos(j, 9) == 5


def test_power_cut_at_every_byte_and_op_of_a_damage_repair():
    # Recovery's repair (rseq reservation, rewrite without the bad records, rename) cut anywhere:
    # the next recovery still delivers every valid record and issues no rotted rseq again.
    base = MemHal()
    _fill(base, 6, seg_records=8, events=(4,))
    _flip(base, 2, 40)  # damage in the middle
    _flip(base, 6, 41)  # the newest rotted: reserved, trimmed
    snap = base.flash.snapshot()
    want = [(1, False), (3, False), (4, True), (5, False)]
    for unit in ("bytes", "ops"):
        done = False
        for cut in range(400):
            hal = _copy_hal(snap)
            if unit == "bytes":
                hal.flash.cut_after(cut)
            else:
                hal.flash.cut_after(ops=cut)
            try:
                _reboot(hal, 8)
                done = True
            except PowerCut:
                pass
            hal.flash.power_on()
            j = _reboot(hal, 8)
            # 8 when the cut fell after the reservation, before the trim: the next recovery
            # places that tail above the reservation (one rseq skipped; none reused).
            assert j.next_rseq in (7, 8), (unit, cut)
            if done:
                assert j.next_rseq == 7
            assert _drain(j) == want, (unit, cut)
            if done:
                break
        assert done and cut > 3, (unit, cut)


# ---- segment headers: two copies, either one suffices ----------------------------------------

_HDR_EVENTS = (3, 6, 8)  # seg_records=4: segments 1-4, 5-8 (closed) and 9-10 (open)


def _hdr_base():
    base = MemHal()
    _fill(base, 10, seg_records=4, events=_HDR_EVENTS)
    return base.flash.snapshot()


def _copies_agree(hal):
    for name in _segments(hal):
        raw = hal.flash.raw(name)
        assert raw[0:16] == raw[16:32], name
        assert raw[0:4] == b"NJ\x02\x00"
        assert struct.unpack(">H", raw[14:16])[0] == crc32(raw[0:14]) & 0xFFFF


def test_every_bit_of_a_closed_and_of_the_open_segment_header_costs_no_record():
    snap = _hdr_base()
    want = [(r, r in _HDR_EVENTS) for r in range(1, 11)]
    for seg in ("j00000002.seg", "j00000003.seg"):  # closed, open (head)
        for bit in range(J.SEG_HDR * 8):
            hal = _copy_hal(snap)
            hal.flash.raw(seg)[bit // 8] ^= 1 << (bit % 8)
            j = _reboot(hal, 4)
            # Recovery noticed the bad copy and rewrote the segment with two good ones.
            assert j.repaired == 1 and j.corrupt == 0, (seg, bit)
            _copies_agree(hal)
            assert _drain(j) == want, (seg, bit)
            assert _pos(j, 20) == 11
            j.close()
            j2 = _reboot(hal, 4)
            assert j2.repaired == 0 and j2.corrupt == 0 and j2.pending == 1, (seg, bit)


def test_both_header_copies_damaged_loses_that_segment_only():
    # The bound of this design: two damaged copies (two rots in the same 32 bytes) lose the
    # segment's records, as one damaged 16-byte header did before. Nothing else is lost.
    snap = _hdr_base()
    hal = _copy_hal(snap)
    hal.flash.raw("j00000002.seg")[5] ^= 0x10
    hal.flash.raw("j00000002.seg")[16 + 9] ^= 0x01
    j = _reboot(hal, 4)
    assert _drain(j) == [(r, r in _HDR_EVENTS) for r in (1, 2, 3, 4, 9, 10)]
    assert _pos(j, 20) == 11


def test_power_cut_at_every_byte_of_a_new_segment_header():
    # Record 5 opens segment 2: a 32-byte header, then the record. A cut anywhere loses at most
    # record 5 (not sent: it never returned), and no rseq of a kept record is issued again.
    base = MemHal()
    _fill(base, 4, seg_records=4, events=(2,))
    snap = base.flash.snapshot()
    first = [(1, False), (2, True), (3, False), (4, False)]
    done = False
    for cut in range(J.SEG_HDR + J.REC_SIZE + 1):
        hal = _copy_hal(snap)
        j = _reboot(hal, 4)
        hal.flash.cut_after(cut)
        try:
            assert _pos(j, 5) == 5
            done = True
        except PowerCut:
            pass
        hal.flash.power_on()
        j = _reboot(hal, 4)
        got = _drain(j)
        kept5 = cut >= J.SEG_HDR + J.REC_SIZE
        assert got == first + ([(5, False)] if kept5 else []), (cut, got)
        assert j.corrupt == 0, cut
        assert _pos(j, 6) == (6 if kept5 else 5), cut
        _copies_agree(hal)
    assert done


def test_power_cut_at_every_byte_and_op_of_a_header_repair():
    # Recovery's rewrite of a segment with one bad header copy, cut anywhere: the next recovery
    # still has the good copy and delivers every record.
    snap = _hdr_base()
    want = [(r, r in _HDR_EVENTS) for r in range(1, 11)]
    for seg, byte in (("j00000002.seg", 6), ("j00000003.seg", 16 + 6)):
        for unit in ("bytes", "ops"):
            done = False
            for cut in range(400):
                hal = _copy_hal(snap)
                hal.flash.raw(seg)[byte] ^= 0x04
                if unit == "bytes":
                    hal.flash.cut_after(cut)
                else:
                    hal.flash.cut_after(ops=cut)
                try:
                    _reboot(hal, 4)
                    done = True
                except PowerCut:
                    pass
                hal.flash.power_on()
                j = _reboot(hal, 4)
                assert j.corrupt == 0, (seg, unit, cut)
                assert _drain(j) == want, (seg, unit, cut)
                assert _pos(j, 20) == 11
                if done:
                    break
            # The rewrite is cut at least once: a whole segment's bytes, or its rename.
            assert done and cut > (J.SEG_HDR if unit == "bytes" else 0), (seg, unit, cut)
