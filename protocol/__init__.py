"""navseal wire protocol v2 (docs/protocol.md): construct definition, codec, serial framing."""

from .codec import ERROR_CODES, DecodeError, EncodeError, Frame, decode_frame, encode_frame, evidence, to_plain
from .schema import (
    DOWNLINK_TYPES,
    EVENT_CODES,
    HEADER_SIZE,
    MAX_FRAME,
    MAX_PAYLOAD,
    MAX_RECORDS_PER_BATCH,
    MAX_ROUTE_POINTS,
    MSG_TYPES,
    NO_POSITION,
    NO_RSEQ,
    UPLINK_TYPES,
    test_key,
)
from .serial import SerialDeframer, cobs_decode, cobs_encode, encode_serial

__all__ = [
    "DOWNLINK_TYPES",
    "DecodeError",
    "ERROR_CODES",
    "EVENT_CODES",
    "EncodeError",
    "Frame",
    "HEADER_SIZE",
    "MAX_FRAME",
    "MAX_PAYLOAD",
    "MAX_RECORDS_PER_BATCH",
    "MAX_ROUTE_POINTS",
    "MSG_TYPES",
    "NO_POSITION",
    "NO_RSEQ",
    "SerialDeframer",
    "UPLINK_TYPES",
    "cobs_decode",
    "cobs_encode",
    "decode_frame",
    "encode_frame",
    "encode_serial",
    "evidence",
    "test_key",
    "to_plain",
]
