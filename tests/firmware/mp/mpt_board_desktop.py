# The desktop board (navseal_fw.board_desktop): GNSS from a file, the control line's verbs, the
# reset cause a reboot leaves for the next boot. (Over TCP, with main.py, in test_board_path.py.)
import os

import mpunit
from navseal_fw.board_desktop import REBOOT_EXIT, Board


def _dir(name):
    path = mpunit.TMP + "/" + name
    try:
        os.mkdir(path)
    except OSError:
        pass
    for f in os.listdir(path):
        os.remove(path + "/" + f)
    return path


def test_gnss_from_a_file_read_as_it_grows():
    root = _dir("bd_gnss")
    log = root + "/nmea.log"
    f = open(log, "wb")
    f.write(b"$GPRMC,1*00\r\n")
    f.close()
    w = open(root + "/board.json", "w")
    w.write('{"gnss": "file:%s"}' % log)
    w.close()
    b = Board(root)
    assert b.gnss_read() == b"$GPRMC,1*00\r\n"
    assert b.gnss_read() is None
    f = open(log, "ab")
    f.write(b"$GPGGA,2*00\r\n")
    f.close()
    assert b.gnss_read() == b"$GPGGA,2*00\r\n"


def test_control_verbs_set_the_inputs():
    b = Board(_dir("bd_ctl"))
    assert b.lock_levels() == (True, True) and b.battery_pct() == 100
    assert b.control("LOCK open closed") == "OK LOCK open closed"
    assert b.lock_levels() == (False, True)
    assert b.control("lock 1 0") == "OK LOCK 1 0" and b.lock_levels() == (True, False)
    assert b.control("BATT 42") == "OK BATT 42" and b.battery_pct() == 42
    assert b.control("BATT none") == "OK BATT none" and b.battery_pct() is None
    assert b.control("BATT 101").startswith("ERR BATT")
    assert b.control("LOCK ajar closed").startswith("ERR LOCK")
    assert b.control("STATS").startswith("ERR STATS")  # no loop statistics attached
    assert b.control("FLY").startswith("ERR FLY")


def test_reboot_leaves_soft_for_the_next_boot_and_a_fault_rides_above_it():
    root = _dir("bd_reset")
    b = Board(root)
    assert b.reset_cause() == 0  # first start (or after a kill): POWER_ON
    try:
        b.reboot()
        raise AssertionError("reboot returned")
    except SystemExit as e:
        assert e.args[0] == REBOOT_EXIT
    assert ".reset" not in b.listdir()  # hidden from the seal's flat file list
    b2 = Board(root)
    assert b2.reset_cause() == 2
    b2.fault = 1
    assert b2.reset_cause() == 2 | 1 << 8
    assert Board(root).reset_cause() == 0  # the marker was taken
