# The loop's lag histogram and its phase window (navseal_fw.loopstats), on every interpreter.
from navseal_fw.loopstats import LoopStats


def test_percentiles_from_the_1ms_histogram():
    s = LoopStats()
    for ms in [0] * 90 + [3] * 9 + [40]:
        s.lag(ms)
    assert s.n == 100 and s.total.percentile(50) == 0 and s.total.percentile(99) == 3
    assert s.total.percentile(100) == 40 and s.total.max_ms == 40
    s.lag(-2)  # a wake a little early counts as on time
    s.lag(5000)  # beyond the histogram: the top bin, the max keeps the value
    assert s.total.bins[0] == 91 and s.total.bins[100] == 1 and s.total.max_ms == 5000


def test_phase_window_restarts_but_the_total_keeps_counting():
    s = LoopStats()
    for ms in (1, 2, 30):
        s.lag(ms)
    line = s.phase_line()
    assert "lag_n=3 " in line and "lag_max=30 " in line, line
    s.lag(7)
    assert "lag_n=1 " in s.phase_line() and "lag_n=4 " in s.line()
    assert "lag_n=0 " in s.phase_line()


def test_busy_keeps_the_longest_step_and_where():
    s = LoopStats()
    s.busy(3, "gnss")
    s.busy(12, "poll")
    s.busy(5, "gc")
    assert "busy_max=12 busy_at=poll " in s.line()
    assert "busy_max=12 busy_at=poll " in s.phase_line()
    assert "busy_max=0 busy_at=- " in s.phase_line()
