"""The decode benchmark runs and compares like with like (figures come from running it, not here)."""

from navseal.bench import bench_decode


def test_bench_decode_runs_on_tiny_sizes():
    r = bench_decode.run(n_frames=20, n_records=5, rounds=1)
    assert r["project_records_per_s"] > 0 and r["baseline_records_per_s"] > 0
    assert r["frame_bytes"] == 35 + 9 + 5 * 16
