"""Retrieval: the top-k chunks for a query, among those a filter allows, with scores.

`Retriever` is the seam: anything with `search(query, k, filters)` can find chunks. Three
stand behind it: `VectorRetriever` (embedding similarity), `KeywordRetriever` (BM25 over
segmented words, kb.keyword) and `HybridRetriever`, which asks both and merges their rankings
with a `Fusion` step (`ReciprocalRankFusion`), then applies `Preferences` (the question's
language, the time it names). Filters travel on every call down into both indexes.
`LangChainRetriever` wraps any of them as a LangChain `BaseRetriever`.

Every hit's `score` is the cosine similarity of the query and the chunk, whichever retriever
found it (keyword hits are scored from their stored vectors): the answering chain's relevance
gate is calibrated on that similarity, so its meaning must not change with the retriever.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from kb.filters import SearchFilter
from kb.models.embeddings import KbEmbeddings
from kb.store import Hit, Store
from kb.text import language_of

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

    def search(
        self,
        query: str,
        k: int,
        filters: SearchFilter | None = None,
        as_of: int | None = None,
    ) -> SearchResult:
        """The best `k` chunks for `query` among those `filters` allows, best first.

        `as_of`: the year the question is asked in, when it is not this one (a question about
        "the current plan" asked in 2016 means 2016's); retrievers may ignore it."""
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

    def search(
        self,
        query: str,
        k: int,
        filters: SearchFilter | None = None,
        as_of: int | None = None,
    ) -> SearchResult:
        started = time.perf_counter()
        vector = self.embeddings.embed_query_vector(query)
        fetch = max(k * _OVERFETCH, k + 4)
        hits = self.store.query(self.collection, vector, fetch, filters)
        hits = dedupe(hits)[:k]
        return SearchResult(query, hits, (time.perf_counter() - started) * 1000)


class KeywordRetriever:
    """Chunks ranked by BM25 over their segmented words (kb.keyword), near-duplicates dropped.

    With `embeddings`, each hit is scored by cosine similarity like a vector hit (what the
    answering chain's relevance gate reads); without, scores are 0.
    """

    def __init__(
        self, store: Store, collection: str, embeddings: KbEmbeddings | None = None
    ) -> None:
        self.store = store
        self.collection = collection
        self.embeddings = embeddings
        if embeddings is not None:
            store.check_collection(collection, embed_model=embeddings.model_id)
        else:
            store.check_collection(collection)

    def ranked(
        self, query: str, n: int, filters: SearchFilter | None = None
    ) -> list[tuple[str, float]]:
        """(chunk id, BM25 score) of the best `n`, best first."""
        return self.store.keywords.search(self.collection, query, n, filters)

    def search(
        self,
        query: str,
        k: int,
        filters: SearchFilter | None = None,
        as_of: int | None = None,
    ) -> SearchResult:
        started = time.perf_counter()
        ids = [i for i, _ in self.ranked(query, max(k * _OVERFETCH, k + 4), filters)]
        vector = None if self.embeddings is None else self.embeddings.embed_query_vector(query)
        hits = dedupe(self.store.get_chunks(self.collection, ids, vector))[:k]
        return SearchResult(query, hits, (time.perf_counter() - started) * 1000)


class Fusion(Protocol):
    """Merges several rankings of chunk ids (best first) into one."""

    def fuse(self, rankings: Sequence[Sequence[str]]) -> list[tuple[str, float]]:
        """(chunk id, fused score), best first."""
        ...


@dataclass(frozen=True)
class ReciprocalRankFusion:
    """Each ranking gives a chunk weight / (k + rank): rank positions, not raw scores, so BM25
    and cosine need no common scale (Cormack et al., 2009). Hand-written: a few lines, and the
    libraries that ship it (rank-fusion tools) bring far more than this needs."""

    weights: tuple[float, ...] = (1.0, 1.0)
    k: float = 60.0

    def fuse(self, rankings: Sequence[Sequence[str]]) -> list[tuple[str, float]]:
        scores: dict[str, float] = {}
        for weight, ranking in zip(self.weights, rankings, strict=False):
            for rank, chunk in enumerate(ranking, start=1):
                scores[chunk] = scores.get(chunk, 0.0) + weight / (self.k + rank)
        return sorted(scores.items(), key=lambda item: item[1], reverse=True)


_YEAR = re.compile(r"(?<!\d)(19[5-9]\d|20[0-4]\d)(?!\d)")
_LATEST = re.compile(r"latest|most recent|current|this year|最新|今年|目前|当前|现行|最近", re.I)


def years_in(text: str) -> set[int]:
    return {int(y) for y in _YEAR.findall(text)}


def chunk_years(hit: Hit) -> set[int]:
    """The years a chunk's document is about: those in its title and file name, else in its
    section, else in its text."""
    meta = hit.metadata
    for text in (
        f"{meta.get('title', '')} {meta.get('file_name', '')}",
        str(meta.get("section", "")),
        hit.text,
    ):
        found = years_in(text)
        if found:
            return found
    return set()


@dataclass(frozen=True)
class TimeHint:
    """The years a question prefers, and the year after which documents did not exist yet."""

    years: frozenset[int] = frozenset()
    until: int | None = None


@dataclass(frozen=True)
class Preferences:
    """Re-weighting of fused candidates by what the question implies.

    - Language: a chunk in another language than the question's is weighted by `language`
      (< 1), so a document kept in both languages answers in the asker's, while one that exists
      only in the other language still comes back when nothing else matches.
    - Time: chunks of the years a question prefers are weighted by `time` (> 1), chunks dated
      after the year it was asked in by 1 / `time`. A question naming a year prefers that year;
      one asked `as_of` a year prefers that year; one asking for the latest ("latest", "最新")
      prefers the most recent year among the candidates.
    """

    language: float = 1.0
    time: float = 1.0

    def time_hint(self, query: str, hits: Sequence[Hit], as_of: int | None) -> TimeHint:
        if self.time == 1.0:
            return TimeHint()
        named = years_in(query)
        if named:
            return TimeHint(frozenset(named))
        if as_of is not None:
            return TimeHint(frozenset({as_of}), as_of)
        if _LATEST.search(query):
            now = time.localtime().tm_year
            years = [y for h in hits for y in chunk_years(h) if y <= now]
            return TimeHint(frozenset({max(years)}) if years else frozenset(), now)
        return TimeHint()

    def weight(self, hit: Hit, asked_lang: str, hint: TimeHint) -> float:
        weight = 1.0
        if self.language != 1.0 and language_of(hit.text) != asked_lang:
            weight *= self.language
        if hint.years or hint.until is not None:
            years = chunk_years(hit)
            if years & hint.years:
                weight *= self.time
            elif hint.until is not None and years and min(years) > hint.until:
                weight /= self.time
        return weight


class HybridRetriever:
    """Vector and keyword candidates, fused, re-weighted by `Preferences`, near-duplicates
    dropped; every hit carries its cosine similarity as `score`."""

    def __init__(
        self,
        store: Store,
        embeddings: KbEmbeddings,
        collection: str,
        fusion: Fusion | None = None,
        preferences: Preferences | None = None,
        candidates: int = 30,
    ) -> None:
        self.store = store
        self.embeddings = embeddings
        self.collection = collection
        self.fusion = fusion or ReciprocalRankFusion()
        self.preferences = preferences or Preferences()
        self.candidates = candidates
        store.check_collection(collection, embed_model=embeddings.model_id)

    def candidates_for(
        self,
        query: str,
        n: int,
        filters: SearchFilter | None = None,
    ) -> tuple[np.ndarray, list[Hit], list[tuple[str, float]]]:
        """The query vector, the vector candidates and the keyword candidates (ids, BM25)."""
        vector = self.embeddings.embed_query_vector(query)
        vector_hits = self.store.query(self.collection, vector, n, filters)
        keyword = self.store.keywords.search(self.collection, query, n, filters)
        return vector, vector_hits, keyword

    def search(
        self,
        query: str,
        k: int,
        filters: SearchFilter | None = None,
        as_of: int | None = None,
    ) -> SearchResult:
        started = time.perf_counter()
        n = max(self.candidates, k * _OVERFETCH)
        vector, vector_hits, keyword = self.candidates_for(query, n, filters)
        fused = self.fusion.fuse([[h.chunk_id for h in vector_hits], [i for i, _ in keyword]])
        # Preferences can lift a candidate by a few places only, so the top few times k of the
        # fused list hold every chunk that can end in the top k.
        shortlist = fused[: max(3 * k, k + 10)]
        known = {h.chunk_id: h for h in vector_hits}
        missing = [i for i, _ in shortlist if i not in known]
        known.update(
            (h.chunk_id, h) for h in self.store.get_chunks(self.collection, missing, vector)
        )
        asked = language_of(query)
        candidates = [(score, known[i]) for i, score in shortlist if i in known]
        hint = self.preferences.time_hint(query, [h for _, h in candidates], as_of)
        scored = [(score * self.preferences.weight(h, asked, hint), h) for score, h in candidates]
        scored.sort(key=lambda item: item[0], reverse=True)
        hits = dedupe([h for _, h in scored])[:k]
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
