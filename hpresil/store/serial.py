"""Who waits for whom when several processes take reports into one PostgreSQL.

Each controller process takes reports on several threads at once, and replicas share
the database, so the ingest's read-modify-writes are serialised where they meet, in
the database, and nowhere else:

* a node's reports one at a time: its row locked (``SELECT ... FOR UPDATE``) first;
* a job's rows (its nodes report it at once): a transaction-level advisory lock per job
  id, taken in job order, before its row is read or made;
* decisions over the fleet (an incident opening, the cap, the breakers, a shared
  component): one transaction-level advisory lock, taken only by a report that acts.

Always in that order (node, jobs, decisions), so two reports never wait on each other
in a circle. Locks end with the transaction. On SQLite each is a no-op: a write
transaction there is the database's only one (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.orm import Session

# advisory locks, two-key form (a key space apart from the leader's one-key lock)
SPACE, DECISIONS = 0x6870_7273, 1  # b"hprs", 1: the fleet's decisions
JOBS = 0x6A6F_6273  # b"jobs", then the job id


def shared(s: Session) -> bool:
    """Whether other transactions may write beside this one (PostgreSQL)."""
    return s.get_bind().dialect.name == "postgresql"


def decisions(s: Session) -> None:
    """Wait for other reports' fleet decisions; hold them off until commit."""
    if shared(s):
        s.execute(text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": SPACE, "b": DECISIONS})


def jobs(s: Session, job_ids: Iterable[int]) -> None:
    """Wait for other reports of these jobs; hold them off until commit (in id order)."""
    if not shared(s):
        return
    for job_id in sorted(set(job_ids)):
        s.execute(text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": JOBS, "b": job_id})
