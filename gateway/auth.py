"""Identities and roles: users, API tokens, browser sessions, and who an action is attributed to.

Roles (clauses 2, 6, 9, 13, 16 of Order No. 407):
    admin     users, seals and keys (provision, re-key); reads operational state
    operator  the operator's representative: activates and deactivates escorts, provisions new seals
    officer   a customs official bound to one or more office codes: sees the escorts whose
              departure or destination office is theirs; the destination officer requests deactivation
    auditor   reads everything (escorts, the audit log, metrics), changes nothing

Secrets are stored only as hashes: passwords and API tokens with argon2id (memory-hard; argon2-cffi's
defaults: 64 MiB, 3 passes), browser session secrets (256 random bits, short-lived) with SHA-256.
An API token is `nst_<token id>_<secret>`: the id finds the row, the secret is verified against
its hash. Verifying argon2 on every request would cost ~0.1 s of CPU each, so a verified token is
remembered in memory by its SHA-256 (never the token itself) for `TOKEN_CACHE_S`; the token and
user rows are still read on every request, so a revoked token or a disabled user is refused at once.

Functions that change something take a store transaction (`tx`) so the caller writes the audit row
(gateway/audit.py) in the same transaction.
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ADMIN, OPERATOR, OFFICER, AUDITOR = "admin", "operator", "officer", "auditor"
ROLES = (ADMIN, OPERATOR, OFFICER, AUDITOR)

TOKEN_PREFIX = "nst_"
TOKEN_CACHE_S = 60.0
TOKEN_TOUCH_S = 60.0  # a token's last_used_at is written at most this often (not on every request)
MIN_PASSWORD = 12
USER_NAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
OFFICE_CODE = re.compile(r"^[0-9]{5,8}$")  # EAEU customs office codes: 5 (posts) or 8 digits
_TOKEN = re.compile(r"^nst_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")

_hasher = PasswordHasher()
# At most this many argon2 checks at once (each takes ~0.2 s of CPU and 64 MiB): a flood of wrong
# passwords, or of made-up secrets for a known token id, queues here instead of exhausting memory.
_VERIFYING = threading.BoundedSemaphore(2)


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Checked against when there is no such user, so that costs what a wrong password costs
    (made on first use: hashing takes ~0.2 s, and most imports of this module never log anyone in)."""
    return _hasher.hash(secrets.token_urlsafe(16))


