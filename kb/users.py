"""The people who use a knowledge base: accounts, groups, API keys, sign-in, lockout, and what
they keep (conversations, feedback on answers). One SQLite file under KB_HOME (`users.db`).

Passwords are hashed with scrypt (hashlib, i.e. OpenSSL) at N=2^17, r=8, p=1, the cost OWASP's
password storage guidance names for scrypt; each hash stores its own parameters and salt, so a
later increase applies to new passwords without breaking old ones. scrypt from the standard
library was chosen over argon2-cffi: equally recommended, and no compiled dependency to pin.
API keys and the page's sign-in sessions are random tokens stored only as SHA-256 digests
(they are long and random, so a slow hash would add nothing but latency to every request).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kb.access import Principal, parse_groups
from kb.errors import InputError

SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_KEY_BYTES = 32
_MIN_PASSWORD = 8

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name       TEXT PRIMARY KEY,
    groups     TEXT NOT NULL DEFAULT '[]',
    admin      INTEGER NOT NULL DEFAULT 0,
    upload     INTEGER NOT NULL DEFAULT 0,
    password   TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    digest     TEXT PRIMARY KEY,
    user       TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    digest     TEXT PRIMARY KEY,
    user       TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions (user);
CREATE TABLE IF NOT EXISTS sign_in_failures (
    user      TEXT NOT NULL,
    address   TEXT NOT NULL,
    failures  INTEGER NOT NULL,
    last_at   REAL NOT NULL,
    PRIMARY KEY (user, address)
);
CREATE TABLE IF NOT EXISTS conversations (
    id         TEXT PRIMARY KEY,
    user       TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    collection TEXT NOT NULL,
    title      TEXT NOT NULL,
    turns      TEXT NOT NULL DEFAULT '[]',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_by_user ON conversations (user, updated_at);
CREATE TABLE IF NOT EXISTS feedback (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user       TEXT NOT NULL,
    collection TEXT NOT NULL,
    at         REAL NOT NULL,
    rating     INTEGER NOT NULL,
    comment    TEXT NOT NULL DEFAULT '',
    question   TEXT NOT NULL,
    answer     TEXT NOT NULL,
    sources    TEXT NOT NULL DEFAULT '[]'
);
"""


def hash_password(password: str, n: int = SCRYPT_N) -> str:
    """`scrypt$N$r$p$salt$key` (hex), the parameters kept with the hash."""
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _scrypt(password, salt, n, SCRYPT_R, SCRYPT_P)
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${key.hex()}"


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=256 * n * r,
        dklen=_KEY_BYTES,
    )


