"""Chroma's vector index searches as deep as KB_VECTOR_EF_SEARCH says, also in collections built
before the setting existed (the depth is read when a process first opens the collection)."""

import chromadb

from kb.config import Settings


def _depth(settings: Settings) -> int:
    client = chromadb.PersistentClient(path=str(settings.chroma_path))
    return client.get_collection("kb-default").configuration["hnsw"]["ef_search"]


def test_a_collection_built_with_a_shallow_search_is_searched_deeper(
    tmp_path, corpus, facts, open_kb
):
    shallow = Settings(home=tmp_path / "kb", vector_ef_search=100)
    knowledge = open_kb(shallow)
    assert knowledge.ingest([corpus]).added == len(facts)
    knowledge.close()
    assert _depth(shallow) == 100

    default = Settings(home=tmp_path / "kb")
    knowledge = open_kb(default)
    hits = knowledge.search(facts["notes.md"], 1).hits
    assert hits[0].source == "notes.md"
    assert default.vector_ef_search == 2000
    assert _depth(default) == 2000
