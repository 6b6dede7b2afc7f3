# The seal's own route-corridor check (sans-I/O): distance from a fix to the route polyline, and
# the hysteresis that turns distances into ROUTE_DEVIATION / ROUTE_RETURNED.
#
# Past 400 lines on purpose: the distance and the hysteresis that consumes it are checked as one
# against the gateway's measure (gateway/geo.py) by a property test, and one module is one import
# on the seal.
#
#   c = Corridor(confirm_fixes=2, hysteresis_m=200)
#   c.set_route(route_bytes, corridor_m)   # ACTIVATE's route: i32 lat_e5, i32 lon_e5 pairs
#   c.distance_m(lat_e7, lon_e7)           # metres to the route, -1 without one
#   ev = c.check(lat_e7, lon_e7)           # 0, EV_DEVIATION or EV_RETURNED; c.d is the distance
#
# Distance: the route's vertices are projected onto a plane around the fix with the WGS84 scales
# (metres per 1e-5 degree of latitude from the meridian's radius of curvature, of longitude from
# the parallel's radius at the latitude half-way between fix and vertex), then point-to-segment in
# that plane. Against the gateway's ellipsoidal distance (gateway/geo.py, tangent plane on WGS84)
# it agrees to 0.1 % plus a metre or two (rounding of the e5 route and the e7 fix) up to FAR_M,
# 70 km (tests/firmware/test_corridor.py measures it: random routes, both hemispheres, up to 80
# degrees of latitude); beyond, the answer is FAR_M, a lower bound (no corridor on the wire is
# wider than 65,535 m). Longitudes are taken modulo 360 degrees, so a route across the
# antimeridian (continuous longitudes on the wire, beyond +-180) works.
#
# Allocation-free per fix: MicroPython keeps integers below 2**30 unboxed ("small ints"), floats
# and larger ints are heap objects. Every product here stays below 2**30: vertices are converted
# only inside a window of about 130 km (|d e5| * q12 scale < 2**29), a segment is measured in
# units of 2**s metres so its coordinates are below 8192, and the one square root is Newton's in
# integers. The route is kept as an array of ints, read without unpacking tuples. No tuple is
# returned per fix (check() leaves the distance in `d`).
#
# (Past 400 lines: half of it is the integer geometry with the reasoning for each bound, which
# only makes sense next to the code it constrains.)

from array import array

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):  # type: ignore[no-redef,misc]  # the stub's signature is generic
        return x

EV_DEVIATION = const(11)  # the protocol's ROUTE_DEVIATION and ROUTE_RETURNED codes
EV_RETURNED = const(12)
# Every segment without a vertex in the window (about 94 km around the fix, less one segment's
# extent) is farther than this: distances beyond it are reported as FAR_M, a lower bound.
FAR_M = const(70000)
_SEG_MAX_E5 = const(32768)  # the wire's i16 route deltas: no segment spans more in either axis
_UNIT_MAX = const(8192)  # a segment is measured with coordinates below this (squares < 2**27)
_LIM = const(0x20000000)  # |d e5| * scale (q12) stays below 2**29
_WRAP = const(36000000)  # 360 degrees in 1e-5 degree
_HALF = const(18000000)

# WGS84, q12 (x 4096): metres per 1e-5 degree of latitude (meridional arc) and of longitude
# (parallel of latitude) at 0, 1, ..., 90 degrees, big-endian u16 (bytes: half a tuple's RAM);
# linear in between (error below 4e-5). _KY runs 4529..4575, _KX 4560..0.
_KY = (b"\x11\xb1\x11\xb1\x11\xb1\x11\xb1\x11\xb1\x11\xb1\x11\xb2\x11\xb2\x11\xb2\x11\xb2\x11\xb2\x11\xb3"
       b"\x11\xb3\x11\xb3\x11\xb4\x11\xb4\x11\xb5\x11\xb5\x11\xb5\x11\xb6\x11\xb6\x11\xb7\x11\xb8\x11\xb8"
       b"\x11\xb9\x11\xb9\x11\xba\x11\xbb\x11\xbb\x11\xbc\x11\xbd\x11\xbd\x11\xbe\x11\xbf\x11\xbf\x11\xc0"
       b"\x11\xc1\x11\xc2\x11\xc2\x11\xc3\x11\xc4\x11\xc5\x11\xc6\x11\xc6\x11\xc7\x11\xc8\x11\xc9\x11\xca"
       b"\x11\xca\x11\xcb\x11\xcc\x11\xcd\x11\xce\x11\xce\x11\xcf\x11\xd0\x11\xd1\x11\xd1\x11\xd2\x11\xd3"
       b"\x11\xd3\x11\xd4\x11\xd5\x11\xd5\x11\xd6\x11\xd7\x11\xd7\x11\xd8\x11\xd9\x11\xd9\x11\xda\x11\xda"
       b"\x11\xdb\x11\xdb\x11\xdb\x11\xdc\x11\xdc\x11\xdd\x11\xdd\x11\xdd\x11\xde\x11\xde\x11\xde\x11\xde"
       b"\x11\xde\x11\xdf\x11\xdf\x11\xdf\x11\xdf\x11\xdf\x11\xdf")
