"""Encode and decode navseal frames on the host: the one place the host checks a frame.

``check_frame`` applies the frame checks in the order docs/protocol.md fixes (length, magic,
version, size, CRC, type, flags, MAC), so every implementation reports the same error for the same
bytes. ``decode_frame`` is ``check_frame`` plus the payload: position batches through the fast
path generated from the construct definition (as dicts, or with ``flat_records`` as the flat tuple
of wire fields the gateway stores as they are), everything else through construct itself. Every
failure is a ``DecodeError`` with a stable ``code``; nothing else escapes on any input.

``encode_frame`` builds through the construct definition (``schema.Frame``); ``encode_ack`` builds
the one frame the gateway sends per uplink frame with ``struct`` on layouts read off the same
definition (byte-identical, tests check it), because construct costs ~0.15 ms per frame.
"""

from __future__ import annotations

import hmac as _hmac
import struct
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Union

from construct import ConstructError, Container, ListContainer
from construct.core import EnumIntegerString

from . import fastpath, schema
from .schema import (
    CRC_SIZE,
    HEADER_SIZE,
    MAC_SIZE,
    MAGIC,
    MAX_PAYLOAD,
    MAX_RECORDS_PER_BATCH,
    MIN_FRAME,
    MSG_NAMES,
    MSG_TYPES,
    PAYLOADS,
    RECORD_SIZE,
    RESERVED_FLAGS,
    VERSION,
    mac8,
)

KeySource = Union[bytes, None, Callable[[int], Union[bytes, None]]]

ERROR_CODES = (
    "truncated",
    "bad_magic",
    "unsupported_version",
    "oversize",
    "trailing_bytes",
    "bad_crc",
    "unknown_type",
    "bad_flags",
    "bad_mac",
    "bad_payload",
)


class DecodeError(ValueError):
    """A frame was refused. ``code`` is one of ERROR_CODES; ``seal_id`` is set once readable."""

    def __init__(self, code: str, detail: str, seal_id: int | None = None):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.seal_id = seal_id


class EncodeError(ValueError):
    """A message could not be built (a field out of range, a string too long, ...)."""


@dataclass
class Frame:
    version: int
    type: str
    flags: int
    seal_id: int
    boot: int
    seq: int
    time: int
    length: int
    payload: dict
    mac: bytes
    crc: int
    mac_ok: bool | None = None

    def to_json(self) -> dict:
        out = {
            "version": self.version,
            "type": self.type,
            "flags": self.flags,
            "seal_id": self.seal_id,
            "boot": self.boot,
            "seq": self.seq,
            "time": self.time,
            "length": self.length,
            "payload": self.payload,
            "mac": self.mac.hex(),
            "crc": f"{self.crc:08x}",
        }
        if self.mac_ok is not None:
            out["mac_ok"] = self.mac_ok
        return out


# The 21-byte header as struct reads it, derived from schema.Header plus the u16 length prefix.
_HEADER = struct.Struct(
    ">" + f"{len(MAGIC)}s" + fastpath.struct_format(schema.Struct(*schema.Header.subcons[1:]))[1:] + "H"
)
assert _HEADER.size == HEADER_SIZE, "schema.Header and HEADER_SIZE disagree"  # import-time sanity
_RECORD_STRUCT, _decode_record = fastpath.generate_tuple_decoder(schema.PositionRecord, "decode_record")
assert _RECORD_STRUCT.size == RECORD_SIZE
_RECORDS_HEAD = struct.Struct(fastpath.struct_format(schema.Struct(*schema.Records.subcons[:2])) + "B")
RECORD_FORMAT = _RECORD_STRUCT.format[1:]  # one record's wire fields as struct reads them
decode_record = _decode_record  # one record's wire fields (a tuple) -> the dict decode_frame gives
RECORD_FIELDS = len(RECORD_FORMAT)
_RECORDS_STRUCTS: dict[int, struct.Struct] = {}  # record count -> struct of that many records
_ACK_PAYLOAD = struct.Struct(fastpath.struct_format(PAYLOADS["ACK"]))
_ACK_FIELDS = tuple(f.name for f in fastpath.layout(PAYLOADS["ACK"]))
_ACK_TYPE = MSG_TYPES["ACK"]


