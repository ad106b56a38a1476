"""What a knowledge base holds: collections, files, chunks, size, models, last ingestion."""

from __future__ import annotations

from typing import Any

from kb.config import Settings
from kb.store import Store

REMOTE_MODEL_CHECKS = (
    "reduced: the model runs on a server (KB_LLM_URL), which exposes no logits, so the "
    "first-token not-found check and the graded answer check are unavailable; the retrieval, "
    "coverage, subject and invented-number gates still refuse, and the answer check uses the "
    "server's sampled yes/no"
)


def refusal_checks(settings: Settings) -> str:
    """Which refusal gates the configured model allows: all of them only when it is local."""
    return REMOTE_MODEL_CHECKS if settings.llm_url else "full (local model: logit-based checks on)"


def knowledge_base_status(settings: Settings, store: Store) -> dict[str, Any]:
    collections = []
    names = sorted(set(store.collection_names()) | set(store.manifest.collections()))
    for name in names:
        files, chunks_recorded = store.manifest.stats(name)
        try:
            chunks = store.count(name)
            embed_model = store.embed_model_of(name)
        except Exception:  # noqa: BLE001 - a collection only the manifest remembers
            chunks, embed_model = 0, None
        last = store.manifest.last_run(name)
        collections.append(
            {
                "name": name,
                "files": files,
                "chunks": chunks,
                "chunks_recorded": chunks_recorded,
                "embed_model": embed_model,
                "last_ingestion": None
                if last is None
                else {
                    "finished_at": last["finished_at"],
                    "roots": last["roots"],
                    "summary": last["summary"],
                },
            }
        )
    return {
        "home": str(settings.home),
        "chroma": store.where(),
        "size_bytes": store.size_on_disk() if not settings.chroma_url else None,
        "models": {
            "embedding": settings.embed_model
            + (f" @ {settings.embed_url}" if settings.embed_url else ""),
            "llm": (settings.llm_url and f"{settings.llm_remote_model} @ {settings.llm_url}")
            or settings.llm_model,
            "llm_remote": bool(settings.llm_url),
            "refusal_checks": refusal_checks(settings),
        },
        "default_collection": settings.collection,
        "collections": collections,
    }
