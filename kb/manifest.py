"""The ingestion manifest: which file produced which chunks, and what is still in flight.

A SQLite file beside the vector store. Every file's chunks are written under a journal entry
(`pending_ids`) that is committed before the vectors are written and cleared after; a process
killed in between leaves the entry behind, and the next run removes exactly those chunks and
ingests the file again. A row without `pending_ids` is a promise that all its chunks exist.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    collection  TEXT NOT NULL,
    root        TEXT NOT NULL,
    source      TEXT NOT NULL,
    file_hash   TEXT NOT NULL,
    size        INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL,
    title       TEXT NOT NULL DEFAULT '',
    chunk_ids   TEXT NOT NULL DEFAULT '[]',
    pending_ids TEXT,
    ingested_at REAL NOT NULL,
    PRIMARY KEY (collection, root, source)
);
CREATE INDEX IF NOT EXISTS files_by_hash ON files (collection, file_hash);
CREATE TABLE IF NOT EXISTS failures (
    collection TEXT NOT NULL,
    root       TEXT NOT NULL,
    source     TEXT NOT NULL,
    file_hash  TEXT NOT NULL,
    size       INTEGER NOT NULL,
    mtime_ns   INTEGER NOT NULL,
    error      TEXT NOT NULL,
    PRIMARY KEY (collection, root, source)
);
CREATE TABLE IF NOT EXISTS access_roots (
    collection TEXT NOT NULL,
    root       TEXT NOT NULL,
    groups     TEXT NOT NULL,
    PRIMARY KEY (collection, root)
);
CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    collection  TEXT NOT NULL,
    roots       TEXT NOT NULL,
    started_at  REAL NOT NULL,
    finished_at REAL,
    summary     TEXT
);
"""


@dataclass(frozen=True)
class FileEntry:
    """A file as the knowledge base records it: where it came from and what its content was."""

    root: str
    source: str
    file_hash: str
    size: int
    mtime_ns: int
    title: str = ""
    groups: tuple[str, ...] = ()  # declared readers (kb.access); () when undeclared


@dataclass(frozen=True)
class FileRecord:
    collection: str
    root: str
    source: str
    file_hash: str
    size: int
    mtime_ns: int
    title: str
    chunk_ids: tuple[str, ...]
    pending_ids: tuple[str, ...] | None
    ingested_at: float
    groups: tuple[str, ...] = ()
    # Readers being written to the file's chunks (a journalled change of groups), or None.
    pending_groups: tuple[str, ...] | None = None

    @property
    def complete(self) -> bool:
        return self.pending_ids is None

    @property
    def document_id(self) -> str:
        return document_id(self.root, self.source)