def to_plain(obj: Any) -> Any:
    """construct's Containers -> plain JSON-ready values (enum names as str, bytes as hex)."""
    if isinstance(obj, Container) or isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, (ListContainer, list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, EnumIntegerString):
        return str(obj)
    if isinstance(obj, bytes):
        return obj.hex()
    return obj


def evidence(**fields: Any) -> dict:
    """An Evidence block in its JSON form (docs/protocol.md, "Evidence"), read off the definition:
    every field 0 and every bit False (no escort since provisioning) unless given. A bit-field byte
    may be given in part: ``evidence(escort_id=7, opening_inputs={"cable": True})``."""
    out = to_plain(schema.Evidence.parse(bytes(schema.EVIDENCE_SIZE)))
    for name, value in fields.items():
        if name not in out:
            raise KeyError(f"Evidence has no field {name!r}")
        if isinstance(out[name], dict):
            unknown = set(value) - set(out[name])
            if unknown:
                raise KeyError(f"Evidence.{name} has no bit {sorted(unknown)}")
            out[name] = {**out[name], **value}
        else:
            out[name] = value
    return out


def _resolve_key(key: KeySource, seal_id: int) -> bytes | None:
    if callable(key):
        return key(seal_id)
    return key


def _records_head(payload: memoryview) -> tuple[int, int, int]:
    if len(payload) < _RECORDS_HEAD.size:
        raise ValueError("RECORDS payload shorter than its 9-byte head")
    first_rseq, base_time, count = _RECORDS_HEAD.unpack_from(payload)
    if count > MAX_RECORDS_PER_BATCH:
        raise ValueError(f"count {count} over {MAX_RECORDS_PER_BATCH}")
    if len(payload) != _RECORDS_HEAD.size + count * RECORD_SIZE:
        raise ValueError(f"{count} records need {9 + count * RECORD_SIZE} bytes, got {len(payload)}")
    return first_rseq, base_time, count


def _decode_records_fast(payload: memoryview) -> dict:
    first_rseq, base_time, count = _records_head(payload)
    records = [_decode_record(t) for t in _RECORD_STRUCT.iter_unpack(payload[_RECORDS_HEAD.size :])]
    return {"first_rseq": first_rseq, "base_time": base_time, "count": count, "records": records}


def records_struct(count: int) -> struct.Struct:
    """The struct of `count` consecutive position records (RECORD_FORMAT repeated)."""
    st = _RECORDS_STRUCTS.get(count)
    if st is None:
        st = _RECORDS_STRUCTS[count] = struct.Struct(">" + RECORD_FORMAT * count)
    return st


def _decode_records_flat(payload: memoryview) -> dict:
    """RECORDS without a dict per record: ``fields`` holds, record after record in wire order, the
    RECORD_FIELDS values of each as ``struct`` unpacks them (what the gateway's rules read);
    ``body`` the records' bytes as the seal sent them, RECORD_SIZE each (what its store keeps)."""
    first_rseq, base_time, count = _records_head(payload)
    fields = records_struct(count).unpack_from(payload, _RECORDS_HEAD.size)
    body = bytes(payload[_RECORDS_HEAD.size:])  # exactly count * RECORD_SIZE: checked by _records_head
    return {"first_rseq": first_rseq, "base_time": base_time, "count": count, "fields": fields, "body": body}


def parse_payload(type_name: str, payload: bytes, *, fast: bool = True) -> dict:
    """Parse one payload; ValueError/ConstructError on anything that is not exactly valid."""
    if fast and type_name == "RECORDS":
        return _decode_records_fast(memoryview(payload))
    return to_plain(PAYLOADS[type_name].parse(payload))


