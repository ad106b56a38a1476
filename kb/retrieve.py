"""Retrieval: the top-k chunks for a query, among those a filter allows, with scores.

`Retriever` is the seam: anything with `search(query, k, filters)` can find chunks (the vector
retriever here; a keyword retriever and a fusion of both slot in beside it). Filters travel on
every call down into the store's indexes. `LangChainRetriever` wraps any of them as a LangChain
`BaseRetriever`, so a knowledge base plugs into anyone's LangChain chain.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from kb.filters import SearchFilter
from kb.models.embeddings import KbEmbeddings
from kb.store import Hit, Store

# Candidates fetched per requested result: room to drop duplicates and still return k.
_OVERFETCH = 2


@dataclass
class SearchResult:
    query: str
    hits: list[Hit]
    retrieve_ms: float

    def to_json(self) -> dict:
        """The `kb search --json` contract (also the API's /v1/search response)."""
        return {
            "query": self.query,
            "results": [
                {
                    "rank": i + 1,
                    "score": round(hit.score, 4),
                    "source": hit.source,
                    "page": hit.page,
                    "title": str(hit.metadata.get("title", "")),
                    "chunk_id": hit.chunk_id,
                    "text": hit.text,
                }
                for i, hit in enumerate(self.hits)
            ],
        }


@runtime_checkable
class Retriever(Protocol):
    """Finds the chunks of one collection that best match a query."""

    collection: str

    def search(self, query: str, k: int, filters: SearchFilter | None = None) -> SearchResult:
        """The best `k` chunks for `query` among those `filters` allows, best first."""
        ...


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


class VectorRetriever:
    """Nearest chunks by embedding similarity (cosine), near-duplicates dropped."""

    def __init__(self, store: Store, embeddings: KbEmbeddings, collection: str) -> None:
        self.store = store
        self.embeddings = embeddings
        self.collection = collection
        # Fail early and clearly if the collection was built with another embedding model.
        store.check_collection(collection, embed_model=embeddings.model_id)

    def search(self, query: str, k: int, filters: SearchFilter | None = None) -> SearchResult:
        started = time.perf_counter()
        vector = self.embeddings.embed_query_vector(query)
        fetch = max(k * _OVERFETCH, k + 4)
        hits = self.store.query(self.collection, vector, fetch, filters)
        hits = dedupe(hits)[:k]
        return SearchResult(query, hits, (time.perf_counter() - started) * 1000)


def hit_to_document(hit: Hit) -> Document:
    metadata = dict(hit.metadata)
    metadata.update(chunk_id=hit.chunk_id, score=hit.score)
    return Document(page_content=hit.text, metadata=metadata, id=hit.chunk_id)


class LangChainRetriever(BaseRetriever):
    """A kb retriever as a LangChain retriever; documents carry `score` in their metadata."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Retriever
    k: int = 5
    filters: SearchFilter | None = None

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        result = self.retriever.search(query, self.k, self.filters)
        return [hit_to_document(h) for h in result.hits]
