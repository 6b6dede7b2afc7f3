"""`navseal provision`: give a seal its identity: key, broker login, CA, intervals.

Steps (each printed; --dry-run prints them and does nothing):
  1. refuse if the target already holds a provisioned seal (navseal.json), unless --force:
     re-provisioning changes the seal's key and so cuts it off from its escort history;
  2. the seal key (32 bytes) from --key-file or --key-stdin, or a new random one
     (--generate-key, with --key-out to keep a copy, 0600); the broker password likewise from
     --mqtt-password-file or generated;
  3. register the seal and its key with the gateway (POST /v1/seals on --api), with the bearer
     token of --token-file or $NAVSEAL_TOKEN when the API asks for one; --no-register skips it;
  4. with --passwd-file, add or replace the seal's line in the broker's password file (hashed
     by mosquitto_passwd, the password never on a command line); the broker re-reads it on
     SIGHUP;
  5. write navseal.json (seal_id, key, link, broker host/port/login, TLS, intervals) and the
     CA certificate as DER (ca.der) to the board's /data via mpremote (--port), or into a
     desktop seal's flash directory (--flash-dir).
Keys and passwords never appear on the command line (files or stdin only).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from navseal.cmd_flash import BOARD_DATA, mpremote_cmd, port_is_device_path

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
CONFIG_FILE = "navseal.json"
CA_FILE = "ca.der"
# The core's settable intervals (firmware/navseal_fw/seal.py DEFAULTS): --set NAME=VALUE.
INTERVALS = ("report_moving_s", "report_stopped_s", "report_inactive_s", "heartbeat_s",
             "batch_max", "gnss_lost_s", "low_battery_pct", "jump_speed_kmh", "ack_timeout_s",
             "debounce_ms", "journal_capacity", "journal_seg_records", "thin_keep")
LINK_SETTINGS = ("mqtt_keepalive_s", "mqtt_backoff_cap_s")

EPILOG = """\
examples:
  navseal provision --seal 1001 --generate-key --key-out 1001.key --broker-host broker.example \\
      --ca certs/ca.crt --api https://gw.example:8443 --token-file ops.token --port /dev/ttyACM0
  navseal provision --seal 1001 --key-file 1001.key --broker-host 127.0.0.1 --broker-port 8883 \\
      --ca certs/ca.der --flash-dir /tmp/seal-1001 --passwd-file /etc/mosquitto/navseal.passwd
  printf '%s' "$KEY_HEX" | navseal provision --seal 1001 --key-stdin ... --dry-run
"""


class ProvisionError(Exception):
    """A step cannot run; the message says why. `code` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "provision", help="give a seal its key, broker login and CA, register it with the gateway",
        description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seal", type=int, required=True, help="seal id (1 .. 2^32-1)")
    key = p.add_mutually_exclusive_group(required=True)
    key.add_argument("--key-file", help="file holding the seal key as 64 hex digits")
    key.add_argument("--key-stdin", action="store_true", help="read the key (64 hex) from stdin")
    key.add_argument("--generate-key", action="store_true", help="make a new random key")
    p.add_argument("--key-out", help="with --generate-key: also write the key here (0600)")
    p.add_argument("--mqtt-password-file", help="the seal's broker password (default: a new random one)")
    p.add_argument("--password-out", help="write the broker password here too (0600)")
    p.add_argument("--broker-host", help="the broker as the seal reaches it (name or address)")
    p.add_argument("--broker-port", type=int, help="default 8883 with TLS, 1883 without")
    p.add_argument("--ca", help="CA certificate (PEM or DER) the broker's certificate chains to")
    p.add_argument("--server-name", help="the name in the broker's certificate, if not --broker-host")
    p.add_argument("--no-tls", action="store_true", help="plain MQTT (a bench on loopback only)")
    p.add_argument("--link", choices=("mqtt", "serial"), default="mqtt")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help=f"an interval or link setting: {', '.join(INTERVALS + LINK_SETTINGS)}")
    p.add_argument("--api", help="gateway HTTP API base URL (default http://127.0.0.1:8080)")
    p.add_argument("--token-file", help="bearer token for the API (default: $NAVSEAL_TOKEN)")
    p.add_argument("--api-ca-file", help="CA certificate (PEM) of the API's HTTPS certificate, "
                                         "when it is a private one")
    p.add_argument("--no-register", action="store_true", help="do not register with the gateway")
    p.add_argument("--passwd-file", help="Mosquitto password file to add the seal's login to")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--port", help="the board's serial port (mpremote)")
    target.add_argument("--flash-dir", help="a desktop seal's flash directory")
    p.add_argument("--force", action="store_true", help="overwrite a provisioned seal")
    p.add_argument("--dry-run", action="store_true", help="print the steps, change nothing")
    p.set_defaults(func=_main)


