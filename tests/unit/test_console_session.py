"""Console sessions: they expire, sign-out ends them, CSRF tokens and the origin check
refuse what a forged form would send."""

from __future__ import annotations

from spillgate.server.console.session import (
    SessionBook,
    SigninThrottle,
    csrf_ok,
    same_origin,
    same_text,
)


def test_a_session_is_found_by_its_id_only() -> None:
    book = SessionBook()
    session_id, session = book.open(now=1000.0)
    assert book.get(session_id, now=1001.0) is session
    assert book.get(session_id + "x", now=1001.0) is None
    assert book.get(None) is None and book.get("") is None
    other_id, other = book.open(now=1000.0)
    assert other_id != session_id and other.csrf != session.csrf


def test_sessions_expire_when_idle_and_after_their_lifetime() -> None:
    book = SessionBook(ttl_s=100, idle_s=30)
    session_id, _ = book.open(now=0.0)
    assert book.get(session_id, now=25.0) is not None  # use restarts the idle clock
    assert book.get(session_id, now=50.0) is not None
    assert book.get(session_id, now=81.0) is None  # idle for 31 s
    assert len(book) == 0
    session_id, _ = book.open(now=0.0)
    for t in range(20, 101, 20):
        assert book.get(session_id, now=float(t)) is not None
    assert book.get(session_id, now=101.0) is None  # past its lifetime, however busy


def test_sign_out_ends_the_session_and_the_oldest_goes_when_full() -> None:
    book = SessionBook(max_sessions=2)
    first, _ = book.open(now=1.0)
    second, _ = book.open(now=2.0)
    book.close(second)
    assert book.get(second, now=3.0) is None
    third, _ = book.open(now=3.0)
    fourth, _ = book.open(now=4.0)
    assert book.get(first, now=5.0) is None  # the oldest made way
    assert book.get(third, now=5.0) is not None and book.get(fourth, now=5.0) is not None


def test_csrf_needs_the_session_s_own_token() -> None:
    book = SessionBook()
    _, session = book.open()
    _, other = book.open()
    assert csrf_ok(session, session.csrf)
    assert not csrf_ok(session, other.csrf)
    assert not csrf_ok(session, None) and not csrf_ok(session, "")
    assert not csrf_ok(None, session.csrf)
    assert not csrf_ok(session, "é" + session.csrf)  # non-ASCII compares, and fails


def test_same_text_is_exact() -> None:
    assert same_text("admin-token", "admin-token")
    assert not same_text("admin-token ", "admin-token")
    assert not same_text(None, "admin-token")


def test_a_change_must_come_from_this_origin() -> None:
    host = "127.0.0.1:8080"
    assert same_origin("http://127.0.0.1:8080", None, "http", host)
    assert not same_origin("http://evil.example", None, "http", host)
    assert not same_origin("https://127.0.0.1:8080", None, "http", host)  # another scheme
    assert same_origin(None, "http://127.0.0.1:8080/ui/keys", "http", host)
    assert not same_origin(None, "http://127.0.0.1:8081/ui/keys", "http", host)
    assert not same_origin("null", None, "http", host)  # a sandboxed or file page
    assert not same_origin(None, None, "http", host)
    assert not same_origin("http://127.0.0.1:8080", None, "http", None)


def test_wrong_tokens_lock_one_address_out_for_the_window() -> None:
    throttle = SigninThrottle(limit=3, window_s=60)
    for t in (0.0, 1.0, 2.0):
        assert throttle.retry_in_s("10.0.0.1", now=t) == 0
        throttle.failed("10.0.0.1", now=t)
    assert throttle.retry_in_s("10.0.0.1", now=3.0) == 57.0  # until the first failure ages out
    assert throttle.retry_in_s("10.0.0.2", now=3.0) == 0  # another address is not locked
    assert throttle.retry_in_s("10.0.0.1", now=60.5) == 0  # the window has passed
    throttle.failed("10.0.0.1", now=61.0)
    throttle.succeeded("10.0.0.1")
    assert throttle.retry_in_s("10.0.0.1", now=61.0) == 0


def test_the_throttle_forgets_the_oldest_address_when_full() -> None:
    throttle = SigninThrottle(limit=1, window_s=60, max_clients=2)
    for address in ("a", "b", "c"):
        throttle.failed(address, now=0.0)
    assert throttle.retry_in_s("a", now=1.0) == 0
    assert throttle.retry_in_s("c", now=1.0) > 0
