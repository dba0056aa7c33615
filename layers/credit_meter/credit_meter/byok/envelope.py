"""Envelope encryption of a secret (a user's AI provider API key).

Each secret is encrypted with AES-256-GCM under a data key of its own; only the data key,
wrapped by a key wrapper, is stored next to it. The wrapper is AWS KMS in the cloud
(:class:`KmsKeys`) and a local master key file for the development server (:class:`LocalKeys`).
The encryption context names the owner of the secret: it is authenticated by KMS and is the
AES-GCM associated data, so a ciphertext copied under another owner does not decrypt.

``cryptography`` is imported inside the functions that use it: it ships with the BYOK
functions only, not in the shared layer, and other functions import this module's package.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

KEY_ID_ENV = "BYOK_KEY_ID"
LOCAL_KEY_FILE_ENV = "BYOK_LOCAL_KEY_FILE"
NONCE_BYTES = 12  # the size AES-GCM is specified for
KEY_BYTES = 32  # AES-256

Context = Mapping[str, str]


class KeyConfigError(RuntimeError):
    """Neither a KMS key nor a local key file is configured (or the local file is unusable)."""


class DecryptionFailed(RuntimeError):
    """A wrapped data key or a ciphertext does not open: another encryption context, another
    wrapping key, or altered bytes. Carries no secret material."""


@dataclass(frozen=True, slots=True)
class Sealed:
    """What is stored: the wrapped data key, and the secret encrypted under the data key."""

    wrapped_key: bytes
    nonce: bytes
    ciphertext: bytes  # AES-GCM output: the encrypted text and its 16-byte tag
    key_id: str  # the wrapping key (a KMS key ARN, or ``local:<fingerprint>``)

    def __repr__(self) -> str:  # bytes of key material have nothing to tell a log
        return f"Sealed(key_id={self.key_id!r})"


class Keys(Protocol):
    """A key wrapper: makes data keys and unwraps them again under the same context."""

    def new_data_key(self, context: Context) -> tuple[bytes, bytes, str]:
        """A fresh data key: (plaintext, wrapped, id of the wrapping key)."""
        ...

    def unwrap(self, wrapped: bytes, context: Context, key_id: str) -> bytes:
        """The plaintext data key; :class:`DecryptionFailed` if it does not open."""
        ...


def aad(context: Context) -> bytes:
    """The context as canonical JSON (sorted keys, no spaces): the same bytes on every run."""
    return json.dumps(dict(context), sort_keys=True, separators=(",", ":")).encode()


# -- AWS KMS ---------------------------------------------------------------------------------

_kms: Any = None
_kms_lock = threading.Lock()


def kms_client() -> Any:
    """One KMS client per process, made on first use (not at import)."""
    global _kms
    with _kms_lock:
        if _kms is None:
            import botocore.session
            from botocore.config import Config

            _kms = botocore.session.get_session().create_client(
                "kms",
                config=Config(
                    retries={"mode": "standard", "max_attempts": 3},
                    connect_timeout=1,
                    read_timeout=2,
                ),
            )
        return _kms


def reset_client() -> None:
    """Forget the cached KMS client (tests that move between endpoints)."""
    global _kms
    _kms = None


class KmsKeys:
    """Data keys from AWS KMS: ``GenerateDataKey`` (AES_256) and ``Decrypt``, both under the
    encryption context, so KMS refuses a wrapped key presented for another owner (and its
    CloudTrail log names the owner of every decryption)."""

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id

    def new_data_key(self, context: Context) -> tuple[bytes, bytes, str]:
        made = kms_client().generate_data_key(
            KeyId=self.key_id, KeySpec="AES_256", EncryptionContext=dict(context)
        )
        return made["Plaintext"], made["CiphertextBlob"], made["KeyId"]

    def unwrap(self, wrapped: bytes, context: Context, key_id: str) -> bytes:
        try:
            # The key the item names, not the configured one: keys wrapped before a switch to a
            # new KMS key still open (KMS checks the blob was made by that key).
            opened = kms_client().decrypt(
                CiphertextBlob=wrapped, EncryptionContext=dict(context), KeyId=key_id
            )
        except Exception as err:
            code = getattr(err, "response", {}).get("Error", {}).get("Code")
            if code in {"InvalidCiphertextException", "IncorrectKeyException"}:
                raise DecryptionFailed("the data key does not open under this context") from None
            raise
        plaintext: bytes = opened["Plaintext"]
        return plaintext


# -- local development -----------------------------------------------------------------------


class LocalKeys:
    """Development only (the local server has no KMS): data keys wrapped with AES-GCM under a
    32-byte master key kept in a file, made on first use with mode 0600. The context is the
    associated data of the wrapping, as KMS binds it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _master(self) -> bytes:
        try:
            # O_EXCL: two processes starting together cannot both write a key; the loser reads.
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(os.urandom(KEY_BYTES))
        with open(self.path, "rb") as found:
            master = found.read()
        if len(master) != KEY_BYTES:
            raise KeyConfigError(f"{LOCAL_KEY_FILE_ENV} must hold exactly {KEY_BYTES} bytes")
        return master

    @staticmethod
    def _id(master: bytes) -> str:
        # Names the master key without revealing it: a replaced key file is told apart.
        return "local:" + hashlib.sha256(b"byok-local-key-id\n" + master).hexdigest()[:16]

    def new_data_key(self, context: Context) -> tuple[bytes, bytes, str]:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        master = self._master()
        data_key = os.urandom(KEY_BYTES)
        nonce = os.urandom(NONCE_BYTES)
        wrapped = nonce + AESGCM(master).encrypt(nonce, data_key, aad(context))
        return data_key, wrapped, self._id(master)

    def unwrap(self, wrapped: bytes, context: Context, key_id: str) -> bytes:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        master = self._master()
        if key_id != self._id(master):
            raise DecryptionFailed("the data key was wrapped by another local master key")
        try:
            return AESGCM(master).decrypt(
                wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], aad(context)
            )
        except InvalidTag:
            raise DecryptionFailed("the data key does not open under this context") from None


