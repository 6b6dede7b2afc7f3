"""Fast decoders generated from the construct definitions in ``schema.py``.

construct parses a 16-byte record at roughly 1 % of ``struct`` speed (interpreted) or 4 %
(compiled), and position batches are the bulk of the traffic. So for fixed-size structures we read
the layout off the construct definition (field names, ``struct`` format characters, bit fields,
adapters) and generate a small Python function that unpacks with ``struct`` and applies the same
adapters. Nothing about the format is written here a second time: change ``schema.py`` and the fast
path follows; tests check that both parsers agree on the vectors and on random frames.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from construct import Adapter, BitsInteger, Const, Flag, FormatField, Renamed, Struct, Transformed

_FlagClass = type(Flag)  # construct's Flag is a singleton instance


class Unsupported(TypeError):
    """The structure has a field this generator does not handle (then use construct itself)."""


@dataclass
class _BitField:
    name: str
    shift: int
    width: int
    is_flag: bool
    adapter: Adapter | None = None


@dataclass
class _Field:
    name: str
    fmt: str
    adapters: list = field(default_factory=list)
    bits: list[_BitField] = field(default_factory=list)
    const: object = None


def _unwrap(con):
    """Peel Renamed; return (name, inner construct)."""
    name = None
    while isinstance(con, Renamed):
        name = name or con.name
        con = con.subcon
    return name, con


def _peel_adapters(con):
    """Return (innermost construct, adapters from inner to outer)."""
    chain = []
    while isinstance(con, Adapter):
        chain.append(con)
        con = con.subcon
    chain.reverse()
    return con, chain


def _format_char(con) -> str:
    if isinstance(con, FormatField):
        return con.fmtstr[1:]
    raise Unsupported(f"not a fixed-size integer field: {con!r}")


def _bit_fields(bit_struct: Struct) -> list[_BitField]:
    out: list[_BitField] = []
    total = sum(_bit_width(_unwrap(sc)[1]) for sc in bit_struct.subcons)
    shift = total
    for sub in bit_struct.subcons:
        name, inner = _unwrap(sub)
        adapter = None
        if isinstance(inner, Const):
            width = _bit_width(inner.subcon)
            shift -= width
            out.append(_BitField(name or "_", shift, width, False, None))
            continue
        if isinstance(inner, Adapter):
            adapter, inner = inner, inner.subcon
        width = _bit_width(inner)
        shift -= width
        out.append(_BitField(name, shift, width, isinstance(inner, _FlagClass), adapter))
    return out


def _bit_width(con) -> int:
    if isinstance(con, _FlagClass):
        return 1
    if isinstance(con, BitsInteger):
        if con.signed:
            raise Unsupported("signed bit fields")
        return con.length
    if isinstance(con, (Const, Adapter)):
        return _bit_width(con.subcon)
    raise Unsupported(f"bit field of unknown width: {con!r}")


def layout(struct_con: Struct) -> list[_Field]:
    """The flat field list of a fixed-size Struct, read off its construct definition."""
    fields: list[_Field] = []
    for sub in struct_con.subcons:
        name, inner = _unwrap(sub)
        if name is None:
            continue  # Terminated and other anonymous markers take no bytes here
        if isinstance(inner, Transformed) and isinstance(inner.subcon, Struct):
            bits = _bit_fields(inner.subcon)
            nbytes = sum(b.width for b in bits) // 8
            fmt = {1: "B", 2: "H", 4: "I"}[nbytes]
            fields.append(_Field(name, fmt, bits=bits))
        else:
            base, chain = _peel_adapters(inner)
            fields.append(_Field(name, _format_char(base), adapters=chain))
    return fields


def struct_format(struct_con: Struct) -> str:
    return ">" + "".join(f.fmt for f in layout(struct_con))


def generate_tuple_decoder(struct_con: Struct, func_name: str = "decode"):
    """Generate ``decode(tuple) -> dict`` for the unpacked fields of ``struct_con``.

    Returns (struct.Struct, function). Adapters are called exactly as construct calls them
    (``adapter._decode(value, None, None)``), so the result equals construct's parse.
    """
    fields = layout(struct_con)
    namespace: dict[str, object] = {}
    args = []
    items = []
    for i, f in enumerate(fields):
        var = f"v{i}"
        args.append(var)
        if f.bits:
            parts = []
            for j, b in enumerate(f.bits):
                if b.name.startswith("_"):
                    # Reserved bits must be zero, as the construct Const demands.
                    namespace[f"_err{i}_{j}"] = ValueError
                    continue
                mask = (1 << b.width) - 1
                expr = f"(({var} >> {b.shift}) & {mask})"
                if b.is_flag:
                    expr = f"{expr} == 1"
                if b.adapter is not None:
                    namespace[f"a{i}_{j}"] = b.adapter
                    expr = f"a{i}_{j}._decode({expr}, None, None)"
                parts.append(f"{b.name!r}: {expr}")
            items.append(f"{f.name!r}: {{{', '.join(parts)}}}")
        elif f.adapters:
            expr = var
            for j, adapter in enumerate(f.adapters):
                namespace[f"a{i}_{j}"] = adapter
                expr = f"a{i}_{j}._decode({expr}, None, None)"
            items.append(f"{f.name!r}: {expr}")
        else:
            items.append(f"{f.name!r}: {var}")
    checks = []
    for i, f in enumerate(fields):
        for b in f.bits:
            if b.name.startswith("_"):
                mask = ((1 << b.width) - 1) << b.shift
                checks.append(f"    if v{i} & {mask}: raise ValueError('reserved bits set in {f.name}')")
    src = (
        f"def {func_name}(t):\n"
        f"    {', '.join(args)}, = t\n"
        + ("\n".join(checks) + "\n" if checks else "")
        + f"    return {{{', '.join(items)}}}\n"
    )
    exec(compile(src, f"<fastpath {func_name}>", "exec"), namespace)  # noqa: S102 - generated above
    return struct.Struct(">" + "".join(f.fmt for f in fields)), namespace[func_name]
