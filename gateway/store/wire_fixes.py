"""Position records as the seal sent them: one stored run per RECORDS frame, read back as rows.

A RECORDS frame carries up to 120 position records, the bulk of the traffic. The store keeps them
as the frame brought them: one row per run of consecutive new records (`record_runs`: seal,
first and last rseq, base time, and `body`, the records' wire bytes, RECORD_SIZE each), not one
row per record; a 60-record frame is one short INSERT instead of 60 index entries
(docs/decisions/0020). Readers turn a run back into one row per record (the columns of the
`records` table, which keeps the seal's EVENT records and fixes stored before runs existed):

- `run_rows`: a run's rows, from the wire bytes through `fix_row`;
- `fix_row`: one record's row from its wire values, also what the rules read for an escorted frame;
- `wire_fix_rows`: a reference through the protocol's own generated decoder (tests).

Bit positions and widths are read off `schema.PositionRecord`; the field order `fix_row` unpacks and
the two value adapters (unknown position, battery in 2 % steps) are checked against the schema and
the adapters themselves at import. Anything this module does not know makes the import fail, so a
protocol change cannot silently give wrong columns. tests/gateway/test_records_fast_path.py checks
the forms against decode_frame on random frames.
"""

from __future__ import annotations

import struct
from typing import Any, Iterator, Sequence

from navseal.protocol import codec, fastpath, schema

RECORD_FIX = "FIX"  # records.kind of a position fix (other kinds: the seal's EVENT code names)

# The records table's columns, in the order the INSERTs list them.
RECORD_COLUMNS = (
    "seal_id", "rseq", "escort_id", "kind", "time", "lat", "lon", "speed", "course", "fix_quality",
    "satellites", "hdop", "cable_intact", "housing_closed", "battery_pct", "value", "received_at",
)

# Wire field (or "field.bit") -> records column; `fix_row` unpacks the fields in this order.
_COLUMN_OF = {"dt": "time", "lat": "lat", "lon": "lon", "speed": "speed", "course": "course",
              "fix.quality": "fix_quality", "fix.satellites": "satellites", "hdop": "hdop",
              "status.cable_intact": "cable_intact", "status.housing_closed": "housing_closed",
              "status.battery_pct": "battery_pct"}
_FIELD_ORDER = ("dt", "lat", "lon", "speed", "course", "fix", "hdop", "status")
_BATTERY_UNKNOWN = 63  # Battery2Pct: 6 bits of 2 % steps, all ones = unknown


def _check_adapters() -> None:
    for raw in (schema.NO_POSITION, 0, 1, -1, 900_000_000, -2**31, 2**31 - 2):
        expect = None if raw == schema.NO_POSITION else raw
        if schema.Position._decode(raw, None, None) != expect:
            raise ImportError(f"protocol Position adapter changed (decodes {raw}): update {__name__}")
    for raw in range(64):
        if schema.Battery2Pct._decode(raw, None, None) != (None if raw == _BATTERY_UNKNOWN else raw * 2):
            raise ImportError(f"protocol Battery2Pct adapter changed (decodes {raw}): update {__name__}")


def _read_layout() -> tuple[str, dict[str, tuple[int, int, int, Any]]]:
    """(struct format of one record, {"field" or "field.bit": (field index, shift, mask, adapter)})."""
    _check_adapters()
    fields = fastpath.layout(schema.PositionRecord)
    if tuple(f.name for f in fields) != _FIELD_ORDER:
        raise ImportError(f"PositionRecord fields are now {[f.name for f in fields]}: update {__name__}")
    known = {id(schema.Position), id(schema.Battery2Pct)}
    out: dict[str, tuple[int, int, int, Any]] = {}
    for j, f in enumerate(fields):
        if f.bits:
            for b in f.bits:
                if b.name.startswith("_"):
                    raise ImportError(f"PositionRecord.{f.name} has reserved bits now: update {__name__}")
                if b.adapter is not None and id(b.adapter) not in known:
                    raise ImportError(f"unknown adapter {b.adapter!r} in PositionRecord: update {__name__}")
                out[f"{f.name}.{b.name}"] = (j, b.shift, (1 << b.width) - 1, b.adapter)
        else:
            if len(f.adapters) > 1 or (f.adapters and id(f.adapters[0]) not in known):
                raise ImportError(f"PositionRecord.{f.name}: adapters {f.adapters}: update {__name__}")
            out[f.name] = (j, 0, 0, f.adapters[0] if f.adapters else None)
    if set(out) != set(_COLUMN_OF):
        raise ImportError(f"PositionRecord maps to {sorted(out)}, the records table to "
                          f"{sorted(_COLUMN_OF)}: update {__name__}")
    fmt = "".join(f.fmt for f in fields)
    if ">" + fmt != codec.records_struct(1).format:
        raise ImportError("the codec's record layout and PositionRecord disagree")
    return fmt, out


