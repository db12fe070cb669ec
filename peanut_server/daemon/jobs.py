"""Jobs: persisted in SQLite, their events fanned out to any number of watchers.

A job's record is its Job message (serialized protobuf), so what survives a
restart is exactly what clients see. Progress is written to disk at most once
a second; state and stage changes at once.

Beside the jobs, two more things live in the database so that they survive a
restart: the paths each job claims (its output and matte, resolved), so no
job writes into or over another live job's output, and the fingerprint of a
job's inputs when it first ran, so Resume can tell that the source changed.
"""

from __future__ import annotations

import collections
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from ..api import peanut_pb2 as pb

log = logging.getLogger(__name__)

FINAL_STATES = frozenset(
    {pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED, pb.JOB_STATE_INTERRUPTED}
)
# Jobs whose claimed paths are still in use: an interrupted job keeps its staging for Resume.
LIVE_STATES = (pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING, pb.JOB_STATE_INTERRUPTED)
PROGRESS_SAVE_INTERVAL = 1.0
# Events kept in memory per job for watchers; one that falls further behind gets a fresh snapshot.
MAX_EVENTS_PER_JOB = 1000
# Warnings kept in a job's record (and so in SQLite); later ones are counted in the last entry.
MAX_WARNINGS_PER_JOB = 100


class DatabaseDamaged(Exception):
    """The job database cannot be used as it is (`reason` says why, for one log line)."""


def damaged_reason(path: Path) -> str:
    """Why the SQLite file at `path` cannot be trusted, or "" when it is fine (or absent).

    A zero-length file is damage, not an empty queue: the daemon sets WAL mode on
    creation, which writes the header, so a database it made is never 0 bytes.
    """
    if not path.exists():
        return ""
    wal = path.with_name(path.name + "-wal")
    if path.stat().st_size == 0 and not (wal.exists() and wal.stat().st_size > 0):
        return "is empty (0 bytes): it was truncated"
    try:
        db = sqlite3.connect(str(path), isolation_level=None)
        try:
            rows = db.execute("PRAGMA quick_check").fetchall()
            if rows != [("ok",)]:
                return f"fails SQLite's integrity check ({rows[0][0]})"
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "jobs" in tables:
                db.execute("SELECT id, state, job FROM jobs LIMIT 1").fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        return f"cannot be read by SQLite ({exc})"
    return ""


