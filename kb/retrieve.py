"""Retrieval over the knowledge base: the top-k chunks for a query, with scores.

`Retriever.search` is what kb's own chain and `kb search` use; `KbRetriever` wraps it as a
LangChain `BaseRetriever`, so the knowledge base plugs into anyone's LangChain chain.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from kb.models.embeddings import KbEmbeddings
from kb.store import Hit, Store

# Candidates fetched per requested result: room to drop duplicates and still return k.
_OVERFETCH = 2


@dataclass
class SearchResult:
    query: str
    hits: list[Hit]
    retrieve_ms: float


def _fingerprint(text: str) -> str:
    return hashlib.sha1(re.sub(r"\s+", "", text).lower().encode()).hexdigest()


def _shingles(text: str, n: int = 4) -> set[str]:
    compact = re.sub(r"\s+", "", text).lower()
    return {compact[i : i + n] for i in range(max(1, len(compact) - n + 1))}


def dedupe(hits: list[Hit], threshold: float = 0.85) -> list[Hit]:
    """Drop chunks that repeat a better-ranked one (copies of a file, overlapping pieces)."""
    kept: list[Hit] = []
    seen: set[str] = set()
    kept_shingles: list[set[str]] = []
    for hit in hits:
        fp = _fingerprint(hit.text)
        if fp in seen:
            continue
        shingles = _shingles(hit.text)
        duplicate = False
        for other in kept_shingles:
            smaller = min(len(shingles), len(other)) or 1
            if len(shingles & other) / smaller >= threshold:
                duplicate = True
                break
        if duplicate:
            continue
        seen.add(fp)
        kept.append(hit)
        kept_shingles.append(shingles)
    return kept


class Retriever:
    def __init__(self, store: Store, embeddings: KbEmbeddings, collection: str) -> None:
        self.store = store
        self.embeddings = embeddings
        self.collection = collection
        # Fail early and clearly if the collection was built with another embedding model.
        store.collection(collection, embed_model=embeddings.model_id)

    def search(self, query: str, k: int) -> SearchResult:
        started = time.perf_counter()
        vector = self.embeddings.embed_query_vector(query)
        fetch = max(k * _OVERFETCH, k + 4)
        hits = self.store.query(self.collection, vector, fetch)
        hits = dedupe(hits)[:k]
        return SearchResult(query, hits, (time.perf_counter() - started) * 1000)


def hit_to_document(hit: Hit) -> Document:
    metadata = dict(hit.metadata)
    metadata.update(chunk_id=hit.chunk_id, score=hit.score)
    return Document(page_content=hit.text, metadata=metadata, id=hit.chunk_id)


class KbRetriever(BaseRetriever):
    """LangChain retriever over a kb collection; documents carry `score` in their metadata."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Retriever
    k: int = 5

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [hit_to_document(h) for h in self.retriever.search(query, self.k).hits]
