"""Typed configuration: wrong types, unknown keys, out-of-range values and dangerous combinations
are refused at start with one line naming the key; `check-config` prints the effective
configuration; HTTPS for the API with the certificate and key named in the config."""

from __future__ import annotations

import datetime as dt
import json
import os
import ssl
import subprocess
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway_harness import NAVSEAL, make_tokens
from navseal.gateway.config import ConfigError, load_config
from navseal.gateway.secrets import new_master_key_file
from navseal.gateway.service import GatewayService

BAD = [
    ('[mqtt]\nport = "abc"', "[mqtt] port: input should be a valid integer (got 'abc')"),
    ('signal_lost_after_s = "3h"', "signal_lost_after_s: input should be a valid number (got '3h')"),
    ('signal_lost_after_s = true', "signal_lost_after_s: input should be a valid number (got True)"),
    ('db_synchronous = "off"', "db_synchronous: input should be 'OFF', 'NORMAL', 'FULL' or 'EXTRA' (got 'off')"),
    ('db_synchronous = "OFF"', "db_synchronous = 'OFF': a gateway needs FULL"),
    ('[http]\nhost = "0.0.0.0"', "[http] host = '0.0.0.0' is beyond loopback: set [http] tls_cert and tls_key"),
    ('[http]\nport = 70000', "[http] port: input should be less than or equal to 65535 (got 70000)"),
    ('retention_years = 0', "retention_years: input should be greater than or equal to 1 (got 0)"),
    ('sink_retry_max_s = 0.1', "sink_retry_max_s must be >= sink_retry_initial_s"),
    ('signl_lost_after_s = 1', "unknown configuration key 'signl_lost_after_s'"),
    ('[mqtt]\nhots = "x"', "unknown configuration key [mqtt] hots"),
    ('[[sinks]]\nname = "a"\ntype = "jsonl"', "[[sinks]] 'a': type jsonl needs 'path'"),
    ('[[sinks]]\nname = "a"\ntype = "ftp"', "[[sinks]] 'a': type: input should be 'jsonl', 'mqtt' or 'webhook'"),
    ('[http]\ntls_cert = "/nonexistent.pem"', "[http] tls_cert and tls_key: give both (HTTPS) or neither"),
]


@pytest.mark.parametrize("text, message", BAD, ids=[b[0].replace("\n", " ") for b in BAD])
def test_a_bad_configuration_is_refused_with_one_line_naming_the_key(tmp_path, text, message):
    path = tmp_path / "gw.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, service=True)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_run_and_check_config_refuse_with_one_line_and_exit_2(tmp_path):
    path = tmp_path / "gw.toml"
    path.write_text('[mqtt]\nport = "abc"\n')
    for command in (["run", "--config", str(path)], ["check-config", str(path)]):
        result = subprocess.run([NAVSEAL, "gateway", *command], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == ["navseal gateway: [mqtt] port: input should be a valid "
                                                      "integer (got 'abc')"]


def test_run_refuses_to_start_without_a_master_key(tmp_path):
    path = tmp_path / "gw.toml"
    path.write_text(f'db_path = "{tmp_path / "gw.sqlite3"}"\n[mqtt]\nhost = ""\n[http]\nport = 0\n')
    env = {k: v for k, v in os.environ.items() if k != "NAVSEAL_MASTER_KEY"}
    result = subprocess.run([NAVSEAL, "gateway", "run", "--config", str(path)], capture_output=True, text=True,
                            timeout=60, env=env)
    assert result.returncode == 2 and "master_key_file: not set" in result.stderr


def test_check_config_prints_the_effective_configuration_with_secrets_masked(tmp_path):
    master = tmp_path / "master.key"
    new_master_key_file(master)
    path = tmp_path / "gw.toml"
    path.write_text(f'master_key_file = "{master}"\nsignal_lost_after_s = 600\n[mqtt]\npassword = "hunter2"\n'
                    f'[[sinks]]\nname = "ops"\ntype = "webhook"\nurl = "https://ops.example/e"\n'
                    f'headers = {{ Authorization = "Bearer secret" }}\n')
    result = subprocess.run([NAVSEAL, "gateway", "check-config", str(path)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["signal_lost_after_s"] == 600 and out["deactivation_deadline_s"] == 3600  # defaults filled in
    assert out["mqtt_password"] == "***" and out["sinks"][0]["headers"] == {"Authorization": "***"}
    assert out["master_key"] == "file" and "hunter2" not in result.stdout and "secret" not in result.stdout


# -- HTTPS ---------------------------------------------------------------------------------------


def self_signed(tmp_path) -> tuple[str, str]:
    """A server certificate for 127.0.0.1 (the test's own CA-less certificate, trusted directly)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "navseal test gateway")])
    now = dt.datetime.now(dt.timezone.utc)
    import ipaddress

    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "api.crt", tmp_path / "api.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    return str(cert_path), str(key_path)


def test_the_api_over_https_with_the_configured_certificate(tmp_path):
    cert, key = self_signed(tmp_path)
    # Beyond loopback is allowed once TLS is configured.
    assert load_config(None, http_host="0.0.0.0", http_tls_cert=cert, http_tls_key=key, service=True).http_tls
    config = load_config(None, db_path=str(tmp_path / "gw.sqlite3"), http_port=0, mqtt_host="",
                         http_tls_cert=cert, http_tls_key=key, service=True)
    svc = GatewayService(config, enable_mqtt=False)
    tokens = make_tokens(config.db_path, roles=("auditor",))
    svc.start()
    try:
        assert svc.http.url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cafile=cert)
        with urllib.request.urlopen(svc.http.url + "/healthz", context=context, timeout=10) as resp:
            assert json.loads(resp.read())["status"] == "ok"
        with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):  # a client that does not trust it
            urllib.request.urlopen(svc.http.url + "/healthz", context=ssl.create_default_context(), timeout=10)
        with pytest.raises(OSError):  # plain HTTP on the TLS port gets no answer
            urllib.request.urlopen(svc.http.url.replace("https", "http") + "/healthz", timeout=10)
        cli = subprocess.run([NAVSEAL, "gateway", "status", "--api", svc.http.url, "--ca-file", cert, "--json"],
                             capture_output=True, text=True, timeout=60,
                             env=dict(os.environ, NAVSEAL_TOKEN=tokens["auditor"]))
        assert cli.returncode == 0 and json.loads(cli.stdout) == {"escorts": []}, cli.stderr
    finally:
        svc.stop()