class AccessError(ValueError):
    """A user or token request that cannot be done; `code` is stable, the message explains."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Actor:
    """Who is acting: every decision records it (audit rows, escort columns, events)."""

    user: str
    role: str
    offices: tuple[str, ...] = ()
    via: str = "token"  # token | session | db (a command on the gateway host) | anonymous
    user_id: int | None = None
    session_id: str | None = None
    csrf: str | None = field(default=None, repr=False, compare=False)

    def record(self, office: str | None = None) -> dict[str, Any]:
        """The actor as events and escort rows carry it: user, role, and the office acted for."""
        return {"user": self.user, "role": self.role, "office": office, "via": self.via}


ANONYMOUS = Actor("anonymous", "anonymous", via="anonymous")


def host_actor() -> Actor:
    """A command that opened the database on the gateway host: whoever can read the 0600 file and
    the master key is the administrator; recorded under their operating-system account."""
    try:
        name = getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry (containers)
        name = "unknown"
    return Actor(f"host:{name}", ADMIN, via="db")


# --------------------------------------------------------------------------------------------
# users
# --------------------------------------------------------------------------------------------


def check_user_fields(name: str, role: str, offices: list[str] | tuple[str, ...]) -> None:
    if not USER_NAME.match(name or ""):
        raise AccessError("bad_request", f"user name {name!r}: 1-64 of a-z 0-9 . _ @ -, starting with a letter or digit")
    if role not in ROLES:
        raise AccessError("bad_request", f"role {role!r}: one of {', '.join(ROLES)}")
    for code in offices:
        if not isinstance(code, str) or not OFFICE_CODE.match(code):
            raise AccessError("bad_request", f"office code {code!r}: 5 to 8 digits")
    if role == OFFICER and not offices:
        raise AccessError("bad_request", "an officer is bound to at least one office code (--office)")
    if role != OFFICER and offices:
        raise AccessError("bad_request", f"only officers are bound to offices, not a {role}")


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccessError("bad_request", f"password: at least {MIN_PASSWORD} characters")
    return _hasher.hash(password)


def add_user(tx, *, name: str, role: str, offices: list[str] | tuple[str, ...] = (), password: str | None = None,
             now: float, created_by: Actor) -> dict[str, Any]:
    check_user_fields(name, role, list(offices))
    if tx.get_user(name=name) is not None:
        raise AccessError("exists", f"user {name!r} exists")
    tx.insert_user({"name": name, "role": role, "offices": sorted(set(offices)),
                    "password_hash": hash_password(password) if password else None,
                    "created_at": now, "created_by": created_by.user})
    return public_user(tx.get_user(name=name))


def get_user(tx, name: str) -> dict[str, Any]:
    user = tx.get_user(name=name)
    if user is None:
        raise AccessError("not_found", f"no user {name!r}")
    return user


def disable_user(tx, name: str, now: float) -> dict[str, Any]:
    """Disable the user, revoke their tokens and end their sessions."""
    user = get_user(tx, name)
    tx.update_user(user["user_id"], disabled=1)
    tx.revoke_user_tokens(user["user_id"], now)
    tx.delete_sessions(user_id=user["user_id"])
    return public_user(tx.get_user(name=name))


def set_password(tx, name: str, password: str) -> None:
    user = get_user(tx, name)
    tx.update_user(user["user_id"], password_hash=hash_password(password))
    tx.delete_sessions(user_id=user["user_id"])


def public_user(user: dict[str, Any] | None) -> dict[str, Any]:
    """A user as the API and CLI show it: never a hash."""
    if user is None:
        return {}
    return {"name": user["name"], "role": user["role"], "offices": list(user["offices"]),
            "disabled": bool(user["disabled"]), "created_at": user["created_at"],
            "created_by": user.get("created_by"), "password": user.get("password_hash") is not None}


def actor_of(user: dict[str, Any], via: str, **extra: Any) -> Actor:
    return Actor(user["name"], user["role"], tuple(user["offices"]), via=via, user_id=user["user_id"], **extra)


# --------------------------------------------------------------------------------------------
# API tokens
# --------------------------------------------------------------------------------------------


def issue_token(tx, name: str, *, now: float, label: str | None = None,
                expires_at: float | None = None) -> tuple[str, str]:
    """A new API token for the user: (token_id, token). The token is shown once and never stored."""
    user = get_user(tx, name)
    if user["disabled"]:
        raise AccessError("disabled", f"user {name!r} is disabled")
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    tx.insert_token({"token_id": token_id, "user_id": user["user_id"], "secret_hash": _hasher.hash(secret),
                     "label": label, "created_at": now, "expires_at": expires_at})
    return token_id, f"{TOKEN_PREFIX}{token_id}_{secret}"


def revoke_token(tx, token_id: str, now: float) -> None:
    if tx.get_token(token_id) is None:
        raise AccessError("not_found", f"no token {token_id!r}")
    tx.update_token(token_id, revoked_at=now)


def token_id_of(token: str) -> str | None:
    m = _TOKEN.match(token or "")
    return m.group(1) if m else None


class Authenticator:
    """Checks bearer tokens, passwords and session cookies against the store."""

    def __init__(self, store, clock: Callable[[], float] = time.time, session_idle_s: float = 8 * 3600.0) -> None:
        self.store = store
        self.clock = clock
        self.session_idle_s = session_idle_s
        self._verified: dict[bytes, float] = {}  # sha256(token) -> verified until (monotonic)
        self._lock = threading.Lock()

    # -- tokens --
    def token(self, token: str) -> Actor | None:
        m = _TOKEN.match(token or "")
        if not m:
            return None
        token_id, secret = m.groups()
        now = self.clock()
        with self.store.transaction() as tx:
            row = tx.get_token(token_id)
            if row is None or row["revoked_at"] is not None or (row["expires_at"] and row["expires_at"] <= now):
                return None
            user = tx.get_user(user_id=row["user_id"])
            if user is None or user["disabled"]:
                return None
            secret_hash = row["secret_hash"]
        if not self._verify_cached(token, secret, secret_hash):
            return None
        if row["last_used_at"] is None or row["last_used_at"] <= now - TOKEN_TOUCH_S:
            with self.store.transaction() as tx:
                tx.update_token(token_id, last_used_at=now)
        return actor_of(user, "token")

    def _verify_cached(self, token: str, secret: str, secret_hash: str) -> bool:
        digest = hashlib.sha256(token.encode()).digest()
        with self._lock:
            until = self._verified.get(digest)
        if until is not None and until > time.monotonic():
            return True
        if not _verify(secret_hash, secret):
            return False
        with self._lock:
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[digest] = time.monotonic() + TOKEN_CACHE_S
        return True

    # -- passwords and sessions --
    def password(self, name: str, password: str) -> dict[str, Any] | None:
        with self.store.transaction() as tx:
            user = tx.get_user(name=name)
        if user is None or user["disabled"] or not user["password_hash"]:
            _verify(_dummy_hash(), password)  # same cost as a wrong password: names are not revealed
            return None
        return user if _verify(user["password_hash"], password) else None

    def open_session(self, tx, user: dict[str, Any]) -> tuple[str, str]:
        """A new browser session: (cookie value, csrf token)."""
        now = self.clock()
        session_id = secrets.token_hex(16)
        secret = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        tx.delete_sessions(idle_before=now - self.session_idle_s)
        tx.insert_session({"session_id": session_id, "user_id": user["user_id"], "secret_hash": _sha(secret),
                           "csrf": csrf, "created_at": now, "last_used_at": now})
        return f"{session_id}.{secret}", csrf

    def session(self, cookie: str) -> Actor | None:
        session_id, _, secret = (cookie or "").partition(".")
        if not session_id or not secret:
            return None
        now = self.clock()
        with self.store.transaction() as tx:
            row = tx.get_session(session_id)
            if row is None or not hmac.compare_digest(row["secret_hash"], _sha(secret)):
                return None
            if row["last_used_at"] < now - self.session_idle_s:
                tx.delete_sessions(session_id=session_id)
                return None
            user = tx.get_user(user_id=row["user_id"])
            if user is None or user["disabled"]:
                return None
            tx.touch_session(session_id, now)
        return actor_of(user, "session", session_id=session_id, csrf=row["csrf"])


class LoginThrottle:
    """Wrong passwords slow a guesser down: argon2 costs each try ~0.2 s, but a botnet has time.

    After `per_name` failed logins for one user name, or `per_client` from one client address,
    within `window_s`, further logins for that name (or from that address) are refused without
    checking the password until the oldest failure leaves the window. A success clears the name's
    count. The failures are kept in the store (migration 11), so gateways sharing it count them
    once (N instances do not allow N times the tries) and a restart forgives nothing; they are
    dated in wall time, which every instance shares. The name's limit also locks the real user out
    while someone guesses: the admin sees it in the audit log (every refusal is recorded) and the
    lock ends by itself. Rows older than the window are deleted as failures come in.
    """

    def __init__(self, store: Any, per_name: int = 5, per_client: int = 20, window_s: float = 900.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.per_name = per_name
        self.per_client = per_client
        self.window_s = window_s
        self.clock = clock

    def retry_after(self, name: str, client: str) -> int:
        """Seconds until a login for this name from this client may be tried again (0: now)."""
        now = self.clock()
        wait = 0.0
        with self.store.transaction() as tx:
            for scope, key, limit in (("name", name, self.per_name), ("client", client, self.per_client)):
                times = tx.login_failures(scope, key, now - self.window_s, limit)
                if len(times) >= limit:  # newest first: the limit-th newest leaves the window last
                    wait = max(wait, times[limit - 1] + self.window_s - now)
        return int(wait) + 1 if wait > 0 else 0

    def failed(self, name: str, client: str) -> None:
        now = self.clock()
        with self.store.transaction() as tx:
            tx.forget_login_failures(now - self.window_s)
            tx.add_login_failure([("name", name), ("client", client)], now)

    def succeeded(self, name: str) -> None:
        with self.store.transaction() as tx:
            tx.clear_login_failures("name", name)


def _verify(stored: str, secret: str) -> bool:
    with _VERIFYING:
        try:
            return _hasher.verify(stored, secret)
        except (VerificationError, InvalidHashError):
            return False


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
