"""A private certificate authority for the broker's TLS listener, the gateway and the seals.

Seals verify the broker against a CA certificate on their flash (DER: what MicroPython's
`SSLContext.load_verify_locations(cadata=...)` takes); the broker presents a server certificate
whose subject alternative names list the host names and addresses the seals and the gateway dial.
Keys are EC P-256: mbedTLS on the ESP32 handles them in a few hundred milliseconds where RSA-2048
takes seconds, and the handshake's messages stay small.

    ca = make_ca("navseal seal CA")
    server = issue(ca, "broker.example", hosts=["broker.example", "127.0.0.1"])
    seal = issue(ca, "1001", client=True)            # optional mutual TLS (CN = seal id)
    ca.cert_pem(), ca.cert_der(), server.key_pem(), ...
    write_bundle(out_dir, hosts=[...], seals=[1001])  # what `navseal gateway certs` writes

Every private key file is written 0600 (gateway.secrets.write_private); certificates 0644.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .secrets import write_private

CA_DAYS = 3650  # the CA outlives every seal's service life
LEAF_DAYS = 825  # the longest leaf validity browsers and most TLS stacks still accept


@dataclass
class Issued:
    """A key and its certificate (and, for leaves, the CA that signed it)."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def cert_der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    def key_der(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.DER,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "navseal"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _now() -> dt.datetime:
    # Backdated a little: a seal whose clock is a few minutes behind must still accept it.
    return dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)


def make_ca(common_name: str = "navseal CA", days: int = CA_DAYS) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    start = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(key, cert)


def _san(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def issue(ca: Issued, common_name: str, *, hosts: list[str] | None = None, client: bool = False,
          days: int = LEAF_DAYS) -> Issued:
    """A leaf certificate signed by `ca`: a server certificate with `hosts` (DNS names or IP
    addresses) as subject alternative names, or with `client=True` a client certificate (a
    seal's, CN = its seal id, for `use_identity_as_username`)."""
    if not client and not hosts:
        raise ValueError("a server certificate needs at least one host name or address")
    key = ec.generate_private_key(ec.SECP256R1())
    start = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=True, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
                       critical=False)
    )
    if hosts:
        builder = builder.add_extension(_san(hosts), critical=False)
    return Issued(key, builder.sign(ca.key, hashes.SHA256()))


def load(cert_pem_or_der: bytes, key_pem: bytes | None = None) -> Issued:
    """An existing certificate (PEM or DER) and, to issue with it, its PEM private key."""
    if cert_pem_or_der.lstrip().startswith(b"-----"):
        cert = x509.load_pem_x509_certificate(cert_pem_or_der)
    else:
        cert = x509.load_der_x509_certificate(cert_pem_or_der)
    key = serialization.load_pem_private_key(key_pem, None) if key_pem is not None else None
    if key is not None and not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("only EC private keys are supported")
    return Issued(key, cert)  # type: ignore[arg-type]  # key None: usable for its cert only


def pem_to_der(cert_pem: bytes) -> bytes:
    """A certificate as DER whatever it came as (the seal's flash holds DER)."""
    return load(cert_pem).cert_der()


def write_public(path: Path, data: bytes) -> Path:
    path = Path(path)
    path.write_bytes(data)
    path.chmod(0o644)
    return path


def write_bundle(out_dir: Path | str, *, hosts: list[str], seals: list[int] = (),
                 ca: Issued | None = None, server_name: str | None = None) -> dict[str, Path]:
    """A CA (new unless given), a server certificate for `hosts` and optional seal client
    certificates, as files in `out_dir`:

        ca.crt ca.der ca.key              the CA (ca.key: keep it offline once seals are issued)
        server.crt server.key             the broker's (Mosquitto certfile / keyfile)
        seal-<id>.crt seal-<id>.key       per seal, when mutual TLS is wanted

    Returns {name: path}. Refuses to overwrite an existing CA key (a new CA would lock out every
    seal provisioned with the old one)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    if ca is None:
        if (out / "ca.key").exists():
            raise FileExistsError(f"{out / 'ca.key'} exists: pass the existing CA instead of a new one")
        ca = make_ca()
        write_private(out / "ca.key", ca.key_pem().decode())
        written["ca.key"] = out / "ca.key"
    written["ca.crt"] = write_public(out / "ca.crt", ca.cert_pem())
    written["ca.der"] = write_public(out / "ca.der", ca.cert_der())
    server = issue(ca, server_name or hosts[0], hosts=hosts)
    written["server.crt"] = write_public(out / "server.crt", server.cert_pem())
    write_private(out / "server.key", server.key_pem().decode())
    written["server.key"] = out / "server.key"
    for seal_id in seals:
        leaf = issue(ca, str(seal_id), client=True)
        written[f"seal-{seal_id}.crt"] = write_public(out / f"seal-{seal_id}.crt", leaf.cert_pem())
        write_private(out / f"seal-{seal_id}.key", leaf.key_pem().decode())
        written[f"seal-{seal_id}.key"] = out / f"seal-{seal_id}.key"
    return written
