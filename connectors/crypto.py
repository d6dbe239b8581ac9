"""Secrets at rest: AES-256-GCM under a keyring from ``STOCKPULSE_ENCRYPTION_KEYS``.

The keys are base64 32-byte keys, comma-separated, newest first. New secrets are sealed with the
newest; any key in the ring opens what it sealed, so a rotation is: put a new key first, run
``stockpulse keys rotate`` (re-seals everything under it), then drop the old key. Each sealed
value is bound to where it is stored (``context``, e.g. ``shop|access_token``), so a value
copied into another row or column does not open there.

>>> ring = Keyring.parse(generate_key())
>>> sealed = ring.seal(b"shpat_123", "s.myshopify.com|access_token")
>>> ring.open(sealed, "s.myshopify.com|access_token")
b'shpat_123'
>>> ring.open(sealed, "other.myshopify.com|access_token")
Traceback (most recent call last):
...
connectors.crypto.CannotOpen: the value does not open under any key for this context
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = b"\x01"
_KEY_ID_BYTES = 4
_NONCE_BYTES = 12  # 96-bit random nonces: safe for far more values than a shop has secrets


class CannotOpen(ValueError):
    """Tampered, sealed for another context, or sealed by a key no longer in the ring."""


class NoKeys(ValueError):
    """No encryption key is configured."""


def generate_key() -> str:
    """A fresh key in the form ``STOCKPULSE_ENCRYPTION_KEYS`` takes."""
    return base64.b64encode(os.urandom(32)).decode()


def _key_id(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()[:_KEY_ID_BYTES]


class Keyring:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise NoKeys("STOCKPULSE_ENCRYPTION_KEYS holds no key")
        if any(len(k) != 32 for k in keys):
            raise ValueError("every encryption key must be 32 bytes (AES-256), base64-encoded")
        self._keys = [(_key_id(k), AESGCM(k)) for k in keys]

    @classmethod
    def parse(cls, setting: str) -> Keyring:
        try:
            keys = [
                base64.b64decode(p.strip(), validate=True) for p in setting.split(",") if p.strip()
            ]
        except ValueError as exc:
            raise ValueError("STOCKPULSE_ENCRYPTION_KEYS must be base64 keys") from exc
        return cls(keys)

    def seal(self, plaintext: bytes, context: str) -> bytes:
        key_id, aead = self._keys[0]
        nonce = os.urandom(_NONCE_BYTES)
        return _VERSION + key_id + nonce + aead.encrypt(nonce, plaintext, context.encode())

    def open(self, sealed: bytes, context: str) -> bytes:
        head = 1 + _KEY_ID_BYTES
        if len(sealed) < head + _NONCE_BYTES + 16 or sealed[:1] != _VERSION:
            raise CannotOpen("not a sealed value")
        key_id, nonce = sealed[1:head], sealed[head : head + _NONCE_BYTES]
        for candidate_id, aead in self._keys:
            if candidate_id == key_id:
                try:
                    return aead.decrypt(nonce, sealed[head + _NONCE_BYTES :], context.encode())
                except InvalidTag:
                    break
        raise CannotOpen("the value does not open under any key for this context")

    def is_current(self, sealed: bytes) -> bool:
        """Whether ``sealed`` is under the newest key (else ``keys rotate`` re-seals it)."""
        return sealed[1 : 1 + _KEY_ID_BYTES] == self._keys[0][0]
