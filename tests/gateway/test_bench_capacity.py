"""The capacity model's arithmetic, and its benchmark end to end at tiny sizes on both engines
(the figures are for docs/gateway.md, not asserted here)."""

import json
import subprocess
import sys

import pytest

from navseal.bench.bench_capacity import fleet_frames_per_s, instances_needed


def test_the_model_counts_reports_and_heartbeats():
    # 100,000 seals moving: one report every 30 s and a STATE every 900 s each.
    assert fleet_frames_per_s(100_000, 1.0) == pytest.approx(100_000 / 30 + 100_000 / 900)
    # stopped: every 300 s
    assert fleet_frames_per_s(100_000, 0.0) == pytest.approx(100_000 / 300 + 100_000 / 900)
    assert instances_needed(3444, 1200, 0.5) == 6
    assert instances_needed(10, 1200) == 1


@pytest.mark.parametrize("engine", [[], ["--postgresql"]], ids=["sqlite", "postgresql"])
def test_bench_capacity_smoke(mosquitto_factory, engine):  # the fixture only skips when Mosquitto is missing
    result = subprocess.run(
        [sys.executable, "-m", "navseal.bench.bench_capacity", "--seals", "300", "--window-s", "2",
         "--capacity-frames", "300", "--idle-s", "5", "--json", *engine],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["capacity"]["acked"] == 300
    assert figures["model_run"]["acked"] == figures["model_run"]["frames"] == int(fleet_frames_per_s(300, 1.0) * 2)
    assert figures["engine"] == ("postgresql" if engine else "sqlite")
