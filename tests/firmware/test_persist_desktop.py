"""The desktop HAL (emulator): the same persistence and journal behaviour on real files."""

from navseal_fw import journal as J
from navseal_fw.hal_desktop import DesktopHal
from navseal_fw.persist import Store


def test_store_and_journal_on_a_directory(tmp_path):
    clock = [0]
    hal = DesktopHal(str(tmp_path / "seal-1001"), clock_ms=lambda: clock[0])
    Store(hal, "state").save(b"abc")
    j = J.Journal(hal, capacity=100, seg_records=10)
    j.recover()
    for i in range(25):
        j.append_position(hal.unix(), i, -i, 0, 255, 0, 255, 0x80)
        clock[0] += 1000
    j.release(12)
    j.close()
    # "Reboot": new objects on the same directory.
    hal2 = DesktopHal(str(tmp_path / "seal-1001"), clock_ms=lambda: clock[0])
    assert Store(hal2, "state").load() == b"abc"
    j2 = J.Journal(hal2, capacity=100, seg_records=10)
    assert j2.recover() == 13
    assert j2.peek() == J.KIND_RECORDS and (j2.b_first, j2.b_last) == (13, 25)
    assert sorted(n for n in hal2.listdir() if n.endswith(".seg")) == ["j00000002.seg", "j00000003.seg"]


def test_virtual_clock_moves_wall_clock_and_set_unix(tmp_path):
    clock = [5000]
    hal = DesktopHal(str(tmp_path / "s"), clock_ms=lambda: clock[0])
    hal.set_unix(1764115200)
    clock[0] += 61000
    assert hal.unix() == 1764115261
    hal.cable_closed = False
    assert hal.lock_levels() == (False, True)
    hal.push_gnss(b"$GP")
    assert hal.gnss_read() == b"$GP" and hal.gnss_read() is None
