# Which GNSS fixes the seal believes (sans-I/O), and its GNSS anomaly episodes.
#
#   g = GnssCheck(jump_speed_kmh=250)
#   ok = g.judge(t, lat_e7, lon_e7, clock, last_t, last_lat, last_lon)
#       # the new fix against the last one taken (last_t 0: none since boot) and the seal's clock
#       # (0: unknown); True: take it. g.kind/g.detail: an anomaly to raise (0: none)
#   g.note(kind)                        # an anomaly seen elsewhere (the parser's invalid date)
#   if g.raise_now(kind): journal GNSS_ANOMALY (kind << 24 | detail)
#
# Refused, and an anomaly (docs/protocol.md GNSS_ANOMALY kinds):
#   1 time_backwards   a fix dated before the last one the seal took (detail: seconds back), or,
#                      for the first fix after a boot, more than CLOCK_SLACK_S before the seal's
#                      own clock (when that is set). A fix with the same time as the last one
#                      is a repeated epoch: ignored, no anomaly. Time going backwards is never
#                      taken, as a fix or as the seal's clock (seal.py sets its clock only
#                      forward from GNSS).
#   2 impossible_speed a fix farther from the last one than jump_speed_kmh allows (detail:
#                      metres); taken once a second fix agrees with it (the receiver was right
#                      and the vehicle is there: e.g. after a long outage with little elapsed).
#   3 invalid_date     an RMC claiming a fix with a date or time that does not exist (the parser
#                      refuses it; seal.py notes it here).
# An anomaly episode starts at the first anomaly and ends after CLEAR_FIXES fixes in a row were
# taken without one; within an episode each kind is raised once. So a receiver stuck in a bad
# state raises one event per kind, not one per second, and a new episode after a good stretch is
# raised again.

from navseal_fw.corridor import flat_m

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):  # type: ignore[no-redef,misc]  # the stub's signature is generic
        return x

TIME_BACKWARDS = const(1)
IMPOSSIBLE_SPEED = const(2)
INVALID_DATE = const(3)
CLEAR_FIXES = const(10)  # fixes taken in a row without an anomaly that end an episode
CLOCK_SLACK_S = const(300)  # the seal's clock may lag or lead GNSS by this much after a boot
_DETAIL_MAX = const(0xFFFFFF)


class GnssCheck:
    def __init__(self, jump_speed_kmh=250):
        self.jump_speed_kmh = jump_speed_kmh
        self._j_time = 0  # a fix refused for its speed: taken if the next one agrees with it
        self._j_lat = 0
        self._j_lon = 0
        self.kinds_now = 0  # kinds raised in the ongoing episode (bit kind-1), 0: no episode
        self._good = 0  # fixes taken in a row since the last anomaly
        self.kind = 0  # set by judge(): an anomaly to raise now
        self.detail = 0
        self.episode_ended = False  # set by judge(): the last fix ended an episode
        self.bad_dates = 0  # the parser's bad_dates already noted (seal.py)

    def _fast(self, d, dt):
        # d metres in dt seconds faster than the bound? (d/dt m/s * 3.6 > km/h)
        return d * 36 > self.jump_speed_kmh * dt * 10

    def judge(self, t, lat, lon, clock, last_t, last_lat, last_lon):
        self.kind = 0
        self.episode_ended = False
        if last_t:
            if t == last_t:
                return False  # the same epoch again
            if t < last_t:
                return self._refuse(TIME_BACKWARDS, last_t - t)
            dt = t - last_t
            d = flat_m(last_lat, last_lon, lat, lon, self.jump_speed_kmh * dt * 10 // 36)
            if self._fast(d, dt):
                agrees = (self._j_time and t > self._j_time
                          and not self._fast(flat_m(self._j_lat, self._j_lon, lat, lon),
                                             t - self._j_time))
                if not agrees:
                    self._j_time = t
                    self._j_lat = lat
                    self._j_lon = lon
                    return self._refuse(IMPOSSIBLE_SPEED, d)
                # two fixes agree on the new place: the receiver was right, the seal moves there
        elif clock and t + CLOCK_SLACK_S < clock:
            return self._refuse(TIME_BACKWARDS, clock - t)
        self._j_time = 0
        if self.kinds_now:
            self._good += 1
            if self._good >= CLEAR_FIXES:
                self.kinds_now = 0
                self.episode_ended = True
        return True

    def _refuse(self, kind, detail):
        self.note(kind, detail)
        return False

    def note(self, kind, detail=0):
        # An anomaly: it breaks the run of good fixes; it is to be raised if this episode has
        # not raised its kind yet (self.kind, self.detail).
        self._good = 0
        bit = 1 << (kind - 1)
        if self.kinds_now & bit:
            return
        self.kinds_now |= bit
        self.kind = kind
        self.detail = detail if detail < _DETAIL_MAX else _DETAIL_MAX
