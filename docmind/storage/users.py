"""User accounts for serving a team on a network: names and argon2id password hashes, in ``users``.

Passwords are hashed with argon2-cffi's ``PasswordHasher`` (its current recommended parameters); a hash
made with older parameters is upgraded at the next successful login. Nothing here ever stores or
logs a password.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from docmind.storage.db import Database, open_database
from docmind.storage.sessions import now

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD_LENGTH = 8


class UserError(ValueError):
    """A user name or password that cannot be used, or a user that does not exist; the message says why."""


@dataclass(frozen=True)
class User:
    name: str
    created_at: str


class Users:
    """The user accounts of one DocMind database."""

    def __init__(self, db: str | Path | Database) -> None:
        from argon2 import PasswordHasher

        self.db = open_database(db)
        self._hasher = PasswordHasher()

    def list(self) -> list[User]:
        return [User(r["name"], r["created_at"]) for r in self.db.read("SELECT name, created_at FROM users ORDER BY name")]

    def exists(self) -> bool:
        """True when at least one account exists (then the app asks everyone to log in)."""
        return bool(self.db.read("SELECT 1 FROM users LIMIT 1"))

    def add(self, name: str, password: str) -> User:
        _check_name(name)
        _check_password(password)
        stamp = now()
        if self.db.execute("INSERT OR IGNORE INTO users VALUES (?, ?, ?)", (name, self._hasher.hash(password), stamp)) == 0:
            raise UserError(f"A user named {name!r} already exists; use `docmind users passwd {name}` to change the password.")
        return User(name, stamp)

    def remove(self, name: str) -> None:
        """Delete the account; its chat sessions stay in the database (a user added again with this name gets them)."""
        if self.db.execute("DELETE FROM users WHERE name = ?", (name,)) == 0:
            raise UserError(f"There is no user named {name!r}. See `docmind users list`.")

    def set_password(self, name: str, password: str) -> None:
        _check_password(password)
        if self.db.execute("UPDATE users SET password_hash = ? WHERE name = ?", (self._hasher.hash(password), name)) == 0:
            raise UserError(f"There is no user named {name!r}. See `docmind users list`.")

    def verify(self, name: str, password: str) -> bool:
        """True when ``password`` is ``name``'s. An unknown name costs the same time as a wrong password."""
        from argon2.exceptions import InvalidHashError, VerificationError

        rows = self.db.read("SELECT password_hash FROM users WHERE name = ?", (name,))
        stored = rows[0]["password_hash"] if rows else _DUMMY.get(self._hasher)
        try:
            self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False
        if not rows:
            return False
        if self._hasher.check_needs_rehash(stored):
            self.db.execute("UPDATE users SET password_hash = ? WHERE name = ?", (self._hasher.hash(password), name))
        return True


class _DummyHash:
    """A hash to verify against for unknown names, so timing does not reveal which names exist."""

    def __init__(self) -> None:
        self._hash: str | None = None

    def get(self, hasher) -> str:  # noqa: ANN001 - argon2.PasswordHasher
        if self._hash is None:
            self._hash = hasher.hash("docmind-no-such-user")
        return self._hash


_DUMMY = _DummyHash()


def _check_name(name: str) -> None:
    if not NAME_PATTERN.match(name or ""):
        raise UserError(f"{name!r} cannot be a user name: use 1 to 64 letters, digits and . _ @ - "
                        "(starting with a letter or digit).")


def _check_password(password: str) -> None:
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise UserError(f"The password is too short: use at least {MIN_PASSWORD_LENGTH} characters.")