def hash_parameters(stored: str) -> dict[str, int]:
    _, n, r, p, salt, _key = stored.split("$")
    return {"n": int(n), "r": int(r), "p": int(p), "salt_bytes": len(salt) // 2}


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, key = stored.split("$")
    except ValueError:
        return False
    if kind != "scrypt":
        return False
    derived = _scrypt(password, bytes.fromhex(salt), int(n), int(r), int(p))
    return hmac.compare_digest(derived, bytes.fromhex(key))


# Verified when the user does not exist, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${'00' * _SALT_BYTES}${'00' * _KEY_BYTES}"


def check_password(password: str) -> None:
    if len(password) < _MIN_PASSWORD:
        raise InputError(f"password: use at least {_MIN_PASSWORD} characters")


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]
    admin: bool
    upload: bool
    created_at: float

    @property
    def principal(self) -> Principal:
        return Principal(self.name, self.groups, self.admin, self.upload)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "groups": list(self.groups),
            "admin": self.admin,
            "upload": self.upload,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in: the principal, or why not (one message for unknown user and
    wrong password, so the page never tells which names exist)."""

    principal: Principal | None
    locked: bool = False
    retry_after: float = 0.0


@dataclass(frozen=True)
class Session:
    """A page sign-in that outlives a browser reload. `token` goes to the browser (a cookie)
    and is never stored; the user store keeps only its digest."""

    token: str
    user: str
    expires_at: float
    max_age: int  # seconds it lasts from its start, for the cookie's Max-Age


@dataclass
class Conversation:
    id: str
    user: str
    collection: str
    title: str
    turns: list[dict[str, Any]] = field(default_factory=list)
    created_at: float = 0.0
    updated_at: float = 0.0


_NAME_RULE = "use 1-63 letters, digits, '.', '_', '-' or '@', starting with a letter or digit"


def validate_name(name: str) -> str:
    import re

    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,62}$", name or ""):
        raise InputError(f"user name {name!r} is invalid: {_NAME_RULE}")
    return name


class Users:
    """Accounts and what belongs to them, in `path` (created on first write)."""

    def __init__(self, path: Path, max_failures: int = 5, lockout_seconds: float = 300.0) -> None:
        self.path = path
        self.max_failures = max_failures
        self.lockout_seconds = lockout_seconds
        self._db: sqlite3.Connection | None = None
        self._lock = threading.RLock()

    # --- database ------------------------------------------------------------------------

    def _connect(self, create: bool) -> sqlite3.Connection | None:
        if self._db is None:
            if not create and not self.path.exists():
                return None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.executescript(_SCHEMA)
            self._db = db
        return self._db

    def _rows(self, sql: str, args: tuple | list = ()) -> list[sqlite3.Row]:
        with self._lock:
            db = self._connect(create=False)
            return [] if db is None else db.execute(sql, args).fetchall()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._connect(create=True)
            assert db is not None
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # --- accounts --------------------------------------------------------------------------

    def any(self) -> bool:
        """Whether any account exists (a page without accounts needs no sign-in)."""
        return bool(self._rows("SELECT 1 FROM users LIMIT 1"))

    def add(
        self,
        name: str,
        password: str,
        groups: Iterable[str] = (),
        admin: bool = False,
        upload: bool = False,
    ) -> User:
        validate_name(name)
        check_password(password)
        groups = parse_groups(list(groups), "--groups")
        stored = hash_password(password)
        with self._write() as db:
            if db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise InputError(f"user {name!r} exists already (see `kb users list`)")
            db.execute(
                "INSERT INTO users (name, groups, admin, upload, password, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (name, json.dumps(list(groups)), int(admin), int(upload), stored, time.time()),
            )
        return self.get_required(name)

    def get(self, name: str) -> User | None:
        rows = self._rows("SELECT * FROM users WHERE name = ?", (name,))
        return _user(rows[0]) if rows else None

    def get_required(self, name: str) -> User:
        user = self.get(name)
        if user is None:
            raise InputError(f"no user {name!r} (see `kb users list`)")
        return user

    def list(self) -> list[User]:
        return [_user(r) for r in self._rows("SELECT * FROM users ORDER BY name")]

    def remove(self, name: str) -> None:
        self.get_required(name)
        with self._write() as db:
            # The foreign key would cascade too; said here so it holds even on a database
            # opened without foreign keys.
            db.execute("DELETE FROM sessions WHERE user = ?", (name,))
            db.execute("DELETE FROM users WHERE name = ?", (name,))
            db.execute("DELETE FROM sign_in_failures WHERE user = ?", (name,))

    def set_password(self, name: str, password: str) -> None:
        self.get_required(name)
        check_password(password)
        stored = hash_password(password)
        with self._write() as db:
            db.execute("UPDATE users SET password = ? WHERE name = ?", (stored, name))
            db.execute("DELETE FROM sign_in_failures WHERE user = ?", (name,))
            # A new password is often a reaction to someone else knowing the old one: whoever
            # signed in with it is signed out.
            db.execute("DELETE FROM sessions WHERE user = ?", (name,))

    def set_groups(
        self,
        name: str,
        groups: Iterable[str] | None = None,
        admin: bool | None = None,
        upload: bool | None = None,
    ) -> User:
        user = self.get_required(name)
        new_groups = user.groups if groups is None else parse_groups(list(groups), "--groups")
        with self._write() as db:
            db.execute(
                "UPDATE users SET groups = ?, admin = ?, upload = ? WHERE name = ?",
                (
                    json.dumps(list(new_groups)),
                    int(user.admin if admin is None else admin),
                    int(user.upload if upload is None else upload),
                    name,
                ),
            )
        return self.get_required(name)

    def stored_hash(self, name: str) -> str:
        rows = self._rows("SELECT password FROM users WHERE name = ?", (name,))
        return rows[0][0] if rows else ""

    # --- sign-in -----------------------------------------------------------------------------

    def sign_in(self, name: str, password: str, address: str = "") -> SignIn:
        """Check a password, with a lockout per (user, address) after `max_failures` failures
        in a row; a locked pair is refused without checking the password."""
        now = time.time()
        rows = self._rows(
            "SELECT failures, last_at FROM sign_in_failures WHERE user = ? AND address = ?",
            (name, address),
        )
        if rows and rows[0]["failures"] >= self.max_failures:
            until = rows[0]["last_at"] + self.lockout_seconds
            if now < until:
                return SignIn(None, locked=True, retry_after=until - now)
        stored = self.stored_hash(name)
        ok = verify_password(password, stored or _DUMMY_HASH) and bool(stored)
        with self._write() as db:
            if ok:
                db.execute(
                    "DELETE FROM sign_in_failures WHERE user = ? AND address = ?", (name, address)
                )
            else:
                db.execute(
                    "INSERT INTO sign_in_failures (user, address, failures, last_at)"
                    " VALUES (?, ?, 1, ?) ON CONFLICT (user, address) DO UPDATE SET"
                    " failures = CASE WHEN last_at + ? < excluded.last_at THEN 1"
                    " ELSE failures + 1 END, last_at = excluded.last_at",
                    (name, address, now, self.lockout_seconds),
                )
        if not ok:
            return SignIn(None)
        return SignIn(self.get_required(name).principal)

    # --- sessions ----------------------------------------------------------------------------

    def new_session(self, name: str, hours: float) -> Session:
        """A sign-in session for user `name`, valid for `hours`; expired sessions of anyone
        are swept at the same time, so the table holds only live ones and recent leftovers."""
        self.get_required(name)
        token = secrets.token_urlsafe(32)
        now = time.time()
        expires_at = now + hours * 3600
        with self._write() as db:
            db.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
            db.execute(
                "INSERT INTO sessions (digest, user, created_at, expires_at) VALUES (?, ?, ?, ?)",
                (key_digest(token), name, now, expires_at),
            )
        return Session(token, name, expires_at, int(hours * 3600))

    def session_owner(self, token: str) -> Principal | None:
        """The user of a live session, read afresh (so removed accounts and changed groups
        apply at once); None for an unknown, ended or expired token."""
        if not token:
            return None
        rows = self._rows(
            "SELECT u.* FROM sessions s JOIN users u ON u.name = s.user"
            " WHERE s.digest = ? AND s.expires_at > ?",
            (key_digest(token), time.time()),
        )
        return _user(rows[0]).principal if rows else None

    def end_session(self, token: str) -> bool:
        """Revoke one session (sign-out); whether it existed."""
        with self._lock:
            if not token or self._connect(create=False) is None:
                return False
            with self._write() as db:
                cursor = db.execute("DELETE FROM sessions WHERE digest = ?", (key_digest(token),))
                return cursor.rowcount > 0

    # --- API keys ----------------------------------------------------------------------------

    def new_api_key(self, name: str) -> str:
        """A new key for user `name`, shown once; only its digest is kept."""
        self.get_required(name)
        key = "kb-" + secrets.token_urlsafe(32)
        with self._write() as db:
            db.execute(
                "INSERT INTO api_keys (digest, user, created_at) VALUES (?, ?, ?)",
                (key_digest(key), name, time.time()),
            )
        return key

    def key_owner(self, key: str) -> Principal | None:
        """The user an API key belongs to. Looked up by the key's SHA-256 digest: keys are 256
        random bits, so timing the lookup tells nothing about any other key."""
        rows = self._rows(
            "SELECT u.* FROM api_keys k JOIN users u ON u.name = k.user WHERE k.digest = ?",
            (key_digest(key),),
        )
        return _user(rows[0]).principal if rows else None

    def revoke_api_keys(self, name: str) -> int:
        self.get_required(name)
        with self._write() as db:
            return db.execute("DELETE FROM api_keys WHERE user = ?", (name,)).rowcount

    # --- conversations -----------------------------------------------------------------------

    def save_conversation(self, conversation: Conversation) -> None:
        now = time.time()
        conversation.updated_at = now
        conversation.created_at = conversation.created_at or now
        with self._write() as db:
            db.execute(
                "INSERT INTO conversations (id, user, collection, title, turns, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                " title = excluded.title, turns = excluded.turns, updated_at = excluded.updated_at"
                " WHERE conversations.user = excluded.user",
                (
                    conversation.id,
                    conversation.user,
                    conversation.collection,
                    conversation.title,
                    json.dumps(conversation.turns, ensure_ascii=False),
                    conversation.created_at,
                    conversation.updated_at,
                ),
            )

    def conversations(self, user: str) -> list[Conversation]:
        """The user's conversations, newest first (never anyone else's)."""
        rows = self._rows(
            "SELECT * FROM conversations WHERE user = ? ORDER BY updated_at DESC", (user,)
        )
        return [_conversation(r) for r in rows]

    def conversation(self, user: str, conversation_id: str) -> Conversation | None:
        rows = self._rows(
            "SELECT * FROM conversations WHERE user = ? AND id = ?", (user, conversation_id)
        )
        return _conversation(rows[0]) if rows else None

    def delete_conversation(self, user: str, conversation_id: str) -> bool:
        with self._write() as db:
            cursor = db.execute(
                "DELETE FROM conversations WHERE user = ? AND id = ?", (user, conversation_id)
            )
            return cursor.rowcount > 0

    # --- feedback ----------------------------------------------------------------------------

    def add_feedback(
        self,
        user: str,
        collection: str,
        question: str,
        answer: str,
        sources: list[str],
        rating: int,
        comment: str = "",
        replaces: int | None = None,
    ) -> int:
        """Store feedback; with `replaces`, the user's earlier feedback with that id is
        updated instead (a changed rating, a comment added), so one answer is rated once."""
        if rating not in (-1, 1):
            raise InputError("rating: use 1 (helpful) or -1 (not helpful)")
        with self._write() as db:
            if replaces is not None:
                cursor = db.execute(
                    "UPDATE feedback SET rating = ?, comment = ?, at = ? WHERE id = ? AND user = ?",
                    (rating, comment.strip(), time.time(), replaces, user),
                )
                if cursor.rowcount:
                    return replaces
            cursor = db.execute(
                "INSERT INTO feedback (user, collection, at, rating, comment, question, answer,"
                " sources) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    user,
                    collection,
                    time.time(),
                    rating,
                    comment.strip(),
                    question,
                    answer,
                    json.dumps(sources, ensure_ascii=False),
                ),
            )
            return int(cursor.lastrowid or 0)

    def feedback(self, since: float = 0.0) -> list[dict[str, Any]]:
        rows = self._rows("SELECT * FROM feedback WHERE at >= ? ORDER BY id", (since,))
        return [
            {
                "id": r["id"],
                "user": r["user"],
                "collection": r["collection"],
                "at": r["at"],
                "rating": r["rating"],
                "comment": r["comment"],
                "question": r["question"],
                "answer": r["answer"],
                "sources": json.loads(r["sources"]),
            }
            for r in rows
        ]


def _user(row: sqlite3.Row) -> User:
    return User(
        name=row["name"],
        groups=tuple(json.loads(row["groups"])),
        admin=bool(row["admin"]),
        upload=bool(row["upload"]),
        created_at=row["created_at"],
    )


def _conversation(row: sqlite3.Row) -> Conversation:
    return Conversation(
        id=row["id"],
        user=row["user"],
        collection=row["collection"],
        title=row["title"],
        turns=json.loads(row["turns"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
