"""Console sign-in: sessions held in memory, the CSRF token each one carries, and the
same-origin check every change passes.

The browser holds only a random session id, in an HttpOnly, SameSite=Strict cookie that
scripts cannot read. The gateway keeps the id's SHA-256 (a lookup cannot leak the id by
timing), when it expires, and a per-session CSRF token that every form carries and every
POST must return; tokens are compared in constant time. Sessions live in this process
only: a restart signs everyone out, which is the safe failure.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

#: How long a session lasts from sign-in, and how long it may sit unused.
SESSION_TTL_S = 8 * 3600
IDLE_TTL_S = 3600
#: The most sessions kept at once; signing in past it drops the oldest.
MAX_SESSIONS = 64
COOKIE = "spillgate_console"
#: Wrong tokens one client address may try per window before sign-in refuses it (429).
MAX_FAILED_SIGNINS = 5
FAILED_SIGNIN_WINDOW_S = 60.0


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def same_text(given: str | None, expected: str) -> bool:
    """`given == expected`, in constant time (bytes: compare_digest refuses non-ASCII str)."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode())


@dataclass(slots=True)
class Session:
    csrf: str
    created: float
    last_seen: float


class SessionBook:
    """The signed-in console sessions of this process."""

    def __init__(
        self,
        ttl_s: float = SESSION_TTL_S,
        idle_s: float = IDLE_TTL_S,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self.ttl_s = ttl_s
        self.idle_s = idle_s
        self.max_sessions = max_sessions
        self._by_digest: dict[str, Session] = {}

    def open(self, now: float | None = None) -> tuple[str, Session]:
        """A new session: (the id for the cookie, the session with its CSRF token)."""
        now = time.time() if now is None else now
        self._expire(now)
        while len(self._by_digest) >= self.max_sessions:
            oldest = min(self._by_digest, key=lambda d: self._by_digest[d].created)
            del self._by_digest[oldest]
        session_id = secrets.token_urlsafe(32)
        session = Session(secrets.token_urlsafe(32), now, now)
        self._by_digest[_digest(session_id)] = session
        return session_id, session

    def get(self, session_id: str | None, now: float | None = None) -> Session | None:
        """The live session a cookie names, its idle clock restarted; None when unknown or
        expired (an expired one is forgotten)."""
        if not session_id:
            return None
        now = time.time() if now is None else now
        digest = _digest(session_id)
        session = self._by_digest.get(digest)
        if session is None:
            return None
        if now - session.created > self.ttl_s or now - session.last_seen > self.idle_s:
            del self._by_digest[digest]
            return None
        session.last_seen = now
        return session

    def close(self, session_id: str | None) -> None:
        if session_id:
            self._by_digest.pop(_digest(session_id), None)

    def _expire(self, now: float) -> None:
        for digest, s in list(self._by_digest.items()):
            if now - s.created > self.ttl_s or now - s.last_seen > self.idle_s:
                del self._by_digest[digest]

    def __len__(self) -> int:
        return len(self._by_digest)


def csrf_ok(session: Session | None, given: str | None) -> bool:
    """Whether a form returned its session's CSRF token."""
    return session is not None and same_text(given, session.csrf)


def same_origin(origin: str | None, referer: str | None, scheme: str, host: str | None) -> bool:
    """Whether a POST came from a page of this console: its Origin (or, failing that, its
    Referer) names this scheme and host. Neither header: refused, as a browser sends one."""
    if not host:
        return False
    expected = f"{scheme}://{host}".lower()
    if origin is not None and origin != "null":
        return origin.lower().rstrip("/") == expected
    if referer:
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}".lower() == expected
    return False


class SigninThrottle:
    """Slows guessing of the admin token: after `limit` wrong tokens from one client
    address within `window_s`, that address may not try again until the window has passed.
    Kept in memory and bounded (the oldest addresses are forgotten first)."""

    def __init__(
        self,
        limit: int = MAX_FAILED_SIGNINS,
        window_s: float = FAILED_SIGNIN_WINDOW_S,
        max_clients: int = 4096,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_clients = max_clients
        self._failures: dict[str, list[float]] = {}

    def retry_in_s(self, client: str, now: float | None = None) -> float:
        """0 when `client` may try now; else the seconds until it may."""
        now = time.time() if now is None else now
        recent = [t for t in self._failures.get(client, ()) if now - t < self.window_s]
        if recent:
            self._failures[client] = recent
        else:
            self._failures.pop(client, None)
        if len(recent) < self.limit:
            return 0.0
        return self.window_s - (now - recent[0])

    def failed(self, client: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if client not in self._failures and len(self._failures) >= self.max_clients:
            del self._failures[next(iter(self._failures))]
        self._failures.setdefault(client, []).append(now)

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)
