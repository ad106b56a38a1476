"""Loaded models, shared by whoever holds the cache: one per CLI command, page server or test
session.

Models are the heavy parts (the 1.5B chat model takes ~2 s and ~2 GB to load), so a cache keyed
by the settings that define each model lets several knowledge bases in one process (one per
collection, or a test's throwaway ones) share them instead of loading them again.
"""

from __future__ import annotations

import threading

from kb.config import Settings
from kb.models.embeddings import KbEmbeddings, load_embeddings
from kb.models.llm import ChatModel


def embedding_key(settings: Settings) -> tuple:
    return (
        settings.embed_model,
        settings.embed_threads,
        settings.embed_batch_size,
        settings.embed_url,
        settings.embed_remote_model,
        settings.embed_api_key,
        settings.embed_query_prefix,
        settings.embed_passage_prefix,
        settings.embed_retries,
    )


def chat_key(settings: Settings) -> tuple:
    return (
        settings.llm_url,
        settings.llm_model,
        settings.llm_remote_model,
        settings.llm_api_key,
        settings.llm_ctx,
        settings.llm_threads,
        settings.seed,
        settings.temperature,
        settings.max_answer_tokens,
        str(settings.models_dir),
    )


class ModelCache:
    """Embedders and chat models loaded on first use, closed together by `close()`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._embedders: dict[tuple, KbEmbeddings] = {}
        self._chat_models: dict[tuple, ChatModel] = {}
        # One lock per model being loaded: a load (seconds; for a remote embedder, an HTTP call
        # that may reach a server in this very process) never blocks other models or lookups.
        self._loading: dict[tuple, threading.Lock] = {}

    def _get(self, table: dict, key: tuple, load):
        with self._lock:
            if key in table:
                return table[key]
            loading = self._loading.setdefault((id(table), *key), threading.Lock())
        with loading:
            with self._lock:
                if key in table:
                    return table[key]
            model = load()
            with self._lock:
                table[key] = model
            return model

    def embeddings(self, settings: Settings) -> KbEmbeddings:
        key = embedding_key(settings)
        return self._get(self._embedders, key, lambda: load_embeddings(settings))

    def loaded_embeddings(self, settings: Settings) -> KbEmbeddings | None:
        """The embedder for `settings` if it is loaded already, without loading it."""
        with self._lock:
            return self._embedders.get(embedding_key(settings))

    def chat_model(self, settings: Settings) -> ChatModel:
        from kb.models.llm import load_chat_model

        return self._get(self._chat_models, chat_key(settings), lambda: load_chat_model(settings))

    def loaded_chat_model(self, settings: Settings) -> ChatModel | None:
        """The chat model for `settings` if it is loaded already, without loading it."""
        with self._lock:
            return self._chat_models.get(chat_key(settings))

    def close(self) -> None:
        with self._lock:
            for model in self._chat_models.values():
                model.close()
            self._chat_models.clear()
            self._embedders.clear()
