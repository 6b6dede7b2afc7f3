"""Storage for access and trust: users, API tokens, browser sessions and the audit log.

`AccessTx` is what the access layer (gateway/auth.py) and the audit log (gateway/audit.py) do
inside one store transaction; `StoreTx` inherits it, so an audit row is written in the same
transaction as the change it records. `SqliteAccessTx` is the SQLite implementation, mixed into the
SQLite transaction class. The tables come from the store's migrations (`ACCESS_MIGRATION`).

The audit table is append-only at the database level too: triggers refuse UPDATE and DELETE, so
only someone who edits the schema itself can change a row, and the hash chain shows that.
"""

from __future__ import annotations

import abc
import json
from typing import Any, Sequence

ACCESS_MIGRATION = """
    CREATE TABLE users (
        user_id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL,               -- admin, operator, officer, auditor
        offices TEXT NOT NULL DEFAULT '[]',  -- JSON list of customs office codes (officers)
        password_hash TEXT,               -- argon2id; NULL: token-only (machines)
        disabled INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        created_by TEXT
    );

    CREATE TABLE tokens (
        token_id TEXT PRIMARY KEY,        -- public part of the token (looked up), random
        user_id INTEGER NOT NULL REFERENCES users(user_id),
        secret_hash TEXT NOT NULL,        -- argon2id of the secret part
        label TEXT,
        created_at REAL NOT NULL,
        expires_at REAL,
        revoked_at REAL,
        last_used_at REAL
    );
    CREATE INDEX tokens_user ON tokens(user_id);

    CREATE TABLE sessions (
        session_id TEXT PRIMARY KEY,      -- public part of the cookie
        user_id INTEGER NOT NULL REFERENCES users(user_id),
        secret_hash TEXT NOT NULL,        -- sha256 of the cookie's 256-bit secret
        csrf TEXT NOT NULL,               -- the form/header token for unsafe methods
        created_at REAL NOT NULL,
        last_used_at REAL NOT NULL
    );

    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        actor_user TEXT NOT NULL,
        actor_role TEXT NOT NULL,
        actor_office TEXT,
        via TEXT NOT NULL,                -- token, session, db (a command on the gateway host), anonymous
        action TEXT NOT NULL,
        target TEXT,
        outcome TEXT NOT NULL,            -- ok, refused
        details TEXT NOT NULL,            -- JSON
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN
        SELECT RAISE(ABORT, 'the audit log is append-only');
    END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN
        SELECT RAISE(ABORT, 'the audit log is append-only');
    END;

    ALTER TABLE escorts ADD COLUMN activated_by TEXT;              -- JSON actor of the activation request
    ALTER TABLE escorts ADD COLUMN deactivation_requested_by TEXT; -- JSON actor of the deactivation request
    CREATE INDEX escorts_departure ON escorts(departure_office_code, escort_id);
    CREATE INDEX escorts_destination ON escorts(dest_office_code, escort_id);
"""

# LIMIT for "all rows": both engines take it (PostgreSQL refuses SQLite's LIMIT -1).
NO_LIMIT = 2**62

USER_COLUMNS = {"role", "offices", "password_hash", "disabled"}
TOKEN_COLUMNS = {"revoked_at", "last_used_at", "expires_at"}


