"""`navseal provision`: the seal's identity onto a desktop seal's flash directory and, through
the real mpremote over a real pty, onto a MicroPython board (fake_board.mjs, as the flash test);
registration with the gateway's API with a bearer token; refusal to overwrite without --force.
The whole chain with a running desktop seal is in test_board_path.py."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from navseal.cli import main as cli_main
from navseal.cmd_flash import mpremote_cmd
from navseal.gateway import certs

KEY_HEX = "5a" * 32


class FakeApi:
    """POST /v1/seals recorder: answers 201, or 401 without the expected bearer token."""

    def __init__(self, token: str | None = None):
        self.calls: list[tuple[dict, str | None]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                auth = self.headers.get("Authorization")
                api.calls.append((body, auth))
                ok = token is None or auth == f"Bearer {token}"
                self.send_response(201 if ok else 401)
                self.end_headers()
                self.wfile.write(b'{"provisioned": true}' if ok else b'{"error": "unauthorized"}')

            def log_message(self, *a):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def ca(tmp_path):
    return certs.write_bundle(tmp_path / "certs", hosts=["127.0.0.1"])


def _args(tmp_path, ca, *extra):
    key = tmp_path / "seal.key"
    key.write_text(KEY_HEX + "\n")
    return ["provision", "--seal", "1001", "--key-file", str(key), "--broker-host", "broker.example",
            "--ca", str(ca["ca.crt"]), *extra]


def test_desktop_flash_gets_config_and_ca_and_the_gateway_the_key(tmp_path, ca, capsys, monkeypatch):
    api = FakeApi(token="tok-1")
    monkeypatch.setenv("NAVSEAL_TOKEN", "tok-1")
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    flash = tmp_path / "flash"
    try:
        rc = cli_main(_args(tmp_path, ca, "--api", api.url, "--flash-dir", str(flash),
                            "--mqtt-password-file", str(pw), "--set", "report_moving_s=10"))
    finally:
        api.close()
    out = capsys.readouterr()
    assert rc == 0, out.err
    cfg = json.loads((flash / "navseal.json").read_text())
    assert cfg == {"seal_id": 1001, "key": KEY_HEX, "link": "mqtt", "mqtt_host": "broker.example",
                   "mqtt_port": 8883, "mqtt_user": "1001", "mqtt_password": "s3cret", "mqtt_tls": True,
                   "mqtt_ca": "ca.der", "report_moving_s": 10}
    assert (flash / "navseal.json").stat().st_mode & 0o777 == 0o600
    assert (flash / "ca.der").read_bytes() == ca["ca.der"].read_bytes()
    assert api.calls == [({"seal_id": 1001, "key": KEY_HEX}, "Bearer tok-1")]
    assert KEY_HEX not in out.out + out.err  # the key is never printed


def test_refuses_to_overwrite_a_provisioned_seal_without_force(tmp_path, ca, capsys):
    flash = tmp_path / "flash"
    assert cli_main(_args(tmp_path, ca, "--no-register", "--flash-dir", str(flash))) == 0
    first = (flash / "navseal.json").read_bytes()
    assert cli_main(_args(tmp_path, ca, "--no-register", "--flash-dir", str(flash))) == 1
    assert "already holds a provisioned seal" in capsys.readouterr().err
    assert (flash / "navseal.json").read_bytes() == first
    assert cli_main(_args(tmp_path, ca, "--no-register", "--flash-dir", str(flash), "--force")) == 0
    assert json.loads((flash / "navseal.json").read_bytes())["mqtt_password"] != json.loads(first)["mqtt_password"]


def test_key_from_stdin_generated_key_and_bad_input(tmp_path, ca, capsys, monkeypatch):
    flash = tmp_path / "a"
    monkeypatch.setattr("sys.stdin", io.StringIO(KEY_HEX))
    base = ["provision", "--seal", "7", "--broker-host", "h", "--ca", str(ca["ca.der"]), "--no-register"]
    assert cli_main([*base, "--key-stdin", "--flash-dir", str(flash)]) == 0
    assert json.loads((flash / "navseal.json").read_text())["key"] == KEY_HEX
    out_key = tmp_path / "new.key"
    assert cli_main([*base, "--generate-key", "--key-out", str(out_key), "--flash-dir", str(tmp_path / "b")]) == 0
    assert out_key.stat().st_mode & 0o777 == 0o600
    assert json.loads((tmp_path / "b" / "navseal.json").read_text())["key"] == out_key.read_text().strip()
    monkeypatch.setattr("sys.stdin", io.StringIO("abc"))
    assert cli_main([*base, "--key-stdin", "--flash-dir", str(tmp_path / "c")]) == 2
    assert cli_main([*base, "--key-stdin", "--flash-dir", str(tmp_path / "c"), "--set", "bogus=1"]) == 2
    assert cli_main(["provision", "--seal", "7", "--broker-host", "h", "--generate-key", "--no-register",
                     "--flash-dir", str(tmp_path / "d")]) == 2  # TLS needs --ca
    err = capsys.readouterr().err
    assert "64 hex digits" in err and "--ca is required" in err and "bogus" in err
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()
    with pytest.raises(SystemExit):
        cli_main(["provision", "--seal", "7", "--key", KEY_HEX])  # no key on the command line


def test_gateway_refusal_and_unreachable_gateway_write_nothing(tmp_path, ca, capsys):
    api = FakeApi(token="right")
    flash = tmp_path / "flash"
    try:
        assert cli_main(_args(tmp_path, ca, "--api", api.url, "--flash-dir", str(flash))) == 1
    finally:
        api.close()
    assert "refused the seal (401)" in capsys.readouterr().err
    assert cli_main(_args(tmp_path, ca, "--api", "http://127.0.0.1:9", "--flash-dir", str(flash))) == 3
    assert not (flash / "navseal.json").exists()


def test_broker_login_added_to_the_password_file(tmp_path, ca, mosquitto_factory):
    paho = pytest.importorskip("paho.mqtt.client")
    broker = mosquitto_factory(users={"navseal-gateway": "gw"})
    passwd = broker.workdir / "passwd"
    before = passwd.read_text()
    flash = tmp_path / "flash"
    assert cli_main(["provision", "--seal", "1001", "--generate-key", "--no-register", "--no-tls",
                     "--broker-host", broker.host, "--broker-port", str(broker.port),
                     "--passwd-file", str(passwd), "--flash-dir", str(flash)]) == 0
    text = passwd.read_text()
    assert text.startswith(before.strip()) and "\n1001:$" in text
    password = json.loads((flash / "navseal.json").read_text())["mqtt_password"]
    assert password not in text  # hashed
    broker.process.send_signal(signal.SIGHUP)  # Mosquitto re-reads its password file
    connected = threading.Event()
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="seal-1001")
    c.username_pw_set("1001", password)
    c.on_connect = lambda cl, u, f, rc, p: rc.is_failure or connected.set()
    c.connect(broker.host, broker.port)
    c.loop_start()
    try:
        assert connected.wait(10)
    finally:
        c.loop_stop()
        c.disconnect()


@pytest.mark.micropython
@pytest.mark.slow
def test_provision_a_board_through_mpremote(tmp_path, ca, capsys):
    from mp_helper import require_mp
    from test_flash_board import PtyBoard

    require_mp()
    if mpremote_cmd() is None:
        pytest.fail("mpremote missing (bash tools/run setup)")
    board = PtyBoard()
    try:
        rc = cli_main(_args(tmp_path, ca, "--no-register", "--port", board.port))
        assert rc == 0, capsys.readouterr().err
        check = ("import json\n"
                 "c = json.loads(open('/data/navseal.json').read())\n"
                 "print(c['seal_id'], c['key'], c['mqtt_tls'], c['mqtt_ca'])\n"
                 "print(len(open('/data/ca.der', 'rb').read()))\n")
        res = subprocess.run([*mpremote_cmd(), "connect", board.port, "exec", check],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stdout + res.stderr
        lines = res.stdout.strip().splitlines()
        assert lines[0] == f"1001 {KEY_HEX} True ca.der"
        assert int(lines[1]) == len(Path(ca["ca.der"]).read_bytes())
        assert cli_main(_args(tmp_path, ca, "--no-register", "--port", board.port)) == 1
        assert "already holds a provisioned seal" in capsys.readouterr().err
    finally:
        board.close()
