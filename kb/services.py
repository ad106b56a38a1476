"""Process-wide construction of kb's heavy parts, shared by the CLI, the UI and the benchmarks.

Models load once per process: the embedder and the chat model are cached by the settings that
define them, so a Streamlit server or a batch run never reloads them per question.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from pathlib import Path

from kb.config import Settings
from kb.models.embeddings import KbEmbeddings, load_embeddings
from kb.store import Store

_lock = threading.Lock()
_embedders: dict[tuple, KbEmbeddings] = {}
_stores: dict[tuple, Store] = {}
_chat_models: dict[tuple, object] = {}


def embeddings(settings: Settings) -> KbEmbeddings:
    key = (settings.embed_model, settings.embed_threads, settings.embed_batch_size)
    with _lock:
        if key not in _embedders:
            _embedders[key] = load_embeddings(settings)
        return _embedders[key]


def store(settings: Settings) -> Store:
    key = (str(settings.home), settings.chroma_url)
    with _lock:
        if key not in _stores:
            _stores[key] = Store(settings)
        return _stores[key]


def ingest(
    settings: Settings,
    paths: list[Path],
    collection: str | None = None,
    prune: bool = True,
    progress: Callable | None = None,
):
    """Ingest `paths` into the knowledge base; returns an IngestSummary."""
    from ingest.pipeline import Pipeline

    pipeline = Pipeline(
        settings,
        store(settings),
        lambda: embeddings(settings),
        collection=collection,
        progress=progress,
    )
    return pipeline.run(paths, prune=prune)


@atexit.register
def _close_models() -> None:
    # llama-cpp-python frees its model in __del__, which at interpreter exit runs after the
    # library's own helpers are gone and prints a TypeError; closing first avoids that.
    for model in _chat_models.values():
        llama = getattr(model, "_llama", None)
        if llama is not None:
            llama.close()


def chat_model(settings: Settings):
    """The answering model (local GGUF or server), loaded once per process."""
    from kb.models.llm import load_chat_model

    key = (
        settings.llm_url,
        settings.llm_model,
        settings.llm_remote_model,
        settings.llm_ctx,
        settings.llm_threads,
        settings.seed,
        settings.temperature,
        settings.max_answer_tokens,
    )
    with _lock:
        if key not in _chat_models:
            _chat_models[key] = load_chat_model(settings)
        return _chat_models[key]


def retriever(settings: Settings, collection: str | None = None):
    from kb.retrieve import Retriever
    from kb.store import StoreError

    name = collection or settings.collection
    kb_store = store(settings)
    if not kb_store.has_collection(name) or kb_store.count(name) == 0:
        raise StoreError(
            f"the knowledge base at {kb_store.where()} has no documents in collection {name!r}: "
            "run `kb ingest PATH` first"
        )
    return Retriever(kb_store, embeddings(settings), name)


def answer_chain(settings: Settings, collection: str | None = None):
    """The answering chain over `collection`, sharing this process's loaded models."""
    from kb.chain import AnswerChain

    return AnswerChain(settings, retriever(settings, collection), chat_model(settings))
