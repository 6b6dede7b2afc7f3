# The escort state machine (sans-I/O): INACTIVE <-> ACTIVE by authenticated commands, the escort
# data the seal must carry, the replay window for downlink frames, alarm latches, and the optional
# seal-side corridor check. It decides; seal.py turns its answers into frames and journal events.
#
# Persisted (persist.Store, atomic) in three small files so that the frequent writes stay small:
#   "escort": state and escort data including the route (written on ACTIVATE/DEACTIVATE)
#   "latch":  latched alarms and the route-deviation flag (written when they change)
#   "dlseq":  (boot, seq) of the last accepted command (written on every accepted command)
# A reboot therefore cannot clear a latched alarm, re-open a replay window, or forget the escort.

import struct
from math import cos, sqrt

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
ALARM_CABLE_CUT = const(1)
ALARM_HOUSING_OPENED = const(2)
ALARM_GNSS_LOST = const(4)
ALARM_LOW_BATTERY = const(8)
ALARM_JOURNAL_OVERFLOW = const(16)
ALARM_ROUTE_DEVIATION = const(32)
_LATCHED = const(3)  # the bits that only a new activation clears

MAX_ROUTE = const(400)
# Metres per 4e-5 degree of latitude: 111,319.49 m / degree.
_M_PER_UNIT = 4.4527796
# Route points farther than this (in 4e-5 degree, ~36 km) in either axis are not projected.
_WIN = const(8192)
_FAR_M = const(36000)
# Back inside the corridor only below 90 % of its half-width, so a truck driving along the
# edge does not produce a stream of DEVIATION/RETURNED pairs.
_RETURN_PCT = const(90)


