# The seal's latched evidence for one escort (docs/protocol.md "Evidence", docs/firmware.md):
# what it observed, persisted so that no reboot, power cut or crash loses it, and packed in the
# wire layout for every STATE and COMMAND_RESULT. Reset at ACTIVATE, frozen at DEACTIVATE.
#
# This module only keeps and stores the facts; seal.py, tamper.py and gnss_check.py decide
# them. Every change goes to flash before the seal acts on it (journals the event, answers the
# command): a reset or an exception half-way leaves the fact on flash, and a journal event that
# may not have been written is remembered as `pend_*` (see tamper.py) and written at the next
# poll or boot. Values that grow continuously (the largest distance from the route, the longest
# stretch without a fix) are kept in RAM and written with the next event, or before the next
# STATE or COMMAND_RESULT that reports them: never per fix. Each save is one persist.Store
# write of REC_SIZE bytes plus its 14-byte frame, then a rename.
#
# RAM: the fields are one array of u32 (124 bytes) behind properties, not 31 instance
# attributes (a MicroPython instance map of that size costs about four times as much).
#
# Stored record: the 55-byte wire block (with the frozen hw_rseq and thinned; live ones are
# filled in when packing an ACTIVE escort), then the episode state the seal needs at boot.

import struct
from array import array

from navseal_fw.codec import EVIDENCE_FMT as WIRE_FMT  # docs/protocol.md "Evidence"
from navseal_fw.codec import EVIDENCE_SIZE as WIRE_SIZE
from navseal_fw.codec import (EVF_CLOSED as F_CLOSED, EVF_DEVIATING_NOW as F_DEVIATING_NOW,
                              EVF_GNSS_LOST_NOW as F_GNSS_LOST_NOW, EVF_OPENING_NOW as F_OPENING_NOW,
                              EVI_CABLE as CABLE, EVI_HOUSING as HOUSING)
from navseal_fw.persist import Store

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):  # type: ignore[no-redef,misc]  # the stub's signature is generic
        return x

_TAIL_FMT = ">BBIBBIII"  # open_bits, ep_inputs, loss_start, anom_kinds_now, pend_code,
#                            pend_value, pend_time, pend_rseq
REC_SIZE = const(78)  # 55 + 23
_U16 = const(0xFFFF)

# Field indexes. 0..18: the wire block in its order (1: flags); then the episode state.
_ESCORT_ID = const(0)
_FLAGS = const(1)
_START_RSEQ = const(2)
_HW_RSEQ = const(3)
_THINNED = const(4)
_OPENINGS = const(5)
_OPENING_FIRST = const(6)
_OPENING_INPUTS = const(7)
_DEVIATIONS = const(8)
_DEVIATION_FIRST = const(9)
_DEVIATION_MAX_M = const(10)
_GNSS_LOSSES = const(11)
_GNSS_LONGEST_S = const(12)
_GNSS_LONGEST_AT = const(13)
_ANOMALIES = const(14)
_ANOMALY_FIRST = const(15)
_ANOMALY_KINDS = const(16)
_REBOOTS = const(17)
_POWER_LOSSES = const(18)
_OPEN_BITS = const(19)  # inputs whose debounced state is open
_EP_INPUTS = const(20)  # inputs whose opening event this episode has (journaled)
_LOSS_START = const(21)  # seal time an ongoing GNSS loss began, 0: none
_ANOM_KINDS_NOW = const(22)  # kinds journaled in the ongoing anomaly episode, 0: none
_PEND_CODE = const(23)  # a journal event that must be written (or was: the journal reached
_PEND_VALUE = const(24)  # pend_rseq)
_PEND_TIME = const(25)
_PEND_RSEQ = const(26)
_SAVED_MAX_M = const(27)  # what the last save wrote of the values that grow between saves
_SAVED_LONGEST_S = const(28)
_FIELDS = const(29)


def _field(i):
    def get(self):
        return self.v[i]

    def put(self, value):
        self.v[i] = value

    return property(get, put)


def _flag(bit):
    def get(self):
        return bool(self.v[_FLAGS] & bit)

    def put(self, on):
        self.v[_FLAGS] = (self.v[_FLAGS] | bit) if on else (self.v[_FLAGS] & ~bit)

    return property(get, put)


