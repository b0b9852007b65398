"""A damaged database is told from a busy one (issue 9, defect 8): refused at start
with one line naming the file, and at run time a distinct error, not "busy"."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.exc import DBAPIError, OperationalError

from hpresil.errors import DatabaseCorrupt
from hpresil.store import Store, repo
from hpresil.store.db import is_corrupt

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def filled(path: Path) -> Store:
    """A real, migrated database with a nodes table over many pages."""
    store = Store.open(f"sqlite:///{path}")
    store.migrate()
    with store.write() as s:
        for i in range(400):
            node = repo.ensure_node(s, f"node{i:04d}", T0)
            node.slurm_reason = "x" * 200
    return store


def damage(path: Path, table: str) -> None:
    """Write garbage over the pages of ``table``'s b-tree below its root."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,))
        root_page = root.fetchone()[0]
    conn.close()
    with path.open("r+b") as f:
        for page in range(root_page, root_page + 4):
            f.seek((page - 1) * page_size)
            f.write(bytes((7 * i + 13) % 256 for i in range(page_size)))


def test_a_corrupt_sqlite_file_is_refused_at_start_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "hpresil.db"
    filled(path).close()
    damage(path, "nodes")
    store = Store.open(f"sqlite:///{path}")
    with pytest.raises(DatabaseCorrupt) as caught:
        store.migrate()
    message = str(caught.value)
    assert str(path) in message and "corrupt" in message and "\n" not in message


def test_a_file_that_is_not_a_database_is_refused_at_start(tmp_path: Path) -> None:
    path = tmp_path / "hpresil.db"
    path.write_bytes(b"not sqlite at all " * 500)
    with pytest.raises(DatabaseCorrupt, match="corrupt"):
        Store.open(f"sqlite:///{path}").migrate()


def test_corruption_met_at_run_time_is_not_contention(tmp_path: Path) -> None:
    path = tmp_path / "hpresil.db"
    store = filled(path)
    store.close()
    damage(path, "nodes")
    with pytest.raises(DatabaseCorrupt, match=str(path)), store.read() as s:
        list(repo.nodes(s))
    with pytest.raises(DatabaseCorrupt), store.write() as s:
        repo.ensure_node(s, "node0001", T0).slurm_reason = "y"


def test_a_sound_database_passes_the_start_check(tmp_path: Path) -> None:
    path = tmp_path / "hpresil.db"
    filled(path).close()
    store = Store.open(f"sqlite:///{path}")
    store.migrate()
    with store.read() as s:
        assert len(repo.nodes(s)) == 400


def test_lock_contention_stays_contention(tmp_path: Path) -> None:
    path = tmp_path / "hpresil.db"
    filled(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        waiter = sqlite3.connect(path, timeout=0, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked") as caught:
            waiter.execute("BEGIN IMMEDIATE")
        waiter.close()
    finally:
        holder.rollback()
        holder.close()
    wrapped = OperationalError("SELECT", {}, caught.value)
    assert not is_corrupt(wrapped)


def test_postgresql_data_corruption_is_corruption() -> None:
    for sqlstate_error in (psycopg.errors.DataCorrupted, psycopg.errors.IndexCorrupted):
        assert is_corrupt(DBAPIError("SELECT", {}, sqlstate_error("page damaged")))
    busy = psycopg.errors.LockNotAvailable("could not obtain lock")
    assert not is_corrupt(OperationalError("SELECT", {}, busy))
