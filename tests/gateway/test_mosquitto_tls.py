"""The shipped broker configuration's TLS side, on a real Mosquitto: the seals' TLS listener
(certificates from navseal.gateway.certs, made here), the login as client id there (one seal's
credentials cannot take over another seal's session), the gateway's MQTT client over TLS, and
the certificate module itself."""

from __future__ import annotations

import ssl
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from navseal.gateway import certs
from navseal.gateway.config import ConfigError, load_config
from navseal.gateway.mosquitto_broker import (PRODUCTION_ACL, PRODUCTION_CONF, SEAL_LISTENER_LINES,
                                              TlsFiles)
from navseal.gateway.mqtt_ingest import configure_tls

paho = pytest.importorskip("paho.mqtt.client")


def _listeners(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "listener":
            current = words[1]
            out[current] = []
        elif current is not None:
            out[current].append(" ".join(words))
    return out


def test_shipped_config_authenticates_per_listener_and_seals_only_by_login():
    text = PRODUCTION_CONF.read_text()
    assert "per_listener_settings true" in text.splitlines()
    listeners = _listeners(text)
    seal, gateway = listeners["8883"], listeners["1883"]
    for line in SEAL_LISTENER_LINES:  # what the tests' render gives the TLS listener
        assert line in seal
    assert "use_username_as_clientid true" not in gateway  # gateways share a login
    for lines in (seal, gateway):
        assert "allow_anonymous false" in lines
        assert any(ln.startswith("password_file ") for ln in lines)
        assert any(ln.startswith("acl_file ") for ln in lines)
    assert any(ln.startswith("certfile ") for ln in seal) and any(ln.startswith("keyfile ") for ln in seal)


def test_certificates_chain_name_the_hosts_and_keep_keys_private(tmp_path):
    files = certs.write_bundle(tmp_path, hosts=["broker.example", "127.0.0.1"], seals=[1001])
    for name, path in files.items():
        assert path.stat().st_mode & 0o777 == (0o600 if name.endswith(".key") else 0o644), name
    ca = x509.load_pem_x509_certificate(files["ca.crt"].read_bytes())
    server = x509.load_pem_x509_certificate(files["server.crt"].read_bytes())
    server.verify_directly_issued_by(ca)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["broker.example"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert isinstance(server.public_key(), ec.EllipticCurvePublicKey)
    assert files["ca.der"].read_bytes() == certs.pem_to_der(files["ca.crt"].read_bytes())
    seal = x509.load_pem_x509_certificate(files["seal-1001.crt"].read_bytes())
    assert seal.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value == "1001"
    with pytest.raises(FileExistsError):
        certs.write_bundle(tmp_path, hosts=["x"])  # a second CA would lock out every seal
    again = certs.write_bundle(tmp_path, hosts=["x"], ca=certs.load(files["ca.crt"].read_bytes(),
                                                                   files["ca.key"].read_bytes()))
    x509.load_pem_x509_certificate(again["server.crt"].read_bytes()).verify_directly_issued_by(ca)


def test_gateway_certs_command(tmp_path, capsys):
    from navseal.cli import main as cli_main

    assert cli_main(["gateway", "certs", "--out", str(tmp_path), "--host", "localhost"]) == 0
    assert "server.key  (0o600)" in capsys.readouterr().out
    assert cli_main(["gateway", "certs", "--out", str(tmp_path), "--host", "localhost"]) == 2


def test_gateway_tls_settings_are_checked(tmp_path):
    cfg = tmp_path / "g.toml"
    cfg.write_text('[mqtt]\ntls = true\ntls_ca = "/etc/ca.crt"\n')
    assert load_config(cfg).mqtt_tls_ca == "/etc/ca.crt"
    cfg.write_text('[mqtt]\ntls_ca = "/etc/ca.crt"\n')
    with pytest.raises(ConfigError, match="tls is false"):
        load_config(cfg)
    cfg.write_text('[mqtt]\ntls = true\ntls_cert = "c.pem"\n')
    with pytest.raises(ConfigError, match="go together"):
        load_config(cfg)


@pytest.fixture
def tls_broker(tmp_path, mosquitto_factory):
    files = certs.write_bundle(tmp_path / "certs", hosts=["127.0.0.1", "localhost"])
    broker = mosquitto_factory(users={"1001": "pw1", "1002": "pw2", "navseal-gateway": "gw"},
                               acl_file=PRODUCTION_ACL,
                               tls=TlsFiles(files["ca.crt"], files["server.crt"], files["server.key"]))
    return broker, files


def _client(client_id, user, password, ca=None):
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id)
    c.username_pw_set(user, password)
    if ca is not None:
        configure_tls(c, str(ca))
    state = {"connected": threading.Event(), "refused": None, "dropped": threading.Event()}
    c.on_connect = lambda cl, u, f, rc, p: state["connected"].set() if not rc.is_failure else state.update(refused=rc)
    c.on_disconnect = lambda cl, u, f, rc, p: state["dropped"].set()
    return c, state


def test_tls_listener_verifies_and_binds_the_login_to_the_client_id(tls_broker):
    broker, files = tls_broker
    seal1, s1 = _client("seal-1001", "1001", "pw1", files["ca.crt"])
    seal1.connect("127.0.0.1", broker.tls_port)
    seal1.loop_start()
    intruder = None
    try:
        assert s1["connected"].wait(10)
        # Seal 1002's credentials asking for seal 1001's client id: the broker uses the login
        # (1002) as the client id, so seal 1001's session is not taken over.
        intruder, s2 = _client("seal-1001", "1002", "pw2", files["ca.crt"])
        intruder.connect("127.0.0.1", broker.tls_port)
        intruder.loop_start()
        assert s2["connected"].wait(10)
        assert not s1["dropped"].wait(1.5)
        assert seal1.is_connected()
    finally:
        for c in (seal1, intruder):
            if c is not None:
                c.loop_stop()
                c.disconnect()
    # A client that trusts another CA refuses the broker's certificate.
    other = certs.make_ca("someone else")
    other_ca = Path(files["ca.crt"]).with_name("other.crt")
    other_ca.write_bytes(other.cert_pem())
    c, _ = _client("x", "1001", "pw1", other_ca)
    with pytest.raises(ssl.SSLCertVerificationError):
        c.connect("127.0.0.1", broker.tls_port)
    # Plain MQTT on the TLS port gets nothing.
    plain, ps = _client("y", "1001", "pw1")
    try:
        plain.connect("127.0.0.1", broker.tls_port)
        plain.loop_start()
        assert not ps["connected"].wait(2)
    except OSError:
        pass
    finally:
        plain.loop_stop()


def test_gateway_ingests_over_tls(tls_broker, tmp_path):
    """The gateway service's own MQTT client (config [mqtt] tls) against the TLS listener."""
    from navseal.gateway.config import load_config as load
    from navseal.gateway.service import GatewayService

    broker, files = tls_broker
    cfg = tmp_path / "g.toml"
    cfg.write_text(f'db_path = "{tmp_path / "gw.sqlite3"}"\n[mqtt]\nhost = "127.0.0.1"\n'
                   f'port = {broker.tls_port}\nusername = "navseal-gateway"\npassword = "gw"\n'
                   f'tls = true\ntls_ca = "{files["ca.crt"]}"\n')
    service = GatewayService(load(cfg), http=False)
    service.start()
    try:
        deadline = time.monotonic() + 10
        while not service.mqtt.subscribed.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert service.mqtt.subscribed.is_set()
    finally:
        service.stop()