class Evidence(Store):
    # A persist.Store itself (one object less on the heap): load() and save() are its own,
    # with the record's layout.
    escort_id = _field(_ESCORT_ID)
    closed = _flag(F_CLOSED)
    opening_now = _flag(F_OPENING_NOW)
    deviating = _flag(F_DEVIATING_NOW)
    start_rseq = _field(_START_RSEQ)
    hw_rseq = _field(_HW_RSEQ)  # frozen at DEACTIVATE; live (journal top) until then
    thinned = _field(_THINNED)  # frozen at DEACTIVATE; live (journal) until then
    openings = _field(_OPENINGS)
    opening_first = _field(_OPENING_FIRST)
    opening_inputs = _field(_OPENING_INPUTS)
    deviations = _field(_DEVIATIONS)
    deviation_first = _field(_DEVIATION_FIRST)
    deviation_max_m = _field(_DEVIATION_MAX_M)
    gnss_losses = _field(_GNSS_LOSSES)
    gnss_longest_s = _field(_GNSS_LONGEST_S)
    gnss_longest_at = _field(_GNSS_LONGEST_AT)
    anomalies = _field(_ANOMALIES)
    anomaly_first = _field(_ANOMALY_FIRST)
    anomaly_kinds = _field(_ANOMALY_KINDS)
    reboots = _field(_REBOOTS)
    power_losses = _field(_POWER_LOSSES)
    open_bits = _field(_OPEN_BITS)
    ep_inputs = _field(_EP_INPUTS)
    loss_start = _field(_LOSS_START)
    anom_kinds_now = _field(_ANOM_KINDS_NOW)
    pend_code = _field(_PEND_CODE)
    pend_value = _field(_PEND_VALUE)
    pend_time = _field(_PEND_TIME)
    pend_rseq = _field(_PEND_RSEQ)

    def __init__(self, hal, name="evid"):
        Store.__init__(self, hal, name)
        self.v = array("I", bytes(4 * _FIELDS))

    def reset(self, escort_id, start_rseq):
        v = self.v
        for i in range(_FIELDS):
            v[i] = 0
        v[_ESCORT_ID] = escort_id
        v[_START_RSEQ] = start_rseq

    # ---- flash --------------------------------------------------------------------------------

    def load(self):
        raw = Store.load(self)
        if raw is None or len(raw) != REC_SIZE:
            return False
        v = self.v
        k = 0
        for x in struct.unpack_from(WIRE_FMT, raw, 0) + struct.unpack_from(_TAIL_FMT, raw, WIRE_SIZE):
            v[k] = x
            k += 1
        v[_SAVED_MAX_M] = v[_DEVIATION_MAX_M]
        v[_SAVED_LONGEST_S] = v[_GNSS_LONGEST_S]
        return True

    def save(self, data=None):
        # Write the current values (`data` keeps persist.Store's signature: written as given).
        v = self.v
        rec = bytearray(REC_SIZE)  # only while saving (rare): no buffer kept in RAM
        self._pack(rec, v[_HW_RSEQ], v[_THINNED])
        struct.pack_into(_TAIL_FMT, rec, WIRE_SIZE, v[_OPEN_BITS], v[_EP_INPUTS], v[_LOSS_START],
                         v[_ANOM_KINDS_NOW], v[_PEND_CODE], v[_PEND_VALUE], v[_PEND_TIME],
                         v[_PEND_RSEQ])
        Store.save(self, rec if data is None else data)
        v[_SAVED_MAX_M] = v[_DEVIATION_MAX_M]
        v[_SAVED_LONGEST_S] = v[_GNSS_LONGEST_S]

    def dirty(self):
        # A growing value changed since the last save (written before it is reported).
        v = self.v
        return v[_DEVIATION_MAX_M] != v[_SAVED_MAX_M] or v[_GNSS_LONGEST_S] != v[_SAVED_LONGEST_S]

    # ---- wire ---------------------------------------------------------------------------------

    def flags(self):
        v = self.v
        return (v[_FLAGS] & (F_CLOSED | F_OPENING_NOW | F_DEVIATING_NOW)) | (
            F_GNSS_LOST_NOW if v[_LOSS_START] else 0)

    def _pack(self, buf, hw_rseq, thinned):
        v = self.v
        struct.pack_into(WIRE_FMT, buf, 0, v[0], self.flags(), v[2], hw_rseq, thinned, v[5], v[6],
                         v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15], v[16], v[17],
                         v[18])

    def pack_into(self, buf, hw_rseq, thinned):
        # The wire block into buf[0:55]. The journal marks are live (the caller passes the
        # journal's) until DEACTIVATE froze them.
        if self.closed:
            hw_rseq = self.v[_HW_RSEQ]
            thinned = self.v[_THINNED]
        self._pack(buf, hw_rseq, thinned)

    # ---- per fix (no property calls: these run once a second) ----------------------------------

    def gap(self, gap_s):
        # A stretch without a fix of gap_s seconds: True if it is the longest (recorded; the
        # caller sets gnss_longest_at).
        v = self.v
        if gap_s > v[_GNSS_LONGEST_S]:
            v[_GNSS_LONGEST_S] = gap_s
            return True
        return False

    def distance(self, d):
        # A fix d metres from the route: the largest is kept.
        v = self.v
        if d > v[_DEVIATION_MAX_M]:
            v[_DEVIATION_MAX_M] = d

    # ---- counting helpers (saturating u16) ----------------------------------------------------

    @staticmethod
    def inc(n):
        return n + 1 if n < _U16 else n
