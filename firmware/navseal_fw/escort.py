# The escort state machine (sans-I/O): INACTIVE <-> ACTIVE by authenticated commands, the escort
# data the seal must carry, the replay window for downlink frames, and the route for the seal's
# own corridor check (corridor.py). It decides; seal.py turns its answers into frames and journal
# events. What the seal observed during the escort (openings, deviations, ...) is evidence.py's.
#
# Persisted (persist.Store, atomic) in two small files so that the frequent writes stay small:
#   "escort": state and escort data including the route (written on ACTIVATE/DEACTIVATE)
#   "dlseq":  (boot, seq) of the last accepted command (written on every accepted command)
# A reboot therefore cannot re-open a replay window or forget the escort.

import struct

from navseal_fw.corridor import Corridor
from navseal_fw.persist import Store

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):  # type: ignore[no-redef,misc]  # the stub's signature is generic
        return x

INACTIVE = const(0)
ACTIVE = const(1)

# COMMAND_RESULT.result (docs/protocol.md)
OK = const(0)
LOCK_OPEN = const(1)
WRONG_STATE = const(2)
MISMATCH = const(3)
BAD_PARAMS = const(4)
REPLAYED = const(5)
UNSUPPORTED = const(6)
JOURNAL_PENDING = const(7)  # DEACTIVATE refused while the journal holds unacknowledged records

# STATE.alarms bits
_ALARM_CABLE_CUT = const(1)
_ALARM_HOUSING_OPENED = const(2)
ALARM_GNSS_LOST = const(4)
ALARM_LOW_BATTERY = const(8)
ALARM_JOURNAL_OVERFLOW = const(16)
ALARM_ROUTE_DEVIATION = const(32)
ALARM_GNSS_ANOMALY = const(64)

_MAX_ROUTE = const(400)


class Escort:
    def __init__(self, hal, seal_id, confirm_fixes=2, hysteresis_m=200):
        self.seal_id = seal_id
        self._escort_store = Store(hal, "escort")
        self._dl_store = Store(hal, "dlseq")
        self.state = INACTIVE
        self.escort_id = 0
        self.last_escort_id = 0
        self.declaration = ""
        self.vehicle = ""
        self.dest_office_code = ""
        self.dest_office_name = ""
        self.period_start = 0
        self.period_end = 0
        self.corridor = Corridor(confirm_fixes, hysteresis_m)  # the route lives here (ints)
        self.dl_boot = -1  # last accepted downlink (boot, seq); -1: none yet
        self.dl_seq = -1

    # ---- persistence --------------------------------------------------------------------------

    def load(self):
        raw = self._escort_store.load()
        if raw is not None:
            self._unpack(raw)
        raw = self._dl_store.load()
        if raw is not None and len(raw) == 8:
            self.dl_boot, self.dl_seq = struct.unpack(">II", raw)

    @property
    def corridor_m(self):
        return self.corridor.corridor_m

    def route_points(self):
        return len(self.corridor.pts) // 2

    def _route_bytes(self):
        pts = self.corridor.pts
        out = bytearray(4 * len(pts))
        for k in range(len(pts)):
            struct.pack_into(">i", out, 4 * k, pts[k])
        return out

    def _pack(self):
        parts = [struct.pack(">BIIIIHH", self.state, self.escort_id, self.last_escort_id,
                             self.period_start, self.period_end, self.corridor_m,
                             self.route_points())]
        for s in (self.declaration, self.vehicle, self.dest_office_code, self.dest_office_name):
            b = s.encode()
            parts.append(bytes((len(b),)) + b)
        parts.append(bytes(self._route_bytes()))
        return b"".join(parts)

    def _unpack(self, raw):
        (self.state, self.escort_id, self.last_escort_id, self.period_start, self.period_end,
         corridor_m, n) = struct.unpack(">BIIIIHH", raw[0:21])
        o = 21
        strs = []
        for _ in range(4):
            ln = raw[o]
            strs.append(bytes(raw[o + 1:o + 1 + ln]).decode())
            o += 1 + ln
        self.declaration, self.vehicle, self.dest_office_code, self.dest_office_name = strs
        self.corridor.set_route(raw[o:o + 8 * n], corridor_m)

    def _save_escort(self):
        self._escort_store.save(self._pack())

    # ---- replay window ------------------------------------------------------------------------

    def fresh(self, boot, seq):
        # A downlink frame is new only if its (boot, seq) is above the last accepted one.
        return boot > self.dl_boot or (boot == self.dl_boot and seq > self.dl_seq)

    def accept(self, boot, seq, persist=True):
        # Move the window. Commands persist it (a reboot must not re-open it); ACKs only move it
        # in RAM: a replayed ACK cannot release anything because it must name the frame in flight.
        self.dl_boot = boot
        self.dl_seq = seq
        if persist:
            self._dl_store.save(struct.pack(">II", boot, seq))  # boot is u32 on the wire

    # ---- commands -----------------------------------------------------------------------------

    def activate(self, lock_intact, escort_id, seal_number, declaration, vehicle, dest_code,
                 dest_name, period_start, period_end, corridor_m, route):
        # route: bytes of i32 lat_e5, i32 lon_e5 pairs (8 bytes a point).
        if self.state == ACTIVE:
            if escort_id == self.escort_id:
                return OK  # the gateway repeats a command whose result it did not get
            return WRONG_STATE
        if seal_number != self.seal_id:
            return MISMATCH
        if escort_id == 0 or len(route) % 8 or len(route) > 8 * _MAX_ROUTE:
            return BAD_PARAMS
        if not lock_intact:
            return LOCK_OPEN
        self.state = ACTIVE
        self.escort_id = escort_id
        self.declaration = declaration
        self.vehicle = vehicle
        self.dest_office_code = dest_code
        self.dest_office_name = dest_name
        self.period_start = period_start
        self.period_end = period_end
        self.corridor.set_route(route, corridor_m)
        self.corridor.deviated = False
        self._save_escort()
        return OK

    def deactivate(self, escort_id, seal_number, declaration, vehicle, pending=0):
        # pending: journal records the gateway has not acknowledged. Deactivating with them
        # would let evidence (an opening in a coverage gap) arrive after the verdict: refused
        # as JOURNAL_PENDING ("not yet"), the gateway repeats after the backlog drained.
        if self.state != ACTIVE:
            if escort_id == self.last_escort_id and escort_id:
                return OK  # repeated after a lost result
            return WRONG_STATE
        if (seal_number != self.seal_id or escort_id != self.escort_id
                or declaration != self.declaration or vehicle != self.vehicle):
            return MISMATCH
        if pending:
            return JOURNAL_PENDING
        self.last_escort_id = self.escort_id
        self.state = INACTIVE
        self.escort_id = 0
        self.corridor.clear()
        self._save_escort()
        # The evidence stays as it was, frozen, until the next activation, so a STATE right
        # after deactivation still says whether the escort ended clean.
        return OK
