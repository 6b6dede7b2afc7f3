"""PipelineRunner waits for the pipeline's next deadline through its clock: on the emulator's faster
clock a rule deadline fires on time in virtual seconds, not up to `scale` times late; a clock of
unknown speed is polled in short steps; wall time waits as before."""

from __future__ import annotations

import threading
import time

from navseal.emu.clock import RealTimeClock
from navseal.gateway.metrics import ServiceMetrics
from navseal.gateway.runner import (
    MAX_IDLE_WAIT_S,
    UNKNOWN_CLOCK_WAIT_S,
    PipelineRunner,
    wall_seconds_until,
)

T0 = 1_764_115_200.0


class _DeadlinePipeline:
    """Just what the runner asks of a pipeline: one deadline, ticked once."""

    def __init__(self, deadline: float) -> None:
        self.deadline: float | None = deadline
        self.ticked_at: list[float] = []
        self.fired = threading.Event()
        self.last_tick_events: list = []
        self.wakeup = None

    def next_deadline(self) -> float | None:
        return self.deadline

    def tick(self, now: float) -> list:
        self.ticked_at.append(now)
        self.deadline = None
        self.fired.set()
        return []


def _run(pipeline, clock) -> PipelineRunner:
    runner = PipelineRunner(pipeline, ServiceMetrics(), clock=clock)  # type: ignore[arg-type]
    runner.start()
    return runner


def test_wall_seconds_until_converts_through_the_clock():
    now = time.time()
    assert 9.5 < wall_seconds_until(time.time, now + 10) <= 10
    fast = RealTimeClock(T0, scale=500)
    assert 0.15 < wall_seconds_until(fast, fast() + 100) <= 0.2  # 100 virtual s = 0.2 wall s
    frozen = lambda: T0  # noqa: E731 - a test's clock: its speed is unknown
    assert wall_seconds_until(frozen, T0 + 3600) == UNKNOWN_CLOCK_WAIT_S
    assert wall_seconds_until(frozen, T0 - 5) == -5

    class Converting:
        def __call__(self) -> float:
            return T0

        def wall_seconds_until(self, t: float) -> float:
            return (t - T0) / 60

    assert wall_seconds_until(Converting(), T0 + 120) == 2


def test_deadline_on_a_scaled_clock_fires_on_time_in_virtual_seconds():
    clock = RealTimeClock(T0, scale=1000)
    deadline = clock() + 100  # 0.1 wall s ahead
    pipeline = _DeadlinePipeline(deadline)
    runner = _run(pipeline, clock)
    try:
        assert pipeline.fired.wait(5), "the deadline never fired"
    finally:
        runner.stop(5)
    late = pipeline.ticked_at[0] - deadline
    # Before: the runner waited min(1 s, 100) wall seconds = 1,000 virtual s, i.e. 900 s late.
    assert 0 <= late < 500, late


def test_deadline_on_a_clock_of_unknown_speed_is_noticed_within_a_short_step():
    now = [T0]
    pipeline = _DeadlinePipeline(T0 + 60)
    runner = _run(pipeline, lambda: now[0])
    try:
        time.sleep(0.2)  # the runner is waiting; the deadline is 60 s ahead on its clock
        assert not pipeline.fired.is_set()
        now[0] = T0 + 61  # the test's clock jumps past the deadline, nobody wakes the runner
        jumped = time.monotonic()
        assert pipeline.fired.wait(5), "the deadline never fired"
        noticed = time.monotonic() - jumped
    finally:
        runner.stop(5)
    # Before: one wait of min(1 s, 60) = 1 s went by first.
    assert noticed < MAX_IDLE_WAIT_S / 2, noticed
    assert pipeline.ticked_at == [T0 + 61]
