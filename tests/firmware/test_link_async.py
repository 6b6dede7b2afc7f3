"""The MQTT link's behaviour on three interpreters: CPython, the WebAssembly MicroPython and the
unix port. The checks live in tests/firmware/mp/link_check.py (an in-memory broker that can hold
PUBACKs, stall, and cut a connection mid-packet); each interpreter runs the same coroutine and
prints what it saw, and the assertions here are the same for all three."""

from __future__ import annotations

import ast
import asyncio
import sys
from pathlib import Path

import pytest

from mp_helper import REPO, require_mp, run_mp
from mp_unix import require_unix, run_unix

MP_DIR = Path(__file__).resolve().parent / "mp"
INTERPRETERS = ["cpython", "webassembly", "unix"]


def _run(interp: str, call: str) -> dict:
    if interp == "cpython":
        sys.path.insert(0, str(MP_DIR))
        try:
            import link_check

            return asyncio.run(eval(f"link_check.{call}"))
        finally:
            sys.path.remove(str(MP_DIR))
    if interp == "webassembly":
        require_mp()
        code = ("import sys\nsys.path.insert(0, '/t')\nimport link_check\n"
                f"r = await link_check.{call}\nprint('RESULT', repr(r))\n")
        res = run_mp(code, copies=[(MP_DIR, "/t")], use_async=True, timeout=180)
    else:
        require_unix()
        code = ("import asyncio, link_check\n"
                f"r = asyncio.run(link_check.{call})\nprint('RESULT', repr(r))\n")
        res = run_unix(code, paths=[REPO / "firmware", MP_DIR], timeout=180)
    assert res.returncode == 0, f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return ast.literal_eval(line[len("RESULT "):])


@pytest.mark.micropython
@pytest.mark.parametrize("interp", INTERPRETERS)
def test_downlink_during_a_publish_wait_is_queued_not_handled_inside(interp):
    r = _run(interp, "downlink_during_publish()")
    assert r["in_publish"] == 0  # nothing reached the core while the publish waited
    assert r["acked_before_poll"] is False  # PUBACKed only once the loop handled it
    assert r["calls"] == 1
    assert r["uplinks"] == [b"RECORDS-1", b"RESULT-ACTIVATE"]
    assert r["sent"] == 2  # both PUBACKs matched by packet id
    assert r["states"] == [True]  # delivered by poll(), like the downlink


@pytest.mark.micropython
@pytest.mark.slow
@pytest.mark.parametrize("interp", INTERPRETERS)
def test_a_broker_that_stalls_10_s_never_blocks_the_loop(interp):
    r = _run(interp, "broker_stalls(10000, 3000)")
    assert r["down"], r
    # Measured by the clock: the missing PUBACK is noticed after response_ms, not never.
    assert 2900 <= r["detected_ms"] <= 5000, r
    assert r["delivered"], r
    assert r["uplinks"][0] == b"RECORDS-1" and r["uplinks"][-1] == b"RECORDS-1", r
    assert r["failures"] >= 2, r  # the PUBACK, then at least one CONNACK that never came
    # The machine is shared: a p99, with the max in the message for the record.
    assert r["ticks"] > 500 and r["lag_p99"] < 50, r


@pytest.mark.micropython
@pytest.mark.parametrize("interp", INTERPRETERS)
def test_a_connection_dropped_mid_packet_reconnects_and_gets_the_redelivery(interp):
    r = _run(interp, "drop_mid_packet()")
    assert r["connects"] == 2
    assert r["frames"] == [b"DEACTIVATE"], r
    assert r["states"] == [True, False, True], r
    assert "EOF" in r["error"] or "closed" in r["error"], r


@pytest.mark.micropython
@pytest.mark.parametrize("interp", INTERPRETERS)
def test_a_command_that_failed_is_not_acked_and_a_handled_one_is_not_handled_twice(interp):
    r = _run(interp, "memory_error_is_not_acked()")
    assert r["raised"] and r["acked_after_fault"] is False, r
    assert r["frames"] == [b"ACTIVATE"], r  # the redelivery after the fault, and only it
    assert r["redelivered"] == 1, r
