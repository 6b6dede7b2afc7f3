"""Seal keys as the store keeps them: encrypted with the master key (gateway/secrets.py) when the
store has one, else the raw 32 bytes (in-process tools on throw-away files: simulator, unit tests)."""

from __future__ import annotations

from typing import Any

from .interface import StoreError


class KeyCodec:
    def __init__(self, cipher: Any = None) -> None:
        self.cipher = cipher

    def encode(self, seal_id: int, key: bytes) -> bytes:
        return self.cipher.seal(seal_id, key) if self.cipher is not None else bytes(key)

    def decode(self, seal_id: int, blob: bytes) -> bytes:
        from ..secrets import SecretError, is_sealed

        blob = bytes(blob)
        if not is_sealed(blob):
            return blob
        if self.cipher is None:
            raise StoreError(f"seal {seal_id}: the stored key is encrypted and no master key is configured "
                             f"(master_key_file or NAVSEAL_MASTER_KEY)")
        try:
            return self.cipher.open(seal_id, blob)
        except SecretError as exc:
            raise StoreError(str(exc)) from None
