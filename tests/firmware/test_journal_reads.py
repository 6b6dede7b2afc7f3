"""Flash reads per frame through the whole seal: SealCore on a HAL whose
files count their reads, the firmware-codec gateway double answering ACKs. A backlog after a
coverage gap and the steady one-record trickle of a moving seal both cost about one 20-byte read
per record sent: at most batch_max + 2 reads a frame, wherever the records sit in a 1,023-record
segment. (The journal-level cases, under CPython and MicroPython: mp/mpt_journal_reads.py.)"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "mp"))

from mpt_journal_reads import CountingHal  # noqa: E402
from scenario_escort import SEAL, T0, Gateway  # noqa: E402
from scenario_escort import test_key as key_for  # noqa: E402

from navseal_fw import codec as C  # noqa: E402
from navseal_fw.seal import Config, SealCore  # noqa: E402

BATCH = 60


class _Seal:
    # A seal on a counting HAL and the gateway double. Every journal frame sent is logged with
    # the records it carries and the flash reads since the previous journal frame (its ACK's
    # release included): the cost of that frame.
    def __init__(self):
        self.hal = CountingHal()
        self.gw = Gateway(SEAL, key_for(SEAL))
        self.log = []  # (records in the frame, reads it cost)
        self._reads_at_last = 0
        config = Config({"seal_id": SEAL, "key": key_for(SEAL), "batch_max": BATCH})
        self.core = SealCore(config, self.hal, self._send)
        self.core.start(self.hal.now_ms)
        self.deliver()
        assert self.core.journal.seg_records == 1021  # the default: a scan would be longest

    def _send(self, frame):
        if frame[3] in (C.RECORDS, C.EVENT):
            j = self.core.journal
            self.log.append((j.b_last - j.b_first + 1, self.hal.reads - self._reads_at_last))
            self._reads_at_last = self.hal.reads
        self.gw.receive(frame, self.hal.unix())
        return True

    def deliver(self):
        while self.gw.out:
            self.core.on_downlink(self.gw.out.pop(0), self.hal.now_ms)

    def position(self, i):
        return self.core.journal.append_position(T0 + i, 432380000 + i, 769450000 + i, 600, 22,
                                                 0x49, 9, 0xC0 | 45)

    def worst_excess(self):
        # The most reads a frame cost beyond one per record it carried.
        return max(reads - records for records, reads in self.log)


def test_backlog_after_a_gap_reads_one_record_per_record_sent():
    s = _Seal()
    s.core.on_link(False, s.hal.now_ms)
    for i in range(2500):  # 2.4 segments buffered during the gap, an event now and then
        if i % 300 == 7:
            s.core.journal.append_event(T0 + i, 2, 0, 0, 0xC0, i)
        else:
            s.position(i)
    assert s.core.journal.pending == 2500
    del s.log[:]
    s._reads_at_last = s.hal.reads
    s.core.on_link(True, s.hal.now_ms)  # the first journal frame goes at once
    s.deliver()  # each ACK releases a frame and the next one is read and sent
    assert s.core.journal.pending == 0
    assert sum(n for n, _ in s.log) == 2500
    assert max(n for n, _ in s.log) == BATCH
    # A frame reads its records and the one that ended its batch (an event); the ACK of what
    # was sent reads nothing. Before the read cursor: up to ~2 x 1,023 reads a frame.
    assert s.worst_excess() <= 1, s.log


def test_moving_seal_trickle_reads_one_record_per_frame_deep_into_a_segment():
    s = _Seal()
    del s.log[:]
    for i in range(1000):
        s.hal.advance(30_000)
        s.position(i)
        s.core.poll(s.hal.now_ms)  # sends the frame
        s.deliver()  # its ACK releases it
    assert s.core.journal.pending == 0 and s.gw.positions >= 1000
    assert len(s.log) >= 1000
    assert s.worst_excess() <= 1, s.log
    assert sum(r for _, r in s.log) <= 1.1 * sum(n for n, _ in s.log)
