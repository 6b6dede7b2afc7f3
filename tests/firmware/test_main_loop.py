"""The seal's program (navseal_fw.app, which firmware/main.py starts): its asyncio loop drives
SealCore, under CPython, the WebAssembly MicroPython and the unix port."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from mp_helper import REPO, require_mp, run_mp
from mp_unix import require_unix, run_unix

MP_DIR = Path(__file__).resolve().parent / "mp"


def _load_main():
    from navseal_fw import app

    return app


def test_main_loop_cpython():
    sys.path.insert(0, str(MP_DIR))
    try:
        import main_check

        types = asyncio.run(main_check.check(_load_main()))
        serial_types = asyncio.run(main_check.check_serial(_load_main()))
        bench_replies = asyncio.run(main_check.check_bench(_load_main()))
        asyncio.run(main_check.check_bench_disabled(_load_main()))
        assert asyncio.run(main_check.check_fault(_load_main()))
        delays = asyncio.run(main_check.check_lock_pulse(_load_main()))
    finally:
        sys.path.remove(str(MP_DIR))
    assert types[0] == 0x01 and serial_types[0] == 0x01
    assert bench_replies[-1] == "OK REBOOT"
    assert max(delays) < WOKEN_MS, delays


# A lock edge wakes the loop (its naps last up to a second): a pulse is an episode within this
# (three pulses at random points of the naps would be this quick by chance 0.3 % of the time).
WOKEN_MS = 150


def _delays(out: str) -> list[int]:
    line = next(x for x in out.splitlines() if x.startswith("PULSE "))
    return [int(v) for v in line.split()[1:]]


@pytest.mark.micropython
def test_main_loop_micropython():
    require_mp()
    code = (
        "import sys\n"
        "sys.path.insert(0, '/t')\n"
        "import main_check\n"
        "from navseal_fw import app as main\n"
        "from mpmem import Peak\n"
        "peak = Peak()\n"
        "types = await main_check.check(main, peak)\n"
        "await main_check.check_serial(main)\n"
        "print('BENCH', (await main_check.check_bench(main))[-1])\n"
        "await main_check.check_bench_disabled(main)\n"
        "print('FAULT', await main_check.check_fault(main))\n"
        "print('PULSE', *(await main_check.check_lock_pulse(main)))\n"
        "peak.sample_live()\n"
        "peak.report()\n"
        "print('TYPES', types)\n"
    )
    res = run_mp(code, copies=[(MP_DIR, "/t")], use_async=True)
    assert res.returncode == 0, f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    assert "TYPES [1" in res.stdout
    assert "BENCH OK REBOOT" in res.stdout
    assert "FAULT True" in res.stdout
    assert max(_delays(res.stdout)) < WOKEN_MS, res.stdout


@pytest.mark.micropython
def test_main_loop_unix_port():
    require_unix()
    code = (
        "import asyncio, main_check\n"
        "from navseal_fw import app as main\n"
        "types = asyncio.run(main_check.check(main))\n"
        "asyncio.run(main_check.check_serial(main))\n"
        "print('BENCH', asyncio.run(main_check.check_bench(main))[-1])\n"
        "asyncio.run(main_check.check_bench_disabled(main))\n"
        "print('FAULT', asyncio.run(main_check.check_fault(main)))\n"
        "print('PULSE', *asyncio.run(main_check.check_lock_pulse(main)))\n"
        "print('TYPES', types)\n"
    )
    res = run_unix(code, paths=[REPO / "firmware", MP_DIR, REPO / "tests" / "micropython"])
    assert res.returncode == 0, f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    assert "TYPES [1" in res.stdout
    assert "BENCH OK REBOOT" in res.stdout
    assert "FAULT True" in res.stdout
    assert max(_delays(res.stdout)) < WOKEN_MS, res.stdout
