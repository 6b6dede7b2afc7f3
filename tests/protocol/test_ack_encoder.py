"""The ACK encoder (struct on layouts read off the schema) builds exactly what the construct
definition builds: on random fields and on the golden vector."""

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from navseal.protocol import encode_ack, encode_frame, test_key


@settings(max_examples=200, deadline=None)
@given(seal_id=st.integers(1, 2**32 - 1), boot=st.integers(0, 2**32 - 1), seq=st.integers(0, 2**32 - 1),
       time=st.integers(0, 2**32 - 1), acked_boot=st.integers(0, 2**32 - 1), acked_seq=st.integers(0, 2**32 - 1),
       rseq=st.integers(0, 2**32 - 1))
def test_encode_ack_is_byte_identical_to_encode_frame(seal_id, boot, seq, time, acked_boot, acked_seq, rseq):
    payload = {"acked_boot": acked_boot, "acked_seq": acked_seq, "committed_rseq": rseq}
    key = test_key(seal_id)
    assert encode_ack(seal_id, boot, seq, time, payload, key) == encode_frame(
        "ACK", seal_id=seal_id, boot=boot, seq=seq, time=time, payload=payload, key=key)


def test_encode_ack_matches_the_golden_vector():
    v = json.loads((Path(__file__).parents[2] / "protocol" / "vectors" / "ack.json").read_text())
    f = v["frame"]
    assert encode_ack(f["seal_id"], f["boot"], f["seq"], f["time"], f["payload"],
                      bytes.fromhex(v["key"])).hex() == v["hex"]