def document_id(root: str, source: str) -> str:
    """A file's stable id in a collection (what the API names documents by): it hides the
    server's paths and stays the same across re-ingestions of the file."""
    import hashlib

    return hashlib.sha1(f"{root}\0{source}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class FailureRecord:
    source: str
    file_hash: str
    size: int
    mtime_ns: int
    error: str


def _record(row: sqlite3.Row) -> FileRecord:
    pending = row["pending_ids"]
    return FileRecord(
        collection=row["collection"],
        root=row["root"],
        source=row["source"],
        file_hash=row["file_hash"],
        size=row["size"],
        mtime_ns=row["mtime_ns"],
        title=row["title"],
        chunk_ids=tuple(json.loads(row["chunk_ids"])),
        pending_ids=None if pending is None else tuple(json.loads(pending)),
        ingested_at=row["ingested_at"],
        groups=tuple(json.loads(row["groups"] or "[]")),
        pending_groups=None
        if row["pending_groups"] is None
        else tuple(json.loads(row["pending_groups"])),
    )


class Manifest:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(files)")}
        # Manifests written before documents carried groups: every file undeclared.
        for column in ("groups", "pending_groups"):
            if column not in columns:
                self._db.execute(f"ALTER TABLE files ADD COLUMN {column} TEXT")
        # One connection serves every thread of a process (the web page's sessions); a re-entrant
        # lock keeps one thread's transaction from interleaving with another's statements.
        self._lock = threading.RLock()

    def close(self) -> None:
        self._db.close()

    def _run(self, sql: str, args: tuple | list = ()) -> list[sqlite3.Row]:
        with self._lock:
            cursor = self._db.execute(sql, args)
            rows = cursor.fetchall()
            self._last_rowid = cursor.lastrowid
            return rows

    def run(self, sql: str, args: tuple | list = ()) -> list[sqlite3.Row]:
        """One statement on the manifest's connection (other store-layer indexes that live in
        this database, such as the keyword index, write through here to share transactions)."""
        return self._run(sql, args)

    def executemany(self, sql: str, rows: Iterable[tuple]) -> None:
        with self._lock:
            self._db.executemany(sql, rows)

    @property
    def in_transaction(self) -> bool:
        return self._db.in_transaction

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- files -----------------------------------------------------------------------------

    def files(self, collection: str, root: str | None = None) -> dict[tuple[str, str], FileRecord]:
        query = "SELECT * FROM files WHERE collection = ?"
        args: list[str] = [collection]
        if root is not None:
            query += " AND root = ?"
            args.append(root)
        return {(r["root"], r["source"]): _record(r) for r in self._run(query, args)}

    def complete_by_hash(self, collection: str, file_hash: str) -> FileRecord | None:
        rows = self._run(
            "SELECT * FROM files WHERE collection = ? AND file_hash = ? AND pending_ids IS NULL "
            "LIMIT 1",
            (collection, file_hash),
        )
        return _record(rows[0]) if rows else None

    def incomplete(self, collection: str | None = None) -> list[FileRecord]:
        query = "SELECT * FROM files WHERE pending_ids IS NOT NULL"
        args: tuple[str, ...] = ()
        if collection is not None:
            query += " AND collection = ?"
            args = (collection,)
        return [_record(r) for r in self._run(query, args)]

    def begin_file(self, collection: str, entry: FileEntry, pending_ids: Iterable[str]) -> None:
        """Journal the chunks about to be written for a file (keeps its current chunk_ids)."""
        self._run(
            """INSERT INTO files (collection, root, source, file_hash, size, mtime_ns, title,
                                  chunk_ids, pending_ids, ingested_at, groups)
               VALUES (?, ?, ?, ?, ?, ?, ?, '[]', ?, ?, ?)
               ON CONFLICT (collection, root, source) DO UPDATE SET
                   pending_ids = excluded.pending_ids""",
            (
                collection,
                entry.root,
                entry.source,
                entry.file_hash,
                entry.size,
                entry.mtime_ns,
                entry.title,
                json.dumps(list(pending_ids)),
                time.time(),
                json.dumps(list(entry.groups)),
            ),
        )

    def finish_file(self, collection: str, entry: FileEntry, chunk_ids: Iterable[str]) -> None:
        self._run(
            """UPDATE files SET file_hash = ?, size = ?, mtime_ns = ?, title = ?, chunk_ids = ?,
                                pending_ids = NULL, ingested_at = ?, groups = ?,
                                pending_groups = NULL
               WHERE collection = ? AND root = ? AND source = ?""",
            (
                entry.file_hash,
                entry.size,
                entry.mtime_ns,
                entry.title,
                json.dumps(list(chunk_ids)),
                time.time(),
                json.dumps(list(entry.groups)),
                collection,
                entry.root,
                entry.source,
            ),
        )
        self.clear_failure(collection, entry.root, entry.source)

    def touch_file(self, collection: str, entry: FileEntry) -> None:
        """Record a new mtime for a file whose content did not change."""
        self._run(
            "UPDATE files SET size = ?, mtime_ns = ?"
            " WHERE collection = ? AND root = ? AND source = ?",
            (entry.size, entry.mtime_ns, collection, entry.root, entry.source),
        )

    def begin_groups(self, collection: str, root: str, source: str, groups: Iterable[str]) -> None:
        """Journal a change of a file's readers, before its chunks' metadata is rewritten."""
        self._run(
            "UPDATE files SET pending_groups = ? WHERE collection = ? AND root = ? AND source = ?",
            (json.dumps(list(groups)), collection, root, source),
        )

    def finish_groups(self, collection: str, root: str, source: str) -> None:
        self._run(
            "UPDATE files SET groups = pending_groups, pending_groups = NULL"
            " WHERE collection = ? AND root = ? AND source = ? AND pending_groups IS NOT NULL",
            (collection, root, source),
        )

    def regrouping(self, collection: str) -> list[FileRecord]:
        """Files whose change of readers was interrupted."""
        rows = self._run(
            "SELECT * FROM files WHERE collection = ? AND pending_groups IS NOT NULL",
            (collection,),
        )
        return [_record(r) for r in rows]

    def root_groups(self, collection: str, root: str) -> tuple[str, ...] | None:
        """The groups last given with `--groups` for the folder `root`, or None."""
        rows = self._run(
            "SELECT groups FROM access_roots WHERE collection = ? AND root = ?", (collection, root)
        )
        return tuple(json.loads(rows[0][0])) if rows else None

    def set_root_groups(self, collection: str, root: str, groups: Iterable[str]) -> None:
        self._run(
            "INSERT OR REPLACE INTO access_roots (collection, root, groups) VALUES (?, ?, ?)",
            (collection, root, json.dumps(list(groups))),
        )

    def remove_file(self, collection: str, root: str, source: str) -> None:
        self._run(
            "DELETE FROM files WHERE collection = ? AND root = ? AND source = ?",
            (collection, root, source),
        )
        self.clear_failure(collection, root, source)

    # --- failures --------------------------------------------------------------------------

    def failures(self, collection: str, root: str) -> dict[str, FailureRecord]:
        rows = self._run(
            "SELECT * FROM failures WHERE collection = ? AND root = ?", (collection, root)
        )
        return {
            r["source"]: FailureRecord(
                r["source"], r["file_hash"], r["size"], r["mtime_ns"], r["error"]
            )
            for r in rows
        }

    def record_failure(self, collection: str, entry: FileEntry, error: str) -> None:
        self._run(
            """INSERT OR REPLACE INTO failures
               (collection, root, source, file_hash, size, mtime_ns, error)
               VALUES (?, ?, ?, ?, ?, ?, ?)""",
            (
                collection,
                entry.root,
                entry.source,
                entry.file_hash,
                entry.size,
                entry.mtime_ns,
                error,
            ),
        )

    def clear_failure(self, collection: str, root: str, source: str) -> None:
        self._run(
            "DELETE FROM failures WHERE collection = ? AND root = ? AND source = ?",
            (collection, root, source),
        )

    # --- collections and runs --------------------------------------------------------------

    def drop_collection(self, collection: str) -> None:
        with self.transaction():
            for table in ("files", "failures", "runs", "access_roots"):
                self._run(f"DELETE FROM {table} WHERE collection = ?", (collection,))

    def stats(self, collection: str) -> tuple[int, int]:
        """(files, chunks) recorded as complete in `collection`."""
        files = chunks = 0
        for (ids,) in self._run(
            "SELECT chunk_ids FROM files WHERE collection = ? AND pending_ids IS NULL",
            (collection,),
        ):
            files += 1
            chunks += len(json.loads(ids))
        return files, chunks

    def start_run(self, collection: str, roots: list[str]) -> int:
        with self._lock:
            self._run(
                "INSERT INTO runs (collection, roots, started_at) VALUES (?, ?, ?)",
                (collection, json.dumps(roots), time.time()),
            )
            return int(self._last_rowid)

    def finish_run(self, run_id: int, summary: dict) -> None:
        self._run(
            "UPDATE runs SET finished_at = ?, summary = ? WHERE id = ?",
            (time.time(), json.dumps(summary, ensure_ascii=False), run_id),
        )

    def last_run(self, collection: str) -> dict | None:
        rows = self._run(
            "SELECT * FROM runs WHERE collection = ? AND finished_at IS NOT NULL "
            "ORDER BY id DESC LIMIT 1",
            (collection,),
        )
        if not rows:
            return None
        row = rows[0]
        return {
            "started_at": row["started_at"],
            "finished_at": row["finished_at"],
            "roots": json.loads(row["roots"]),
            "summary": json.loads(row["summary"] or "{}"),
        }

    def collections(self) -> list[str]:
        rows = self._run(
            "SELECT DISTINCT collection FROM files UNION SELECT DISTINCT collection FROM runs"
        )
        return sorted(r[0] for r in rows)