_KY_MEAN = const(4552)
_W_EX = const(0)  # Corridor._w slots
_W_QY = const(1)
_W_VX = const(2)
_W_VY = const(3)
_W_KLAT = const(4)
_W_KY = const(5)
_W_KX = const(6)
_W_KD = const(7)
_W_SIZE = const(8)
_KX = (b"\x11\xd0\x11\xcf\x11\xcd\x11\xc9\x11\xc5\x11\xbe\x11\xb7\x11\xae\x11\xa4\x11\x98\x11\x8b\x11\x7c"
       b"\x11\x6d\x11\x5c\x11\x49\x11\x35\x11\x20\x11\x0a\x10\xf2\x10\xd9\x10\xbe\x10\xa3\x10\x86\x10\x67"
       b"\x10\x48\x10\x27\x10\x05\x0f\xe1\x0f\xbd\x0f\x97\x0f\x70\x0f\x48\x0f\x1e\x0e\xf4\x0e\xc8\x0e\x9b"
       b"\x0e\x6d\x0e\x3e\x0e\x0e\x0d\xdc\x0d\xaa\x0d\x76\x0d\x42\x0d\x0c\x0c\xd5\x0c\x9e\x0c\x65\x0c\x2b"
       b"\x0b\xf1\x0b\xb5\x0b\x79\x0b\x3b\x0a\xfd\x0a\xbe\x0a\x7e\x0a\x3d\x09\xfc\x09\xb9\x09\x76\x09\x32"
       b"\x08\xee\x08\xa8\x08\x62\x08\x1c\x07\xd4\x07\x8c\x07\x44\x06\xfb\x06\xb1\x06\x67\x06\x1c\x05\xd1"
       b"\x05\x85\x05\x39\x04\xed\x04\xa0\x04\x53\x04\x05\x03\xb7\x03\x69\x03\x1a\x02\xcc\x02\x7d\x02\x2e"
       b"\x01\xde\x01\x8f\x01\x3f\x00\xef\x00\xa0\x00\x50\x00\x00")


def scale(table, lat_e5):
    # q12 metres per 1e-5 degree at this latitude, interpolated between whole degrees.
    a = lat_e5 if lat_e5 >= 0 else -lat_e5
    i = a // 100000
    if i >= 90:
        return table[180] << 8 | table[181]
    lo = table[2 * i] << 8 | table[2 * i + 1]
    hi = table[2 * i + 2] << 8 | table[2 * i + 3]
    return lo + (hi - lo) * (a - i * 100000) // 100000


