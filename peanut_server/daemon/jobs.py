"""Jobs: persisted in SQLite, their events fanned out to any number of watchers.

A job's record is its Job message (serialized protobuf), so what survives a
restart is exactly what clients see. Progress is written to disk at most once
a second; state and stage changes at once.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterator

from ..api import peanut_pb2 as pb

FINAL_STATES = frozenset(
    {pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED, pb.JOB_STATE_INTERRUPTED}
)
PROGRESS_SAVE_INTERVAL = 1.0


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

    def add(self, job: pb.Job, timeline: pb.ProcessTimelineRequest | None = None) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs (id, state, job, timeline) VALUES (?, ?, ?, ?)",
                (job.id, job.state, job.SerializeToString(), timeline.SerializeToString() if timeline else None),
            )

    def save(self, job: pb.Job) -> None:
        with self._lock:
            self._db.execute("UPDATE jobs SET state = ?, job = ? WHERE id = ?", (job.state, job.SerializeToString(), job.id))

    def get(self, job_id: str) -> pb.Job | None:
        with self._lock:
            row = self._db.execute("SELECT job FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return pb.Job.FromString(row[0]) if row else None

    def timeline_request(self, job_id: str) -> pb.ProcessTimelineRequest | None:
        with self._lock:
            row = self._db.execute("SELECT timeline FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return pb.ProcessTimelineRequest.FromString(row[0]) if row and row[0] else None

    def list(self, limit: int = 100, states: tuple[int, ...] = ()) -> list[pb.Job]:
        query, args = "SELECT job FROM jobs", []
        if states:
            query += f" WHERE state IN ({','.join('?' * len(states))})"
            args.extend(states)
        query += " ORDER BY rowid DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
        return [pb.Job.FromString(r[0]) for r in rows]

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
    order. The log is kept while the daemon runs, so no watcher misses one.
    """

    def __init__(self, job: pb.Job, store: JobStore) -> None:
        self._cond = threading.Condition()
        self._job = job
        self._store = store
        self._events: list[pb.JobEvent] = []
        self._seq = 0
        self._last_save = 0.0

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
                    self._job.warnings.extend(value)
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

    def watch(self, is_active, poll: float = 0.5) -> Iterator[pb.JobEvent]:
        with self._cond:
            snapshot = pb.JobEvent(job_id=self._job.id, seq=self._seq, type=pb.EVENT_TYPE_SNAPSHOT)
            snapshot.job.CopyFrom(self._job)
            position = len(self._events)
        yield snapshot
        if snapshot.job.state in FINAL_STATES:
            return
        while is_active():
            with self._cond:
                if position >= len(self._events):
                    self._cond.wait(timeout=poll)
                pending = self._events[position:]
                position = len(self._events)
            for event in pending:
                yield event
                if event.job.state in FINAL_STATES:
                    return
