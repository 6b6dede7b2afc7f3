"""Property test: random appends, ACKs, reboots, power cuts at random bytes and bit rot in stored
records, against a model. Invariants: an acknowledged-or-not event is never lost (unless it was
the write being cut or the record that rotted), rseq never repeats, delivery is in rseq order,
pending matches what can be sent, and the read cursor the journal keeps in RAM (moved by peek
and release, not by a scan) is always where a scan of the flash would put it, but for damaged
records right at it that one of the two has read and the other not."""

from binascii import crc32

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from navseal_fw import journal as J
from navseal_fw.hal import MemHal, PowerCut

T0 = 1764115200

op = st.one_of(
    st.tuples(st.just("pos"), st.integers(0, 0)),
    st.tuples(st.just("pos"), st.integers(0, 0)),
    st.tuples(st.just("pos"), st.integers(0, 0)),
    st.tuples(st.just("pos"), st.integers(0, 0)),
    st.tuples(st.just("ev"), st.integers(0, 0)),
    st.tuples(st.just("ack"), st.integers(0, 12)),
    st.tuples(st.just("reboot"), st.integers(0, 0)),
    st.tuples(st.just("cut"), st.integers(0, 60)),
    st.tuples(st.just("cutop"), st.integers(0, 3)),
    # peek now, ACK later (appends and thinning in between), and ACKs of more than was peeked
    st.tuples(st.just("peek"), st.integers(1, 6)),
    st.tuples(st.just("ackpeeked"), st.integers(0, 0)),
    st.tuples(st.just("ackahead"), st.integers(0, 6)),
    # a bit of a stored record rots (arg: which record, which bit), then a reboot
    st.tuples(st.just("rot"), st.integers(0, 10 ** 6)),
)


def _open(hal):
    j = J.Journal(hal, capacity=16, seg_records=4)
    j.recover()
    return j


def _pending_list(j):
    """(rseq, is_event) of everything unreleased, without releasing (walk a copy)."""
    out = []
    snap = j._hal.flash.snapshot()
    probe_hal = MemHal()
    probe_hal.flash._files = snap
    probe = J.Journal(probe_hal, capacity=j.capacity, seg_records=j.seg_records)
    probe.recover()
    while probe.peek() != J.KIND_NONE:
        for r in range(probe.b_first, probe.b_last + 1):
            out.append((r, probe.b_kind == J.KIND_EVENT))
        probe.release(probe.b_last)
    assert probe.pending == 0
    return out


def _rot(hal, arg):
    """Flip one bit of one whole record on flash, not the newest (with nothing valid after it,
    that is a torn tail: tests/firmware/test_journal_damage.py); -> its rseq, or None."""
    slots = []
    for name in sorted(n for n in hal.listdir() if n.endswith(".seg")):
        raw = hal.flash.raw(name)
        base = (raw[4] << 24) | (raw[5] << 16) | (raw[6] << 8) | raw[7]
        for off in range(J.SEG_HDR, len(raw) - J.REC_SIZE + 1, J.REC_SIZE):
            slots.append((name, off, base + (((raw[off] << 8) | raw[off + 1]) & 0x7FFF)))
    slots = slots[:-1]
    if not slots:
        return None
    name, off, rseq = slots[arg % len(slots)]
    bit = (arg // len(slots)) % (J.REC_SIZE * 8)
    hal.flash.raw(name)[off + bit // 8] ^= 1 << (bit % 8)
    return rseq


def _normal_cursor(j):
    i, off = j._cur_i, j._cur_off
    while i < len(j._segno) - 1 and off >= J.SEG_HDR + j._count[i] * J.REC_SIZE:
        i, off = i + 1, J.SEG_HDR
    return i, off


def _damaged_between(j, a, b):
    """Slots from cursor position a to b (same segment table): all damaged (the RAM cursor has
    not read them yet; a scan passes them) -> how many."""
    (i, off), n = a, 0
    while (i, off) < b:
        if off >= J.SEG_HDR + j._count[i] * J.REC_SIZE:
            i, off = i + 1, J.SEG_HDR
            continue
        raw = j._hal.flash.raw(j._name(j._segno[i]))
        rec = raw[off:off + J.REC_SIZE]
        assert (rec[18] << 8 | rec[19]) != crc32(bytes(rec[0:18])) & 0xFFFF, (a, b, i, off)
        n += 1
        off += J.REC_SIZE
    return n


def _check_cursor(j):
    """The cursor and pending kept in RAM equal what recovery derives from the same flash, but
    for damaged records right after the RAM cursor that it has not read yet."""
    probe_hal = MemHal()
    probe_hal.flash._files = j._hal.flash.snapshot()
    probe = J.Journal(probe_hal, capacity=j.capacity, seg_records=j.seg_records)
    probe.recover()
    if probe._segno == j._segno and j._cur_acked == j.acked:
        # same table (a cut may leave files recovery tidies). Damaged records lie between the
        # two cursors only: the RAM one has not read them yet, or has (peek passes them) where
        # the derivation does not need to (it reads no record of a segment after the release
        # point).
        ram, derived = _normal_cursor(j), _normal_cursor(probe)
        if ram <= derived:
            unread = _damaged_between(j, ram, derived)
            assert j.pending == probe.pending + unread, (j.pending, probe.pending, unread)
        else:
            passed = _damaged_between(j, derived, ram)
            assert j.pending == probe.pending - passed, (j.pending, probe.pending, passed)
    else:
        assert j.pending == probe.pending, (j.pending, probe.pending)
        assert j._cur_acked in (-1, j.acked)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=1, max_size=80))