def check_frame(data: bytes, key: KeySource = None) -> Frame:
    """Every check of docs/protocol.md but the payload's, in its order. Returns the Frame with
    ``payload`` None; ``mac_ok`` is True when a key was found and matched, None when there was no
    key. ``key``: bytes, None (MAC not checked), or seal_id -> key (None: unknown seal)."""
    n = len(data)
    if n < MIN_FRAME:
        raise DecodeError("truncated", f"{n} bytes, a frame has at least {MIN_FRAME}")
    magic, version, type_code, flags, seal_id, boot, seq, time, length = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise DecodeError("bad_magic", f"starts with {bytes(data[:2]).hex()}, expected {MAGIC.hex()}")
    if version != VERSION:
        raise DecodeError("unsupported_version", f"version {version}, this decoder speaks {VERSION}", seal_id)
    if length > MAX_PAYLOAD:
        raise DecodeError("oversize", f"payload length {length} over {MAX_PAYLOAD}", seal_id)
    expected = MIN_FRAME + length
    if n < expected:
        raise DecodeError("truncated", f"{n} bytes, header announces {expected}", seal_id)
    if n > expected:
        raise DecodeError("trailing_bytes", f"{n - expected} bytes after the frame", seal_id)
    signed_end = HEADER_SIZE + length
    view = memoryview(data)
    crc = int.from_bytes(view[signed_end + MAC_SIZE :], "big")
    computed = zlib.crc32(view[: signed_end + MAC_SIZE])  # same function as schema.crc32 (crcmod)
    if crc != computed:
        raise DecodeError("bad_crc", f"crc {crc:08x}, computed {computed:08x}", seal_id)
    type_name = MSG_NAMES.get(type_code)
    if type_name is None:
        raise DecodeError("unknown_type", f"message type 0x{type_code:02x}", seal_id)
    if flags & RESERVED_FLAGS:
        raise DecodeError("bad_flags", f"reserved flag bits set: 0x{flags:02x}", seal_id)
    mac = bytes(view[signed_end : signed_end + MAC_SIZE])
    mac_ok = None
    k = _resolve_key(key, seal_id)
    if k is not None:
        if not _hmac.compare_digest(mac, mac8(k, view[:signed_end])):
            raise DecodeError("bad_mac", "MAC does not match the seal's key", seal_id)
        mac_ok = True
    return Frame(version, type_name, flags, seal_id, boot, seq, time, length, None, mac, crc, mac_ok)  # type: ignore[arg-type]


def decode_frame(data: bytes, key: KeySource = None, *, fast: bool = True, flat_records: bool = False) -> Frame:
    """Decode and verify one frame (``check_frame``, then the payload). ``key``: bytes, None (MAC
    not checked), or seal_id -> key. ``flat_records``: a RECORDS payload carries ``fields`` (the
    records' wire fields, see ``_decode_records_flat``) instead of ``records``."""
    frame = check_frame(data, key)
    payload = memoryview(data)[HEADER_SIZE : HEADER_SIZE + frame.length]
    try:
        if frame.type == "RECORDS" and fast:
            frame.payload = _decode_records_flat(payload) if flat_records else _decode_records_fast(payload)
        else:
            frame.payload = parse_payload(frame.type, bytes(payload), fast=fast)
    except (ConstructError, ValueError, UnicodeDecodeError, struct.error) as exc:
        raise DecodeError("bad_payload", f"{frame.type}: {_one_line(exc)}", frame.seal_id) from None
    return frame


def encode_frame(
    type_name: str,
    *,
    seal_id: int,
    boot: int,
    seq: int,
    time: int,
    payload: dict,
    key: bytes,
    flags: int = 0,
    version: int = VERSION,
) -> bytes:
    """Build one frame (MAC and CRC computed) through the construct definition."""
    if type_name not in MSG_TYPES:
        raise EncodeError(f"unknown message type {type_name!r}")
    body = {
        "magic": MAGIC,
        "version": version,
        "type": type_name,
        "flags": flags,
        "seal_id": seal_id,
        "boot": boot,
        "seq": seq,
        "time": time,
        "payload": payload,
    }
    try:
        return schema.Frame.build({"body": {"value": body}, "mac": None, "crc": None}, key=key)
    except (ConstructError, ValueError, TypeError, KeyError, struct.error) as exc:
        raise EncodeError(f"{type_name}: {_one_line(exc)}") from None


def encode_ack(seal_id: int, boot: int, seq: int, time: int, payload: dict, key: bytes) -> bytes:
    """The ACK frame (flags 0), byte-identical to ``encode_frame("ACK", ...)`` (tests check it), built
    with ``struct`` on the header and ACK layouts read off ``schema``: one per uplink frame."""
    try:
        body = _ACK_PAYLOAD.pack(*(payload[name] for name in _ACK_FIELDS))
        signed = _HEADER.pack(MAGIC, VERSION, _ACK_TYPE, 0, seal_id, boot, seq, time, len(body)) + body
    except (struct.error, KeyError, TypeError) as exc:
        raise EncodeError(f"ACK: {_one_line(exc)}") from None
    signed += mac8(key, signed)
    return signed + zlib.crc32(signed).to_bytes(CRC_SIZE, "big")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__