def keys() -> Keys:
    """The configured wrapper: KMS when ``BYOK_KEY_ID`` is set, else the local key file."""
    key_id = os.environ.get(KEY_ID_ENV)
    if key_id:
        return KmsKeys(key_id)
    path = os.environ.get(LOCAL_KEY_FILE_ENV)
    if path:
        return LocalKeys(path)
    raise KeyConfigError(
        f"set {KEY_ID_ENV} (a KMS key id or ARN), or for local development "
        f"{LOCAL_KEY_FILE_ENV} (a file for a generated master key)"
    )


# -- the secret ------------------------------------------------------------------------------


def seal(secret: str, context: Context, wrapper: Keys) -> Sealed:
    """Encrypt ``secret`` under a new data key bound to ``context``."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    data_key, wrapped, key_id = wrapper.new_data_key(context)
    nonce = os.urandom(NONCE_BYTES)  # random per secret: a data key never sees a second nonce
    ciphertext = AESGCM(data_key).encrypt(nonce, secret.encode(), aad(context))
    # Python cannot wipe memory; dropping the only reference is what is in our hands: the
    # plaintext data key is never cached, returned or logged.
    del data_key
    return Sealed(wrapped_key=wrapped, nonce=nonce, ciphertext=ciphertext, key_id=key_id)


def open_sealed(sealed: Sealed, context: Context, wrapper: Keys) -> str:
    """The secret back; :class:`DecryptionFailed` if the context or any byte differs."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    data_key = wrapper.unwrap(sealed.wrapped_key, context, sealed.key_id)
    try:
        plaintext = AESGCM(data_key).decrypt(sealed.nonce, sealed.ciphertext, aad(context))
    except InvalidTag:
        raise DecryptionFailed("the secret does not open under this context") from None
    finally:
        del data_key
    return plaintext.decode()
