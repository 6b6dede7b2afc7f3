"""`navseal decode` as a user runs it: a real subprocess, every input form, bad input."""

import json
import subprocess
import sys
from pathlib import Path

from navseal.protocol import encode_serial, test_key

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "protocol" / "vectors"


def run(*args, stdin=b""):
    proc = subprocess.run([sys.executable, "-m", "navseal.cli", "decode", *args], input=stdin,
                          capture_output=True, timeout=60)
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines() if line.strip()]
    return proc.returncode, lines, proc.stderr.decode()


def vec(name):
    return json.loads((VECTORS / f"{name}.json").read_text())


def test_all_vectors_match():
    rc, lines, err = run("--dir", str(VECTORS))
    assert rc == 0, err
    assert len(lines) >= 70
    assert all(line["vector"] == "match" for line in lines)


def test_hex_argument_with_key_checks_mac():
    v = vec("event_cable_cut")
    rc, lines, _ = run(v["hex"], "--key", v["key"])
    assert rc == 0
    assert lines[0]["payload"]["code"] == "CABLE_CUT"
    assert lines[0]["mac_ok"] is True


def test_a_real_key_comes_from_a_file_or_stdin_never_the_command_line(tmp_path):
    v = vec("event_cable_cut")
    key_file = tmp_path / "seal.key"
    key_file.write_text(v["key"] + "\n")
    rc, lines, _ = run(v["hex"], "--key-file", str(key_file))
    assert rc == 0 and lines[0]["mac_ok"] is True
    rc, lines, _ = run(v["hex"], "--key-file", "-", stdin=(v["key"] + "\n").encode())
    assert rc == 0 and lines[0]["mac_ok"] is True
    rc, _, err = run("--key-file", "-", stdin=(v["key"] + "\n").encode())
    assert rc != 0 and "give the frames as arguments" in err
    key_file.write_text("not a key")
    rc, _, err = run(v["hex"], "--key-file", str(key_file))
    assert rc != 0 and "seal.key" in err and "Traceback" not in err


def test_wrong_key_is_a_clear_refusal():
    v = vec("event_cable_cut")
    rc, lines, err = run(v["hex"], "--key", test_key(2).hex())
    assert rc == 1
    assert lines[0]["error"] == "bad_mac"
    assert "bad_mac" in err and "Traceback" not in err


def test_stdin_hex_lines_and_garbage_line():
    text = "\n".join([vec("hello")["hex"], "# a comment", "zz-not-hex", vec("time")["hex"][:-2]]) + "\n"
    rc, lines, err = run("--test-keys", stdin=text.encode())
    assert rc == 1
    assert [line.get("type") or line["error"] for line in lines] == ["HELLO", "unreadable", "bad_crc"] or \
        [line.get("type") or line["error"] for line in lines] == ["HELLO", "unreadable", "truncated"]
    assert "Traceback" not in err


def test_serial_capture_file(tmp_path):
    frames = [bytes.fromhex(vec(n)["hex"]) for n in ("hello", "records_three", "event_cable_cut")]
    capture = tmp_path / "capture.bin"
    capture.write_bytes(b"\x13\x37noise\x00" + b"".join(encode_serial(f) for f in frames))
    rc, lines, _ = run("--format", "serial", str(capture), "--test-keys")
    assert [line.get("type") for line in lines[-3:]] == ["HELLO", "RECORDS", "EVENT"]
    assert rc == 1  # the noise before the first delimiter is reported as a refused body
    assert lines[0]["error"] in ("unreadable", "bad_magic", "truncated")


def test_binary_file(tmp_path):
    path = tmp_path / "frame.bin"
    path.write_bytes(bytes.fromhex(vec("ack")["hex"]))
    rc, lines, _ = run(str(path))
    assert rc == 0 and lines[0]["type"] == "ACK" and "mac_ok" not in lines[0]


def test_no_input_is_a_usage_error():
    proc = subprocess.run([sys.executable, "-m", "navseal.cli", "decode", "not-a-file-or-hex"],
                          capture_output=True, timeout=60)
    assert proc.returncode != 0
    assert b"neither a file nor hex" in proc.stderr


def test_version_names_the_crc_backend():
    proc = subprocess.run([sys.executable, "-m", "navseal.cli", "--version"], capture_output=True, timeout=60)
    assert b"crcmod C extension" in proc.stdout
