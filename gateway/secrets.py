"""Seal keys as secrets: encrypted at rest, read from files or stdin, test keys kept out.

- `KeyCipher` encrypts each seal key with AES-256-GCM (`cryptography`) under a master key that
  lives outside the database: a file of 64 hex digits readable by its owner only (0600), or the
  NAVSEAL_MASTER_KEY environment variable. The seal id is the associated data, so a ciphertext
  copied onto another seal's row does not decrypt. Stored form: version byte, 12-byte nonce,
  ciphertext and tag (61 bytes for a 32-byte key).
- `read_key_file` takes a key from a file or stdin ("-"), never from the command line (argv is
  visible in `ps` and kept in shell history).
- `is_test_key` recognises the protocol's published test keys (sha256("navseal test key <id>")):
  a gateway accepts them only when started with the development flag.
"""

from __future__ import annotations

import hmac
import os
import secrets
import stat
import sys
from pathlib import Path
from typing import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from navseal.protocol import test_key

from .config import MASTER_KEY_ENV, ConfigError

KEY_BYTES = 32
_VERSION = b"\x01"
_NONCE = 12
SEALED_LEN = 1 + _NONCE + KEY_BYTES + 16


class SecretError(ValueError):
    """A key or master key that cannot be used; the message says which and why."""


class KeyCipher:
    """AES-256-GCM for seal keys at rest (see the module doc)."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != KEY_BYTES:
            raise SecretError(f"master key: {KEY_BYTES} bytes expected, got {len(master_key)}")
        self._aead = AESGCM(master_key)

    def seal(self, seal_id: int, key: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return _VERSION + nonce + self._aead.encrypt(nonce, bytes(key), _aad(seal_id))

    def open(self, seal_id: int, blob: bytes) -> bytes:
        blob = bytes(blob)
        if len(blob) != SEALED_LEN or blob[:1] != _VERSION:
            raise SecretError(f"seal {seal_id}: stored key is not in the encrypted form")
        try:
            return self._aead.decrypt(blob[1:1 + _NONCE], blob[1 + _NONCE:], _aad(seal_id))
        except InvalidTag:
            raise SecretError(f"seal {seal_id}: stored key does not decrypt with this master key") from None


def is_sealed(blob: bytes) -> bool:
    return len(blob) == SEALED_LEN and bytes(blob[:1]) == _VERSION


def _aad(seal_id: int) -> bytes:
    return b"navseal seal key|" + str(int(seal_id)).encode()


def is_test_key(seal_id: int, key: bytes) -> bool:
    return hmac.compare_digest(bytes(key), test_key(int(seal_id)))


def parse_hex_key(text: str, what: str = "key") -> bytes:
    text = text.strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise SecretError(f"{what}: {KEY_BYTES * 2} hex digits expected") from None
    if len(key) != KEY_BYTES:
        raise SecretError(f"{what}: {KEY_BYTES} bytes ({KEY_BYTES * 2} hex digits) expected, got {len(key)}")
    return key


def read_key_file(path: str, what: str = "key") -> bytes:
    """A 32-byte key as 64 hex digits from a file, or from stdin when `path` is "-"."""
    if path == "-":
        return parse_hex_key(sys.stdin.readline(), what)
    try:
        return parse_hex_key(Path(path).read_text(encoding="ascii", errors="replace"), f"{what} file {path}")
    except OSError as exc:
        raise SecretError(f"{what} file {path}: {exc.strerror or exc}") from None


def check_private(path: str | Path, what: str) -> None:
    """Refuse a secret file that its group or others may read or write."""
    mode = os.stat(path).st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretError(f"{what} {path} is mode {stat.S_IMODE(mode):04o}: make it 0600 "
                          f"(chmod 600 {path}); other users must not read it")


def load_master_key(config, environ: Mapping[str, str] | None = None) -> KeyCipher | None:
    """The cipher for the configured master key (master_key_file, else NAVSEAL_MASTER_KEY), or None
    when neither is set. ConfigError (one line naming the setting) when it is set but unusable."""
    environ = os.environ if environ is None else environ
    try:
        if config.master_key_file:
            check_private(config.master_key_file, "master_key_file")
            return KeyCipher(read_key_file(config.master_key_file, "master_key_file"))
        if environ.get(MASTER_KEY_ENV):
            return KeyCipher(parse_hex_key(environ[MASTER_KEY_ENV], MASTER_KEY_ENV))
    except FileNotFoundError:
        raise ConfigError(f"master_key_file: no such file {config.master_key_file!r}") from None
    except SecretError as exc:
        raise ConfigError(str(exc)) from None
    return None


def write_private(path: str | Path, text: str) -> None:
    """Create (or replace) a file only its owner can read, with `text`."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(text)


def new_master_key_file(path: str | Path) -> None:
    if Path(path).exists():
        raise SecretError(f"{path} exists: refusing to overwrite a master key (the stored seal keys "
                          f"would no longer decrypt)")
    write_private(path, secrets.token_hex(KEY_BYTES) + "\n")
