"""Request and record ids: 24 hex characters, never the same twice, even in a forked worker
(the ledger upserts by record id, so a repeat would overwrite another request's record)."""

from __future__ import annotations

import os

from spillgate.server.accounting import new_id


def test_ids_are_24_hex_characters_and_do_not_repeat() -> None:
    ids = {new_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(len(i) == 24 and int(i, 16) >= 0 for i in ids)


def test_a_forked_process_does_not_repeat_its_parents_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, then out without pytest's teardown
        os.write(write, new_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert len(child) == 24 and child != new_id()