WIRE_FIX_FORMAT, _LAYOUT = _read_layout()  # "HiiHBBBB": one record's struct format
WIRE_FIX_FIELDS = len(WIRE_FIX_FORMAT)
RECORD_SIZE = codec.RECORD_SIZE  # bytes of one record in a run's body
_RECORD = struct.Struct(">" + WIRE_FIX_FORMAT)


def _bits(name: str) -> tuple[int, int]:
    _, shift, mask, _ = _LAYOUT[name]
    return shift, mask


_QUALITY_SHIFT, _QUALITY_MASK = _bits("fix.quality")
_SATS_SHIFT, _SATS_MASK = _bits("fix.satellites")
_CABLE_SHIFT, _CABLE_MASK = _bits("status.cable_intact")
_HOUSING_SHIFT, _HOUSING_MASK = _bits("status.housing_closed")
_BATTERY_SHIFT, _BATTERY_MASK = _bits("status.battery_pct")
_NO_POSITION = schema.NO_POSITION


def fix_row(fields: Sequence[int], rseq: int, base_time: int, seal_id: int, escort_id: int | None,
            received_at: float) -> dict[str, Any]:
    """One record's row from its wire values (WIRE_FIX_FIELDS of them), as SQLite stores it.

    Plain code on constants read off the schema, written out rather than generated through `exec`:
    timeit against the generated function it replaced gave 0.56 vs 0.55 us per record (best of 5
    rounds of 120 records x 200, CPython 3.11 on this project's 2-core machine), i.e. noise."""
    dt, lat, lon, speed, course, fix, hdop, status = fields
    battery = (status >> _BATTERY_SHIFT) & _BATTERY_MASK
    return {
        "seal_id": seal_id, "rseq": rseq, "escort_id": escort_id, "kind": RECORD_FIX,
        "time": base_time + dt,
        "lat": None if lat == _NO_POSITION else lat,
        "lon": None if lon == _NO_POSITION else lon,
        "speed": speed, "course": course,
        "fix_quality": (fix >> _QUALITY_SHIFT) & _QUALITY_MASK,
        "satellites": (fix >> _SATS_SHIFT) & _SATS_MASK,
        "hdop": hdop,
        "cable_intact": (status >> _CABLE_SHIFT) & _CABLE_MASK,
        "housing_closed": (status >> _HOUSING_SHIFT) & _HOUSING_MASK,
        "battery_pct": None if battery == _BATTERY_UNKNOWN else battery * 2,
        "value": None, "received_at": received_at,
    }


def run_rows(seal_id: int, escort_id: int | None, first_rseq: int, base_time: int, body: bytes,
             received_at: float) -> Iterator[dict[str, Any]]:
    """The rows of one stored run (its records in rseq order)."""
    for i, fields in enumerate(_RECORD.iter_unpack(body)):
        yield fix_row(fields, first_rseq + i, base_time, seal_id, escort_id, received_at)


def run_fixes(first_rseq: int, base_time: int, body: bytes) -> Iterator[tuple[int, int, int, int, int | None]]:
    """A run's track points: (rseq, time, lat, lon, speed) of each record with a fix and a known
    position (what a map draws), without a row dict per record."""
    for i, (dt, lat, lon, speed, _course, fix, _hdop, _status) in enumerate(_RECORD.iter_unpack(body)):
        if (fix >> _QUALITY_SHIFT) & _QUALITY_MASK and lat != _NO_POSITION and lon != _NO_POSITION:
            yield first_rseq + i, base_time + dt, lat, lon, speed


def wire_fix_rows(first_rseq: int, base_time: int, fields: Sequence[int]) -> list[dict[str, Any]]:
    """The rows through the protocol's own record decoder (reference, and stores without SQL
    expressions): dicts without seal_id/escort_id/received_at."""
    rows = []
    for i in range(len(fields) // WIRE_FIX_FIELDS):
        rec = codec.decode_record(fields[i * WIRE_FIX_FIELDS:(i + 1) * WIRE_FIX_FIELDS])
        fix, status = rec["fix"], rec["status"]
        rows.append({"rseq": first_rseq + i, "kind": RECORD_FIX, "time": base_time + rec["dt"],
                     "lat": rec["lat"], "lon": rec["lon"], "speed": rec["speed"], "course": rec["course"],
                     "fix_quality": fix["quality"], "satellites": fix["satellites"], "hdop": rec["hdop"],
                     "cable_intact": int(bool(status["cable_intact"])),
                     "housing_closed": int(bool(status["housing_closed"])),
                     "battery_pct": status["battery_pct"], "value": None})
    return rows