def test_journal_model(ops):
    _model(ops)


def test_the_model_really_thins():
    # The property above is only worth something if thinning happens in it.
    assert _model([("pos", 0)] * 40 + [("ev", 0)] * 3 + [("pos", 0)] * 40)


def _model(ops):
    hal = MemHal()
    j = _open(hal)
    t = 0
    issued = set()  # rseq returned by completed appends
    events = set()  # ... of them, events
    acked = 0
    saw_thinning = False
    rots = 0
    for kind, arg in ops:
        saw_thinning = saw_thinning or j.thinned > 0
        t += 1
        try:
            if kind == "pos":
                r = j.append_position(T0 + t, t, -t, 0, 255, 0, 255, 0xC0)
                if r:
                    assert r not in issued
                    issued.add(r)
            elif kind == "ev":
                r = j.append_event(T0 + t, 1, 0, 0, 0xC0, t)
                assert r and r not in issued
                issued.add(r)
                events.add(r)
            elif kind == "ack":
                if j.peek() != J.KIND_NONE:
                    upto = min(j.b_last, j.b_first + arg)
                    j.release(upto)
                    acked = max(acked, upto)
            elif kind == "peek":
                j.peek(arg)
            elif kind == "ackpeeked":
                if j.b_kind != J.KIND_NONE:
                    j.release(j.b_last)
                    acked = max(acked, j.acked)
            elif kind == "ackahead":
                j.release(j.acked + arg)
                acked = max(acked, j.acked)
            elif kind == "reboot":
                j.close()
                j = _open(hal)
            elif kind == "cut":
                hal.flash.cut_after(arg)
            elif kind == "cutop":
                hal.flash.cut_after(ops=arg)
            elif kind == "rot":
                j.close()
                rotted = _rot(hal, arg)
                rots += rotted is not None
                events.discard(rotted)  # that record is lost; nothing else may be
                j = _open(hal)
            _check_cursor(j)
        except PowerCut:
            hal.flash.power_on()
            j = _open(hal)
            continue
    hal.flash.power_on()
    j.close()
    j = _open(hal)
    pend = _pending_list(j)
    rseqs = [r for r, _ in pend]
    assert rseqs == sorted(set(rseqs)), "in order, no duplicates"
    assert all(r > j.acked for r in rseqs)
    # pending counts record slots: a damaged one in a closed segment (recovery reads one record
    # of those) until the cursor passes it.
    assert len(pend) <= j.pending <= len(pend) + rots, (j.pending, len(pend), rots)
    # Every event issued and not acknowledged is still there.
    for r in events:
        if r > j.acked:
            assert r in rseqs, (r, rseqs)
    # rseq never repeats: the next one is above everything ever issued.
    assert j.next_rseq > max(issued | {0})
    return saw_thinning or j.thinned > 0
