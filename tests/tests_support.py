"""Assertions shared by several test modules."""

from collections import Counter
from pathlib import Path


def assert_consistent(store, collection: str = "default") -> None:
    """Chroma, the keyword index and the manifest agree: nothing half-written, no orphan or
    duplicate chunk, every chunk findable by keyword under its current file."""
    records = store.manifest.files(collection)
    assert all(r.complete for r in records.values()), "a file is recorded as still in flight"
    owned = [i for r in records.values() for i in r.chunk_ids]
    assert len(owned) == len(set(owned)), "two files claim the same chunk"
    hits = list(store.iter_chunks(collection))
    present = {h.chunk_id for h in hits}
    assert present == set(owned), "orphan chunks, or files whose chunks are missing"
    positions = Counter((h.source, h.metadata["position"]) for h in hits)
    assert max(positions.values(), default=1) == 1, "a chunk is stored twice"
    assert store.keywords.ready(collection), "the keyword index was never built"
    keyword_sources = store.keywords.sources(collection)
    assert set(keyword_sources) == present, "keyword index out of step with the vector store"
    assert keyword_sources == {h.chunk_id: h.source for h in hits}, "keyword row of another file"
    assert_groups_agree(store, collection)


def assert_groups_agree(store, collection: str = "default") -> None:
    """Every chunk carries its file's readers in Chroma and in the keyword index, and no
    change of readers is left half-done."""
    from kb.access import chunk_groups

    records = store.manifest.files(collection).values()
    assert all(r.pending_groups is None for r in records), "a change of readers is in flight"
    wanted = {i: chunk_groups(r.groups) for r in records for i in r.chunk_ids}
    stored = {
        h.chunk_id: list(h.metadata.get("groups") or []) for h in store.iter_chunks(collection)
    }
    assert stored == wanted, "chunk readers in Chroma differ from their file's"
    sep = "\x1f"
    packed = {i: sep + sep.join(g) + sep for i, g in wanted.items()}
    assert store.keywords.groups_of(collection) == packed, "keyword rows carry other readers"


def assert_consistent_home(home: Path, expected_files: int) -> None:
    from kb.config import Settings
    from kb.store import Store

    store = Store(Settings(home=home))
    try:
        assert_consistent(store)
        assert len(store.manifest.files("default")) == expected_files
    finally:
        store.close()


def free_port() -> int:
    """A TCP port nothing listens on (bound and released), for servers and unreachable URLs."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
