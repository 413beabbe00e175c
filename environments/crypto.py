"""Sealing the one secret the portal keeps for a while: a database account's password.

It is encrypted with a key derived from SECRET_KEY, shown only to its requester, and
wiped when the account ends.
"""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


def _fernet():
    digest = hashlib.sha256(f"lcs-portal/jit-password/{settings.SECRET_KEY}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal(text):
    return _fernet().encrypt(text.encode()).decode()


def unseal(token):
    """The sealed text, or None when it cannot be opened (e.g. SECRET_KEY changed)."""
    if not token:
        return None
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        return None
