"""`kb serve`: the knowledge base as an OpenAI-compatible HTTP service (FastAPI).

One process holds one `KnowledgeBase`; every route is a thin call into it:

    POST /v1/chat/completions   ask (streamed or not); `model` names a collection
    GET  /v1/models             one entry per collection
    POST /v1/embeddings         the knowledge base's embedding model
    POST /v1/search             retrieved chunks (the `kb search --json` contract)
    POST /v1/ingest             upload files (multipart); per-file results
    GET  /v1/documents          documents of a collection
    DELETE /v1/documents/{id}   remove one document
    GET  /health                ready only when the models and the store answer
    GET  /metrics               Prometheus

Questions wait in `GenerationQueue` (one answer at a time, a bounded line); everything else runs
in the thread pool and never waits behind an answer. The chain runs in its own thread and hands
its events to the event loop; when the client disconnects, the thread closes the chain's
generator at the next event, which stops generation and frees the model.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from typing import Annotated, Any

import anyio
from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

import kb
from kb.app import KnowledgeBase, Principal, SearchFilter
from kb.config import Settings
from kb.errors import AccessDenied, InputError, KbError, ModelError, StoreError
from kb.server import openai_mapping as oa
from kb.server.metrics import Metrics
from kb.server.queue import ClientGone, GenerationQueue, QueueFull, QueueTimeout
from kb.server.security import BodyLimit, KeyChecker, error_body, load_api_keys

log = logging.getLogger("kb.server")

# Routes anyone may call: load balancers probe /health; the schema and its pages hold nothing
# that the README does not.
OPEN_PATHS = {"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
MAX_EMBEDDING_INPUTS = 2048
# A collection name, as the store accepts it (validated here so a bad name is a 400).
COLLECTION = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
_ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:[\w.@+-]+/)+[\w.@+-]*")


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        code: str | None = None,
        headers: dict[str, str] | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code
        self.headers = headers or {}
        self.param = param


def scrub(message: str) -> str:
    """A message fit for a client: one line, no server paths."""
    line = (message.splitlines() or [""])[0]
    return _ABSOLUTE_PATH.sub("…", line)[:400]


def _error_response(error: ApiError) -> JSONResponse:
    body = error_body(error.message, error.kind, error.code)
    body["error"]["param"] = error.param
    return JSONResponse(body, status_code=error.status, headers=error.headers)


def _kb_error(exc: KbError) -> ApiError:
    """A KbError as an HTTP error. Server-side trouble (models, stores) is not described to the
    client beyond its kind: the details (URLs, paths) are logged instead."""
    if isinstance(exc, InputError):
        return ApiError(400, scrub(str(exc)))
    if isinstance(exc, AccessDenied):
        return ApiError(403, scrub(str(exc)), "permission_error", "forbidden")
    if isinstance(exc, ModelError):
        log.error("model error: %s", exc)
        return ApiError(
            503, "the model is unavailable", "server_error", "model_unavailable",
            {"Retry-After": "10"},
        )  # fmt: skip
    if isinstance(exc, StoreError):
        log.error("store error: %s", exc)
        return ApiError(
            503, "the document store is unavailable", "server_error", "store_unavailable",
            {"Retry-After": "10"},
        )  # fmt: skip
    log.error("error: %s", exc)
    return ApiError(400, scrub(str(exc)))


# --- kb's own request and response models ----------------------------------------------------


class SearchRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"query": "annual leave for managers", "k": 3, "folders": ["hr"]}]
        }
    )
    query: str = Field(min_length=1, max_length=4000, description="What to look for.")
    k: int = Field(5, ge=1, le=100, description="Results to return.")
    collection: str | None = Field(
        None, pattern=COLLECTION, description="Collection (default: KB_COLLECTION)."
    )
    folders: list[str] | None = Field(None, description="Only documents under these folders.")
    types: list[str] | None = Field(None, description="Only these file types, e.g. 'pdf'.")


class SearchHit(BaseModel):
    rank: int
    score: float
    source: str
    page: int | None
    title: str
    chunk_id: str
    text: str


class SearchResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "query": "annual leave for managers",
                    "results": [
                        {
                            "rank": 1,
                            "score": 0.8712,
                            "source": "hr/leave-policy.md",
                            "page": None,
                            "title": "Leave Policy",
                            "chunk_id": "3b1f0c2a9d4e-5e6f7a8b9c0d-00002",
                            "text": "Managers receive 30 days of annual leave.",
                        }
                    ],
                }
            ]
        }
    )
    query: str
    results: list[SearchHit]


class UploadResult(BaseModel):
    name: str = Field(description="The file name as uploaded.")
    stored: str = Field(description="Its name in the uploads folder ('' when not stored).")
    status: str = Field(description="added, updated, renamed, unchanged or failed.")
    chunks: int
    error: str = ""
    error_code: str = Field("", description="unsupported_type, unsafe_name or ingest_failed.")


class IngestResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "collection": "default",
                    "files": [
                        {
                            "name": "leave.md",
                            "stored": "leave.md",
                            "status": "added",
                            "chunks": 4,
                            "error": "",
                            "error_code": "",
                        },
                        {
                            "name": "photo.png",
                            "stored": "",
                            "status": "failed",
                            "chunks": 0,
                            "error": "unsupported file type '.png'",
                            "error_code": "unsupported_type",
                        },
                    ],
                    "summary": {"added": 1, "failed": [], "chunks": 4, "seconds": 1.2},
                }
            ]
        }
    )
    collection: str
    files: list[UploadResult]
    summary: dict[str, Any] | None = Field(description="The ingestion summary (kb ingest --json).")


class DocumentInfo(BaseModel):
    id: str
    source: str
    title: str
    chunks: int
    size: int
    ingested_at: float
    uploaded: bool


class DocumentList(BaseModel):
    collection: str
    documents: list[DocumentInfo]


class DeletedDocument(BaseModel):
    collection: str
    deleted: DocumentInfo


class Health(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ready",
                    "version": "0.1.0",
                    "checks": {"store": {"ok": True}, "embedding": {"ok": True}},
                    "queue": {"waiting": 0, "answering": 0},
                }
            ]
        }
    )
    status: str = Field(description="ready, starting or unavailable.")
    version: str
    checks: dict[str, Any]
    queue: dict[str, int]


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": oa.ErrorResponse, "description": "The request is invalid."},
    401: {"model": oa.ErrorResponse, "description": "Missing or wrong API key."},
}


# --- the chain in its own thread -------------------------------------------------------------


class EventPump:
    """Runs the chain's event generator in a thread and hands each event to the event loop.

    `cancel()` makes the thread close the generator after the current event: GeneratorExit
    runs the chain's `finally` blocks, so generation stops and the model's lock is released.
    """

    def __init__(self, make_events: Callable[[], Iterator[Any]]) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._cancelled = threading.Event()
        self._finished = asyncio.Event()
        self._make_events = make_events
        self._getter: asyncio.Task | None = None
        threading.Thread(target=self._run, name="kb-answer", daemon=True).start()

    def _put(self, item: tuple[str, Any]) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the event loop has closed (server shutting down)
            self._cancelled.set()

    def _run(self) -> None:
        events = None
        try:
            events = self._make_events()
            for event in events:
                if self._cancelled.is_set():
                    break
                self._put(("event", event))
        except Exception as exc:  # noqa: BLE001 - handed to the request, which reports it
            self._put(("error", exc))
        finally:
            if events is not None and hasattr(events, "close"):
                try:
                    events.close()
                except Exception:  # closing must never mask the outcome
                    log.exception("closing an answer's generator failed")
            self._put(("end", None))
            with suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._finished.set)

    async def next(self, timeout: float | None = None) -> tuple[str, Any] | None:
        """The next ("event" | "error" | "end", item), or None after `timeout` seconds."""
        if self._getter is None:
            self._getter = asyncio.ensure_future(self._queue.get())
        done, _ = await asyncio.wait({self._getter}, timeout=timeout)
        if not done:
            return None
        item = self._getter.result()
        self._getter = None
        return item

    def cancel(self) -> None:
        self._cancelled.set()

    async def finished(self) -> None:
        if self._getter is not None:
            self._getter.cancel()
        await self._finished.wait()


# --- the application -------------------------------------------------------------------------


def create_app(knowledge: KnowledgeBase, *, warm_up: bool = True) -> FastAPI:
    """The API over `knowledge`. With `warm_up`, models load in the background at start and
    /health reports "starting" until they have."""
    settings: Settings = knowledge.settings
    keys = KeyChecker(load_api_keys(settings))
    metrics = Metrics()
    queue = GenerationQueue(settings.serve_queue, settings.serve_queue_timeout)
    state: dict[str, Any] = {"warm": not warm_up, "warm_error": None}

    async def _warm() -> None:
        try:
            await anyio.to_thread.run_sync(knowledge.warm_up)
            state["warm"] = True
        except Exception as exc:  # noqa: BLE001 - reported by /health, logged here
            state["warm_error"] = scrub(str(exc)) if isinstance(exc, KbError) else "failed"
            log.error("loading the models failed: %s", exc)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_warm()) if warm_up else None
        yield
        if task is not None and not task.done():
            task.cancel()

    app = FastAPI(
        title="kb",
        version=kb.__version__,
        summary="Ask your company's documents: an OpenAI-compatible API over kb.",
        description=(
            "Chat completions answer from the knowledge base with citations (`model` names a "
            "collection); kb's own routes search, upload, list and delete documents. Send "
            "`Authorization: Bearer KEY` when the server has API keys."
        ),
        lifespan=lifespan,
        responses=_ERRORS,
    )
    bearer = HTTPBearer(auto_error=False, description="An API key from KB_API_KEYS.")
    authorized = [Depends(bearer)]  # documents the scheme; KeyGate enforces it

    # --- errors ------------------------------------------------------------------------------

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(KbError)
    async def _known_error(_: Request, exc: KbError) -> JSONResponse:
        return _error_response(_kb_error(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"{where}: {first.get('msg', 'invalid')}" if where else "invalid request body"
        body = error_body(message, "invalid_request_error", "invalid_request")
        body["error"]["param"] = where or None
        return JSONResponse(body, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = {404: "not found", 405: "method not allowed"}.get(
            exc.status_code, scrub(str(exc.detail))
        )
        return JSONResponse(
            error_body(message, "invalid_request_error", None),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error")
        return JSONResponse(error_body("internal error", "server_error"), status_code=500)

    # --- helpers -----------------------------------------------------------------------------

    def _collection(name: str | None) -> str:
        return name or settings.collection

    def _reader(request: Request) -> KnowledgeBase:
        """The knowledge base as the caller may read it (see KeyGate)."""
        return knowledge.as_principal(getattr(request.state, "kb_principal", None), via="api")

    def _require_documents(
        name: str, what: str = "collection", reader: KnowledgeBase = knowledge
    ) -> None:
        # A collection holding nothing the caller may read looks like one that does not exist.
        if not reader.has_documents(name):
            raise ApiError(
                404,
                f"{what} {name!r} does not exist or holds no documents; GET /v1/models lists "
                "the collections",
                code="model_not_found" if what == "model" else "collection_not_found",
            )

    async def _run(function: Callable[..., Any], *args: Any) -> Any:
        try:
            return await anyio.to_thread.run_sync(function, *args)
        except KbError as exc:
            raise _kb_error(exc) from None

    # --- chat completions --------------------------------------------------------------------

    @app.post(
        "/v1/chat/completions",
        tags=["OpenAI"],
        dependencies=authorized,
        response_model=oa.ChatCompletion,
        responses={
            200: {
                "description": "The answer; with `stream: true`, server-sent events of "
                "`chat.completion.chunk` objects ending with `data: [DONE]`.",
                "content": {"text/event-stream": {}},
            },
            404: {"model": oa.ErrorResponse, "description": "No such collection."},
            429: {"model": oa.ErrorResponse, "description": "Too many questions are waiting."},
            503: {"model": oa.ErrorResponse, "description": "Waited too long, or unavailable."},
        },
    )
    async def chat_completions(body: oa.ChatCompletionRequest, request: Request) -> Any:
        """Answer the last user message from the collection named by `model`."""
        started = time.perf_counter()
        question, history = _conversation(body.messages)
        collection = body.model
        reader = _reader(request)
        await _run(_require_documents, collection, "model", reader)
        filters = SearchFilter.of(body.folders or [], body.types or [])
        ignored = body.ignored()
        try:
            answer_started = await queue.acquire(request.is_disconnected)
        except QueueFull as exc:
            metrics.rejected.labels("queue_full").inc()
            raise ApiError(
                429,
                f"{settings.serve_queue} questions are already waiting for the model; retry later",
                "rate_limit_error",
                "queue_full",
                {"Retry-After": str(exc.retry_after)},
            ) from None
        except QueueTimeout as exc:
            metrics.rejected.labels("queue_timeout").inc()
            raise ApiError(
                503,
                "the question waited too long for the model; retry later",
                "server_error",
                "queue_timeout",
                {"Retry-After": str(exc.retry_after)},
            ) from None
        except ClientGone:
            metrics.answers.labels("cancelled").inc()
            return Response(status_code=499)
        try:
            pump = EventPump(lambda: reader.stream(question, history, collection, filters))
        except BaseException:
            queue.release(answer_started)
            raise
        answer = _Answer(body.model, ignored, started, metrics)
        session = _Session(pump, lambda: queue.release(answer_started))
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return _AnswerStream(
                _sse(pump, answer, include_usage),
                session,
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        try:
            while True:
                item = await pump.next(timeout=0.5)
                if item is None:
                    if await request.is_disconnected():
                        answer.cancelled()
                        return Response(status_code=499)
                    continue
                kind, value = item
                if kind == "event":
                    answer.feed(value)
                elif kind == "error":
                    raise answer.failed(value)
                else:
                    break
        finally:
            with anyio.CancelScope(shield=True):
                await session.close()
        final = answer.done()
        return JSONResponse(oa.completion(final, body.model, ignored, answer.id, answer.created))

    async def _sse(pump: EventPump, answer: _Answer, include_usage: bool) -> AsyncIterator[str]:
        def data(payload: dict[str, Any]) -> str:
            return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

        complete = False
        try:
            yield data(answer.chunk({"role": "assistant", "content": ""}))
            while True:
                kind, value = await pump.next()  # type: ignore[misc]
                if kind == "event":
                    piece = answer.feed(value)
                    if piece:
                        yield data(answer.chunk({"content": piece}))
                elif kind == "error":
                    complete = True
                    error = answer.failed(value)
                    yield data(error_body(error.message, error.kind, error.code))
                    return
                else:
                    break
            final = answer.done()
            complete = True
            yield data(answer.chunk({}, finish_reason="stop", kb=oa.kb_info(final, answer.ignored)))
            if include_usage:
                yield data(answer.chunk(None, usage=oa.usage_of(final)))
            yield "data: [DONE]\n\n"
        finally:
            if not complete:
                answer.cancelled()

    # --- models, embeddings ------------------------------------------------------------------

    @app.get("/v1/models", tags=["OpenAI"], dependencies=authorized, response_model=oa.ModelList)
    async def list_models(request: Request) -> dict[str, Any]:
        """One model per collection that holds documents (the caller may read)."""
        collections = await _run(_reader(request).collections)
        created = oa.now()
        return {
            "object": "list",
            "data": [
                {
                    "id": c["name"],
                    "object": "model",
                    "created": created,
                    "owned_by": "kb",
                    "kb": {"chunks": c["chunks"], "embed_model": c["embed_model"]},
                }
                for c in collections
            ],
        }

    @app.get(
        "/v1/models/{model}",
        tags=["OpenAI"],
        dependencies=authorized,
        response_model=oa.ModelCard,
        responses={404: {"model": oa.ErrorResponse, "description": "No such collection."}},
    )
    async def get_model(model: str, request: Request) -> dict[str, Any]:
        for c in await _run(_reader(request).collections):
            if c["name"] == model:
                return {
                    "id": model,
                    "object": "model",
                    "created": oa.now(),
                    "owned_by": "kb",
                    "kb": {"chunks": c["chunks"], "embed_model": c["embed_model"]},
                }
        raise ApiError(404, f"model {model!r} is not a collection here", code="model_not_found")

    @app.post(
        "/v1/embeddings",
        tags=["OpenAI"],
        dependencies=authorized,
        response_model=oa.EmbeddingResponse,
        responses={404: {"model": oa.ErrorResponse, "description": "Another embedding model."}},
    )
    async def embeddings(body: oa.EmbeddingRequest) -> dict[str, Any]:
        """Vectors from the knowledge base's own embedding model (KB_EMBED_MODEL)."""
        name = knowledge.embedding_model
        if body.model not in (None, "", name):
            raise ApiError(
                404,
                f"model {body.model!r} is not served here: this server embeds with {name!r}",
                code="model_not_found",
            )
        texts = [body.input] if isinstance(body.input, str) else list(body.input)
        if not texts or len(texts) > MAX_EMBEDDING_INPUTS:
            raise ApiError(400, f"input: give 1 to {MAX_EMBEDDING_INPUTS} texts", param="input")
        if any(not t.strip() for t in texts):
            raise ApiError(400, "input: texts must not be empty", param="input")
        vectors, tokens = await _run(knowledge.embed, texts, body.input_type)
        metrics.embedded_texts.inc(len(texts))
        return {
            "object": "list",
            "data": [
                {
                    "object": "embedding",
                    "index": i,
                    "embedding": oa.encode_vector(v, body.encoding_format),
                }
                for i, v in enumerate(vectors)
            ],
            "model": name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    # --- kb's own ----------------------------------------------------------------------------

    @app.post(
        "/v1/search",
        tags=["kb"],
        dependencies=authorized,
        response_model=SearchResponse,
        responses={404: {"model": oa.ErrorResponse, "description": "No such collection."}},
    )
    async def search(body: SearchRequest, request: Request) -> dict[str, Any]:
        """The chunks that best match `query`, with scores (no chat model involved)."""
        name = _collection(body.collection)
        reader = _reader(request)

        def run() -> dict[str, Any]:
            _require_documents(name, "collection", reader)
            filters = SearchFilter.of(body.folders or [], body.types or [])
            return reader.search(body.query, body.k, name, filters).to_json()

        return await _run(run)

    @app.post(
        "/v1/ingest",
        tags=["kb"],
        dependencies=authorized,
        response_model=IngestResponse,
        responses={413: {"model": oa.ErrorResponse, "description": "The upload is too large."}},
    )
    async def ingest(
        request: Request,
        files: Annotated[list[UploadFile], File(description="The files to add.")],
        collection: Annotated[
            str | None, Form(pattern=COLLECTION, description="Collection (default)")
        ] = None,
    ) -> dict[str, Any]:
        """Upload files (multipart/form-data, field `files`, repeatable) and ingest them, with
        the page's rules: safe names, supported types, one result per file."""
        name = _collection(collection)
        if len(files) > settings.serve_max_files:
            raise ApiError(
                400, f"files: at most {settings.serve_max_files} per request", param="files"
            )
        limit = int(settings.max_file_mb * 1_000_000)
        uploads: list[tuple[str, bytes]] = []
        for upload in files:
            data = await upload.read(limit + 1)
            if len(data) > limit:
                raise ApiError(
                    413,
                    f"{upload.filename}: larger than {settings.max_file_mb:g} MB",
                    code="request_too_large",
                )
            uploads.append((upload.filename or "", data))
        report = await _run(_reader(request).store_uploads, uploads, name)
        results = []
        for item in report.files:
            metrics.ingested_files.labels(item.status or "unknown").inc()
            results.append(
                {
                    "name": item.name,
                    "stored": item.stored,
                    "status": item.status,
                    "chunks": item.chunks,
                    "error": scrub(item.error),
                    "error_code": item.error_code,
                }
            )
        summary = None
        if report.summary is not None:
            summary = report.summary.to_json()
            for failure in summary["failed"]:
                failure["path"] = failure["path"].rsplit("/", 1)[-1]
                failure["error"] = scrub(failure["error"])
            metrics.ingested_chunks.inc(summary["chunks"])
        return {"collection": name, "files": results, "summary": summary}

    @app.get("/v1/documents", tags=["kb"], dependencies=authorized, response_model=DocumentList)
    async def documents(
        request: Request,
        collection: Annotated[
            str | None, Query(pattern=COLLECTION, description="Collection (default)")
        ] = None,
    ) -> dict[str, Any]:
        """The documents of a collection (uploaded or ingested from folders)."""
        name = _collection(collection)
        found = await _run(_reader(request).documents, name)
        return {"collection": name, "documents": [d.to_json() for d in found]}

    @app.delete(
        "/v1/documents/{document_id}",
        tags=["kb"],
        dependencies=authorized,
        response_model=DeletedDocument,
        responses={404: {"model": oa.ErrorResponse, "description": "No such document."}},
    )
    async def delete_document(
        document_id: str,
        request: Request,
        collection: Annotated[
            str | None, Query(pattern=COLLECTION, description="Collection (default)")
        ] = None,
    ) -> dict[str, Any]:
        """Remove a document and its chunks (an upload's stored file too)."""
        name = _collection(collection)
        deleted = await _run(_reader(request).delete_document, document_id, name)
        if deleted is None:
            raise ApiError(
                404, f"no document {document_id!r} in collection {name!r}", code="not_found"
            )
        return {"collection": name, "deleted": deleted.to_json()}

    @app.get(
        "/health",
        tags=["operations"],
        response_model=Health,
        responses={503: {"model": Health, "description": "Starting, or a part is not answering."}},
    )
    async def health() -> JSONResponse:
        """Ready (200) only when the store answers and the models are loaded (a model server:
        reachable). Never waits for a running answer."""
        checks = await anyio.to_thread.run_sync(knowledge.health)
        ok = all(c["ok"] for c in checks.values() if isinstance(c, dict))
        if state["warm_error"]:
            status = "unavailable"
            checks["models"] = {"ok": False, "error": state["warm_error"]}
        elif not state["warm"]:
            status = "starting"
        else:
            status = "ready" if ok else "unavailable"
        body = {
            "status": status,
            "version": kb.__version__,
            "checks": checks,
            "queue": {"waiting": queue.waiting, "answering": queue.active},
        }
        ready = status == "ready"
        return JSONResponse(
            body, status_code=200 if ready else 503, headers={} if ready else {"Retry-After": "5"}
        )

    @app.get(
        "/metrics",
        tags=["operations"],
        dependencies=authorized,
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text."}},
    )
    async def prometheus() -> Response:
        """Requests, latency, tokens, time to first token, queue, ingested files and chunks."""
        metrics.queue_length.set(queue.waiting)
        metrics.generating.set(queue.active)
        return Response(metrics.render(), media_type=metrics.content_type)

    # --- schema: validation errors are 400s in OpenAI's error shape --------------------------

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            for path in schema["paths"].values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
            schema.get("components", {}).get("schemas", {}).pop("HTTPValidationError", None)
            schema.get("components", {}).get("schemas", {}).pop("ValidationError", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    # --- middleware, innermost first ---------------------------------------------------------

    app.add_middleware(
        BodyLimit,
        default_limit=int(settings.serve_max_body_mb * 1_000_000),
        limits={"/v1/ingest": int(settings.serve_max_upload_mb * 1_000_000)},
    )
    app.add_middleware(KeyGate, keys=keys, knowledge=knowledge)
    app.add_middleware(RequestMetrics, metrics=metrics)
    origins = [o.strip() for o in settings.serve_cors_origins.split(",") if o.strip()]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.state.knowledge = knowledge
    app.state.metrics = metrics
    app.state.queue = queue
    return app


class _Session:
    """What an answer holds until it is over: the chain's thread and the model's slot.
    `close()` is safe to call more than once and from wherever the answer ends."""

    def __init__(self, pump: EventPump, release: Callable[[], None]) -> None:
        self.pump = pump
        self._release: Callable[[], None] | None = release

    async def close(self) -> None:
        self.pump.cancel()
        await self.pump.finished()
        if self._release is not None:
            release, self._release = self._release, None
            release()


class _AnswerStream(StreamingResponse):
    """A StreamingResponse that always ends its answer: Starlette cancels the body on a client
    disconnect, possibly before the body generator ever ran (so its own `finally` would not)."""

    def __init__(self, content: AsyncIterator[str], session: _Session, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.session = session

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.body_iterator.aclose()  # type: ignore[attr-defined]
                await self.session.close()


class _Answer:
    """One chat completion in progress: its id, text so far, and what it reports at the end."""

    def __init__(self, model: str, ignored: list[str], started: float, metrics: Metrics) -> None:
        self.id = oa.completion_id()
        self.created = oa.now()
        self.model = model
        self.ignored = ignored
        self.started = started
        self.metrics = metrics
        self.renderer = oa.ChatRenderer()
        self._first = True

    def chunk(self, delta: dict | None, finish_reason: str | None = None, **extra: Any) -> dict:
        return oa.chunk(self.id, self.created, self.model, delta, finish_reason, **extra)

    def feed(self, event: Any) -> str:
        piece = self.renderer.delta(event)
        if piece and self._first:
            self._first = False
            self.metrics.first_token.observe(time.perf_counter() - self.started)
        return piece

    def done(self) -> Any:
        final = self.renderer.answer
        if final is None:  # the chain always ends with Done; anything else is a bug
            raise RuntimeError("the answer ended without a Done event")
        self.metrics.answers.labels("refused" if final.refused else "answered").inc()
        self.metrics.tokens.labels("prompt").inc(int(final.timings.get("prompt_tokens") or 0))
        self.metrics.tokens.labels("completion").inc(
            int(final.timings.get("completion_tokens") or 0)
        )
        return final

    def failed(self, exc: Exception) -> ApiError:
        self.metrics.answers.labels("failed").inc()
        if isinstance(exc, KbError):
            return _kb_error(exc)
        log.error("answering failed", exc_info=exc)
        return ApiError(500, "internal error", "server_error")

    def cancelled(self) -> None:
        self.metrics.answers.labels("cancelled").inc()


def _conversation(messages: list[oa.ChatMessage]) -> tuple[str, list[dict[str, str]]]:
    """The question (the last message, from the user) and the history before it."""
    last = messages[-1]
    if last.role != "user":
        raise ApiError(
            400, "messages: the last message must be the user's question", param="messages"
        )
    question = last.text().strip()
    if not question:
        raise ApiError(400, "messages: the question is empty", param="messages")
    history = [
        {
            "role": m.role,
            "content": oa.strip_sources(m.text()) if m.role == "assistant" else m.text(),
        }
        for m in messages[:-1]
        if m.role in ("user", "assistant") and m.text().strip()
    ]
    return question, history


# --- ASGI middleware -------------------------------------------------------------------------


class KeyGate:
    """Every route but the open ones needs a caller, checked before the body is read: a key
    from KB_API_KEYS (the operator's: reads everything), a user's own API key (reads what the
    user's groups may), or a name set by a trusted single sign-on proxy. Without keys and
    accounts the server is open, as it only binds to loopback then. The caller's principal goes
    into the request's state for the routes."""

    def __init__(self, app: Any, keys: KeyChecker, knowledge: KnowledgeBase) -> None:
        self.app = app
        self.keys = keys
        self.knowledge = knowledge

    def _caller(self, scope: Any) -> tuple[bool, Principal | None]:
        pairs = scope.get("headers") or []
        headers = dict(pairs)
        client = (scope.get("client") or ("", 0))[0]
        named = self.knowledge.trusted_proxy_user(
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in pairs], client
        )
        if named is not None:
            principal = self.knowledge.user_principal(named)
            return principal is not None, principal
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        if self.keys.enabled and self.keys.allows(authorization):
            return True, None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer":
            principal = self.knowledge.api_key_owner(token.strip())
            if principal is not None:
                return True, principal
        return not (self.keys.enabled or self.knowledge.needs_sign_in()), None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") == "OPTIONS"
            or scope.get("path") in OPEN_PATHS
        ):
            await self.app(scope, receive, send)
            return
        allowed, principal = await anyio.to_thread.run_sync(self._caller, scope)
        if allowed:
            scope.setdefault("state", {})["kb_principal"] = principal
            await self.app(scope, receive, send)
            return
        response = JSONResponse(
            error_body("invalid or missing API key", "authentication_error", "invalid_api_key"),
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)


class RequestMetrics:
    """Counts requests and times them to the last byte, labelled by route template."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(template, method, str(status["code"])).inc()
            self.metrics.latency.labels(template).observe(time.perf_counter() - started)
