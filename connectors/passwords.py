"""Passwords: argon2id hashes (argon2-cffi's defaults, RFC 9106's second recommendation) and
the strength rules a new password must meet."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 12
MAX_LENGTH = 256  # argon2 takes any length; this bounds the work one request can ask for

_hasher = PasswordHasher()
# Verifying against this when the account does not exist costs the same time as a real check,
# so response times do not tell which emails have accounts.
_DUMMY_HASH = _hasher.hash("not a password anybody has")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def weakness(password: str, email: str = "") -> str | None:
    """Why ``password`` is too weak, or None. Length matters most (NIST SP 800-63B); on top,
    at least three kinds of character, and not the email or one repeated character."""
    if len(password) < MIN_LENGTH:
        return f"use at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"use at most {MAX_LENGTH} characters"
    kinds = sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )
    if kinds < 3:
        return "mix at least three of: lower case, upper case, digits, symbols"
    if len(set(password)) < 5:
        return "use more different characters"
    local = email.split("@")[0].lower()
    if local and len(local) >= 4 and local in password.lower():
        return "do not use your email address in the password"
    return None
