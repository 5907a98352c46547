"""Seal secrets before they touch the store (webhook secrets, tokens a plugin must keep).

AES-GCM under a key derived from the hub's signing key: a database dump shows only
ciphertext, and a value sealed for one purpose cannot be opened as another (the purpose
is bound as associated data).
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from stemhub.errors import ErrorCode, StemhubError

_PREFIX = "sealed:v1:"


class Sealer:
    def __init__(self, signing_key: bytes) -> None:
        self._aead = AESGCM(hashlib.sha256(b"stemhub-seal\x00" + signing_key).digest())

    def seal(self, plaintext: str, *, purpose: str) -> str:
        nonce = os.urandom(12)
        blob = self._aead.encrypt(nonce, plaintext.encode(), purpose.encode())
        return _PREFIX + base64.urlsafe_b64encode(nonce + blob).decode()

    def open(self, sealed: str, *, purpose: str) -> str:
        if not sealed.startswith(_PREFIX):
            raise StemhubError(ErrorCode.INTERNAL, "A stored secret is not sealed.")
        raw = base64.urlsafe_b64decode(sealed[len(_PREFIX) :])
        try:
            return self._aead.decrypt(raw[:12], raw[12:], purpose.encode()).decode()
        except InvalidTag:
            raise StemhubError(
                ErrorCode.INTERNAL,
                "A stored secret could not be opened.",
                operator_message="The signing key changed since the secret was stored.",
            ) from None


__all__ = ["Sealer"]
