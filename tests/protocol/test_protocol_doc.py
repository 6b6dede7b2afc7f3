"""docs/protocol.md against schema.py: every fixed-layout table lists exactly the definition's
fields, in wire order, at the offsets and sizes construct gives them. A field added, renamed,
resized or moved on one side only fails here."""

from pathlib import Path

import pytest
from construct import Struct

from navseal.protocol import schema

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")


def first_table_after(heading: str) -> list[list[str]]:
    """The body rows (cells stripped) of the first table after the heading line containing `heading`."""
    lines = DOC.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("#") and heading in line]
    assert len(starts) == 1, f"expected one heading with {heading!r}, found {len(starts)}"
    i = starts[0] + 1
    while not lines[i].startswith("|"):
        assert not lines[i].startswith("#"), f"no table under {heading!r}"
        i += 1
    rows = []
    while i < len(lines) and lines[i].startswith("|"):
        rows.append([cell.strip() for cell in lines[i].strip().strip("|").split("|")])
        i += 1
    return rows[2:]  # header row and the |---| row


def doc_fields(rows: list[list[str]]) -> list[tuple[str, int, int]]:
    """(name, offset, size) of each row: the field is the first `backticked` word of column 3."""
    out = []
    for offset, size, field, *_ in rows:
        assert field.count("`") >= 2, f"row without a `field`: {field!r}"
        out.append((field.split("`")[1], int(offset), int(size)))
    return out


def schema_fields(struct_con: Struct) -> list[tuple[str, int, int]]:
    out, offset = [], 0
    for sub in struct_con.subcons:
        if sub.name is None:  # Terminated: no bytes
            continue
        size = sub.sizeof()
        out.append((sub.name, offset, size))
        offset += size
    return out


@pytest.mark.parametrize("heading, definition", [
    ("`0x01 HELLO`", schema.Hello),
    ("`0x03 EVENT`", schema.Event),
    ("`0x04 STATE`", schema.SealState),
    ("Evidence (55 bytes", schema.Evidence),
    ("`0x05 COMMAND_RESULT`", schema.CommandResult),
    ("`0x81 ACK`", schema.Ack),
    ("`0x84 CONFIG`", schema.Config),
    ("`0x85 TIME`", schema.Time),
], ids=lambda v: v if isinstance(v, str) else "")
def test_doc_table_lists_exactly_the_schema_fields(heading, definition):
    assert doc_fields(first_table_after(heading)) == schema_fields(definition)


def test_doc_frame_header_matches_the_schema():
    rows = doc_fields(first_table_after("## Frame")[:9])  # up to `length`; payload, mac, crc: size L
    header = schema_fields(schema.Header)
    assert rows[: len(header)] == header
    assert rows[len(header)] == ("length", schema.HEADER_SIZE - 2, 2)
    assert "`MIN_FRAME` = 35" in DOC and f"`MAX_FRAME` = {schema.MAX_FRAME}" in DOC
    assert f"`0{schema.VERSION}`" in DOC.split("## Frame", 1)[1].split("###", 1)[0]


def test_doc_evidence_format_string_is_the_schemas():
    from navseal.protocol import fastpath

    fmt = fastpath.struct_format(schema.Evidence).replace("L", "I")
    assert f"`EVIDENCE_FMT` = `{fmt}`" in DOC


def test_doc_names_every_event_code_and_result():
    for name, code in schema.EVENT_CODES.items():
        assert f"| {code} | `{name}` |" in DOC, name
    results = ", ".join(f"`{name}`={code}" for name, code in schema.COMMAND_RESULTS.items())
    assert results in DOC
