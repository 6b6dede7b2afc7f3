# Which GNSS fixes the seal believes (sans-I/O), and its GNSS anomaly episodes.
#
#   g = GnssCheck(jump_speed_kmh=250)
#   ok = g.judge(t, lat_e7, lon_e7, now_ms, clock=0, auth=0)
#       # t: the fix's UTC (s); now_ms: the seal's monotonic clock; clock: its wall clock (0:
#       # unknown), which only the first fix of a boot is held against; auth: the gateway's
#       # authenticated time now (0: none since boot; seal.py carries it forward from the last
#       # downlink). True: take it (g.last_t/_lat/_lon are then the fix). g.kind/g.detail: an
#       # anomaly to raise (0: none)
#   g.note(kind)                        # an anomaly seen elsewhere (the parser's invalid date)
#   if g.kind: journal GNSS_ANOMALY (g.kind << 24 | g.detail)   (seal.py, once per kind and episode)
#
# Refused, and an anomaly (docs/protocol.md GNSS_ANOMALY kinds; docs/decisions/0019):
#   1 time_backwards   a fix dated before the last one the seal took (detail: seconds back); the
#                      first fix after a boot more than CLOCK_SLACK_S before the seal's own clock
#                      (when set; taken all the same when the gateway's time vouches for it: the
#                      anomaly is then the seal's clock); any fix more than CLOCK_SLACK_S before
#                      the gateway's time.
#   4 time_forward     a fix dated more than CLOCK_SLACK_S ahead of the last one taken plus the
#                      monotonic time since (detail: seconds ahead), or of the gateway's time.
#   2 impossible_speed a fix farther from the last one than jump_speed_kmh allows (detail:
#                      metres).
#   3 invalid_date     an RMC claiming a fix with a date or time that does not exist (the parser
#                      refuses it; seal.py notes it here).
# A fix with the same time as the last one is a repeated epoch: ignored, no anomaly.
#
# Who is right. Against the gateway's time (authenticated: every downlink frame carries it) a
# fix outside the slack is refused however many agree with it: a replay of the past or a push
# into the future stays refused while the seal knows the true time. Against the seal's own
# history (the last fix taken, or a clock only GNSS set: both spoofable) a refused fix is a
# candidate, and it is taken when the next fix agrees with it (later, its time consistent with
# the monotonic time between them, within the slack, and not too fast from it): the receiver
# was right and the seal moves to its time and place. So a spoofer who got a future time taken
# cannot lock the seal out of true GNSS: the first true fix is refused, the second agrees with
# it and is taken (property-tested: test_gnss_evidence.py).
#
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
TIME_FORWARD = const(4)
CLEAR_FIXES = const(10)  # fixes taken in a row without an anomaly that end an episode
CLOCK_SLACK_S = const(300)  # how far a fix may stray from the time the seal expects
_DETAIL_MAX = const(0xFFFFFF)


class GnssCheck:
    def __init__(self, jump_speed_kmh=250):
        self.jump_speed_kmh = jump_speed_kmh
        self.last_t = 0  # the last fix taken (0: none since boot), and when (monotonic ms)
        self.last_ms = 0
        self.last_lat = 0
        self.last_lon = 0
        self._c_t = 0  # a refused fix the next one may agree with (0: none)
        self._c_ms = 0
        self._c_lat = 0
        self._c_lon = 0
        self.kinds_now = 0  # kinds raised in the ongoing episode (bit kind-1), 0: no episode
        self._good = 0  # fixes taken in a row since the last anomaly
        self.kind = 0  # set by judge(): an anomaly to raise now
        self.detail = 0
        self.episode_ended = False  # set by judge(): the last fix ended an episode
        self.bad_dates = 0  # the parser's bad_dates already noted (seal.py)

    def _fast(self, d, dt):
        # d metres in dt seconds faster than the bound? (d/dt m/s * 3.6 > km/h)
        return d * 36 > self.jump_speed_kmh * dt * 10

    def _off(self, t, t0, ms0, now_ms):
        # How far t strays from t0 plus the monotonic seconds since ms0: < 0 behind, > 0 ahead.
        return t - t0 - (now_ms - ms0) // 1000

    def judge(self, t, lat, lon, now_ms, clock=0, auth=0):
        self.kind = 0
        self.episode_ended = False
        last_t = self.last_t
        if t == last_t:
            return False  # the same epoch again
        if auth:
            # The gateway's time: never argued with (no candidate, no agreement).
            if t + CLOCK_SLACK_S < auth:
                return self._refuse(TIME_BACKWARDS, auth - t)
            if t > auth + CLOCK_SLACK_S:
                return self._refuse(TIME_FORWARD, t - auth)
            if not last_t and clock and t + CLOCK_SLACK_S < clock:
                # The seal's own clock was ahead (an RTC set wrong before the boot): the gateway
                # vouches for the fix, so it is taken; the clock trouble is still an anomaly.
                self.note(TIME_BACKWARDS, clock - t)
        kind = 0
        detail = 0
        if last_t:
            ahead = self._off(t, last_t, self.last_ms, now_ms)
            if t < last_t:
                kind, detail = TIME_BACKWARDS, last_t - t
            elif ahead > CLOCK_SLACK_S:
                kind, detail = TIME_FORWARD, ahead
            else:
                dt = t - last_t
                d = flat_m(self.last_lat, self.last_lon, lat, lon, self.jump_speed_kmh * dt * 10 // 36)
                if self._fast(d, dt):
                    kind, detail = IMPOSSIBLE_SPEED, d
        elif clock and not auth and t + CLOCK_SLACK_S < clock:
            kind, detail = TIME_BACKWARDS, clock - t  # a clock only GNSS (or a past boot) set
        if kind:
            c_t = self._c_t
            agrees = (c_t and t > c_t
                      and -CLOCK_SLACK_S <= self._off(t, c_t, self._c_ms, now_ms) <= CLOCK_SLACK_S
                      and not self._fast(flat_m(self._c_lat, self._c_lon, lat, lon), t - c_t))
            if not agrees:
                self._c_t = t
                self._c_ms = now_ms
                self._c_lat = lat
                self._c_lon = lon
                return self._refuse(kind, detail)
            # two fixes agree on the new time and place: the receiver was right
        self._c_t = 0
        self.last_t = t
        self.last_ms = now_ms
        self.last_lat = lat
        self.last_lon = lon
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