def _hyp(x, y):
    # sqrt(x*x + y*y) to the nearest integer, for |x|, |y| < 2**14: Newton from max + min/2
    # (never below the root, at most 12 % above), three or four steps.
    if x < 0:
        x = -x
    if y < 0:
        y = -y
    if x < y:
        x, y = y, x
    g = x + (y >> 1)
    if g == 0:
        return 0
    n = x * x + y * y
    while True:
        h = (g + n // g) >> 1
        if h >= g:
            break
        g = h
    return g + 1 if n - g * g > g else g  # to nearest: (g + 1/2)**2 = g*g + g + 1/4


def _scaled_hyp(x, y):
    # sqrt(x*x + y*y) for |x|, |y| < 2**18: in units of 2**s metres below 2**13.
    m = x if x >= 0 else -x
    v = y if y >= 0 else -y
    if v > m:
        m = v
    s = 0
    while (m >> s) >= _UNIT_MAX:
        s += 1
    return _hyp(x >> s, y >> s) << s


def flat_m(lat1_e7, lon1_e7, lat2_e7, lon2_e7, within=-1):
    # Metres between two positions, flat-earth at their mean latitude (the jump check's
    # distance): exact to a fraction of a per cent up to ~100 km, a coarse but monotonic answer
    # beyond (coordinates are halved until the products fit a small int). No allocation.
    # within >= 0: 0 when the distance is surely at most that (no square root: the usual case).
    dy = (lat2_e7 - lat1_e7 + 50) // 100
    dx = (lon2_e7 - lon1_e7 + 50) // 100
    if dx > _HALF or dx < -_HALF:
        dx %= _WRAP
        if dx > _HALF:
            dx -= _WRAP
    ky = _KY_MEAN  # within 0.5 % of the meridian's scale anywhere: enough for a jump check
    kx = scale(_KX, (lat1_e7 + lat2_e7) // 200)
    s = 0
    while dy >= 131072 or dy <= -131072 or dx >= 131072 or dx <= -131072:
        dy >>= 1
        dx >>= 1
        s += 1
    y = (dy * ky) >> 12
    x = (dx * kx) >> 12
    if within >= 0 and not s:
        ax = x if x >= 0 else -x
        ay = y if y >= 0 else -y
        if ax + ay <= within:  # Euclid <= L1
            return 0
    return _scaled_hyp(x, y) << s


class Corridor:
    def __init__(self, confirm_fixes=2, hysteresis_m=200):
        self.confirm = confirm_fixes if confirm_fixes >= 1 else 1
        self.hysteresis_m = hysteresis_m
        self.pts = array("i")  # lat_e5, lon_e5, lat_e5, lon_e5, ... (route vertices)
        self.corridor_m = 0
        self.deviated = False  # the caller persists it (evidence) and restores it at boot
        self.d = -1  # distance of the last check, metres
        self.run_max = 0  # largest distance of the current outside run, metres
        self._out = 0  # consecutive fixes outside the corridor
        self._in = 0  # consecutive fixes inside it by the return margin
        self._seed = 0  # the segment (its end vertex) nearest to the last fix
        # Scratch small ints in one array (fewer instance attributes: RAM on MicroPython):
        # _segment's nearest point (east share of the distance, q12; metres north), _xy's
        # vertex, the latitude (e5) the scales were computed for and those scales.
        self._w = array("i", bytes(4 * _W_SIZE))

    def set_route(self, route, corridor_m):
        # route: bytes of big-endian i32 lat_e5, i32 lon_e5 pairs (the escort stores it so).
        import struct

        n = len(route) // 8
        pts = array("i", bytes(8 * n))
        for k in range(n):
            lat, lon = struct.unpack_from(">ii", route, 8 * k)
            pts[2 * k] = lat
            pts[2 * k + 1] = lon
        self.pts = pts
        self.corridor_m = corridor_m
        self._seed = 0
        self._out = 0
        self._in = 0
        self.run_max = 0

    def clear(self):
        self.set_route(b"", 0)
        self.deviated = False

    def margin_m(self):
        # Back inside only this far within the edge: a tenth of the corridor, at least the
        # configured hysteresis, at most half the corridor.
        c = self.corridor_m
        m = c // 10
        if m < self.hysteresis_m:
            m = self.hysteresis_m
        if m > c // 2:
            m = c // 2
        return m

    def check(self, lat_e7, lon_e7):
        # One fix: 0, EV_DEVIATION (the distance in self.d) after `confirm` fixes in a row outside
        # the corridor, EV_RETURNED after as many in a row inside it by margin_m().
        if self.corridor_m == 0 or len(self.pts) < 2:
            self.d = -1
            return 0
        d = self.distance_m(lat_e7, lon_e7)
        self.d = d
        c = self.corridor_m
        if d > c:
            self._in = 0
            self._out += 1
            if self._out == 1 or d > self.run_max:
                self.run_max = d
            if not self.deviated and self._out >= self.confirm:
                self.deviated = True
                return EV_DEVIATION
        elif d <= c - self.margin_m():
            self._out = 0
            self._in += 1
            if self.deviated and self._in >= self.confirm:
                self.deviated = False
                return EV_RETURNED
        else:
            self._out = 0
            self._in = 0
        return 0

    def _segment(self, ax, ay, bx, by):
        # Distance in metres from the fix (the origin) to the segment a-b (coordinates in metres,
        # each below 2**18, the segment's extent below 2**16 in each axis); the vector from the
        # fix to the nearest point is described in _ex (its east component over its length, q12)
        # and _qy (its north component, metres), for the mid-latitude rescaling.
        m = ax if ax >= 0 else -ax
        v = ay if ay >= 0 else -ay
        if v > m:
            m = v
        v = bx if bx >= 0 else -bx
        if v > m:
            m = v
        v = by if by >= 0 else -by
        if v > m:
            m = v
        s = 0
        while (m >> s) >= _UNIT_MAX:
            s += 1
        cx = ax >> s
        cy = ay >> s
        dx = (bx >> s) - cx
        dy = (by >> s) - cy
        ll = dx * dx + dy * dy
        num = -(cx * dx + cy * dy)
        if ll == 0 or num <= 0:
            return self._point(ax, ay, _scaled_hyp(ax, ay))  # nearest to a (at its own scale)
        if num >= ll:
            return self._point(bx, by, _scaled_hyp(bx, by))  # nearest to b
        # Inside: the distance to the line, |f x u| / |u|, with f a point of the line near the
        # foot of the perpendicular (t = num / ll, roughly, in q12) and u the segment's direction.
        # Any point of the line gives the same answer; one near the foot keeps the product small,
        # so it is exact to the metre even where the coordinates above were rounded to 2**s m.
        if num < 131072:
            t = (num << 12) // ll
        else:
            t = num // (ll >> 12)  # ll > num >= 2**17: a few per cent, enough to land near the foot
            if t > 4096:
                t = 4096
        ex = bx - ax
        ey = by - ay
        fx = ax + ((ex * t) >> 12)
        fy = ay + ((ey * t) >> 12)
        # direction with its larger component in [4096, 8192): 12-bit precision whatever its length
        ux = ex
        uy = ey
        big = ux if ux >= 0 else -ux
        v = uy if uy >= 0 else -uy
        if v > big:
            big = v
        while big >= 8192:
            ux >>= 1
            uy >>= 1
            big >>= 1
        while big < 4096:
            ux <<= 1
            uy <<= 1
            big <<= 1
        k = 0  # f in units of 2**k metres, below 2**15 (the cross product stays below 2**29)
        big = fx if fx >= 0 else -fx
        v = fy if fy >= 0 else -fy
        if v > big:
            big = v
        while (big >> k) >= 32768:
            k += 1
        fx >>= k
        fy >>= k
        u = _hyp(ux, uy)
        # The coarse test above may be a few units of 2**s off near the segment's ends: there,
        # check exactly. The foot is -proj from f along the segment, a is t/4096 of its length
        # before f and b (4096 - t)/4096 after.
        dm = dx if dx >= 0 else -dx
        v = dy if dy >= 0 else -dy
        if v > dm:
            dm = v
        if num < 3 * dm or ll - num < 3 * dm:
            proj = ((fx * ux + fy * uy) // u) << k
            length = _scaled_hyp(ex, ey)
            if -proj > ((4096 - t) * length) >> 12:
                return self._point(bx, by, _scaled_hyp(bx, by))
            if proj > (t * length) >> 12:
                return self._point(ax, ay, _scaled_hyp(ax, ay))
        cross = fx * uy - fy * ux
        d = ((cross if cross >= 0 else -cross) + (u >> 1)) // u
        # the foot is d along the normal (uy, -ux) / |u|, on the side the cross product says
        self._w[_W_EX] = (uy << 12) // u
        self._w[_W_QY] = (-d * ux // u) << k
        if cross < 0:
            self._w[_W_QY] = -self._w[_W_QY]
        return d << k

    def _point(self, x, y, d):
        self._w[_W_EX] = (x << 12) // d if d > 0 else 0
        self._w[_W_QY] = y
        return d

    def _xy(self, k, fy, fx, ky, kx, lim_y, lim_x):
        # Vertex k in metres around the fix into (_vx, _vy), as the loop in distance_m does;
        # False outside the window given.
        pts = self.pts
        dy = pts[2 * k] - fy
        dx = pts[2 * k + 1] - fx
        if dx > _HALF or dx < -_HALF:
            dx %= _WRAP
            if dx > _HALF:
                dx -= _WRAP
        if dy > lim_y or dy < -lim_y or dx > lim_x or dx < -lim_x:
            return False
        self._w[_W_VY] = (dy * ky + 2048) >> 12
        self._w[_W_VX] = (dx * kx + 2048) >> 12
        return True

    def distance_m(self, lat_e7, lon_e7):
        pts = self.pts
        n = len(pts) >> 1
        if n == 0:
            return -1
        fy = (lat_e7 + 50) // 100
        fx = (lon_e7 + 50) // 100
        # A linear map around the fix (straight route segments stay straight, as the gateway
        # draws them), with the scales of the fix's latitude; the nearest point's east offset
        # is then rescaled to the latitude half-way to it (meridians converge: 0.5 % at 65 km
        # and 43 degrees without this).
        # (Scales and windows are kept while the fix stays within 0.005 degree of latitude of
        # where they were computed: they change by less than 1e-4 over that.)
        d = fy - self._w[_W_KLAT]
        if d > 500 or d < -500 or not self._w[_W_KY]:
            self._w[_W_KLAT] = fy
            self._w[_W_KY] = scale(_KY, fy)
            self._w[_W_KX] = scale(_KX, fy)
            # the parallel's scale slope, for the mid-latitude rescaling at the end
            self._w[_W_KD] = scale(_KX, fy + 100000) - scale(_KX, fy - 100000)
        ky = self._w[_W_KY]
        kx = self._w[_W_KX]
        # Convertible window: |d e5| * scale below 2**29. Vertices within it less one segment's
        # extent are "near"; a segment without a near end is farther than FAR_M, so it is never
        # measured.
        lim_y = _LIM // ky
        lim_x = _LIM // (kx + 1)
        near_y = lim_y - _SEG_MAX_E5
        near_x = lim_x - _SEG_MAX_E5
        best = -1
        ex = qy = 0
        # Seed with the segment nearest to the last fix (a vehicle moves little between fixes):
        # its distance makes the bounding-box test below skip nearly every other segment.
        seed = -1  # the segment measured here (index of its end in pts), not again below
        k = self._seed
        if 0 < k < n and self._xy(k - 1, fy, fx, ky, kx, near_y, near_x):
            ax = self._w[_W_VX]
            ay = self._w[_W_VY]
            if self._xy(k, fy, fx, ky, kx, lim_y, lim_x):
                best = self._segment(ax, ay, self._w[_W_VX], self._w[_W_VY])
                ex = self._w[_W_EX]
                qy = self._w[_W_QY]
                seed = 2 * k
        # The loop runs for every vertex of every fix: kept to as few bytecodes as it can be.
        nlim_y = -lim_y
        nlim_x = -lim_x
        nnear_y = -near_y
        nnear_x = -near_x
        ax = ay = 0
        a_ok = a_near = False
        for i in range(0, 2 * n, 2):
            dy = pts[i] - fy
            if not nlim_y <= dy <= lim_y:  # out of the window (most vertices of a long route)
                a_ok = a_near = False
                continue
            dx = pts[i + 1] - fx
            if not -_HALF <= dx <= _HALF:
                dx %= _WRAP
                if dx > _HALF:
                    dx -= _WRAP
            if not nlim_x <= dx <= lim_x:
                a_ok = a_near = False
                continue
            b_near = nnear_y <= dy <= near_y and nnear_x <= dx <= near_x
            by = (dy * ky + 2048) >> 12
            bx = (dx * kx + 2048) >> 12
            if i == 0:
                if n == 1 and b_near:  # a one-point route: its only distance
                    best = self._segment(bx, by, bx, by)
                    ex = self._w[_W_EX]
                    qy = self._w[_W_QY]
            elif a_ok and (a_near or b_near) and i != seed and best != 0:
                # Cheap lower bound first: the segment's bounding box, in the larger axis.
                if ax < bx:
                    g = ax if ax > 0 else (-bx if bx < 0 else 0)
                else:
                    g = bx if bx > 0 else (-ax if ax < 0 else 0)
                if ay < by:
                    h = ay if ay > 0 else (-by if by < 0 else 0)
                else:
                    h = by if by > 0 else (-ay if ay < 0 else 0)
                if h > g:
                    g = h
                if best < 0 or g < best:
                    d = self._segment(ax, ay, bx, by)
                    if best < 0 or d < best:
                        best = d
                        ex = self._w[_W_EX]
                        qy = self._w[_W_QY]
                        self._seed = i >> 1
            ax = bx
            ay = by
            a_ok = True
            a_near = b_near
        if best < 0 or best > FAR_M:
            return FAR_M
        # Mid-latitude east scale for the nearest point, qy metres north: kx + dk, from the
        # slope of the parallel's scale one degree either side; the east share of the distance
        # (ex, q12, squared) grows or shrinks by dk / kx. (Below 2 km it is under half a metre.)
        if best < 2000:
            return best
        dy_e5 = (qy << 12) // ky
        dk = (self._w[_W_KD] * dy_e5 + 200000) // 400000
        if dk == 0 or ex == 0:
            return best
        best += ((best * dk // kx) * ((ex * ex) >> 12)) >> 12
        return best if best < FAR_M else FAR_M
