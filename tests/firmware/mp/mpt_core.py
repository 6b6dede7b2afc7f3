# The seal core's storage and state machine under CPython and MicroPython (run by mpunit):
# persisted records and the journal cut by a power failure at every byte, thinning, escort rules,
# a SealCore boot. The pytest-only variants (more cases, parametrised) are tests/firmware/test_*.py.
from navseal_fw import journal as J
from navseal_fw.escort import ACTIVE, JOURNAL_PENDING, LOCK_OPEN, MISMATCH, OK, Escort
from navseal_fw.hal import MemFlash, MemHal, PowerCut
from navseal_fw.persist import Store

T0 = 1764115200


def _copy(snap):
    flash = MemFlash()
    for k in snap:
        flash._files[k] = bytearray(snap[k])
    return MemHal(flash)


def test_persist_cut_at_every_byte_gives_old_or_new():
    hal = MemHal()
    Store(hal, "s").save(b"old-value")
    snap = hal.flash.snapshot()
    seen_new = False
    for cut in range(0, 40):
        h = _copy(snap)
        s = Store(h, "s")
        s.load()
        h.flash.cut_after(cut)
        try:
            s.save(b"the-new-value")
            done = True
        except PowerCut:
            done = False
        h.flash.power_on()
        got = Store(h, "s").load()
        assert got in (b"old-value", b"the-new-value"), cut
        if done:
            assert got == b"the-new-value"
            seen_new = True
    assert seen_new


def _pos(j, i):
    return j.append_position(T0 + i, 430000000 + i, 760000000, 100, 0, 0x49, 9, 0xC0)


def test_journal_cut_at_every_byte_of_appends_loses_at_most_the_record_being_written():
    base = MemHal()
    j = J.Journal(base, capacity=64, seg_records=4)
    j.recover()
    for i in range(3):
        _pos(j, i)
    j.close()
    snap = base.flash.snapshot()
    for cut in range(0, 80):
        h = _copy(snap)
        j = J.Journal(h, capacity=64, seg_records=4)
        j.recover()
        h.flash.cut_after(cut)
        try:
            _pos(j, 3)
            _pos(j, 4)
            done = True
        except PowerCut:
            done = False
        h.flash.power_on()
        j2 = J.Journal(h, capacity=64, seg_records=4)
        j2.recover()
        got = []
        while j2.peek() != J.KIND_NONE:
            got.extend(range(j2.b_first, j2.b_last + 1))
            j2.release(j2.b_last)
        assert got[:3] == [1, 2, 3], (cut, got)
        assert len(got) in (3, 4, 5) and got == list(range(1, len(got) + 1)), (cut, got)
        assert _pos(j2, 9) == len(got) + 1
        if done:
            assert len(got) == 5
            return
    raise AssertionError("the appends never completed")


def test_journal_thinning_never_drops_events():
    hal = MemHal()
    j = J.Journal(hal, capacity=48, seg_records=8)
    j.recover()
    events = []
    for i in range(300):
        if i % 25 == 0:
            events.append(j.append_event(T0 + i, 1, 0, 0, 0x40, i))
        else:
            _pos(j, i)
    assert j.stored <= 48 and j.thinned > 0
    got = []
    overflow = 0
    while j.peek() != J.KIND_NONE:
        if j.b_kind == J.KIND_EVENT:
            if j.ev_code == 1:
                got.append(j.b_first)
            elif j.ev_code == J.EVENT_JOURNAL_OVERFLOW:
                overflow += j.ev_value
        j.release(j.b_last)
    assert got == events
    assert overflow == j.thinned


def test_escort_rules_and_persistence():
    hal = MemHal()
    e = Escort(hal, 1001)
    e.load()
    args = (5, 1001, "DECL-1", "VEH-1", "55201", "Khorgos", T0, T0 + 86400, 0, b"")
    assert e.activate(False, *args) == LOCK_OPEN
    assert e.activate(True, *args) == OK
    assert e.deactivate(5, 1001, "DECL-1", "VEH-2") == MISMATCH
    assert e.deactivate(5, 1001, "DECL-1", "VEH-1", 2) == JOURNAL_PENDING
    e.accept(0, 7)
    e2 = Escort(hal, 1001)
    e2.load()
    assert e2.state == ACTIVE and e2.escort_id == 5 and not e2.fresh(0, 7) and e2.fresh(0, 8)


def test_seal_core_boots_and_counts_boots():
    import hashlib

    from navseal_fw import codec as C
    from navseal_fw.seal import Config, SealCore

    key = hashlib.sha256(b"navseal test key 1001").digest()
    hal = MemHal()
    sent = []
    core = SealCore(Config({"seal_id": 1001, "key": key, "journal_capacity": 256,
                            "journal_seg_records": 16}), hal, sent.append)
    core.start(0)
    assert [f[3] for f in sent] == [C.HELLO, C.STATE, C.EVENT]
    gw = C.Codec(1001, key)
    f = gw.decode(sent[2])
    assert C.parse_payload(f.type, f.payload)[0:3] == (1, T0, C.EV_REBOOT)
    core2 = SealCore(core.cfg, hal, sent.append)
    core2.start(0)
    assert core2.boot == 2 and core2.journal.pending == 2