class AccessTx(abc.ABC):
    """Users, tokens, sessions and audit rows inside one transaction. Rows are dicts by column."""

    # users
    @abc.abstractmethod
    def insert_user(self, row: dict[str, Any]) -> int: ...

    @abc.abstractmethod
    def get_user(self, *, name: str | None = None, user_id: int | None = None) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def list_users(self, *, after_name: str = "", limit: int | None = None) -> list[dict[str, Any]]:
        """Users by name after `after_name`, at most `limit` (None: all)."""

    @abc.abstractmethod
    def update_user(self, user_id: int, **columns: Any) -> None: ...

    # tokens
    @abc.abstractmethod
    def insert_token(self, row: dict[str, Any]) -> None: ...

    @abc.abstractmethod
    def get_token(self, token_id: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def update_token(self, token_id: str, **columns: Any) -> None: ...

    @abc.abstractmethod
    def revoke_user_tokens(self, user_id: int, now: float) -> int: ...

    # sessions
    @abc.abstractmethod
    def insert_session(self, row: dict[str, Any]) -> None: ...

    @abc.abstractmethod
    def get_session(self, session_id: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def touch_session(self, session_id: str, now: float) -> None: ...

    @abc.abstractmethod
    def delete_sessions(self, *, session_id: str | None = None, user_id: int | None = None,
                        idle_before: float | None = None) -> int: ...

    # failed logins (gateway/auth.py LoginThrottle)
    @abc.abstractmethod
    def login_failures(self, scope: str, key: str, since: float, limit: int) -> list[float]:
        """Times of the newest failures (at most `limit`) for ('name' | 'client', key) after `since`,
        newest first."""

    @abc.abstractmethod
    def add_login_failure(self, keys: Sequence[tuple[str, str]], at: float) -> None: ...

    @abc.abstractmethod
    def clear_login_failures(self, scope: str, key: str) -> None: ...

    @abc.abstractmethod
    def forget_login_failures(self, before: float) -> int:
        """Delete failures older than `before` (out of every window); how many."""

    # audit
    @abc.abstractmethod
    def audit_tail(self) -> dict[str, Any] | None:
        """The last audit row (the chain's head), or None."""

    @abc.abstractmethod
    def insert_audit(self, row: dict[str, Any]) -> int: ...


class SqliteAccessTx(AccessTx):
    """SQLite implementation; expects `self._c` (connection), `_one` and `_all` from the store's tx."""

    _c: Any

    def _one(self, sql: str, args: Any = ()) -> dict[str, Any] | None:  # provided by the store tx
        raise NotImplementedError

    def _all(self, sql: str, args: Any = ()) -> list[dict[str, Any]]:
        raise NotImplementedError

    def login_failures(self, scope: str, key: str, since: float, limit: int) -> list[float]:
        return [r[0] for r in self._c.execute(
            "SELECT at FROM login_failures WHERE scope = ? AND key = ? AND at > ? ORDER BY at DESC LIMIT ?",
            (scope, key, since, limit)).fetchall()]

    def add_login_failure(self, keys: Sequence[tuple[str, str]], at: float) -> None:
        self._c.executemany("INSERT INTO login_failures (scope, key, at) VALUES (?, ?, ?)",
                            [(scope, key, at) for scope, key in keys])

    def clear_login_failures(self, scope: str, key: str) -> None:
        self._c.execute("DELETE FROM login_failures WHERE scope = ? AND key = ?", (scope, key))

    def forget_login_failures(self, before: float) -> int:
        return int(self._c.execute("DELETE FROM login_failures WHERE at < ?", (before,)).rowcount)

    def insert_user(self, row: dict[str, Any]) -> int:
        row = dict(row, offices=json.dumps(list(row.get("offices") or [])))
        cols = list(row)
        cur = self._c.execute(f"INSERT INTO users ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})", row)
        return int(cur.lastrowid)

    def get_user(self, *, name: str | None = None, user_id: int | None = None) -> dict[str, Any] | None:
        if name is not None:
            row = self._one("SELECT * FROM users WHERE name = ?", (name,))
        else:
            row = self._one("SELECT * FROM users WHERE user_id = ?", (user_id,))
        return _user(row)

    def list_users(self, *, after_name: str = "", limit: int | None = None) -> list[dict[str, Any]]:
        return [_user(r) for r in self._all("SELECT * FROM users WHERE name > ? ORDER BY name LIMIT ?",  # type: ignore[misc]
                                            (after_name, NO_LIMIT if limit is None else limit))]

    def update_user(self, user_id: int, **columns: Any) -> None:
        unknown = set(columns) - USER_COLUMNS
        if unknown:
            raise ValueError(f"users: cannot update {sorted(unknown)}")
        if "offices" in columns:
            columns["offices"] = json.dumps(list(columns["offices"]))
        sets = ", ".join(f"{c} = :{c}" for c in columns)
        self._c.execute(f"UPDATE users SET {sets} WHERE user_id = :_id", {**columns, "_id": user_id})

    def insert_token(self, row: dict[str, Any]) -> None:
        cols = list(row)
        self._c.execute(f"INSERT INTO tokens ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})", row)

    def get_token(self, token_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM tokens WHERE token_id = ?", (token_id,))

    def update_token(self, token_id: str, **columns: Any) -> None:
        unknown = set(columns) - TOKEN_COLUMNS
        if unknown:
            raise ValueError(f"tokens: cannot update {sorted(unknown)}")
        sets = ", ".join(f"{c} = :{c}" for c in columns)
        self._c.execute(f"UPDATE tokens SET {sets} WHERE token_id = :_id", {**columns, "_id": token_id})

    def revoke_user_tokens(self, user_id: int, now: float) -> int:
        return int(self._c.execute("UPDATE tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
                                   (now, user_id)).rowcount)

    def insert_session(self, row: dict[str, Any]) -> None:
        cols = list(row)
        self._c.execute(f"INSERT INTO sessions ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})", row)

    def get_session(self, session_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM sessions WHERE session_id = ?", (session_id,))

    def touch_session(self, session_id: str, now: float) -> None:
        self._c.execute("UPDATE sessions SET last_used_at = ? WHERE session_id = ?", (now, session_id))

    def delete_sessions(self, *, session_id: str | None = None, user_id: int | None = None,
                        idle_before: float | None = None) -> int:
        if session_id is not None:
            return int(self._c.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,)).rowcount)
        if user_id is not None:
            return int(self._c.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,)).rowcount)
        return int(self._c.execute("DELETE FROM sessions WHERE last_used_at < ?", (idle_before,)).rowcount)

    def audit_tail(self) -> dict[str, Any] | None:
        return self._one("SELECT * FROM audit ORDER BY seq DESC LIMIT 1")

    def insert_audit(self, row: dict[str, Any]) -> int:
        cols = list(row)
        cur = self._c.execute(f"INSERT INTO audit ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})", row)
        return int(cur.lastrowid)


def _user(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    row = dict(row)
    row["offices"] = json.loads(row.get("offices") or "[]")
    row["disabled"] = bool(row.get("disabled"))
    return row
