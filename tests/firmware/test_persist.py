"""persist.Store: atomic small records that survive a power cut at every point of a save."""

import pytest

from navseal_fw.hal import MemFlash, MemHal, PowerCut
from navseal_fw.persist import Counter, Store


def test_round_trip_and_generation():
    hal = MemHal()
    s = Store(hal, "state")
    assert s.load() is None
    s.save(b"one")
    s.save(b"two")
    fresh = Store(hal, "state")
    assert fresh.load() == b"two"
    assert fresh.generation == 2
    assert sorted(hal.listdir()) == ["state"]


def _save_with_cut(old, new, nbytes=-1, ops=-1):
    flash = MemFlash()
    hal = MemHal(flash)
    Store(hal, "latch").save(old)
    flash.cut_after(nbytes, ops)
    s = Store(hal, "latch")
    s.load()
    try:
        s.save(new)
        completed = True
    except PowerCut:
        completed = False
    flash.power_on()
    return Store(hal, "latch").load(), completed


def test_cut_at_every_byte_of_a_save_gives_old_or_new_never_a_mixture():
    old, new = b"A" * 37, b"B" * 41
    total = 10 + len(new) + 4
    seen = set()
    for cut in range(total + 1):
        got, completed = _save_with_cut(old, new, nbytes=cut)
        assert got in (old, new), cut
        if completed:
            assert got == new
        if cut < total:
            assert got == old, "a torn .new must never win"
        seen.add(got)
    assert seen == {old, new}


def test_cut_between_write_and_rename_recovers_the_new_copy():
    # ops: 1 = the open of .new, then the rename is the op that cuts.
    got, completed = _save_with_cut(b"old", b"new", ops=1)
    assert not completed
    assert got == b"new"


def test_fat_style_rename_loss_recovers_from_new():
    hal = MemHal()
    s = Store(hal, "esc")
    s.save(b"v1")
    s.save(b"v2")
    # Simulate FAT's unlink-then-rename cut: <name> gone, only .new left.
    hal.flash._files["esc.new"] = hal.flash._files.pop("esc")
    assert Store(hal, "esc").load() == b"v2"
    assert "esc" in hal.listdir() and "esc.new" not in hal.listdir()


def test_corrupt_current_copy_is_not_returned():
    hal = MemHal()
    Store(hal, "x").save(b"hello")
    hal.flash.raw("x")[12] ^= 0x01
    assert Store(hal, "x").load() is None


def test_counter():
    hal = MemHal()
    c = Counter(hal, "boot")
    assert c.load() == 0
    c.save(7)
    assert Counter(hal, "boot").load() == 7