class Escort:
    def __init__(self, hal, seal_id):
        self.seal_id = seal_id
        self._escort_store = Store(hal, "escort")
        self._latch_store = Store(hal, "latch")
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
        self.corridor_m = 0
        self.route = b""  # route points, i32 lat_e5, i32 lon_e5 each (8 bytes a point)
        self.latched = 0  # ALARM_CABLE_CUT | ALARM_HOUSING_OPENED while latched
        self.deviated = False
        self.dl_boot = -1  # last accepted downlink (boot, seq); -1: none yet
        self.dl_seq = -1

    # ---- persistence --------------------------------------------------------------------------

    def load(self):
        raw = self._escort_store.load()
        if raw is not None:
            self._unpack(raw)
        raw = self._latch_store.load()
        if raw is not None and len(raw) == 2:
            self.latched = raw[0] & _LATCHED
            self.deviated = bool(raw[1])
        raw = self._dl_store.load()
        if raw is not None and len(raw) == 8:
            self.dl_boot, self.dl_seq = struct.unpack(">II", raw)

    def _pack(self):
        parts = [struct.pack(">BIIIIHH", self.state, self.escort_id, self.last_escort_id,
                             self.period_start, self.period_end, self.corridor_m,
                             len(self.route) // 8)]
        for s in (self.declaration, self.vehicle, self.dest_office_code, self.dest_office_name):
            b = s.encode()
            parts.append(bytes((len(b),)) + b)
        parts.append(self.route)
        return b"".join(parts)

    def _unpack(self, raw):
        (self.state, self.escort_id, self.last_escort_id, self.period_start, self.period_end,
         self.corridor_m, n) = struct.unpack(">BIIIIHH", raw[0:21])
        o = 21
        strs = []
        for _ in range(4):
            ln = raw[o]
            strs.append(bytes(raw[o + 1:o + 1 + ln]).decode())
            o += 1 + ln
        self.declaration, self.vehicle, self.dest_office_code, self.dest_office_name = strs
        self.route = bytes(raw[o:o + 8 * n])

    def _save_escort(self):
        self._escort_store.save(self._pack())

    def _save_latch(self):
        self._latch_store.save(bytes((self.latched, 1 if self.deviated else 0)))

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
        if escort_id == 0 or len(route) % 8 or len(route) > 8 * MAX_ROUTE:
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
        self.corridor_m = corridor_m
        self.route = bytes(route)
        self._save_escort()
        if self.latched or self.deviated:
            self.latched = 0
            self.deviated = False
            self._save_latch()
        return OK

    def deactivate(self, escort_id, seal_number, declaration, vehicle):
        if self.state != ACTIVE:
            if escort_id == self.last_escort_id and escort_id:
                return OK  # repeated after a lost result
            return WRONG_STATE
        if (seal_number != self.seal_id or escort_id != self.escort_id
                or declaration != self.declaration or vehicle != self.vehicle):
            return MISMATCH
        self.last_escort_id = self.escort_id
        self.state = INACTIVE
        self.escort_id = 0
        self.route = b""
        self._save_escort()
        # Latches stay as they were until the next activation, so a STATE right after
        # deactivation still says whether the escort ended clean.
        return OK

    # ---- alarms -------------------------------------------------------------------------------

    def lock_opened(self, cable, housing):
        # A debounced opening edge. Returns the alarm bits newly latched (0 while INACTIVE:
        # opening an unarmed seal is its normal use).
        if self.state != ACTIVE:
            return 0
        new = (ALARM_CABLE_CUT if cable else 0) | (ALARM_HOUSING_OPENED if housing else 0)
        new &= ~self.latched
        if new:
            self.latched |= new
            self._save_latch()
        return new

    # ---- corridor -----------------------------------------------------------------------------

    def route_points(self):
        return len(self.route) // 8

    def distance_m(self, lat_e7, lon_e7):
        # Distance from a position to the route polyline, metres; -1 without a route.
        # Integer maths on a flat projection around the position, in units of 4e-5 degree
        # (4.45 m of latitude): every product stays below 2**30, so MicroPython computes it
        # in small ints without allocating (floats are heap objects there: a float version cost
        # 10 KB of garbage per fix for a 30-point route). Resolution a few metres; anything
        # farther than ~0.33 degree is reported as at least that far (corridors are < 65 km).
        n = len(self.route) // 8
        if n == 0:
            return -1
        kx = int(cos(lat_e7 * 1.7453292519943295e-9) * 1024)  # longitude scale, 1/1024
        py = lat_e7 // 400
        px = lon_e7 // 400
        r = self.route
        best = -1
        ax = ay = 0
        a_far = True
        for k in range(n):
            lat, lon = struct.unpack_from(">ii", r, 8 * k)
            by = lat // 4 - py
            bx = ((lon // 4 - px) * kx + 512) >> 10  # rounded, not floored: symmetric
            b_far = by > _WIN or by < -_WIN or bx > _WIN or bx < -_WIN
            if k == 0:
                if not b_far:
                    best = by * by + bx * bx
            elif not (a_far and b_far):
                dx = bx - ax
                dy = by - ay
                ll = dx * dx + dy * dy
                num = -(ax * dx + ay * dy)
                if num <= 0 or ll == 0:
                    d2 = ax * ax + ay * ay  # nearest to the segment's start
                elif num >= ll:
                    d2 = bx * bx + by * by  # nearest to its end
                else:
                    # Perpendicular: |a x d| / |d|. Squared in ints while that cannot overflow;
                    # beyond ~145 km*units it costs one float (such a point is far out anyway).
                    cross = ax * dy - ay * dx
                    if cross < 0:
                        cross = -cross
                    if cross < 32768:
                        d2 = cross * cross // ll
                    else:
                        q = cross // (int(sqrt(ll)) or 1)
                        d2 = q * q
                if best < 0 or d2 < best:
                    best = d2
            ax = bx
            ay = by
            a_far = b_far
        if best < 0:
            return _FAR_M
        return int(sqrt(best) * _M_PER_UNIT)

    def route_check(self, lat_e7, lon_e7):
        # -> (event, distance_m): event 11 ROUTE_DEVIATION, 12 ROUTE_RETURNED or 0.
        if self.state != ACTIVE or self.corridor_m == 0 or len(self.route) < 8:
            return 0, -1
        d = self.distance_m(lat_e7, lon_e7)
        if not self.deviated and d > self.corridor_m:
            self.deviated = True
            self._save_latch()
            return 11, d
        if self.deviated and d * 100 < self.corridor_m * _RETURN_PCT:
            self.deviated = False
            self._save_latch()
            return 12, d
        return 0, d

    def alarms(self):
        return self.latched | (ALARM_ROUTE_DEVIATION if self.deviated else 0)
