"""The incident ledger is the controller's alone: the SQLite file and its -wal/-shm
are 0600 whatever the umask, and an older, world-readable one is tightened."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hpresil.store import Store, repo


def modes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()}


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o000)
    yield
    os.umask(old)


def test_a_new_database_and_its_wal_and_shm_are_owner_only(
    tmp_path: Path, loose_umask: None
) -> None:
    st = Store.open(f"sqlite:///{tmp_path}/db/hpresil.db")
    st.migrate()
    with st.write() as s:  # WAL mode: the write leaves -wal and -shm beside the file
        repo.ensure_node(s, "node1", datetime.now(UTC))
    with st.read() as s:
        assert [n.name for n in repo.nodes(s)] == ["node1"]
    assert modes(tmp_path / "db") == {
        "hpresil.db": 0o600,
        "hpresil.db-wal": 0o600,
        "hpresil.db-shm": 0o600,
    }
    st.close()


def test_an_older_readable_database_is_tightened_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path}/hpresil.db"
    Store.open(url).close()
    for name in ("hpresil.db", "hpresil.db-shm"):
        path = tmp_path / name
        path.touch()
        path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="hpresil.store.db"):
        st = Store.open(url)
    st.migrate()
    st.close()
    assert modes(tmp_path)["hpresil.db"] == 0o600
    assert [r.getMessage() for r in caplog.records] == [
        f"database {tmp_path}/hpresil.db was mode 0644, open to others: now 0600",
        f"database {tmp_path}/hpresil.db-shm was mode 0644, open to others: now 0600",
    ]
