"""GnssCheck.judge() against a spoofer (hypothesis, CPython on the firmware module): whatever
sequence of spoofed fixes came first (times far behind or ahead, positions anywhere, any pace),
with or without the gateway's time, with the seal's clock anywhere after a boot, true GNSS is
refused at most twice and then taken, fix after fix: no lock-out (docs/decisions/0019)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from navseal_fw.gnss_check import CLOCK_SLACK_S, GnssCheck

T0 = 1764115200
LAT, LON = 432380000, 769450000  # where the truck really is (1e-7 degree)
TRUE_FIXES = 6

spoofed = st.tuples(
    st.one_of(st.integers(-400_000_000, 400_000_000), st.integers(-2 * CLOCK_SLACK_S, 2 * CLOCK_SLACK_S)),
    st.integers(-20_000_000, 20_000_000),  # latitude offset
    st.integers(-20_000_000, 20_000_000),  # longitude offset
    st.integers(0, 5000),  # ms since the previous fix
)


@settings(max_examples=200, deadline=None)
@given(before=st.integers(0, 5), spoof=st.lists(spoofed, max_size=25),
       clock_off=st.one_of(st.none(), st.integers(-400_000_000, 400_000_000)),
       gateway=st.booleans(), pace_ms=st.integers(200, 3000))
def test_spoofed_fixes_never_lock_the_seal_out_of_true_gnss(before, spoof, clock_off, gateway, pace_ms):
    g = GnssCheck(250)
    ms = 0
    truth = T0  # the true UTC at ms

    def judge(t, lat, lon):
        # as SealCore calls it: the clock only for the first fix of a boot
        clock = truth + clock_off if clock_off is not None and not g.last_t else 0
        return g.judge(t, lat, lon, ms, clock if clock > 0 else 0, truth if gateway else 0)

    for _ in range(before):  # true fixes before the spoofer starts
        ms += 1000
        truth += 1
        judge(truth, LAT, LON)
    for off, dlat, dlon, step in spoof:
        ms += step
        truth = T0 + ms // 1000
        t = truth + off
        if t > 0:
            judge(t, LAT + dlat, LON + dlon)
    taken = []
    for _ in range(TRUE_FIXES):  # the spoofer is gone: true fixes, one each pace_ms
        ms += pace_ms
        if T0 + ms // 1000 == truth:
            ms += 1000 - ms % 1000  # a new epoch (a receiver sends one per second at most)
        truth = T0 + ms // 1000
        taken.append(judge(truth, LAT, LON))
    assert all(taken[2:]), taken
    assert g.last_t == truth