# ---- inputs ------------------------------------------------------------------------------------


def _read_secret(path: str, what: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ProvisionError(f"{what}: {exc}") from None


def parse_key(text: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise ProvisionError("the key must be 64 hex digits") from None
    if len(key) != 32:
        raise ProvisionError(f"the key must be 32 bytes, got {len(key)}")
    return key


def seal_key(args: argparse.Namespace) -> tuple[bytes, bool]:
    if args.key_file:
        return parse_key(_read_secret(args.key_file, "--key-file")), False
    if args.key_stdin:
        return parse_key(sys.stdin.read()), False
    return secrets.token_bytes(32), True


def parse_settings(items: list[str]) -> dict[str, int]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in INTERVALS + LINK_SETTINGS:
            raise ProvisionError(f"--set {item!r}: NAME=VALUE with NAME one of {', '.join(INTERVALS + LINK_SETTINGS)}")
        try:
            out[name] = int(value)
        except ValueError:
            raise ProvisionError(f"--set {item!r}: the value must be an integer") from None
        if out[name] < 1:
            raise ProvisionError(f"--set {item!r}: the value must be at least 1")
    return out


def ca_der(path: str) -> bytes:
    from navseal.gateway.certs import pem_to_der

    try:
        return pem_to_der(Path(path).read_bytes())
    except OSError as exc:
        raise ProvisionError(f"--ca: {exc}") from None
    except ValueError as exc:
        raise ProvisionError(f"--ca {path}: not a certificate ({exc})") from None


def seal_config(seal_id: int, key: bytes, *, link: str, host: str | None, port: int | None,
                tls: bool, password: str, server_name: str | None,
                settings: dict[str, int]) -> dict[str, Any]:
    """What goes to /data/navseal.json (firmware/main.py and seal.Config read it)."""
    cfg: dict[str, Any] = {"seal_id": seal_id, "key": key.hex(), "link": link}
    if link == "mqtt":
        cfg.update(mqtt_host=host, mqtt_port=port or (8883 if tls else 1883),
                   mqtt_user=str(seal_id), mqtt_password=password, mqtt_tls=tls)
        if tls:
            cfg["mqtt_ca"] = CA_FILE
            if server_name:
                cfg["mqtt_server_name"] = server_name
    cfg.update(settings)
    return cfg


# ---- steps -------------------------------------------------------------------------------------


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file:
        return _read_secret(args.token_file, "--token-file")
    return os.environ.get("NAVSEAL_TOKEN") or None


def register_with_gateway(api: str, seal_id: int, key: bytes, token: str | None,
                          ca_file: str | None = None) -> None:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps({"seal_id": seal_id, "key": key.hex()}).encode()
    req = urllib.request.Request(api.rstrip("/") + "/v1/seals", data=body, method="POST", headers=headers)
    context = None
    if ca_file:
        import ssl

        context = ssl.create_default_context(cafile=ca_file)
    try:
        with urllib.request.urlopen(req, timeout=30, context=context) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise ProvisionError(f"the gateway refused the seal ({exc.code}): {detail}", EXIT_REFUSED) from None
    except (urllib.error.URLError, OSError) as exc:
        raise ProvisionError(f"gateway unreachable at {api}: {exc}", EXIT_UNREACHABLE) from None


def add_broker_login(passwd_file: Path, user: str, password: str) -> None:
    """Add or replace `user` in a Mosquitto password file. mosquitto_passwd -U hashes a file
    in place, so the plain line only ever exists in a private temporary file."""
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "one"
        _write_private(plain, f"{user}:{password}\n".encode())
        res = subprocess.run([tool, "-U", str(plain)], capture_output=True, text=True)
        if res.returncode != 0:
            raise ProvisionError(f"mosquitto_passwd failed: {res.stderr.strip() or res.stdout.strip()}")
        hashed = plain.read_text().strip()
    lines = passwd_file.read_text().splitlines() if passwd_file.exists() else []
    lines = [ln for ln in lines if ln.split(":", 1)[0] != user] + [hashed]
    _write_private(passwd_file, ("\n".join(lines) + "\n").encode())


def _write_private(path: Path, data: bytes) -> None:
    from navseal.gateway.secrets import write_private

    write_private(path, data.decode())


class FlashDir:
    """A desktop seal's flash directory."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def describe(self) -> str:
        return f"desktop seal flash {self.path}"

    def provisioned(self) -> bool:
        return (self.path / CONFIG_FILE).exists()

    def write(self, config: bytes, ca: bytes | None) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        if ca is not None:
            (self.path / CA_FILE).write_bytes(ca)
        _write_private(self.path / CONFIG_FILE, config)  # last: its presence means "provisioned"


class Board:
    """A board on a serial port, through mpremote (as `navseal flash` reaches it)."""

    def __init__(self, port: str) -> None:
        if port_is_device_path(port) and not os.path.exists(port):
            raise ProvisionError(f"{port} does not exist (is the board plugged in?)")
        cmd = mpremote_cmd()
        if cmd is None:
            raise ProvisionError("mpremote is missing: pip install mpremote")
        self.port = port
        self.mpremote = cmd

    def describe(self) -> str:
        return f"board on {self.port} ({BOARD_DATA})"

    def _run(self, *args: str) -> str:
        res = subprocess.run([*self.mpremote, "connect", self.port, *args], capture_output=True,
                             text=True, timeout=120)
        if res.returncode != 0:
            tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
            raise ProvisionError(f"mpremote failed: {' / '.join(tail)}")
        return res.stdout

    def provisioned(self) -> bool:
        out = self._run("exec", "import os\ntry:\n    os.stat('%s/%s')\n    print('PROVISIONED')\n"
                                "except OSError:\n    print('BLANK')\n" % (BOARD_DATA, CONFIG_FILE))
        return "PROVISIONED" in out

    def write(self, config: bytes, ca: bytes | None) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = Path(tmp) / CONFIG_FILE
            _write_private(cfg, config)
            cmds = ["exec", "import os\ntry:\n    os.mkdir('%s')\nexcept OSError:\n    pass\n" % BOARD_DATA]
            if ca is not None:
                (Path(tmp) / CA_FILE).write_bytes(ca)
                cmds += ["+", "fs", "cp", str(Path(tmp) / CA_FILE), f":{BOARD_DATA}/{CA_FILE}"]
            cmds += ["+", "fs", "cp", str(cfg), f":{BOARD_DATA}/{CONFIG_FILE}"]
            self._run(*cmds)


def provision(args: argparse.Namespace) -> int:
    out = print
    tls = args.link == "mqtt" and not args.no_tls
    if args.link == "mqtt" and not args.broker_host:
        raise ProvisionError("--broker-host is required for the MQTT link")
    if tls and not args.ca:
        raise ProvisionError("--ca is required with TLS (the seal verifies the broker with it); "
                             "--no-tls for a plain bench broker")
    if args.key_out and not args.generate_key:
        raise ProvisionError("--key-out goes with --generate-key")
    settings = parse_settings(args.set)
    ca = ca_der(args.ca) if tls else None
    target: FlashDir | Board = FlashDir(args.flash_dir) if args.flash_dir else Board(args.port)
    out(f"1. check {target.describe()}")
    if not args.dry_run and target.provisioned() and not args.force:
        raise ProvisionError(f"{target.describe()} already holds a provisioned seal "
                             f"({CONFIG_FILE}); --force replaces its key and login", EXIT_REFUSED)
    key, generated = seal_key(args)
    password = (_read_secret(args.mqtt_password_file, "--mqtt-password-file")
                if args.mqtt_password_file else secrets.token_urlsafe(24))
    out(f"2. key: {'new random' if generated else 'given'}; broker login {args.seal}: "
        f"{'given' if args.mqtt_password_file else 'new random'} password")
    api = args.api or "http://127.0.0.1:8080"
    out("3. register with the gateway: " + ("skipped (--no-register)" if args.no_register
                                              else f"POST {api}/v1/seals"))
    if args.passwd_file:
        out(f"4. broker login into {args.passwd_file}")
    cfg = seal_config(args.seal, key, link=args.link, host=args.broker_host, port=args.broker_port,
                      tls=tls, password=password, server_name=args.server_name, settings=settings)
    out(f"5. write {CONFIG_FILE}" + (f" and {CA_FILE}" if ca else "") + f" to {target.describe()}")
    if args.dry_run:
        return 0
    if generated and args.key_out:
        _write_private(Path(args.key_out), key.hex().encode() + b"\n")
    if args.password_out:
        _write_private(Path(args.password_out), password.encode() + b"\n")
    if not args.no_register:
        register_with_gateway(api, args.seal, key, _token(args), args.api_ca_file)
    if args.passwd_file:
        add_broker_login(Path(args.passwd_file), str(args.seal), password)
    target.write(json.dumps(cfg).encode(), ca)
    out(f"seal {args.seal} provisioned")
    return 0


def _main(args: argparse.Namespace) -> int:
    try:
        return provision(args)
    except ProvisionError as exc:
        print(f"navseal provision: {exc}", file=sys.stderr)
        return exc.code
