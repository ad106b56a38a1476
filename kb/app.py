"""`KnowledgeBase`: the one facade every shell uses (CLI, page, API server, evaluation).

It is built from `Settings` and owns the heavy parts and their lifetimes: the store (Chroma and
the manifest) and, through a `ModelCache`, the embedding and chat models, all loaded on first
need and freed by `close()`. Shells parse input, call these methods and render what comes back
(kb.answer.types, kb.ingest.pipeline.IngestSummary, kb.ingest.uploads.UploadReport); they never
touch the store or the models themselves.

Several knowledge bases in one process (one per collection, a throwaway one for an evaluation)
can share one `ModelCache`, so models load once per process.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from kb.access import Principal, parse_groups, trusted_proxy_user
from kb.answer.chain import AnswerChain
from kb.answer.policy import RefusalPolicy
from kb.answer.types import Answer, AnswerEvent, Done
from kb.audit import AuditLog
from kb.config import Settings
from kb.errors import AccessDenied, InputError, KbError, StoreError
from kb.filters import SearchFilter
from kb.ingest.discover import supported_extensions
from kb.ingest.pipeline import IngestSummary, Pipeline, ProgressCallback, forget
from kb.ingest.uploads import (
    INGEST_FAILED,
    STORE_FAILED,
    TOO_LARGE,
    TOO_MANY_FILES,
    UNSAFE_NAME,
    UNSUPPORTED_TYPE,
    UploadedFile,
    UploadLimits,
    UploadReport,
    handle_uploads,
)
from kb.models.cache import ModelCache
from kb.models.embeddings import KbEmbeddings
from kb.models.llm import ChatModel
from kb.retrieve import (
    HybridRetriever,
    KeywordRetriever,
    LangChainRetriever,
    Preferences,
    ReciprocalRankFusion,
    Retriever,
    SearchResult,
    VectorRetriever,
)
from kb.status import knowledge_base_status
from kb.store import Store, validate_collection
from kb.users import Conversation, Session, SignIn, User, Users

# What shells need beside the facade itself: filters they pass in, results they render.
__all__ = [
    "ENTRY_POINTS",
    "INGEST_FAILED",
    "STORE_FAILED",
    "TOO_LARGE",
    "TOO_MANY_FILES",
    "UNSAFE_NAME",
    "UNSUPPORTED_TYPE",
    "Conversation",
    "Document",
    "IngestSummary",
    "KnowledgeBase",
    "Principal",
    "SearchFilter",
    "SearchResult",
    "Session",
    "SignIn",
    "UploadReport",
    "UploadedFile",
    "User",
    "supported_extensions",
]

# Where a question can come from, as the audit log records it ("library": code using kb
# directly rather than one of its shells).
ENTRY_POINTS = ("cli", "page", "api", "eval", "library")

# Hybrid retrieval's RRF constant and the weight of documents of the question's year (named, or
# "latest"): chosen with the keyword weight and the candidate depth on one knowledge base of all
# eight evaluation sets plus a distractor manual (bench/results/fusion.md, calibrate half,
# objective mean hit@5 + mean MRR@10: 1.662 at k 10 against 1.638 at k 60 and 1.643 with 10
# candidates; the year weight 2 lifts it to 1.675, 1.5 ties).
RRF_K = 10.0
YEAR_WEIGHT = 2.0


@dataclass(frozen=True)
class Document:
    """A file in a collection, as shells list it: no server paths, a stable `id`."""

    id: str
    source: str  # relative to the folder it was ingested from (or the upload's name)
    title: str
    chunks: int
    size: int
    ingested_at: float
    uploaded: bool  # stored by an upload (page or API) rather than ingested from a folder
    groups: tuple[str, ...] = ()  # who may read it; () when undeclared (KB_DEFAULT_ACCESS)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "title": self.title,
            "chunks": self.chunks,
            "size": self.size,
            "ingested_at": self.ingested_at,
            "uploaded": self.uploaded,
            "groups": list(self.groups),
        }


class KnowledgeBase:
    """One knowledge base (a `KB_HOME`, or a Chroma server) and the models that serve it."""

    def __init__(
        self,
        settings: Settings,
        models: ModelCache | None = None,
        chat_model: ChatModel | None = None,
        policy: RefusalPolicy | None = None,
        via: str = "library",
    ) -> None:
        """`models`: share loaded models with other knowledge bases (not closed by `close()`).
        `chat_model`: answer with this model instead of the configured one (a fake in tests).
        `policy`: refusal thresholds other than the calibrated ones (calibration runs).
        `via`: the shell that asks through this object (ENTRY_POINTS), for the audit log."""
        self.settings = settings
        self.via = _entry_point(via)
        self._own_models = models is None
        self._models = models or ModelCache()
        self._chat_override = chat_model
        self.policy = policy or RefusalPolicy.calibrated()
        self._store: Store | None = None
        self._chains: dict[str, AnswerChain] = {}
        self._lock = threading.RLock()
        self._closed = False
        # Who reads through this object: None for the knowledge base's operator (the CLI
        # without --as, a page or API without accounts), who may read everything.
        self.principal: Principal | None = None
        self._view = False
        self.users = Users(
            settings.users_path, settings.login_max_failures, settings.login_lockout_seconds
        )
        self.audit = AuditLog(
            settings.audit_path,
            int(settings.audit_max_mb * 2**20),
            settings.audit_backups,
            settings.audit_answers,
        )

    # --- lifetime ----------------------------------------------------------------------------

    def close(self) -> None:
        """Free what this knowledge base holds (and its models, unless they are shared)."""
        if self._view:
            return  # the knowledge base it looks through owns the parts
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._chains.clear()
            self.users.close()
            if self._store is not None:
                self._store.close()
                self._store = None
            if self._own_models:
                self._models.close()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- who reads -----------------------------------------------------------------------------

    def as_principal(self, principal: Principal | None, via: str | None = None) -> KnowledgeBase:
        """This knowledge base as `principal` reads it: every search, answer, listing and
        upload through the returned object is limited to what their groups may read. It
        shares the store, models and chains with this one; closing it closes nothing.
        `via`: the shell asking through the view, when not the one this object was made for."""
        _ = self.store  # created here, so that both objects share it
        view = copy.copy(self)
        view.principal = principal
        view.via = self.via if via is None else _entry_point(via)
        view._view = True
        view._own_models = False
        return view

    def as_user(self, name: str) -> KnowledgeBase:
        """`as_principal` for the account `name` (an InputError when there is none)."""
        return self.as_principal(self.users.get_required(name).principal)

    def sign_in(self, name: str, password: str, address: str = "") -> SignIn:
        """Check a user's password (with lockout after repeated failures)."""
        return self.users.sign_in(name, password, address)

    def start_session(self, principal: Principal) -> Session:
        """A session for a user who just signed in (`sign_in`), lasting KB_SESSION_HOURS: its
        token is what the page keeps in the browser; only the token's digest is stored."""
        return self.users.new_session(principal.name, self.settings.session_hours)

    def resume_session(self, token: str) -> Principal | None:
        """The principal of a live session, read afresh from the user store each time (a
        removed account or changed groups apply at once); None when it ended or expired."""
        return self.users.session_owner(token)

    def end_session(self, token: str) -> None:
        """Sign-out: the session's token is no longer accepted, wherever it was kept."""
        self.users.end_session(token)

    def trusted_proxy_user(
        self, headers: Iterable[tuple[str, str]], address: str | None
    ) -> str | None:
        """The user name a single sign-on proxy sent in KB_TRUSTED_PROXY_HEADER, when the
        request came from one of KB_TRUSTED_PROXIES; None otherwise (always, by default).
        The one trust decision of `kb serve` and the page."""
        s = self.settings
        return trusted_proxy_user(s.trusted_proxy_header, s.trusted_proxies, headers, address)

    def api_key_owner(self, key: str) -> Principal | None:
        """The user an API key (`kb users key NAME`) belongs to, or None."""
        return self.users.key_owner(key) if key else None

    def user_principal(self, name: str) -> Principal | None:
        """The principal of account `name` (a single sign-on proxy named them), or None."""
        user = self.users.get(name) if name else None
        return None if user is None else user.principal

    def needs_sign_in(self) -> bool:
        """Whether the page must ask who is reading: once any account exists."""
        return self.users.any()

    def access_filter(self, filters: SearchFilter | None = None) -> SearchFilter | None:
        """`filters` narrowed to what the principal may read; every retrieval goes through it."""
        if self.principal is None:
            return filters
        readers = self.principal.readable(self.settings.default_access)
        if readers is None:
            return filters
        return SearchFilter(groups=readers).narrowed(filters)

    def _readable(self, groups: Sequence[str]) -> bool:
        return self.principal is None or self.principal.can_read(
            groups, self.settings.default_access
        )

    def _require_admin(self, what: str) -> None:
        if self.principal is not None and not self.principal.admin:
            raise AccessDenied(f"{what} needs an administrator")

    # --- parts, built on first need ----------------------------------------------------------

    @property
    def store(self) -> Store:
        with self._lock:
            if self._closed:
                raise StoreError("this knowledge base has been closed")
            if self._store is None:
                self._store = Store(self.settings)
            return self._store

    @property
    def embeddings(self) -> KbEmbeddings:
        return self._models.embeddings(self.settings)

    @property
    def chat_model(self) -> ChatModel:
        if self._chat_override is not None:
            return self._chat_override
        return self._models.chat_model(self.settings)

    def _collection(self, collection: str | None) -> str:
        return collection or self.settings.collection

    def retriever(self, collection: str | None = None) -> Retriever:
        """The retriever over `collection`; a clear StoreError when it holds nothing."""
        name = self._collection(collection)
        store = self.store
        if not store.has_collection(name) or store.count(name) == 0:
            raise StoreError(
                f"the knowledge base at {store.where()} has no documents in collection {name!r}: "
                "run `kb ingest PATH` first"
            )
        # Another embedding model is the more fundamental fault: say that before a missing
        # keyword index, which `kb ingest` with the wrong model could not fix.
        store.check_collection(name, self.settings.embed_model)
        mode = self.settings.retrieval
        if mode != "vector" and not store.keywords.ready(name):
            raise StoreError(
                f"collection {name!r} has no keyword index yet: run `kb ingest` once to build it "
                "(nothing is re-embedded), or set KB_RETRIEVAL=vector"
            )
        if mode == "vector":
            return VectorRetriever(store, self.embeddings, name)
        if mode == "keyword":
            return KeywordRetriever(store, name, self.embeddings)
        return HybridRetriever(
            store,
            self.embeddings,
            name,
            fusion=ReciprocalRankFusion(weights=(1.0, self.settings.keyword_weight), k=RRF_K),
            preferences=Preferences(time=YEAR_WEIGHT),
            candidates=self.settings.retrieval_candidates,
        )

    def chain(self, collection: str | None = None) -> AnswerChain:
        """The answering chain over `collection` (built once, then reused)."""
        name = self._collection(collection)
        with self._lock:
            if name not in self._chains:
                self._chains[name] = AnswerChain(
                    self.settings,
                    self.retriever(name),
                    self.chat_model,
                    self.policy,
                    embed_model=self.settings.embed_model,
                )
            return self._chains[name]

    # --- writing -----------------------------------------------------------------------------

    def ingest(
        self,
        paths: Iterable[Path],
        collection: str | None = None,
        prune: bool = True,
        progress: ProgressCallback | None = None,
        groups: Iterable[str] | str | None = None,
    ) -> IngestSummary:
        """Add files and folders; re-running touches only what changed. `groups`: who may
        read the folders given (kb.access), remembered for them; changing it rewrites their
        chunks' readers without re-embedding. None keeps what was declared before."""
        self._require_admin("ingesting folders")
        pipeline = Pipeline(
            self.settings,
            self.store,
            lambda: self.embeddings,
            collection=self._collection(collection),
            progress=progress,
            groups=None if groups is None else parse_groups(groups),
        )
        return pipeline.run(list(paths), prune=prune)

    def forget(self, path: str, collection: str | None = None) -> list[str]:
        """Remove the chunks of the file(s) ingested as `path`; returns their sources."""
        self._require_admin("forgetting files")
        return forget(self.store, self._collection(collection), path)

    def store_uploads(
        self,
        files: Sequence[tuple[str, bytes]],
        collection: str | None = None,
        progress: Callable[[Any], None] | None = None,
        group: str | None = None,
    ) -> UploadReport:
        """Save uploaded (name, bytes) pairs under the uploads folder and ingest them, within
        the upload limits of the settings (KB_UPLOAD_MAX_FILES, KB_UPLOAD_MAX_MB).

        A principal needs the upload right; their files go into the folder of `group` (one of
        their own groups, the first by default) and are readable by that group."""
        folder, groups = self.settings.uploads_dir, None
        if self.principal is not None:
            allowed = self.principal.upload_groups
            if not allowed:
                raise AccessDenied(f"{self.principal.name} may not upload documents")
            group = group or allowed[0]
            if group not in allowed:
                raise AccessDenied(f"{self.principal.name} may not upload into {group!r}")
            folder, groups = folder / group, (group,)
        elif group is not None:
            folder, groups = folder / parse_groups(group)[0], parse_groups(group)[:1]

        def ingest(paths: list[Path], on_event: Callable[[Any], None]) -> IngestSummary:
            return Pipeline(
                self.settings,
                self.store,
                lambda: self.embeddings,
                collection=self._collection(collection),
                progress=on_event,
                groups=groups,
            ).run(paths, prune=False)

        s = self.settings
        limits = UploadLimits(
            max_files=s.upload_max_files,
            max_bytes=int(s.upload_max_mb * 2**20),
            max_file_bytes=int(s.max_file_mb * 2**20),
        )
        return handle_uploads(folder, files, ingest, progress, limits)

    def _document(self, record: Any) -> Document:
        uploads = str(self.settings.uploads_dir.resolve())
        root = str(record.root)
        return Document(
            id=record.document_id,
            source=record.source,
            title=record.title,
            chunks=len(record.chunk_ids),
            size=record.size,
            ingested_at=record.ingested_at,
            uploaded=root == uploads or root.startswith(uploads + "/"),
            groups=tuple(record.groups),
        )

    def documents(self, collection: str | None = None) -> list[Document]:
        """The files of `collection` whose chunks are all written, by source."""
        name = validate_collection(self._collection(collection))
        records = [
            r
            for r in self.store.manifest.files(name).values()
            if r.complete and self._readable(r.groups)
        ]
        return sorted((self._document(r) for r in records), key=lambda d: (d.source, d.id))

    def delete_document(self, document_id: str, collection: str | None = None) -> Document | None:
        """Remove one document (by `Document.id`) and its chunks; an uploaded file's stored copy
        goes too, so it is really gone. None when the collection holds no such document (or
        none the principal may read). A principal other than an administrator may delete only
        what was uploaded into the folders of their groups."""
        name = validate_collection(self._collection(collection))
        store = self.store
        own_folders = None  # the upload folders a principal may delete from; None: any
        if self.principal is not None and not self.principal.admin:
            uploads = self.settings.uploads_dir.resolve()
            own_folders = {str(uploads / g) for g in self.principal.upload_groups}
            if not own_folders:
                raise AccessDenied(f"{self.principal.name} may not delete documents")
        with store.write_lock():
            for record in store.manifest.files(name).values():
                if record.document_id == document_id and self._readable(record.groups):
                    if own_folders is not None and record.root not in own_folders:
                        raise AccessDenied(
                            f"{self.principal.name} may delete only documents uploaded into "
                            "their groups' folders"
                        )
                    document = self._document(record)
                    store.remove_file(name, record)
                    if document.uploaded:
                        Path(record.root, record.source).unlink(missing_ok=True)
                    return document
        return None

    # --- reading -----------------------------------------------------------------------------

    def collections(self) -> list[dict[str, Any]]:
        """Each collection that holds chunks: its name, chunk count and embedding model."""
        store = self.store
        found = []
        for name in store.collection_names():
            count = store.count(name) if self._unrestricted else self._readable_chunks(name)
            if count:
                found.append(
                    {"name": name, "chunks": count, "embed_model": store.embed_model_of(name)}
                )
        return found

    @property
    def _unrestricted(self) -> bool:
        return self.principal is None or self.principal.admin

    def _readable_chunks(self, collection: str) -> int:
        """Chunks of the collection the principal may read (the manifest's count, so no
        hidden document shows in it)."""
        return sum(
            len(r.chunk_ids)
            for r in self.store.manifest.files(collection).values()
            if r.complete and self._readable(r.groups)
        )

    def has_documents(self, collection: str | None = None) -> bool:
        """Whether the collection holds documents the principal may read."""
        name = self._collection(collection)
        store = self.store
        if not (store.has_collection(name) and store.count(name) > 0):
            return False
        return self._unrestricted or self._readable_chunks(name) > 0

    def doctor(self, verify: bool = True) -> dict[str, Any]:
        """Whether this machine and configuration can run the knowledge base (kb.doctor), and
        the model size it suits; `verify` re-hashes a bundled chat model (~1-3 s)."""
        from kb.doctor import diagnose

        return diagnose(self.settings, self.store, verify)

    def status(self) -> dict[str, Any]:
        """Collections, files, chunks, size on disk, models and the last ingestion; for a
        principal, only the collections and counts of what they may read, and no server paths."""
        report = knowledge_base_status(self.settings, self.store)
        if self._unrestricted:
            return report
        kept = []
        for c in report["collections"]:
            records = [
                r
                for r in self.store.manifest.files(c["name"]).values()
                if r.complete and self._readable(r.groups)
            ]
            if not records:
                continue
            chunks = sum(len(r.chunk_ids) for r in records)
            last = c.get("last_ingestion")
            kept.append(
                {
                    **c,
                    "files": len(records),
                    "chunks": chunks,
                    "chunks_recorded": chunks,
                    "last_ingestion": last and {"finished_at": last["finished_at"]},
                }
            )
        return {**report, "home": None, "chroma": None, "size_bytes": None, "collections": kept}

    # --- what readers keep -------------------------------------------------------------------

    def _reader(self) -> str:
        if self.principal is None:
            raise AccessDenied("conversations and feedback belong to a signed-in user")
        return self.principal.name

    def save_conversation(self, conversation: Conversation) -> None:
        """Keep the principal's conversation (created or updated); never anyone else's."""
        conversation.user = self._reader()
        self.users.save_conversation(conversation)

    def conversations(self) -> list[Conversation]:
        return self.users.conversations(self._reader())

    def conversation(self, conversation_id: str) -> Conversation | None:
        return self.users.conversation(self._reader(), conversation_id)

    def delete_conversation(self, conversation_id: str) -> bool:
        return self.users.delete_conversation(self._reader(), conversation_id)

    def feedback(
        self,
        answer: Answer,
        rating: int,
        comment: str = "",
        collection: str | None = None,
        replaces: int | None = None,
    ) -> int:
        """Store a reader's thumbs up (1) or down (-1) on `answer`, with an optional comment,
        its question and sources, for `export_feedback`; returns the feedback's id.
        `replaces`: the id of this reader's earlier feedback on the same answer, updated
        instead (a changed rating, a comment added afterwards)."""
        return self.users.add_feedback(
            self._reader(),
            self._collection(collection),
            answer.question,
            answer.answer,
            [s.source for s in answer.sources],
            rating,
            comment,
            replaces,
        )

    def export_feedback(self, since: float = 0.0) -> list[dict[str, Any]]:
        """Feedback as `kb eval` question lines: `question`, and for answers marked helpful
        their cited sources as `gold_ids` and their text as a reference answer
        (administrators only). Answers marked unhelpful keep only the question: the test set
        learns what employees ask, not what the model got wrong."""
        self._require_admin("exporting feedback")
        lines = []
        for item in self.users.feedback(since):
            line: dict[str, Any] = {"id": f"feedback-{item['id']}", "question": item["question"]}
            if item["rating"] > 0 and item["sources"]:
                line["gold_ids"] = item["sources"]
                line["answers"] = [item["answer"]]
            line["feedback"] = {
                k: item[k] for k in ("rating", "comment", "user", "collection", "answer", "at")
            }
            lines.append(line)
        return lines

    def search(
        self,
        query: str,
        k: int | None = None,
        collection: str | None = None,
        filters: SearchFilter | None = None,
        as_of: int | None = None,
    ) -> SearchResult:
        """The chunks that best match `query`, with scores; no chat model is loaded.
        `as_of`: the year the question is asked in, when not this one."""
        result = self.retriever(collection).search(
            query, k or self.settings.top_k, self.access_filter(filters), as_of=as_of
        )
        self._audit(
            "search", collection, query, [h.source for h in result.hits], hits=len(result.hits)
        )
        return result

    def _audit(
        self,
        action: str,
        collection: str | None,
        question: str,
        retrieved: list[str],
        cited: list[str] | None = None,
        answer: str | None = None,
        **extra: Any,
    ) -> None:
        if not self.settings.audit:
            return
        self.audit.record(
            action,
            None if self.principal is None else self.principal.name,
            self._collection(collection),
            question,
            retrieved,
            cited,
            answer,
            via=self.via,
            **extra,
        )

    def standalone_question(
        self, question: str, history: Sequence[dict] | None = None, collection: str | None = None
    ) -> str:
        """`question` as the answering chain retrieves it: with a conversation `history`
        ({"role", "content"} turns), rewritten by the chat model into a standalone question."""
        return self.chain(collection).standalone(question, history)

    def stream(
        self,
        question: str,
        history: Sequence[dict] | None = None,
        collection: str | None = None,
        filters: SearchFilter | None = None,
        trace: bool = False,
    ) -> Iterator[AnswerEvent]:
        """The answer as typed events (kb.answer.types), ending with `Done(answer)`.

        `history` is the reader's own conversation: follow-ups are rewritten from it alone."""
        events = self.chain(collection).stream(
            question, history, self.access_filter(filters), trace
        )
        return self._audited(events, collection)

    def _audited(
        self, events: Iterator[AnswerEvent], collection: str | None
    ) -> Iterator[AnswerEvent]:
        for event in events:
            if isinstance(event, Done):
                a = event.answer
                self._audit(
                    "ask",
                    collection,
                    a.question,
                    [s.source for s in (*a.sources, *a.also_retrieved)],
                    [] if a.refused else [s.source for s in a.sources],
                    a.answer,
                    standalone_question=a.standalone_question,
                    refused=a.refused,
                )
            yield event

    def ask(
        self,
        question: str,
        history: Sequence[dict] | None = None,
        collection: str | None = None,
        filters: SearchFilter | None = None,
        trace: bool = False,
    ) -> Answer:
        final = None
        for event in self.stream(question, history, collection, filters, trace):
            if isinstance(event, Done):
                final = event.answer
        if final is None:
            raise KbError("the answer stream ended without an answer")
        return final

    def embed(
        self, texts: Sequence[str], kind: Literal["passage", "query"] = "passage"
    ) -> tuple[list[list[float]], int]:
        """Vectors of `texts` from the knowledge base's embedding model, as documents
        ("passage") or as questions ("query"), and the tokens they held."""
        if kind not in ("passage", "query"):
            raise InputError(f"unknown embedding kind {kind!r}: use 'passage' or 'query'")
        embedder = self.embeddings
        tokens = sum(embedder.count_tokens(t) for t in texts)
        if kind == "query":
            return [embedder.embed_query_vector(t).tolist() for t in texts], tokens
        return embedder.embed_passages(list(texts)).tolist(), tokens

    @property
    def embedding_model(self) -> str:
        """The KB_EMBED_MODEL value that collections built by this knowledge base record."""
        return self.settings.embed_model

    def warm_up(self) -> None:
        """Load the embedding and chat models now rather than on the first question."""
        self.embeddings.embed_query_vector("warm-up")
        model = self.chat_model
        model.count_tokens("warm-up")

    def health(self) -> dict[str, Any]:
        """Whether each part answers now: the store, the embedding model (loaded) and the
        chat model (loaded, or its server reachable). Never waits for a running generation."""
        checks: dict[str, Any] = {}
        started = time.perf_counter()
        try:
            self.store.collection_names()
            checks["store"] = {"ok": True}
        except Exception as exc:  # noqa: BLE001 - any failure means the store is not answering
            checks["store"] = {"ok": False, "error": _one_line(exc)}
        checks["embedding"] = {"ok": self._models.loaded_embeddings(self.settings) is not None}
        model = self._chat_override or self._models.loaded_chat_model(self.settings)
        if model is None:
            checks["chat_model"] = {"ok": False, "error": "not loaded yet"}
        else:
            ok, error = model.reachable()
            checks["chat_model"] = {"ok": ok, **({"error": error} if error else {})}
            checks["chat_model"]["local"] = model.is_local
        checks["ms"] = round((time.perf_counter() - started) * 1000, 1)
        return checks

    @property
    def queue_length(self) -> int:
        """Questions waiting for the chat model (not counting the one being answered)."""
        model = self._chat_override or self._models.loaded_chat_model(self.settings)
        return 0 if model is None else model.queue_length

    @property
    def model_busy(self) -> bool:
        """Whether a question is being answered now (a new one would wait its turn)."""
        model = self._chat_override or self._models.loaded_chat_model(self.settings)
        return model is not None and model.busy

    def langchain_retriever(
        self,
        collection: str | None = None,
        k: int | None = None,
        filters: SearchFilter | None = None,
    ) -> LangChainRetriever:
        """This knowledge base as a LangChain `BaseRetriever`, for chains built elsewhere."""
        return LangChainRetriever(
            retriever=self.retriever(collection),
            k=k or self.settings.top_k,
            filters=self.access_filter(filters),
        )

    @staticmethod
    def supported_extensions() -> list[str]:
        return supported_extensions()


def _entry_point(via: str) -> str:
    if via not in ENTRY_POINTS:
        raise ValueError(f"unknown entry point {via!r}: use one of {', '.join(ENTRY_POINTS)}")
    return via


def _one_line(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300] if isinstance(exc, KbError) else type(exc).__name__
