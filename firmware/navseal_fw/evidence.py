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
# RAM: plain attributes (an instance map of ~500 bytes, once per seal). Properties over one
# u32 array would halve that but cost 3.3 KB of property and closure objects at import.
#
# Stored record: the 55-byte wire block (with the frozen hw_rseq and thinned; live ones are
# filled in when packing an ACTIVE escort), then the episode state the seal needs at boot.

import struct

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

class Evidence(Store):
    # A persist.Store itself (one object less on the heap): load() and save() are its own,
    # with the record's layout.

    def __init__(self, hal, name="evid"):
        Store.__init__(self, hal, name)
        self.reset(0, 0)

    def reset(self, escort_id, start_rseq):
        self.escort_id = escort_id
        self.closed = False
        self.opening_now = False
        self.deviating = False
        self.start_rseq = start_rseq
        self.hw_rseq = 0  # frozen at DEACTIVATE; live (journal top) until then
        self.thinned = 0  # frozen at DEACTIVATE; live (journal) until then
        self.openings = 0
        self.opening_first = 0
        self.opening_inputs = 0
        self.deviations = 0
        self.deviation_first = 0
        self.deviation_max_m = 0
        self.gnss_losses = 0
        self.gnss_longest_s = 0
        self.gnss_longest_at = 0
        self.anomalies = 0
        self.anomaly_first = 0
        self.anomaly_kinds = 0
        self.reboots = 0
        self.power_losses = 0
        # episode state (not on the wire)
        self.open_bits = 0  # inputs whose debounced state is open
        self.ep_inputs = 0  # inputs whose opening event this episode has (journaled)
        self.loss_start = 0  # seal time an ongoing GNSS loss began, 0: none
        self.anom_kinds_now = 0  # kinds journaled in the ongoing anomaly episode, 0: none
        # a journal event that must be written (or was: the journal reached pend_rseq)
        self.pend_code = 0
        self.pend_value = 0
        self.pend_time = 0
        self.pend_rseq = 0
        # what the last save wrote of the values that grow between saves
        self._saved = 0  # deviation_max_m
        self._saved_s = 0  # gnss_longest_s

    # ---- flash --------------------------------------------------------------------------------

    def load(self):
        raw = Store.load(self)
        if raw is None or len(raw) != REC_SIZE:
            return False
        (self.escort_id, flags, self.start_rseq, self.hw_rseq, self.thinned, self.openings,
         self.opening_first, self.opening_inputs, self.deviations, self.deviation_first,
         self.deviation_max_m, self.gnss_losses, self.gnss_longest_s, self.gnss_longest_at,
         self.anomalies, self.anomaly_first, self.anomaly_kinds, self.reboots,
         self.power_losses) = struct.unpack_from(WIRE_FMT, raw, 0)
        (self.open_bits, self.ep_inputs, self.loss_start, self.anom_kinds_now, self.pend_code,
         self.pend_value, self.pend_time, self.pend_rseq) = struct.unpack_from(_TAIL_FMT, raw,
                                                                               WIRE_SIZE)
        self.closed = bool(flags & F_CLOSED)
        self.opening_now = bool(flags & F_OPENING_NOW)
        self.deviating = bool(flags & F_DEVIATING_NOW)
        self._saved = self.deviation_max_m
        self._saved_s = self.gnss_longest_s
        return True

    def save(self, data=None):
        # Write the current values (`data` keeps persist.Store's signature: written as given).
        rec = bytearray(REC_SIZE)  # only while saving (rare): no buffer kept in RAM
        self._pack(rec, self.hw_rseq, self.thinned)
        struct.pack_into(_TAIL_FMT, rec, WIRE_SIZE, self.open_bits, self.ep_inputs,
                         self.loss_start, self.anom_kinds_now, self.pend_code,
                         self.pend_value & 0xFFFFFFFF, self.pend_time, self.pend_rseq)
        Store.save(self, rec if data is None else data)
        self._saved = self.deviation_max_m
        self._saved_s = self.gnss_longest_s

    def dirty(self):
        # A growing value changed since the last save (written before it is reported).
        return self.deviation_max_m != self._saved or self.gnss_longest_s != self._saved_s

    # ---- wire ---------------------------------------------------------------------------------

    def flags(self):
        return ((F_CLOSED if self.closed else 0) | (F_OPENING_NOW if self.opening_now else 0)
                | (F_DEVIATING_NOW if self.deviating else 0)
                | (F_GNSS_LOST_NOW if self.loss_start else 0))

    def _pack(self, buf, hw_rseq, thinned):
        struct.pack_into(WIRE_FMT, buf, 0, self.escort_id, self.flags(), self.start_rseq,
                         hw_rseq, thinned, self.openings, self.opening_first,
                         self.opening_inputs, self.deviations, self.deviation_first,
                         self.deviation_max_m, self.gnss_losses, self.gnss_longest_s,
                         self.gnss_longest_at, self.anomalies, self.anomaly_first,
                         self.anomaly_kinds, self.reboots, self.power_losses)

    def pack_into(self, buf, hw_rseq, thinned):
        # The wire block into buf[0:55]. The journal marks are live (the caller passes the
        # journal's) until DEACTIVATE froze them.
        if self.closed:
            hw_rseq = self.hw_rseq
            thinned = self.thinned
        self._pack(buf, hw_rseq, thinned)

    # ---- per fix (no property calls: these run once a second) ----------------------------------

    def gap(self, gap_s):
        # A stretch without a fix of gap_s seconds: True if it is the longest (recorded; the
        # caller sets gnss_longest_at).
        if gap_s > self.gnss_longest_s:
            self.gnss_longest_s = gap_s
            return True
        return False

    def distance(self, d):
        # A fix d metres from the route: the largest is kept.
        if d > self.deviation_max_m:
            self.deviation_max_m = d

    # ---- counting helpers (saturating u16) ----------------------------------------------------

    @staticmethod
    def inc(n):
        return n + 1 if n < _U16 else n
