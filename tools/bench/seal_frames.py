"""Uplink frames as a seal would send them, for the gateway's benchmark and integration tests.

RECORDS frames are built with `struct`/`hmac`/`zlib` directly (the benchmark needs tens of
thousands; construct builds a few hundred per second) and checked against the protocol's decoder
by `SealFrames.self_check()`; every other type goes through `navseal.protocol.encode_frame`.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import time
import zlib

from navseal.protocol import decode_frame, encode_frame, evidence, fastpath, schema, to_plain
from navseal.protocol import test_key as protocol_test_key

# Layouts read off the construct definition (as the codec's fast path does), never re-typed.
_HEADER = struct.Struct(
    ">" + f"{len(schema.MAGIC)}s" + fastpath.struct_format(schema.Struct(*schema.Header.subcons[1:]))[1:] + "H")
_RECORDS_HEAD = struct.Struct(fastpath.struct_format(schema.Struct(*schema.Records.subcons[:2])) + "B")
_RECORD = struct.Struct(fastpath.struct_format(schema.PositionRecord))
_TYPE_RECORDS = schema.MSG_TYPES["RECORDS"]
_NO_ALARM = to_plain(schema.Alarms.parse(b"\x00"))  # every STATE alarm, False
T0 = 1764115200  # 2025-11-26T00:00:00Z


def status_byte(cable_intact: bool = True, housing_closed: bool = True, battery_pct: int | None = 84) -> int:
    battery = 63 if battery_pct is None else battery_pct // 2
    return (0x80 if cable_intact else 0) | (0x40 if housing_closed else 0) | battery


class SealFrames:
    """One seal's uplink: boot counter, frame counter and journal sequence kept like the firmware."""

    def __init__(self, seal_id: int, *, boot: int = 1, key: bytes | None = None, t0: int | None = None,
                 lat_e7: int = 432380000, lon_e7: int = 769450000) -> None:
        self.seal_id = seal_id
        self.boot = boot
        self.key = key if key is not None else protocol_test_key(seal_id)
        self.seq = 0
        self.rseq = 1
        self.time = int(time.time()) if t0 is None else t0
        self.lat = lat_e7
        self.lon = lon_e7

    def _next_seq(self) -> int:
        seq = self.seq
        self.seq += 1
        return seq

    def records(self, count: int = 60, *, step_s: int = 10, cable_intact: bool = True,
                housing_closed: bool = True, battery_pct: int = 84, dlon_e7: int = 1000) -> bytes:
        """`count` consecutive fixes moving east, one every `step_s` seconds."""
        base_time = self.time
        status = status_byte(cable_intact, housing_closed, battery_pct)
        body = bytearray(_RECORDS_HEAD.pack(self.rseq, base_time, count))
        for i in range(count):
            self.lon += dlon_e7
            body += _RECORD.pack(i * step_s, self.lat, self.lon, 600, 45, (1 << 6) | 9, 12, status)
        self.rseq += count
        self.time = base_time + count * step_s
        return self._seal(_TYPE_RECORDS, bytes(body))

    def _seal(self, type_code: int, payload: bytes, flags: int = 0) -> bytes:
        header = _HEADER.pack(schema.MAGIC, schema.VERSION, type_code, flags, self.seal_id, self.boot,
                              self._next_seq(), self.time, len(payload))
        signed = header + payload
        mac = hmac.new(self.key, signed, hashlib.sha256).digest()[:8]
        return signed + mac + struct.pack(">I", zlib.crc32(signed + mac))

    def frame(self, type_name: str, payload: dict, *, key: bytes | None = None) -> bytes:
        return encode_frame(type_name, seal_id=self.seal_id, boot=self.boot, seq=self._next_seq(),
                            time=self.time, payload=payload, key=key or self.key)

    def event(self, code: str, *, value: int = 0, cable_intact: bool = True, housing_closed: bool = True,
              battery_pct: int = 84) -> bytes:
        payload = {"rseq": self.rseq, "time": self.time, "code": code, "lat": self.lat, "lon": self.lon,
                   "status": {"cable_intact": cable_intact, "housing_closed": housing_closed,
                              "battery_pct": battery_pct},
                   "value": value}
        self.rseq += 1
        return self.frame("EVENT", payload)

    def hello(self) -> bytes:
        return self.frame("HELLO", {"fw_major": 1, "fw_minor": 0, "fw_patch": 0, "reset_cause": "POWER_ON",
                                    "config_hash": 0, "journal_pending": 0})

    def state(self, *, active: bool, escort_id: int = 0, fix: bool = True, cable_intact: bool = True,
              housing_closed: bool = True, evidence_block: dict | None = None) -> bytes:
        """A STATE; its evidence names the escort and the journal's top rseq unless given."""
        return self.frame("STATE", {
            "state": "ACTIVE" if active else "INACTIVE", "escort_id": escort_id, "alarms": dict(_NO_ALARM),
            "battery_pct": 84, "journal_pending": 0, "journal_capacity": 100000,
            "fix_time": self.time if fix else 0, "lat": self.lat if fix else None,
            "lon": self.lon if fix else None,
            "lock": {"cable_intact": cable_intact, "housing_closed": housing_closed},
            "evidence": evidence_block or self._evidence(escort_id),
        })

    def _evidence(self, escort_id: int) -> dict:
        return evidence(escort_id=escort_id, hw_rseq=self.rseq - 1)

    def command_result(self, command: bytes, *, result: str = "OK", state: str | None = None,
                       escort_id: int | None = None, evidence_block: dict | None = None) -> bytes:
        """The seal's answer to a downlink command frame (decoded with this seal's key)."""
        cmd = decode_frame(command, self.key)
        if escort_id is None:
            escort_id = cmd.payload.get("escort_id", 0) if cmd.type == "ACTIVATE" else 0
        if state is None:
            state = "ACTIVE" if cmd.type == "ACTIVATE" and result == "OK" else "INACTIVE"
        block = evidence_block or self._evidence(cmd.payload.get("escort_id", 0))
        return self.frame("COMMAND_RESULT", {"cmd_boot": cmd.boot, "cmd_seq": cmd.seq, "cmd_type": cmd.type,
                                             "result": result, "state": state, "escort_id": escort_id,
                                             "evidence": block})

    def self_check(self) -> None:
        """The struct-built RECORDS frame must decode with the protocol's decoder."""
        probe = SealFrames(self.seal_id, key=self.key)
        frame = decode_frame(probe.records(3), self.key)
        if frame.type != "RECORDS" or frame.payload["count"] != 3 or frame.payload["first_rseq"] != 1:
            raise AssertionError(f"bench RECORDS encoder disagrees with the protocol: {frame}")
