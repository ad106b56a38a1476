"""The knowledge base on disk (or on a Chroma server): vectors, chunk texts and the manifest.

This is the one place that knows how a file's chunks are written, replaced and removed, and how
Chroma and the manifest are kept in step:

    journal new ids → delete old chunks → add new chunks → commit (manifest row complete)

A crash anywhere leaves a journalled (incomplete) row; `repair()` deletes every chunk that row
names and forgets it, so the next ingestion adds the file again. Nothing else writes to Chroma,
and no caller ever holds a Chroma collection: every index of chunks is written here, under the
same journal, so they stay in step.

The keyword index (kb.keyword, SQLite FTS5) lives in the manifest's database, so its writes
share the manifest's transactions: a file's old keyword rows go in the transaction that
journals the new version, its new rows are added in one transaction right after its vectors,
and a removal deletes them in the transaction that forgets the file. `repair()` reconciles it
with Chroma and the manifest like the vectors themselves.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kb.access import chunk_groups
from kb.config import Settings
from kb.errors import StoreError
from kb.filters import SCHEMA_VERSION, SearchFilter, filter_metadata
from kb.keyword import KeywordIndex, row_for
from kb.manifest import FileEntry, FileRecord, Manifest

log = logging.getLogger(__name__)

_COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_CHROMA_PREFIX = "kb-"
# Chroma rejects very large single writes; this keeps each call well under its limits.
_WRITE_BATCH = 2000


def validate_collection(name: str) -> str:
    if not _COLLECTION_NAME.match(name):
        raise StoreError(
            f"collection name {name!r} is invalid: use 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


@dataclass
class Hit:
    chunk_id: str
    text: str
    metadata: dict[str, Any]
    score: float  # cosine similarity in [-1, 1]

    @property
    def source(self) -> str:
        return str(self.metadata.get("source", ""))

    @property
    def page(self) -> int | None:
        page = self.metadata.get("page")
        return int(page) if page is not None else None


def chunk_id(root: str, source: str, file_hash: str, position: int) -> str:
    """Deterministic: re-writing the same chunk after a crash can never duplicate it."""
    import hashlib

    where = hashlib.sha1(f"{root}\0{source}".encode()).hexdigest()[:12]
    return f"{where}-{file_hash[:12]}-{position:05d}"


class Store:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.home
        self.home.mkdir(parents=True, exist_ok=True)
        self.manifest = Manifest(settings.manifest_path)
        self.keywords = KeywordIndex(self.manifest)
        self._client = None
        self._collections: dict[str, Any] = {}

    # --- Chroma ------------------------------------------------------------------------------

    @property
    def client(self):
        if self._client is None:
            import chromadb
            from chromadb.config import Settings as ChromaSettings

            chroma_settings = ChromaSettings(anonymized_telemetry=False)
            if self.settings.chroma_url:
                from urllib.parse import urlparse

                url = urlparse(self.settings.chroma_url)
                headers = (
                    {"Authorization": f"Bearer {self.settings.chroma_token}"}
                    if self.settings.chroma_token
                    else None
                )
                try:
                    self._client = chromadb.HttpClient(
                        host=url.hostname or "localhost",
                        port=url.port or (443 if url.scheme == "https" else 8000),
                        ssl=url.scheme == "https",
                        headers=headers,
                        settings=chroma_settings,
                    )
                except Exception as exc:
                    raise StoreError(
                        f"cannot reach the Chroma server at {self.settings.chroma_url} ({exc}); "
                        "check KB_CHROMA_URL"
                    ) from exc
            else:
                self._client = chromadb.PersistentClient(
                    path=str(self.settings.chroma_path), settings=chroma_settings
                )
        return self._client

    def _collection(self, name: str, embed_model: str | None = None, create: bool = False):
        """The Chroma collection behind `name`; checks it was built with `embed_model`."""
        validate_collection(name)
        if name not in self._collections:
            chroma_name = _CHROMA_PREFIX + name
            if create:
                if embed_model is None:
                    raise StoreError("an embedding model is needed to create a collection")
                col = self.client.get_or_create_collection(
                    chroma_name,
                    metadata={
                        "embed_model": embed_model,
                        "created_at": time.time(),
                        "kb_schema": SCHEMA_VERSION,
                    },
                    configuration={
                        "hnsw": {"space": "cosine", "ef_search": self.settings.vector_ef_search}
                    },
                    embedding_function=None,
                )
            else:
                try:
                    col = self.client.get_collection(chroma_name, embedding_function=None)
                except Exception as exc:
                    raise StoreError(
                        f"collection {name!r} does not exist in {self.where()}; "
                        "run `kb ingest PATH` first"
                    ) from exc
            self._collections[name] = self._with_search_depth(col)
        col = self._collections[name]
        built_with = (col.metadata or {}).get("embed_model")
        if embed_model and built_with and built_with != embed_model:
            raise StoreError(
                f"collection {name!r} was built with embedding model {built_with!r} but "
                f"KB_EMBED_MODEL is {embed_model!r}; set KB_EMBED_MODEL={built_with} or ingest "
                "into another collection (--collection)"
            )
        return col

    def _with_search_depth(self, col):
        """`col` searching with KB_VECTOR_EF_SEARCH candidates in its graph.

        Chroma's default (100) finds only ~40% of the true ten nearest chunks for English
        questions once a knowledge base holds long filings whose vectors sit close to every
        English question: the graph walk stops among them (bench/results/vector-recall.md).
        The depth is a search-time setting, so collections built earlier change too; it must be
        set before this process's first query loads the index."""
        want = self.settings.vector_ef_search
        hnsw = (getattr(col, "configuration", None) or {}).get("hnsw") or {}
        if not hnsw or hnsw.get("ef_search") == want:
            return col
        try:
            col.modify(configuration={"hnsw": {"ef_search": want}})
            return self.client.get_collection(col.name, embedding_function=None)
        except Exception as exc:  # noqa: BLE001 - a server may refuse; searching still works
            log.warning("could not set the vector search depth of %s: %s", col.name, exc)
            return col

    def ensure_collection(self, name: str, embed_model: str) -> None:
        """Create collection `name` for vectors of `embed_model`, or check the one there."""
        self._collection(name, embed_model=embed_model, create=True)

    def check_collection(self, name: str, embed_model: str | None = None) -> None:
        """Raise StoreError unless `name` exists (and was built with `embed_model`)."""
        self._collection(name, embed_model=embed_model)

    def has_collection(self, name: str) -> bool:
        try:
            self._collection(name)
        except StoreError:
            return False
        return True

    def collection_names(self) -> list[str]:
        names = []
        for col in self.client.list_collections():
            name = getattr(col, "name", col)
            if name.startswith(_CHROMA_PREFIX):
                names.append(name[len(_CHROMA_PREFIX) :])
        return sorted(names)

    def embed_model_of(self, name: str) -> str | None:
        return (self._collection(name).metadata or {}).get("embed_model")

    def where(self) -> str:
        return self.settings.chroma_url or str(self.settings.chroma_path)

    def count(self, collection: str) -> int:
        return self._collection(collection).count()

    def drop_collection(self, name: str) -> None:
        # Deleting what is already gone is fine.
        with contextlib.suppress(Exception):
            self.client.delete_collection(_CHROMA_PREFIX + validate_collection(name))
        self._collections.pop(name, None)
        self.manifest.drop_collection(name)
        with self.manifest.transaction():
            self.keywords.drop(name)

    # --- writing a file's chunks -------------------------------------------------------------

    def _add(
        self,
        col,
        ids: Sequence[str],
        vectors: np.ndarray,
        texts: Sequence[str],
        metadatas: Sequence[dict],
    ) -> None:
        # The fields filters read are derived here, the one place chunks are written, so no
        # writer can forget them; a chunk written without readers is undeclared (kb.access).
        metadatas = [
            {
                **m,
                **filter_metadata(str(m.get("source", ""))),
                "groups": chunk_groups(m.get("groups") or ()),
            }
            for m in metadatas
        ]
        for start in range(0, len(ids), _WRITE_BATCH):
            end = start + _WRITE_BATCH
            col.upsert(
                ids=list(ids[start:end]),
                embeddings=vectors[start:end],
                documents=list(texts[start:end]),
                metadatas=list(metadatas[start:end]),
            )

    def _delete(self, col, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), _WRITE_BATCH):
            batch = list(ids[start : start + _WRITE_BATCH])
            if batch:
                col.delete(ids=batch)

    def begin_file(self, collection: str, entry: FileEntry, new_ids: Sequence[str]) -> None:
        """Journal `new_ids` for `entry` and delete the chunks of its previous version."""
        col = self._collection(collection)
        previous = self.manifest.files(collection, entry.root).get((entry.root, entry.source))
        old = [i for i in previous.chunk_ids if i not in set(new_ids)] if previous else []
        with self.manifest.transaction():
            self.manifest.begin_file(collection, entry, new_ids)
            self.keywords.delete(collection, old)
        self._delete(col, old)

    def add_chunks(
        self,
        collection: str,
        ids: Sequence[str],
        vectors: np.ndarray,
        texts: Sequence[str],
        metadatas: Sequence[dict],
    ) -> None:
        self._add(self._collection(collection), ids, vectors, texts, metadatas)
        self._add_keywords(collection, ids, texts, metadatas)

    def _add_keywords(
        self,
        collection: str,
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[dict],
    ) -> None:
        # Segmenting runs before the transaction: the manifest stays locked only for the writes.
        rows = [row_for(i, t, m) for i, t, m in zip(ids, texts, metadatas, strict=True)]
        with self.manifest.transaction():
            self.keywords.add(collection, rows)

    def commit_file(self, collection: str, entry: FileEntry, ids: Sequence[str]) -> None:
        with self.manifest.transaction():
            self.manifest.finish_file(collection, entry, ids)

    def copy_file(self, collection: str, original: FileRecord, entry: FileEntry) -> int:
        """Index `entry` by reusing the vectors of an identical file: no parsing, no embedding."""
        col = self._collection(collection)
        got = col.get(
            ids=list(original.chunk_ids), include=["embeddings", "documents", "metadatas"]
        )
        by_id = {
            i: (e, d, m)
            for i, e, d, m in zip(
                got["ids"], got["embeddings"], got["documents"], got["metadatas"], strict=True
            )
        }
        if len(by_id) != len(original.chunk_ids):
            raise StoreError(f"chunks of {original.source} are missing from the index")
        new_ids, vectors, texts, metadatas = [], [], [], []
        for old_id in original.chunk_ids:
            vector, text, meta = by_id[old_id]
            meta = dict(meta)
            meta.update(
                source=entry.source,
                root=entry.root,
                file_name=Path(entry.source).name,
                groups=chunk_groups(entry.groups),
            )
            new_ids.append(
                chunk_id(entry.root, entry.source, entry.file_hash, int(meta["position"]))
            )
            vectors.append(vector)
            texts.append(text)
            metadatas.append(meta)
        self.begin_file(collection, entry, new_ids)
        if new_ids:
            self._add(col, new_ids, np.asarray(vectors, dtype=np.float32), texts, metadatas)
            self._add_keywords(collection, new_ids, texts, metadatas)
        self.commit_file(collection, entry, new_ids)
        return len(new_ids)

    def set_groups(self, collection: str, record: FileRecord, groups: Sequence[str]) -> int:
        """Give a file's chunks other readers without re-embedding anything, journalled:

            journal the new groups → rewrite the chunks' metadata (Chroma, keyword index)
            → commit (the row's groups)

        A crash in between leaves the journal entry; `repair()` finishes the change, so the
        file ends with the groups that were asked for in both indexes."""
        with self.manifest.transaction():
            self.manifest.begin_groups(collection, record.root, record.source, groups)
        self._write_groups(collection, record.chunk_ids, groups)
        with self.manifest.transaction():
            self.manifest.finish_groups(collection, record.root, record.source)
        return len(record.chunk_ids)

    def _write_groups(self, collection: str, ids: Sequence[str], groups: Sequence[str]) -> None:
        col = self._collection(collection)
        readers = chunk_groups(groups)
        for start in range(0, len(ids), _WRITE_BATCH):
            batch = list(ids[start : start + _WRITE_BATCH])
            got = col.get(ids=batch, include=["metadatas"])
            col.update(
                ids=list(got["ids"]),
                metadatas=[{**(m or {}), "groups": readers} for m in got["metadatas"]],
            )
        with self.manifest.transaction():
            self.keywords.set_groups(collection, ids, groups)

    def touch_file(self, collection: str, entry: FileEntry) -> None:
        with self.manifest.transaction():
            self.manifest.touch_file(collection, entry)

    def record_failure(self, collection: str, entry: FileEntry, error: str) -> None:
        """Remember that this content of the file failed, so an unchanged file is not retried."""
        with self.manifest.transaction():
            self.manifest.record_failure(collection, entry, error)

    def remove_file(self, collection: str, record: FileRecord) -> int:
        col = self._collection(collection)
        ids = list(record.chunk_ids) + list(record.pending_ids or ())
        self._delete(col, ids)
        with self.manifest.transaction():
            self.manifest.remove_file(collection, record.root, record.source)
            self.keywords.delete(collection, ids)
        return len(record.chunk_ids)

    # --- consistency -------------------------------------------------------------------------

    def repair(self, collection: str) -> dict[str, int]:
        """Undo interrupted writes, drop chunks no manifest row owns, and bring the keyword
        index to exactly the chunks the manifest owns.

        Cheap when nothing is wrong: two counts compared with the manifest's total.
        """
        col = self._collection(collection)
        repaired = {
            "incomplete_files": 0,
            "orphan_chunks": 0,
            "files_missing_chunks": 0,
            "keyword_rows": 0,
            "regrouped_files": 0,
        }
        for record in self.manifest.incomplete(collection):
            self.remove_file(collection, record)
            repaired["incomplete_files"] += 1
        for record in self.manifest.regrouping(collection):
            self.set_groups(collection, record, record.pending_groups or ())
            repaired["regrouped_files"] += 1
        _, expected = self.manifest.stats(collection)
        keywords_ready = self.keywords.ready(collection)
        keywords_agree = not keywords_ready or self.keywords.count(collection) == expected
        if col.count() == expected and keywords_agree:
            return repaired
        present: set[str] = set()
        offset = 0
        while True:
            page = col.get(include=[], limit=10_000, offset=offset)
            if not page["ids"]:
                break
            present.update(page["ids"])
            offset += len(page["ids"])
        owned: set[str] = set()
        for record in self.manifest.files(collection).values():
            if not set(record.chunk_ids) <= present:
                # A row promising chunks that are gone: forget it so the file is ingested again.
                self.remove_file(collection, record)
                repaired["files_missing_chunks"] += 1
                continue
            owned.update(record.chunk_ids)
        orphans = sorted(present - owned)
        self._delete(col, orphans)
        repaired["orphan_chunks"] = len(orphans)
        if keywords_ready:
            indexed = self.keywords.ids(collection)
            extra, missing = sorted(indexed - owned), sorted(owned - indexed)
            with self.manifest.transaction():
                self.keywords.delete(collection, extra)
            self._index_from_chroma(collection, missing)
            repaired["keyword_rows"] = len(extra) + len(missing)
        return repaired

    def _index_from_chroma(self, collection: str, ids: Sequence[str]) -> None:
        """Keyword rows for chunks already in Chroma (repair, rebuild): nothing is embedded."""
        for start in range(0, len(ids), _WRITE_BATCH):
            hits = self.get_chunks(collection, ids[start : start + _WRITE_BATCH])
            self._add_keywords(
                collection,
                [h.chunk_id for h in hits],
                [h.text for h in hits],
                [h.metadata for h in hits],
            )

    def upgrade(self, collection: str) -> int:
        """Bring a collection written by an older kb up to date without re-embedding anything:
        the metadata fields filters read (readers from the manifest: undeclared for files
        written before groups existed), and the keyword index (built from the stored chunk
        texts when missing or made with another tokenizer). Returns the chunks updated."""
        col = self._collection(collection)
        updated = 0
        if int((col.metadata or {}).get("kb_schema", 1)) < SCHEMA_VERSION:
            readers = {
                i: chunk_groups(r.groups)
                for r in self.manifest.files(collection).values()
                for i in r.chunk_ids
            }
            for batch in self._pages(col):
                ids = [h.chunk_id for h in batch]
                metadatas = [
                    {
                        **h.metadata,
                        **filter_metadata(h.source),
                        "groups": readers.get(h.chunk_id, chunk_groups(())),
                    }
                    for h in batch
                ]
                for start in range(0, len(ids), _WRITE_BATCH):
                    end = start + _WRITE_BATCH
                    col.update(ids=ids[start:end], metadatas=metadatas[start:end])
                updated += len(ids)
            col.modify(metadata={**(col.metadata or {}), "kb_schema": SCHEMA_VERSION})
            self._collections.pop(collection, None)
        if not self.keywords.ready(collection):
            updated = max(updated, self.rebuild_keywords(collection))
        return updated

    def rebuild_keywords(self, collection: str) -> int:
        """Build the collection's keyword index afresh from the chunk texts in Chroma.

        Interrupted, it leaves an index that `repair()` completes (its count falls short)."""
        col = self._collection(collection)
        with self.manifest.transaction():
            self.keywords.reset(collection)
        done = 0
        for batch in self._pages(col):
            self._add_keywords(
                collection,
                [h.chunk_id for h in batch],
                [h.text for h in batch],
                [h.metadata for h in batch],
            )
            done += len(batch)
        return done

    # --- reading -----------------------------------------------------------------------------

    def query(
        self,
        collection: str,
        vector: np.ndarray,
        k: int,
        filters: SearchFilter | None = None,
    ) -> list[Hit]:
        """The `k` chunks nearest to `vector` among those `filters` allows."""
        col = self._collection(collection)
        where = None if filters is None else filters.chroma_where()
        if where is not None and int((col.metadata or {}).get("kb_schema", 1)) < SCHEMA_VERSION:
            raise StoreError(
                f"collection {collection!r} was written by an older kb and cannot be filtered "
                "yet: run `kb ingest` once to upgrade it (nothing is re-embedded)"
            )
        result = col.query(
            query_embeddings=np.asarray(vector, dtype=np.float32).reshape(1, -1),
            n_results=k,
            where=where,
            include=["documents", "metadatas", "distances"],
        )
        return [
            Hit(chunk_id=i, text=d or "", metadata=m or {}, score=1.0 - float(dist))
            for i, d, m, dist in zip(
                result["ids"][0],
                result["documents"][0],
                result["metadatas"][0],
                result["distances"][0],
                strict=True,
            )
        ]

    def get_chunks(
        self, collection: str, ids: Sequence[str], vector: np.ndarray | None = None
    ) -> list[Hit]:
        """The chunks `ids` (those that exist, in that order); with `vector`, each scored by its
        cosine similarity to it, the score a vector search would have given."""
        if not ids:
            return []
        include = ["documents", "metadatas"] + (["embeddings"] if vector is not None else [])
        col = self._collection(collection)
        try:
            got = col.get(ids=list(ids), include=include)
        except Exception as exc:
            if vector is None:
                raise
            # Chunks another process (a running `kb ingest`) added after this one loaded its
            # vector index have no vector here yet: keep the chunks whose vectors it has.
            log.debug("vectors missing for some chunks: %s", exc)
            got = {"ids": [], "embeddings": [], "documents": [], "metadatas": []}
            for i in ids:
                try:
                    one = col.get(ids=[i], include=include)
                except Exception:  # noqa: BLE001 - as above, one chunk at a time
                    continue
                for key in got:
                    got[key].extend(list(one[key]))
        scores = [0.0] * len(got["ids"])
        if vector is not None and got["ids"]:
            stored = np.asarray(got["embeddings"], dtype=np.float32)
            query = np.asarray(vector, dtype=np.float32).reshape(-1)
            norms = np.linalg.norm(stored, axis=1) * (np.linalg.norm(query) or 1.0)
            scores = (stored @ query / np.where(norms == 0, 1.0, norms)).tolist()
        found = {
            i: Hit(i, d or "", m or {}, float(s))
            for i, d, m, s in zip(
                got["ids"], got["documents"], got["metadatas"], scores, strict=True
            )
        }
        return [found[i] for i in ids if i in found]

    def iter_chunks(self, collection: str, batch: int = 2000) -> Iterator[Hit]:
        for page in self._pages(self._collection(collection), batch):
            yield from page

    @staticmethod
    def _pages(col, batch: int = 2000) -> Iterator[list[Hit]]:
        offset = 0
        while True:
            got = col.get(include=["documents", "metadatas"], limit=batch, offset=offset)
            if not got["ids"]:
                return
            yield [
                Hit(i, d or "", m or {}, 0.0)
                for i, d, m in zip(got["ids"], got["documents"], got["metadatas"], strict=True)
            ]
            offset += len(got["ids"])

    def size_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.home.rglob("*") if p.is_file())

    # --- exclusive writing -------------------------------------------------------------------

    @contextmanager
    def write_lock(self, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """One writer per knowledge base: a second `kb ingest` waits instead of interleaving
        (`on_wait` is told when it has to). Readers never take this lock."""
        path = self.home / "ingest.lock"
        with path.open("a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait()
                fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def close(self) -> None:
        self.manifest.close()
