"""The gateway benchmark runs end to end at tiny sizes (its figures are for the report, not here)."""

import json
import subprocess
import sys


def test_bench_gateway_smoke(mosquitto_factory):  # the fixture only skips when Mosquitto is missing
    result = subprocess.run(
        [sys.executable, "-m", "navseal.bench.bench_gateway", "--seals", "3", "--frames", "2", "--records", "10",
         "--alarms", "1", "--latency-s", "0.5", "--idle-s", "5", "--no-scaling", "--synchronous", "NORMAL",
         "--json"],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["throughput"]["records_in_store"] == figures["throughput"]["records_expected"] == 60
    assert figures["throughput"]["acked_frames"] == 6
    assert figures["mqtt_ceiling"]["acked_frames"] == 6  # the MQTT half alone ACKed every frame
    for phase in ("throughput", "mqtt_ceiling"):  # CPU per message measured (6 frames: may be 0 ticks)
        assert figures[phase]["bare_cpu_us_per_msg"] > 0 and figures[phase]["gateway_cpu_us_per_frame"] >= 0
    assert figures["latency"]["alarms_delivered"] == 1


def test_bench_gateway_smoke_on_postgresql(mosquitto_factory):
    result = subprocess.run(
        [sys.executable, "-m", "navseal.bench.bench_gateway", "--seals", "3", "--frames", "2", "--records", "10",
         "--alarms", "1", "--latency-s", "0.5", "--idle-s", "5", "--no-scaling", "--synchronous", "NORMAL",
         "--postgresql", "--postgresql-scaling", "--json"],
        capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    pg = figures["throughput_postgresql"]
    assert pg["records_in_store"] == pg["records_expected"] == 60 and pg["acked_frames"] == 6
    two = figures["scaling_postgresql"]["two"]
    assert two["acked"] == 6 and sum(two["frames_per_instance"]) == 6  # each frame committed once, by one instance
