"""`navseal decode`: frames in (hex, binary, COBS serial capture, vector files), JSON Lines out."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Iterator

from navseal.protocol import DecodeError, SerialDeframer, decode_frame

EPILOG = """\
input forms (--format, default auto):
  hex      one frame per line as hex (spaces and colons allowed); '#' starts a comment
  binary   the file holds exactly one raw frame
  serial   a raw serial capture: COBS-encoded frames separated by 0x00 bytes
  vectors  golden vector files (protocol/vectors/*.json); frames are checked against them

keys (optional; with a key the MAC is verified and "mac_ok" is printed):
  --key HEX           one 32-byte key in hex, used for every frame
  --keys FILE         JSON object {"<seal_id>": "<hex key>", ...}
  --test-keys         the documented test keys (SHA-256 of "navseal test key <id>")

examples:
  navseal decode 4e5301850000...                 a frame given on the command line
  echo 4e5301... | navseal decode --key 00ff...  frames on stdin, MAC checked
  navseal decode --format serial capture.bin     a raw capture from a serial port
  navseal decode --dir protocol/vectors          every golden vector, checked

Prints one JSON object per frame. A frame that is refused prints {"error": CODE, "detail": ...}
and a one-line reason on stderr; the exit status is 1 if any frame was refused, 2 on usage errors.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "decode",
        help="decode frames (hex, binary, serial capture) to JSON",
        description="Decode navseal protocol v2 frames and print one JSON object per frame.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="*", help="hex strings or files (default: stdin)")
    p.add_argument("--format", choices=("auto", "hex", "binary", "serial", "vectors"), default="auto")
    p.add_argument("--dir", type=Path, help="decode every *.json vector in this folder")
    keys = p.add_mutually_exclusive_group()
    keys.add_argument("--key", help="32-byte key as hex, for every frame: for published test vectors only, since "
                      "a command line is visible to every user of the machine (ps); a real key: --key-file")
    keys.add_argument("--key-file", help="file holding one 32-byte key as 64 hex digits, for every frame "
                      "('-': read it from the first line of stdin; the frames then come as arguments)")
    keys.add_argument("--keys", type=Path, help='JSON file {"seal_id": "hex key"}')
    keys.add_argument("--test-keys", action="store_true", help="use the documented test keys")
    p.add_argument("--compact", action="store_true", help="leave payloads out (header and status only)")
    p.set_defaults(func=run)


def _key_source(args) -> Callable[[int], bytes | None] | bytes | None:
    if args.key:
        try:
            return bytes.fromhex(args.key)
        except ValueError:
            raise SystemExit("navseal decode: --key is not hex") from None
    if args.key_file:
        from navseal.gateway.secrets import SecretError, read_key_file

        if args.key_file == "-" and not args.inputs and not args.dir:
            raise SystemExit("navseal decode: --key-file - reads stdin: give the frames as arguments")
        try:
            return read_key_file(args.key_file)
        except SecretError as exc:
            raise SystemExit(f"navseal decode: {exc}") from None
    if args.keys:
        try:
            table = {int(k): bytes.fromhex(v) for k, v in json.loads(args.keys.read_text()).items()}
        except (OSError, ValueError, AttributeError) as exc:
            raise SystemExit(f"navseal decode: cannot read --keys {args.keys}: {exc}") from None
        return table.get
    if args.test_keys:
        from navseal.protocol import test_key

        return test_key
    return None


def _hex_frames(text: str, origin: str) -> Iterator[tuple[str, bytes | str]]:
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip().replace(" ", "").replace(":", "")
        if not line:
            continue
        try:
            yield f"{origin}:{lineno}", bytes.fromhex(line)
        except ValueError:
            yield f"{origin}:{lineno}", "not hex"


def _serial_frames(data: bytes, origin: str) -> Iterator[tuple[str, bytes | str]]:
    deframer = SerialDeframer()
    for n, (kind, item) in enumerate(deframer.feed_items(data), 1):
        yield f"{origin}#{n}", item if kind == "body" else f"serial layer: {item}"
    if deframer.pending:
        yield f"{origin}#end", f"serial layer: {deframer.pending} bytes after the last delimiter"


def _looks_like_hex(data: bytes) -> bool:
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return False
    cleaned = "".join(line.split("#", 1)[0] for line in text.splitlines())
    return all(c in "0123456789abcdefABCDEF :\t\r\n" for c in cleaned)


def _is_text(data: bytes) -> bool:
    return bool(data) and all(b in b"\t\n\r" or 0x20 <= b < 0x7F for b in data)


def _inputs(args) -> Iterator[tuple[str, bytes | str, dict | None]]:
    """(where, frame bytes or a reason, expected vector or None)."""
    sources: list[tuple[str, bytes]] = []
    if args.dir:
        if not args.dir.is_dir():
            raise SystemExit(f"navseal decode: {args.dir} is not a folder")
        args.format = "vectors"
        sources += [(str(p), p.read_bytes()) for p in sorted(args.dir.glob("*.json"))]
    for item in args.inputs:
        path = Path(item)
        if path.exists():
            sources.append((item, path.read_bytes()))
        elif _looks_like_hex(item.encode()):
            sources.append(("argv", item.encode()))
        else:
            raise SystemExit(f"navseal decode: {item!r} is neither a file nor hex")
    if not sources:
        if sys.stdin.isatty():
            raise SystemExit("navseal decode: no input (give hex, files, --dir, or pipe to stdin); see --help")
        sources.append(("stdin", sys.stdin.buffer.read()))
    for origin, data in sources:
        fmt = args.format
        if fmt == "auto":
            if origin.endswith(".json"):
                fmt = "vectors"
            elif _is_text(data):
                fmt = "hex"  # text input: one hex frame per line, bad lines reported one by one
            else:
                fmt = "binary" if data[:2] == b"NS" else "serial"
        if fmt == "hex":
            for where, frame in _hex_frames(data.decode("ascii", "replace"), origin):
                yield where, frame, None
        elif fmt == "binary":
            yield origin, data, None
        elif fmt == "serial":
            for where, frame in _serial_frames(data, origin):
                yield where, frame, None
        else:
            try:
                vec = json.loads(data)
            except ValueError as exc:
                yield origin, f"not a vector file: {exc}", None
                continue
            key = vec.get("key")
            if vec.get("kind") == "serial":
                expected = list(vec.get("results", []))
                for n, (where, frame) in enumerate(_serial_frames(bytes.fromhex(vec["stream_hex"]), origin)):
                    yield where, frame, {"key": key, "expect": expected[n] if n < len(expected) else None}
            else:
                expect = {"error": vec["error"]} if "error" in vec else {"frame": vec.get("frame")}
                yield origin, bytes.fromhex(vec.get("hex", "")), {"key": key, "expect": expect}


def run(args) -> int:
    key = _key_source(args)
    refused = mismatched = total = 0
    out = sys.stdout
    for where, frame, vector in _inputs(args):
        total += 1
        vkey = bytes.fromhex(vector["key"]) if vector and vector.get("key") and key is None else key
        if isinstance(frame, str):
            obj = {"source": where, "error": "unreadable", "detail": frame}
            refused += 1
        else:
            try:
                decoded = decode_frame(frame, vkey)
                obj = {"source": where, **decoded.to_json()}
                if args.compact:
                    obj.pop("payload")
            except DecodeError as exc:
                obj = {"source": where, "error": exc.code, "detail": exc.detail}
                if exc.seal_id is not None:
                    obj["seal_id"] = exc.seal_id
                refused += 1
        if vector is not None:
            expect = vector["expect"] or {}
            if "error" in expect:
                ok = obj.get("error") == expect["error"] or obj.get("detail", "").endswith(expect["error"])
            else:
                ok = "error" not in obj and {k: v for k, v in obj.items() if k != "source"} == expect.get("frame")
            obj["vector"] = "match" if ok else "MISMATCH"
            if ok and "error" in obj:
                refused -= 1  # a deliberately invalid vector, refused as documented: a success
            if not ok:
                mismatched += 1
                print(f"navseal decode: {where}: does not match its vector", file=sys.stderr)
        if "error" in obj and not (vector and obj.get("vector") == "match"):
            print(f"navseal decode: {where}: {obj['error']}: {obj['detail']}", file=sys.stderr)
        out.write(json.dumps(obj, ensure_ascii=False) + "\n")
    if total == 0:
        print("navseal decode: no frames found in the input", file=sys.stderr)
        return 1
    summary = f"navseal decode: {total} frames, {max(refused, 0)} refused"
    if args.format == "vectors":
        summary += f", {mismatched} vector mismatches"
    print(summary, file=sys.stderr)
    return 1 if refused > 0 or mismatched else 0
