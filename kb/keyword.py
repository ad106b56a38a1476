"""The keyword index: SQLite FTS5 tables inside the manifest's database, ranked by BM25.

Living in the manifest's database is what keeps it in step with the vector store: its rows are
written and deleted inside the same SQLite transactions that journal and commit a file's
chunks (kb.store.Store is the only caller), so a crash can never leave the keyword index and
the manifest disagreeing, and `Store.repair` reconciles both with Chroma.

Per collection, a plain table holds each chunk's terms (segmented by kb.segment) and the fields
filters read; an external-content FTS5 table indexes the terms. Filters become SQL conditions of
the same query that ranks, so they narrow the candidates before the top k is taken, never after.

Measured against bm25s, a BM25 library kept in memory (bench/keyword_bench.py, all eight
evaluation sets): the same hit@5 on every set. bm25s answers a query much faster (its scores
are a sparse matrix product), but it cannot change one document: replacing one file means
indexing everything again (29 s for 10,886 passages against 7 ms here), and it lives outside
the manifest's transactions. FTS5 was kept for incremental, crash-safe writes; its query time
is bounded by ranking only a query's rarer terms (`_POSTINGS_BUDGET`).
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from kb.access import chunk_groups
from kb.filters import SearchFilter, file_type_of, folders_of
from kb.manifest import Manifest
from kb.segment import TOKENIZER_ID, index_terms, query_terms

_STATE = """
CREATE TABLE IF NOT EXISTS keyword_indexes (
    collection TEXT PRIMARY KEY,
    tokenizer  TEXT NOT NULL
)
"""
# Folders are stored between separators so one SQL `instr` tests membership exactly.
_SEP = "\x1f"
# SQLite's limit on host parameters is 32766 here; chunk id lists are cut well below it.
_ID_BATCH = 500
# Terms of a query beyond this add little and cost a posting list each.
_MAX_QUERY_TERMS = 64
# Ranking costs FTS5 time for every chunk that matches any term, so a query keeps its rarest
# terms while their chunks add up to at most this many (always at least its rarest term). A
# term in thousands of chunks has a small BM25 weight; on the development sets this budget left
# every set's hit@5 unchanged (bench/results/keyword.md) and it bounds a query's work at any
# size of index.
_POSTINGS_BUDGET = 20_000
_FILE_WORDS = re.compile(r"[_\-.]+")


@dataclass(frozen=True)
class KeywordRow:
    chunk_id: str
    source: str
    file_type: str
    folders: tuple[str, ...]
    terms: str
    groups: tuple[str, ...] = ()


def keyword_text(text: str, metadata: Mapping[str, Any]) -> str:
    """What a chunk is found by: its document title, file name, the subject and period its
    document's first page states (kb.ingest.load.document_context) and its section, then its
    text."""
    title = str(metadata.get("title") or "")
    name = PurePosixPath(str(metadata.get("file_name") or metadata.get("source") or "")).stem
    name = _FILE_WORDS.sub(" ", name)
    section = str(metadata.get("section") or "")
    if section == title or section.startswith(title + " > "):
        section = section[len(title) :].lstrip(" >")
    head = title if not name or name == title else f"{title} {name}"
    context = str(metadata.get("context") or "")
    return "\n".join(p for p in (head, context, section, text) if p)


def row_for(chunk_id: str, text: str, metadata: Mapping[str, Any]) -> KeywordRow:
    source = str(metadata.get("source") or "")
    return KeywordRow(
        chunk_id=chunk_id,
        source=source,
        file_type=file_type_of(source),
        folders=tuple(folders_of(source)),
        terms=" ".join(index_terms(keyword_text(text, metadata))),
        groups=tuple(chunk_groups(metadata.get("groups") or ())),
    )


def _packed(values: Sequence[str]) -> str:
    return _SEP + _SEP.join(values) + _SEP


def _tables(collection: str) -> tuple[str, str]:
    # Collection names allow '.' and '-', which SQL names do not; a digest keeps them apart.
    slug = re.sub(r"[^A-Za-z0-9]", "_", collection)[:40]
    digest = hashlib.sha1(collection.encode()).hexdigest()[:8]
    base = f"kw_{slug}_{digest}"
    return base + "_docs", base


def _fts_query(terms: Sequence[str]) -> str:
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


class KeywordIndex:
    """BM25 over the chunks of each collection; every write runs inside the caller's
    manifest transaction."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        manifest.run(_STATE)
        self._add_group_columns()

    def _add_group_columns(self) -> None:
        """Indexes built before documents carried groups get the column, every row holding
        "undeclared", which is what those documents are (kb.access)."""
        for (collection,) in self.manifest.run("SELECT collection FROM keyword_indexes"):
            docs, _ = _tables(collection)
            columns = {r[1] for r in self.manifest.run(f"PRAGMA table_info({docs})")}
            if columns and "groups" not in columns:
                default = _packed(chunk_groups(())).replace("'", "''")
                self.manifest.run(
                    f"ALTER TABLE {docs} ADD COLUMN groups TEXT NOT NULL DEFAULT '{default}'"
                )

    # --- tables -------------------------------------------------------------------------------

    def _create(self, collection: str) -> None:
        docs, fts = _tables(collection)
        # One statement at a time: executescript() would commit the caller's transaction.
        statements = [
            f"""
            CREATE TABLE IF NOT EXISTS {docs} (
                rowid     INTEGER PRIMARY KEY,
                chunk_id  TEXT NOT NULL UNIQUE,
                source    TEXT NOT NULL,
                file_type TEXT NOT NULL,
                folders   TEXT NOT NULL,
                terms     TEXT NOT NULL,
                groups    TEXT NOT NULL
            )""",
            f"""
            CREATE VIRTUAL TABLE IF NOT EXISTS {fts} USING fts5(
                terms, content='{docs}', content_rowid='rowid',
                tokenize="unicode61 remove_diacritics 0 tokenchars '.,'"
            )""",
            # Document frequencies of terms, read to leave out the commonest terms of a query.
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {fts}_vocab USING fts5vocab({fts}, 'row')",
            f"""
            CREATE TRIGGER IF NOT EXISTS {fts}_ai AFTER INSERT ON {docs} BEGIN
                INSERT INTO {fts}(rowid, terms) VALUES (new.rowid, new.terms);
            END""",
            f"""
            CREATE TRIGGER IF NOT EXISTS {fts}_ad AFTER DELETE ON {docs} BEGIN
                INSERT INTO {fts}({fts}, rowid, terms) VALUES ('delete', old.rowid, old.terms);
            END""",
        ]
        for statement in statements:
            self.manifest.run(statement)

    def drop(self, collection: str) -> None:
        """Forget the collection's index (in the caller's transaction)."""
        docs, fts = _tables(collection)
        self.manifest.run(f"DROP TABLE IF EXISTS {fts}_vocab")
        self.manifest.run(f"DROP TABLE IF EXISTS {fts}")
        self.manifest.run(f"DROP TABLE IF EXISTS {docs}")
        self.manifest.run("DELETE FROM keyword_indexes WHERE collection = ?", (collection,))

    def reset(self, collection: str) -> None:
        """An empty index built with the current tokenizer (in the caller's transaction)."""
        self.drop(collection)
        self._create(collection)
        self.manifest.run(
            "INSERT INTO keyword_indexes (collection, tokenizer) VALUES (?, ?)",
            (collection, TOKENIZER_ID),
        )

    def ready(self, collection: str) -> bool:
        """Whether the collection's index exists and was built with the current tokenizer."""
        rows = self.manifest.run(
            "SELECT tokenizer FROM keyword_indexes WHERE collection = ?", (collection,)
        )
        return bool(rows) and rows[0][0] == TOKENIZER_ID

    # --- writing (inside the caller's transaction) --------------------------------------------

    def add(self, collection: str, rows: Iterable[KeywordRow]) -> None:
        rows = list(rows)
        if not rows or not self.ready(collection):
            return
        docs, _ = _tables(collection)
        self.delete(collection, [r.chunk_id for r in rows])
        self.manifest.executemany(
            f"INSERT INTO {docs} (chunk_id, source, file_type, folders, terms, groups) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    r.chunk_id,
                    r.source,
                    r.file_type,
                    _packed(r.folders),
                    r.terms,
                    _packed(chunk_groups(r.groups)),
                )
                for r in rows
            ],
        )

    def set_groups(self, collection: str, ids: Iterable[str], groups: Sequence[str]) -> None:
        """Give chunks `ids` the readers `groups` (a file's declaration changed)."""
        if not self.ready(collection):
            return
        docs, _ = _tables(collection)
        ids, packed = list(ids), _packed(chunk_groups(groups))
        for start in range(0, len(ids), _ID_BATCH):
            batch = ids[start : start + _ID_BATCH]
            marks = ",".join("?" * len(batch))
            self.manifest.run(
                f"UPDATE {docs} SET groups = ? WHERE chunk_id IN ({marks})", [packed, *batch]
            )

    def groups_of(self, collection: str) -> dict[str, str]:
        """Chunk id → its packed groups (for consistency checks)."""
        if not self.ready(collection):
            return {}
        docs, _ = _tables(collection)
        return dict(self.manifest.run(f"SELECT chunk_id, groups FROM {docs}"))

    def delete(self, collection: str, ids: Iterable[str]) -> None:
        if not self.ready(collection):
            return
        docs, _ = _tables(collection)
        ids = list(ids)
        for start in range(0, len(ids), _ID_BATCH):
            batch = ids[start : start + _ID_BATCH]
            marks = ",".join("?" * len(batch))
            self.manifest.run(f"DELETE FROM {docs} WHERE chunk_id IN ({marks})", batch)

    # --- reading -------------------------------------------------------------------------------

    def count(self, collection: str) -> int:
        if not self.ready(collection):
            return 0
        docs, _ = _tables(collection)
        return int(self.manifest.run(f"SELECT count(*) FROM {docs}")[0][0])

    def ids(self, collection: str) -> set[str]:
        return set(self.sources(collection))

    def sources(self, collection: str) -> dict[str, str]:
        """Chunk id → source file of every indexed chunk."""
        if not self.ready(collection):
            return {}
        docs, _ = _tables(collection)
        return dict(self.manifest.run(f"SELECT chunk_id, source FROM {docs}"))

    def search(
        self, collection: str, query: str, k: int, filters: SearchFilter | None = None
    ) -> list[tuple[str, float]]:
        """(chunk id, BM25 score) of the best `k` chunks `filters` allows, best first."""
        return self.search_terms(collection, query_terms(query), k, filters)

    def search_terms(
        self, collection: str, terms: Sequence[str], k: int, filters: SearchFilter | None = None
    ) -> list[tuple[str, float]]:
        """`search` for terms already made (kb.segment.query_terms)."""
        terms = list(terms)[:_MAX_QUERY_TERMS]
        if not terms or not self.ready(collection):
            return []
        docs, fts = _tables(collection)
        terms = self._within_budget(fts, terms)
        if not terms:
            return []
        if filters is None or filters.is_empty:
            # Ranked inside FTS5 first (its ORDER BY rank LIMIT path), then named.
            rows = self.manifest.run(
                f"SELECT d.chunk_id, r.rank FROM (SELECT rowid, rank FROM {fts} WHERE {fts} "
                f"MATCH ? ORDER BY rank LIMIT ?) r JOIN {docs} d ON d.rowid = r.rowid "
                "ORDER BY r.rank",
                [_fts_query(terms), k],
            )
            return [(r[0], -float(r[1])) for r in rows]
        where, args = [f"{fts} MATCH ?"], [_fts_query(terms)]
        if filters.file_types:
            where.append(f"d.file_type IN ({','.join('?' * len(filters.file_types))})")
            args += filters.file_types
        if filters.sources:
            where.append(f"d.source IN ({','.join('?' * len(filters.sources))})")
            args += filters.sources
        if filters.folders:
            where.append(
                "(" + " OR ".join("instr(d.folders, ?) > 0" for _ in filters.folders) + ")"
            )
            args += [_SEP + f + _SEP for f in filters.folders]
        if filters.groups is not None:
            readers = filters.groups or ("\0nobody",)
            where.append("(" + " OR ".join("instr(d.groups, ?) > 0" for _ in readers) + ")")
            args += [_SEP + g + _SEP for g in readers]
        rows = self.manifest.run(
            f"SELECT d.chunk_id, bm25({fts}) AS s FROM {fts} JOIN {docs} d ON d.rowid = {fts}.rowid"
            f" WHERE {' AND '.join(where)} ORDER BY s LIMIT ?",
            [*args, k],
        )
        # FTS5's bm25() is negated so that smaller sorts first; report it the usual way round.
        return [(r[0], -float(r[1])) for r in rows]

    def _within_budget(self, fts: str, terms: list[str]) -> list[str]:
        """The query's terms that the index holds, rarest first, within the postings budget."""
        marks = ",".join("?" * len(terms))
        counts = dict(
            self.manifest.run(f"SELECT term, doc FROM {fts}_vocab WHERE term IN ({marks})", terms)
        )
        kept, total = [], 0
        for term in sorted(counts, key=counts.get):
            if kept and total + counts[term] > _POSTINGS_BUDGET:
                break
            kept.append(term)
            total += counts[term]
        return kept

    def size_bytes(self, collection: str) -> int:
        """Bytes the collection's index takes in the database (SQLite's dbstat, when built in)."""
        docs, fts = _tables(collection)
        try:
            rows = self.manifest.run(
                "SELECT sum(pgsize) FROM dbstat WHERE name IN (?, ?) OR name LIKE ?",
                (docs, f"sqlite_autoindex_{docs}_1", fts + "%"),
            )
        except sqlite3.OperationalError:
            return 0
        return int(rows[0][0] or 0)