class JobStore:
    """SQLite table of jobs; safe to use from the RPC threads and the worker."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS jobs ("
            " rowid INTEGER PRIMARY KEY AUTOINCREMENT,"
            " id TEXT UNIQUE NOT NULL,"
            " state INTEGER NOT NULL,"
            " job BLOB NOT NULL,"
            " timeline BLOB)"
        )
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        if "inputs" not in columns:  # databases from before input fingerprints
            self._db.execute("ALTER TABLE jobs ADD COLUMN inputs TEXT")
        self._db.execute("CREATE TABLE IF NOT EXISTS claims (job_id TEXT NOT NULL, path TEXT NOT NULL)")
        self._db.execute("CREATE INDEX IF NOT EXISTS claims_job ON claims (job_id)")

    def add(self, job: pb.Job, timeline: pb.ProcessTimelineRequest | None = None, claims: tuple[str, ...] = ()) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute(
                    "INSERT INTO jobs (id, state, job, timeline) VALUES (?, ?, ?, ?)",
                    (job.id, job.state, job.SerializeToString(), timeline.SerializeToString() if timeline else None),
                )
                self._db.executemany("INSERT INTO claims (job_id, path) VALUES (?, ?)", [(job.id, p) for p in claims])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def live_claims(self) -> list[tuple[str, str, int]]:
        """(job id, claimed path, job state) of every job that is queued, running or interrupted."""
        with self._lock:
            return self._db.execute(
                "SELECT c.job_id, c.path, j.state FROM claims c JOIN jobs j ON j.id = c.job_id"
                f" WHERE j.state IN ({','.join('?' * len(LIVE_STATES))})",
                LIVE_STATES,
            ).fetchall()

    def count(self, state: int) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM jobs WHERE state = ?", (state,)).fetchone()[0]

    def inputs(self, job_id: str) -> dict | None:
        """The fingerprint of the job's inputs taken when it first ran (None before)."""
        with self._lock:
            row = self._db.execute("SELECT inputs FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def set_inputs(self, job_id: str, inputs: dict | None) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET inputs = ? WHERE id = ?", (json.dumps(inputs) if inputs is not None else None, job_id)
            )

    def save(self, job: pb.Job) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET state = ?, job = ? WHERE id = ?", (job.state, job.SerializeToString(), job.id)
            )

    def get(self, job_id: str) -> pb.Job | None:
        with self._lock:
            row = self._db.execute("SELECT job FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return pb.Job.FromString(row[0]) if row else None

    def timeline_request(self, job_id: str) -> pb.ProcessTimelineRequest | None:
        with self._lock:
            row = self._db.execute("SELECT timeline FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return pb.ProcessTimelineRequest.FromString(row[0]) if row and row[0] else None

    def list(self, limit: int = 100, states: tuple[int, ...] = ()) -> list[pb.Job]:
        return self.page(limit, states)[0]

    def page(
        self, limit: int = 100, states: tuple[int, ...] = (), before: int | None = None
    ) -> tuple[list[pb.Job], int]:
        """Up to `limit` jobs, newest first, older than row `before`; and the row of the last one (0: no more)."""
        query, where, args = "SELECT rowid, job FROM jobs", [], []
        if states:
            where.append(f"state IN ({','.join('?' * len(states))})")
            args.extend(states)
        if before is not None:
            where.append("rowid < ?")
            args.append(before)
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY rowid DESC LIMIT ?"
        args.append(limit + 1)  # one more tells whether another page follows
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        return [pb.Job.FromString(r[1]) for r in rows], (rows[-1][0] if more and rows else 0)

    def queued_ids(self) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM jobs WHERE state = ? ORDER BY rowid", (pb.JOB_STATE_QUEUED,)
            ).fetchall()
        return [r[0] for r in rows]

    def interrupt_running(self) -> list[str]:
        """After a crash or kill -9: jobs left RUNNING are INTERRUPTED, records intact."""
        ids = []
        for job in self.list(limit=1_000_000, states=(pb.JOB_STATE_RUNNING,)):
            job.state = pb.JOB_STATE_INTERRUPTED
            job.error = "the daemon stopped while this job ran; `peanut resume` continues it"
            job.error_code = "INTERRUPTED"
            job.updated_at = time.time()
            self.save(job)
            ids.append(job.id)
        return ids

    def close(self) -> None:
        with self._lock:
            self._db.close()


class JobChannel:
    """The live state of one job and its event log, for watchers.

    Every change appends an event with the next sequence number; a watcher
    first gets a SNAPSHOT of the job as it is now, then every later event in
    order. The log keeps the last MAX_EVENTS_PER_JOB events: a watcher that
    falls further behind gets a fresh SNAPSHOT and goes on from there, so it
    never sees a gap it cannot tell from a quiet job, and always sees the end.
    """

    def __init__(self, job: pb.Job, store: JobStore) -> None:
        self._cond = threading.Condition()
        self._job = job
        self._store = store
        self._events: collections.deque[pb.JobEvent] = collections.deque(maxlen=MAX_EVENTS_PER_JOB)
        self._seq = 0
        self._last_save = 0.0
        self._dropped_warnings = 0

    def event_count(self) -> int:
        with self._cond:
            return len(self._events)

    def _add_warnings(self, warnings) -> None:
        """Append warnings, keeping at most MAX_WARNINGS_PER_JOB; the last entry counts the rest."""
        for warning in warnings:
            if len(self._job.warnings) < MAX_WARNINGS_PER_JOB - 1:
                self._job.warnings.append(warning)
                continue
            if len(self._job.warnings) == MAX_WARNINGS_PER_JOB:
                del self._job.warnings[-1]
            self._dropped_warnings += 1
            if self._dropped_warnings == 1:
                log.warning(
                    "job %s: more than %d warnings; later ones are only counted", self._job.id, MAX_WARNINGS_PER_JOB - 1
                )
            self._job.warnings.append(
                f"... and {self._dropped_warnings} more warnings (the first {MAX_WARNINGS_PER_JOB - 1} are listed)"
            )

    @property
    def job(self) -> pb.Job:
        with self._cond:
            copy = pb.Job()
            copy.CopyFrom(self._job)
            return copy

    def update(self, event_type: int, message: str = "", persist: bool = True, **fields) -> pb.Job:
        """Apply field changes to the job, persist, and publish one event."""
        with self._cond:
            for name, value in fields.items():
                if name == "result":
                    self._job.result.CopyFrom(value)
                elif name == "warnings":
                    self._add_warnings(value)
                else:
                    setattr(self._job, name, value)
            self._job.updated_at = time.time()
            now = time.monotonic()
            if persist or now - self._last_save >= PROGRESS_SAVE_INTERVAL or self._job.state in FINAL_STATES:
                self._store.save(self._job)
                self._last_save = now
            self._seq += 1
            event = pb.JobEvent(job_id=self._job.id, seq=self._seq, type=event_type, message=message)
            event.job.CopyFrom(self._job)
            self._events.append(event)
            self._cond.notify_all()
            return event.job

    def _snapshot(self) -> pb.JobEvent:
        snapshot = pb.JobEvent(job_id=self._job.id, seq=self._seq, type=pb.EVENT_TYPE_SNAPSHOT)
        snapshot.job.CopyFrom(self._job)
        return snapshot

    def watch(self, is_active, poll: float = 0.5, stopping=lambda: False) -> Iterator[pb.JobEvent]:
        """SNAPSHOT, then every later event; ends at a final state, or when the call or the daemon stops."""
        with self._cond:
            snapshot = self._snapshot()
        yield snapshot
        if snapshot.job.state in FINAL_STATES:
            return
        seen = snapshot.seq
        while is_active() and not stopping():
            with self._cond:
                if self._seq <= seen:
                    self._cond.wait(timeout=poll)
                if self._events and self._events[0].seq > seen + 1:
                    # Fell behind the kept log: start again from the job as it is now.
                    pending = [self._snapshot()]
                else:
                    pending = [e for e in self._events if e.seq > seen]
                seen = self._seq
            for event in pending:
                yield event
                if event.job.state in FINAL_STATES:
                    return
