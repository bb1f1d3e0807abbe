"""Database and Redis URLs as logs and errors may show them: parsed, never split by hand.

The user-info part ends at the netloc's last `@` (as urllib and redis-py read it), so a
password with an `@` of its own is hidden whole; so is libpq's `?password=` parameter.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

_HIDDEN = "***"


def redact_url(url: str) -> str:
    """`url` with its password (in the user-info or the query) replaced by `***`."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return f"{url.split(':', 1)[0]}://(unreadable URL)"
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"  # an IPv6 address
    if port is not None:
        netloc += f":{port}"
    if parts.username is not None or parts.password is not None:
        user = parts.username or ""
        netloc = f"{user}:{_HIDDEN}@{netloc}" if parts.password is not None else f"{user}@{netloc}"
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(k == "password" for k, _ in query):
        hidden = [(k, _HIDDEN if k == "password" else v) for k, v in query]
        return urlunsplit((parts.scheme, netloc, parts.path, urlencode(hidden, safe="*"), ""))
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def ambiguous_userinfo(url: str) -> bool:
    """Whether a password holds a bare `@` or `/`: libpq would cut it at the first one, so
    the rest would be read (and printed in its errors) as the host name."""
    authority, _, rest = url.partition("://")[2].partition("/")
    if "?" in authority:
        authority, _, query = authority.partition("?")
        rest = query + rest
    return authority.count("@") > 1 or "@" in rest


def url_password(url: str | None) -> str | None:
    """The password a URL carries, decoded, so it can be scrubbed from any text."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.password:
        return unquote(parts.password)
    return next((v for k, v in parse_qsl(parts.query) if k == "password"), None)
