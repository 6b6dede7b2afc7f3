"""CONFIG values the wire allows but the seal cannot use are clamped (docs/protocol.md, CONFIG)."""

from navseal_fw.seal import Config


def test_batch_max_is_clamped_to_one_frame():
    assert Config({"batch_max": 0}).batch_max == 1
    assert Config({"batch_max": 200}).batch_max == 120
    assert Config({"batch_max": 37}).batch_max == 37


def test_zero_intervals_become_one_second():
    cfg = Config({"heartbeat_s": 0, "ack_timeout_s": 0, "report_moving_s": 5})
    assert (cfg.heartbeat_s, cfg.ack_timeout_s, cfg.report_moving_s) == (1, 1, 5)
