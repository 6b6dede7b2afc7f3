"""Nothing trusted from the air: forged and replayed commands are refused; deactivation needs
the escort's own data (clause 13)."""

import pytest

from navseal.hil.frames import EscortData
from navseal.hil.steps import activate, deactivate
from navseal.protocol import test_key

pytestmark = pytest.mark.needs("lock")


def test_forged_command_is_refused_and_journaled(dut):
    escort = EscortData(escort_id=8401)
    wrong_key = test_key(dut.seal_id + 1)  # a real key, of another seal
    seq = dut.send_command("ACTIVATE", escort.activate(dut.seal_id), key=wrong_key)
    ev = dut.expect("EVENT", code="COMMAND_REJECTED", timeout=3)
    assert ev.payload["value"] == 1  # bad MAC
    # No answer to a command that may not be for this seal, and no state change.
    dut.expect_none("COMMAND_RESULT", cmd_seq=seq, within=1.0)
    state = dut.expect("STATE", timeout=3)
    assert state.payload["state"] == "INACTIVE" and state.payload["escort_id"] == 0
    # A genuine command damaged in transit fails its CRC: dropped, no answer, no event.
    _, genuine = dut.build_command("ACTIVATE", escort.activate(dut.seal_id))
    damaged = bytearray(genuine)
    damaged[25] ^= 0x40
    dut.send_frame(bytes(damaged))
    dut.expect_none(where=lambda f: f.type == "COMMAND_RESULT" or
                    (f.type == "EVENT" and f.payload["code"] == "COMMAND_REJECTED"), within=1.0)
    dut.expect_none("STATE", state="ACTIVE", within=0.5)
    # A command for another seal (its own key, its own number) is not this seal's business:
    # no answer, no evidence event.
    other = dut.seal_id + 1
    dut.send_command("ACTIVATE", escort.activate(other), key=test_key(other), seal_id=other)
    dut.expect_none(where=lambda f: f.type == "COMMAND_RESULT" or
                    (f.type == "EVENT" and f.payload["code"] == "COMMAND_REJECTED"), within=1.0)


def test_replayed_commands_are_refused(dut):
    escort = EscortData(escort_id=8402)
    res = activate(dut, escort)
    activate_frame = dut.commands[res.payload["cmd_seq"]]
    deactivate(dut, escort)
    inactive = dut.expect("STATE", state="INACTIVE", timeout=3)
    assert inactive.payload["escort_id"] == 0
    # Someone recorded the ACTIVATE and plays it back to re-arm the seal.
    dut.send_frame(activate_frame)
    res = dut.expect("COMMAND_RESULT", timeout=3)
    assert res.payload["result"] == "REPLAYED"
    assert res.payload["state"] == "INACTIVE"
    ev = dut.expect("EVENT", code="COMMAND_REJECTED", timeout=3)
    assert ev.payload["value"] == 2  # replayed
    dut.expect_none("STATE", state="ACTIVE", within=1.5)


@pytest.mark.needs("power")
def test_replay_window_survives_a_power_cut(dut):
    escort = EscortData(escort_id=8403)
    activate(dut, escort)
    res = deactivate(dut, escort)
    deactivate_frame = dut.commands[res.payload["cmd_seq"]]
    activate(dut, EscortData(escort_id=8404))
    dut.bench.power.cycle()
    dut.expect("HELLO", timeout=10)
    dut.send_frame(deactivate_frame)  # an old DEACTIVATE after the seal forgot its RAM
    res = dut.expect("COMMAND_RESULT", timeout=3)
    assert res.payload["result"] == "REPLAYED"
    assert res.payload["state"] == "ACTIVE" and res.payload["escort_id"] == 8404


def test_deactivation_needs_matching_escort_data(dut):
    escort = EscortData(escort_id=8405)
    activate(dut, escort)
    for override in ({"declaration": "50508/261126/0009999"}, {"vehicle": "001AAA01"},
                     {"seal_number": dut.seal_id + 1}, {"escort_id": 9999}):
        res = deactivate(dut, escort, expect_result="MISMATCH", **override)
        assert res.payload["state"] == "ACTIVE", override
    res = deactivate(dut, escort)
    assert res.payload["state"] == "INACTIVE" and res.payload["escort_id"] == 0
    state = dut.expect("STATE", state="INACTIVE", timeout=3)
    assert state.payload["alarms"]["CABLE_CUT"] is False  # ended clean
    # Deactivating again (the result was lost, the office repeats it): still OK, no new escort.
    res = deactivate(dut, escort)
    assert res.payload["state"] == "INACTIVE"
