"""Fixtures shared by all test tiers: a real, throwaway PostgreSQL server.

The controller's store must work the same on SQLite and PostgreSQL, so tests that
take ``db_url`` run on both. The server is Debian's PostgreSQL (``scripts/setup``
installs it), started once per session as the ``postgres`` user in a temporary folder,
listening only on a Unix socket there; each test gets a fresh database.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests.nvmldouble"]


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """Base URL (no database) of a PostgreSQL server private to this test session."""
    bin_dir = _pg_bin()
    if bin_dir is None or os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is required in CI (scripts/setup installs it)")
        pytest.skip("no PostgreSQL server binaries (or not root to run them)")
    root = Path(tempfile.mkdtemp(prefix="hpresil-pg-"))
    shutil.chown(root, "postgres", "postgres")
    data = root / "data"

    def as_postgres(*argv: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *argv],
            check=True,
            capture_output=True,
            timeout=120,
        )

    as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    opts = f"-k {root} -c listen_addresses='' -p 5439 -c fsync=off"
    log = root / "server.log"  # the server must not inherit a captured pipe
    as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "start")
    try:
        yield f"postgresql+psycopg://postgres@/?host={root}&port=5439"
    finally:
        as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    import sqlalchemy

    name = f"t_{uuid.uuid4().hex[:12]}"
    engine = sqlalchemy.create_engine(
        postgres_server.replace("/?", "/postgres?"), isolation_level="AUTOCOMMIT"
    )
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return postgres_server.replace("/?", f"/{name}?")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The controller's database URL, once for each supported backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state/hpresil.db"
    url: str = request.getfixturevalue("postgres_url")
    return url
