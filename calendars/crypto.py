"""Encryption of provider credentials at rest, under CALENDAR_TOKEN_KEY (never SECRET_KEY).

Built on django-cryptography-5's primitives rather than its `encrypt()` field: that field
authenticates ciphertexts with an HMAC keyed by SECRET_KEY (its FernetSigner's default), so
rotating SECRET_KEY would make every stored token unreadable. Here both the AES key and the
HMAC key are derived from CALENDAR_TOKEN_KEY (PBKDF2, as the library derives its own).

Rotation without downtime: deploy with the new CALENDAR_TOKEN_KEY and the old one in
CALENDAR_TOKEN_OLD_KEYS (values written under old keys stay readable), run
`python manage.py rotate_calendar_key`, then drop the old key.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django_cryptography.core.signing import BadSignature, FernetSigner
from django_cryptography.utils.crypto import FernetBytes, InvalidToken

from calendars.errors import UndecryptableError


@cache
def _derive(secret: str, purpose: bytes) -> bytes:
    kdf = PBKDF2HMAC(
        algorithm=hashes.SHA256(), length=32, salt=b"calendar-tokens:" + purpose, iterations=30000
    )
    return kdf.derive(secret.encode())


def fernet(secret: str) -> FernetBytes:
    if not secret:
        raise ImproperlyConfigured("CALENDAR_TOKEN_KEY is empty.")
    return FernetBytes(
        key=_derive(secret, b"encryption"),
        signer=FernetSigner(key=_derive(secret, b"signature")),
    )


def current_key() -> str:
    return settings.CALENDAR_TOKEN_KEY


def readable_keys() -> list[str]:
    return [settings.CALENDAR_TOKEN_KEY, *settings.CALENDAR_TOKEN_OLD_KEYS]


def encrypt_text(value: str, *, key: str | None = None) -> bytes:
    return fernet(key or current_key()).encrypt(value.encode())


def decrypt_text(token: bytes, *, keys: list[str] | None = None) -> str:
    for secret in keys or readable_keys():
        try:
            return fernet(secret).decrypt(bytes(token)).decode()
        except (BadSignature, InvalidToken):
            continue
    raise UndecryptableError("No configured CALENDAR_TOKEN_KEY can read this credential.")


class UndecryptableText(str):
    """What a value no configured key can read loads as: empty text that keeps its ciphertext.

    Loading a row never fails on it (a lost or rotated key must not crash every query of the
    row); the value is refused where it is used (`CalendarIntegration.get_credentials` raises
    UndecryptableError), and saving the row writes the ciphertext back unchanged, so that
    restoring the old key makes it readable again."""

    ciphertext: bytes

    def __new__(cls, ciphertext: bytes) -> UndecryptableText:
        text = super().__new__(cls, "")
        text.ciphertext = ciphertext
        return text


class EncryptedTextField(models.BinaryField):
    """Text kept encrypted in the database; reads and writes plain `str` in Python.

    Never searchable, never shown in forms (editable=False), and its value never appears in
    the column: only ciphertext does.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("editable", False)
        kwargs.setdefault("default", "")
        super().__init__(*args, **kwargs)

    def _check_str_default_value(self) -> list[Any]:
        return []  # the default is text in Python; only ciphertext reaches the column

    def deconstruct(self) -> tuple[Any, ...]:
        name, path, args, kwargs = super().deconstruct()
        kwargs.pop("editable", None)
        if kwargs.get("default") == "":
            kwargs.pop("default")
        return name, path, args, kwargs

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        if value is None:
            return None
        if isinstance(value, UndecryptableText):  # written back as it was read
            return super().get_db_prep_value(value.ciphertext, connection, prepared)
        return super().get_db_prep_value(encrypt_text(str(value)), connection, prepared)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> str | None:
        if value is None:
            return None
        try:
            return decrypt_text(bytes(value))
        except UndecryptableError:
            return UndecryptableText(bytes(value))

    def to_python(self, value: Any) -> Any:
        return value

    def value_to_string(self, obj: Any) -> str:
        return "[encrypted]"  # dumpdata / serializers never export the secret
