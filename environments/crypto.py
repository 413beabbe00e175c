"""Sealing the secrets the portal keeps for a while: a database account's password, and
the identity provider's refresh token of a single sign-on user.

Each is encrypted with a key derived from SECRET_KEY and its purpose (a token sealed for
one purpose does not open for another), and wiped when it is no longer needed.
"""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

JIT_PASSWORD = "jit-password"
REFRESH_TOKEN = "oidc-refresh-token"


def _fernet(purpose):
    digest = hashlib.sha256(f"lcs-portal/{purpose}/{settings.SECRET_KEY}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal(text, purpose=JIT_PASSWORD):
    return _fernet(purpose).encrypt(text.encode()).decode()


def unseal(token, purpose=JIT_PASSWORD):
    """The sealed text, or None when it cannot be opened (e.g. SECRET_KEY changed)."""
    if not token:
        return None
    try:
        return _fernet(purpose).decrypt(token.encode()).decode()
    except InvalidToken:
        return None
