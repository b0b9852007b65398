"""The database: migration equals the models, SQLite set up right, UTC timestamps."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text

from hpresil.errors import DatabaseCorrupt
from hpresil.store import Store, repo
from hpresil.store.db import MIGRATIONS, DatabaseError, alembic_config
from hpresil.store.models import Base, NodeResultsRow, NodeRow
from hpresil.store.types import UtcDateTime

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    st = Store.open(f"sqlite:///{tmp_path}/new/dir/hpresil.db")
    st.migrate()
    return st


@pytest.fixture
def any_store(db_url: str) -> Iterator[Store]:
    """The store on each supported backend (SQLite and a real PostgreSQL)."""
    st = Store.open(db_url)
    st.migrate()
    yield st
    st.close()


def test_the_migration_builds_exactly_the_models(any_store: Store) -> None:
    store = any_store
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
        assert context.get_current_revision() == "0011"
    assert set(inspect(store.engine).get_table_names()) == {
        "alembic_version",
        "nodes",
        "node_results",
        "reports",
        "incidents",
        "incident_jobs",
        "recovery_steps",
        "actions",
        "jobs",
        "job_interruptions",
        "breakers",
        "shared_faults",
    }


def test_migrating_twice_is_harmless(any_store: Store) -> None:
    store = any_store
    store.migrate()


def test_sqlite_pragmas_on_every_connection(store: Store, tmp_path: Path) -> None:
    assert (tmp_path / "new" / "dir" / "hpresil.db").exists()  # parent made
    with store.engine.connect() as conn:
        pragma = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "busy_timeout", "synchronous", "foreign_keys")
        }
    assert pragma == {
        "journal_mode": "wal",
        "busy_timeout": 5000,
        "synchronous": 1,
        "foreign_keys": 1,
    }


def test_timestamps_come_back_aware_utc(any_store: Store) -> None:
    store = any_store
    paris = timezone(timedelta(hours=1))
    with store.write() as s:
        s.add(NodeRow(name="n1", first_seen_at=T0.astimezone(paris), drained_by_hpresil=False))
    with store.read() as s:
        node = s.get(NodeRow, "n1")
        assert node is not None
        assert node.first_seen_at == T0 and node.first_seen_at.tzinfo is UTC
        found = s.scalars(select(NodeRow).where(NodeRow.first_seen_at >= T0)).all()
        assert [n.name for n in found] == ["n1"]


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        UtcDateTime().process_bind_param(datetime(2026, 1, 1), None)  # type: ignore[arg-type]


def test_foreign_keys_are_enforced(any_store: Store) -> None:
    store = any_store
    from sqlalchemy.exc import IntegrityError

    from hpresil.store.models import IncidentRow
    from hpresil.vocab import Action, Category

    with pytest.raises(IntegrityError), store.write() as s:
        s.add(
            IncidentRow(
                node="nowhere",
                status="open",
                category=Category.HOST,
                action=Action.DRAIN,
                hardware=True,
                summary="",
                observed_at=T0,
                detected_at=T0,
                findings=1,
            )
        )


def test_a_failed_transaction_leaves_nothing(any_store: Store) -> None:
    store = any_store
    with pytest.raises(RuntimeError), store.write() as s:
        repo.ensure_node(s, "n1", T0)
        raise RuntimeError("bug")
    with store.read() as s:
        assert repo.nodes(s) == []


def test_concurrent_writers_queue_instead_of_failing(store: Store) -> None:
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            for j in range(20):
                with store.write() as s:
                    repo.ensure_node(s, f"n{i}-{j}", T0)
                    s.flush()
                    repo.nodes(s)
        except BaseException as exc:  # pragma: no cover - the failure being tested for
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with store.read() as s:
        assert len(repo.nodes(s)) == 80


def test_the_migration_renders_for_postgresql() -> None:
    """Offline (no server): the same migration gives PostgreSQL DDL with zone-aware
    timestamps and nothing SQLite-specific."""
    out = io.StringIO()
    cfg = AlembicConfig(output_buffer=out)
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", "postgresql://hpresil@db.invalid/hpresil")
    command.upgrade(cfg, "head", sql=True)
    ddl = out.getvalue()
    assert "CREATE TABLE incident_jobs" in ddl and "TIMESTAMP WITH TIME ZONE" in ddl
    assert "PRAGMA" not in ddl and "batch" not in ddl.lower()


def test_an_unusable_database_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "notadb").write_text("hello\n" * 1000)
    with pytest.raises(DatabaseCorrupt, match=r"^database /.*notadb is corrupt \(file is not a"):
        Store.open(f"sqlite:///{tmp_path}/notadb").migrate()
    with pytest.raises(DatabaseError, match=r"^database nonsense://: Can't load plugin"):
        Store.open("nonsense://")


def test_new_incidents_and_their_jobs_are_made_in_one_place(any_store: Store) -> None:
    from hpresil.vocab import Action, Category

    with any_store.write() as s:
        repo.ensure_node(s, "n1", T0)
        s.flush()  # the node before its incidents (no relationship orders them)
        repo.new_incident(s, "n1", T0, category=Category.HOST, findings=1)
        closed = repo.new_incident(s, "n1", T0, status="resolved", category=Category.APP, job_id=7)
        repo.add_affected_job(s, closed, 7, T0 - timedelta(hours=1), "train", 2)
    with any_store.read() as s:
        first, second = repo.incidents(s, node="n1")
        assert (first.status, first.category, first.action) == ("open", Category.HOST, Action.NONE)
        assert (first.observed_at, first.detected_at, first.resolved_at) == (T0, T0, None)
        assert (first.hardware, first.summary, first.findings, first.job_id) == (False, "", 1, None)
        assert (second.status, second.resolved_at, second.job_id) == ("resolved", T0, 7)
        (job,) = second.jobs
        assert (job.job_id, job.name, job.restart_count) == (7, "train", 2)
        assert job.submit_time == T0 - timedelta(hours=1)
        assert repo.open_incident(s, "n1") is first


def test_migration_0008_moves_each_nodes_results_to_their_own_row_and_back(db_url: str) -> None:
    """A ledger of 0007 keeps every node's results through the upgrade (and back):
    they now live in node_results, so a heartbeat's update of its node no longer
    rewrites them."""
    held = [{"check": "ecc", "status": "fail", "gpu": {"index": 3}}]
    engine = Store.open(db_url).engine
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0007")
        conn.execute(
            text(
                "INSERT INTO nodes (name, first_seen_at, drained_by_hpresil, last_results) "
                "VALUES ('gpu1', :at, false, :held), ('gpu2', :at, false, NULL)"
            ),
            {"at": T0.replace(tzinfo=None), "held": json.dumps(held)},
        )
        command.upgrade(alembic_config(conn), "head")
        moved = conn.execute(text("SELECT node, results FROM node_results")).all()
        assert [(n, json.loads(r) if isinstance(r, str) else r) for n, r in moved] == [
            ("gpu1", held)
        ]
        assert "last_results" not in {c["name"] for c in inspect(conn).get_columns("nodes")}
        command.downgrade(alembic_config(conn), "0007")
        back = conn.execute(text("SELECT name, last_results FROM nodes ORDER BY name")).all()
        assert [(n, json.loads(r) if isinstance(r, str) else r) for n, r in back] == [
            ("gpu1", held),
            ("gpu2", None),
        ]
    engine.dispose()


def test_a_nodes_results_are_a_row_of_their_own(any_store: Store) -> None:
    with any_store.write() as s:
        node = repo.add_node(s, "gpu1", T0)
        node.last_results = [{"check": "ecc", "status": "ok"}]
    with any_store.write() as s:
        row = s.get(NodeRow, "gpu1")
        assert row is not None and row.last_results == [{"check": "ecc", "status": "ok"}]
        row.last_results = None  # forgotten: its row goes
    with any_store.read() as s:
        assert s.scalars(select(NodeResultsRow)).all() == []


def test_a_stalled_transaction_on_postgresql_gives_its_locks_up(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process stopped inside a transaction (SIGSTOP, a frozen VM; its host still
    answers TCP) holding a node's row: the server ends its session after
    PG_STALLED_TX_MS, so another replica's report of that node goes on."""
    from hpresil.store import db

    monkeypatch.setitem(db.PG_CLIENT, "options", "-c idle_in_transaction_session_timeout=1000")
    store = Store.open(postgres_url)
    store.migrate()
    with store.write() as s:
        repo.ensure_node(s, "gpu1", datetime(2026, 12, 7, tzinfo=UTC))
    stalled = store.engine.connect()
    stalled.begin()
    stalled.execute(text("SELECT name FROM nodes WHERE name = 'gpu1' FOR UPDATE"))
    try:  # stalled now: no statement follows
        with store.engine.connect() as other, other.begin():
            other.execute(text("SET LOCAL lock_timeout = '5s'"))  # else: 'lock timeout'
            found = other.execute(text("SELECT name FROM nodes WHERE name = 'gpu1' FOR UPDATE"))
            assert found.scalar() == "gpu1"  # in about the 1 s the stalled one is given
        with pytest.raises(Exception, match=r"idle-in-transaction|terminat|closed"):
            stalled.execute(text("SELECT 1"))
    finally:
        stalled.invalidate()
        store.close()
