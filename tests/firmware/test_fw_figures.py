"""Figures for the firmware note, measured on every run (and bounded, so a regression fails):
time per NMEA fix and per codec frame under CPython and the real MicroPython, the heap of the
parser, codec, deframer and lock inputs. `pytest -s` prints them."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from mp_helper import REPO, parse_heap, require_mp, run_mp

BENCH = REPO / "tests" / "micropython" / "bench_fw.py"


def _figures(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line.startswith("FIG "):
            parts = line.split()
            try:
                out[parts[1]] = float(parts[2])
            except ValueError:
                out[parts[1]] = parts[2]
    return out


@pytest.fixture(scope="module")
def cpython_figures():
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        runpy.run_path(str(BENCH), run_name="__main__")
    return _figures(buf.getvalue())


@pytest.mark.micropython
def test_figures_micropython_vs_cpython(cpython_figures):
    require_mp()
    res = run_mp(script=BENCH)
    assert res.returncode == 0, res.stderr
    mp = _figures(res.stdout)
    cp = cpython_figures
    assert mp["implementation"] == "micropython" and cp["implementation"] == "cpython"
    ratio = mp["nmea_us_per_fix"] / cp["nmea_us_per_fix"]
    print(f"\nNMEA per fix: MicroPython {mp['nmea_us_per_fix']:.0f} us, CPython "
          f"{cp['nmea_us_per_fix']:.1f} us, ratio {ratio:.1f}")
    for name in ("codec_encode_event_us", "codec_encode_records60_us", "codec_decode_ack_us",
                 "codec_decode_records60_us", "cobs_deframe_records60_us"):
        print(f"{name}: MicroPython {mp[name]:.0f} us, CPython {cp[name]:.1f} us")
    for name in ("heap_nmea_parser", "heap_codec", "heap_deframer", "heap_lock_inputs",
                 "nmea_alloc_per_fix", "codec_alloc_per_ack_decode"):
        print(f"{name}: {mp[name]:.0f} bytes")
    # Bounds with a wide margin (shared CI machines): a 10x regression fails, noise does not.
    assert mp["nmea_us_per_fix"] < 5000 and cp["nmea_us_per_fix"] < 500
    assert mp["codec_decode_ack_us"] < 500 and mp["codec_encode_records60_us"] < 1000
    assert mp["heap_nmea_parser"] <= 1024 and mp["heap_lock_inputs"] <= 512
    assert mp["heap_codec"] <= 3072 and mp["heap_deframer"] <= 2560
    assert mp["nmea_alloc_per_fix"] <= 8192


@pytest.mark.micropython
def test_live_heap_between_steps():
    require_mp()
    res = run_mp("import bench_fw", copies=[(BENCH, "/lib/bench_fw.py")], steps="bench_fw.busy(100)")
    assert res.returncode == 0, res.stderr
    peak_end, peak_live, base, steps = parse_heap(res.stdout)
    print(f"\nMP_HEAP parser+codec+deframer+lock busy: peak {peak_end} B after a step, "
          f"{peak_live} B live, over {steps} steps")
    assert steps == 100
    assert peak_end < 32 * 1024 and peak_live < 32 * 1024
