"""Incremental ingestion through the real pipeline: real files, real Chroma, real embeddings."""

import shutil
from collections import Counter

import pytest
import tests_support

from kb.errors import StoreError
from kb.filters import SearchFilter

_facades: dict[str, object] = {}


@pytest.fixture(autouse=True)
def _knowledge_bases(open_kb):
    """One facade per settings within a test, over the session's shared models."""
    _facades.clear()
    _facades["open"] = open_kb
    yield
    _facades.clear()


def knowledge(settings):
    key = settings.model_dump_json()
    if key not in _facades:
        _facades[key] = _facades["open"](settings)
    return _facades[key]


def ingest(settings, *paths, prune=True, collection=None):
    return knowledge(settings).ingest(list(paths), collection=collection, prune=prune)


def chunks_by_source(settings, collection="default") -> Counter:
    store = knowledge(settings).store
    return Counter(hit.source for hit in store.iter_chunks(collection))


def top_source(settings, query: str) -> str:
    return knowledge(settings).search(query, 1).hits[0].source


def assert_consistent(settings, collection="default"):
    tests_support.assert_consistent(knowledge(settings).store, collection)


def test_first_run_indexes_every_format_and_each_is_searchable(settings, corpus, facts):
    summary = ingest(settings, corpus)
    assert summary.added == len(facts) and not summary.failed
    assert summary.chunks == summary.embedded > 0
    for name, fact in facts.items():
        assert top_source(settings, fact) == name, name
    assert_consistent(settings)


def test_chunks_carry_source_page_section_and_position(settings, corpus, facts):
    ingest(settings, corpus)
    store = knowledge(settings).store
    meta = {h.source: h.metadata for h in store.iter_chunks("default") if "06:45" in h.text}
    pdf = meta["policy.pdf"]
    assert (
        pdf["page"] == 2
        and pdf["section"].endswith("Parking")
        and pdf["title"] == "Facilities Policy"
    )
    assert pdf["file_hash"] and isinstance(pdf["position"], int)


def test_rerun_on_unchanged_folder_touches_nothing(settings, corpus, facts):
    ingest(settings, corpus)
    again = ingest(settings, corpus)
    assert again.unchanged == len(facts)
    assert (again.added, again.updated, again.removed, again.embedded) == (0, 0, 0, 0)
    assert_consistent(settings)


def test_touched_but_identical_file_is_not_reembedded(settings, corpus):
    ingest(settings, corpus)
    path = corpus / "notes.md"
    path.write_bytes(path.read_bytes())  # new mtime, same content
    again = ingest(settings, corpus)
    assert again.embedded == 0 and again.updated == 0


def test_editing_one_file_reembeds_only_that_file(settings, corpus):
    ingest(settings, corpus)
    before = chunks_by_source(settings)
    (corpus / "readme.txt").write_text(
        "Printers\n\nThe printer on floor 3 was renamed Lovelace in March.\n", encoding="utf-8"
    )
    summary = ingest(settings, corpus)
    after = chunks_by_source(settings)
    assert summary.updated == 1 and summary.added == 0
    assert summary.embedded == after["readme.txt"]
    assert top_source(settings, "printer renamed Lovelace") == "readme.txt"
    texts = [h.text for h in knowledge(settings).store.iter_chunks("default")]
    assert not any("Gutenberg" in t for t in texts), "the old version's chunks must be gone"
    assert {k: v for k, v in after.items() if k != "readme.txt"} == {
        k: v for k, v in before.items() if k != "readme.txt"
    }
    assert_consistent(settings)


def test_deleted_file_is_removed_from_the_index(settings, corpus):
    ingest(settings, corpus)
    (corpus / "faq.html").unlink()
    summary = ingest(settings, corpus)
    assert summary.removed == 1
    assert "faq.html" not in chunks_by_source(settings)
    assert_consistent(settings)


def test_no_prune_keeps_deleted_files(settings, corpus):
    ingest(settings, corpus)
    (corpus / "faq.html").unlink()
    summary = ingest(settings, corpus, prune=False)
    assert summary.removed == 0
    assert "faq.html" in chunks_by_source(settings)


def test_renamed_file_is_not_reembedded(settings, corpus, facts):
    ingest(settings, corpus)
    (corpus / "archive").mkdir()
    shutil.move(corpus / "notes.md", corpus / "archive" / "ops-notes.md")
    summary = ingest(settings, corpus)
    assert summary.renamed == 1
    assert summary.embedded == 0 and summary.removed == 0 and summary.added == 0
    assert top_source(settings, facts["notes.md"]) == "archive/ops-notes.md"
    assert "notes.md" not in chunks_by_source(settings)
    assert_consistent(settings)


def test_copied_file_reuses_vectors(settings, corpus):
    ingest(settings, corpus)
    shutil.copy(corpus / "guide.docx", corpus / "guide-copy.docx")
    summary = ingest(settings, corpus)
    assert summary.added == 1 and summary.embedded == 0
    counts = chunks_by_source(settings)
    assert counts["guide-copy.docx"] == counts["guide.docx"]


def test_bad_files_fail_one_line_each_and_the_rest_is_indexed(settings, corpus, facts, bad_files):
    folder, reasons = bad_files
    for name in reasons:
        shutil.copy(folder / name, corpus / name)
    summary = ingest(settings, corpus)
    failed = {f.path: f.error for f in summary.failed}
    assert set(failed) == set(reasons)
    for name, word in reasons.items():
        assert word in failed[name].lower(), (name, failed[name])
        assert "\n" not in failed[name]
    assert summary.added == len(facts)
    # Unchanged broken files are reported again without being parsed again.
    again = ingest(settings, corpus)
    assert {f.path for f in again.failed} == set(reasons)


def test_oversized_file_is_refused(settings, corpus):
    small = settings.model_copy(update={"max_file_mb": 0.001})
    summary = ingest(small, corpus)
    assert any("too large" in f.error for f in summary.failed)


def test_collections_are_separate(settings, corpus, facts):
    ingest(settings, corpus / "notes.md", collection="ops")
    assert chunks_by_source(settings, "ops").keys() == {"notes.md"}
    assert not knowledge(settings).store.has_collection("default")


def test_invalid_collection_name_is_a_clear_error(settings, corpus):
    with pytest.raises(StoreError, match="collection name"):
        ingest(settings, corpus, collection="bad name!")


def test_forget_removes_one_file(settings, corpus):
    ingest(settings, corpus)
    removed = knowledge(settings).forget("notes.md")
    assert removed == ["notes.md"]
    assert "notes.md" not in chunks_by_source(settings)
    assert_consistent(settings)


def test_changing_the_embedding_model_of_a_collection_is_refused(settings, corpus):
    ingest(settings, corpus / "notes.md")
    other = settings.model_copy(update={"embed_model": "minilm"})
    with pytest.raises(StoreError, match="built with embedding model"):
        ingest(other, corpus / "readme.txt")


def test_minilm_embeddings_also_work_end_to_end(settings, corpus, facts):
    minilm = settings.model_copy(update={"embed_model": "minilm"})
    summary = ingest(minilm, corpus / "notes.md", corpus / "faq.html", collection="en")
    assert summary.added == 2
    hits = knowledge(minilm).search("cafeteria ramen Thursday", 1, collection="en").hits
    assert hits[0].source == "faq.html"


def test_search_filters_by_folder_and_file_type_inside_the_index(settings, corpus, facts):
    """Filters narrow the search in the index itself: a query that matches one file best
    returns, under a filter excluding it, the best of what the filter allows (never nothing)."""
    (corpus / "hr" / "pay").mkdir(parents=True)
    (corpus / "hr" / "pay" / "bands.md").write_text(
        "# Pay bands\n\nThe printer budget for floor 3 is set by the pay committee.\n",
        encoding="utf-8",
    )
    ingest(settings, corpus)
    query = facts["readme.txt"]  # the printer on floor 3
    assert top_source(settings, query) == "readme.txt"
    kb_ = knowledge(settings)
    under_hr = kb_.search(query, 3, filters=SearchFilter.of(folders=["hr"])).hits
    assert [h.source for h in under_hr] == ["hr/pay/bands.md"]
    assert kb_.search(query, 1, filters=SearchFilter.of(folders=["/hr/pay/"])).hits
    pdfs = kb_.search(query, 5, filters=SearchFilter.of(file_types=[".PDF"])).hits
    assert pdfs and {h.source for h in pdfs} == {"policy.pdf"}
    everything = kb_.search(query, 20, filters=SearchFilter.of(folders=["."])).hits
    assert len({h.source for h in everything}) > 2
    nothing = SearchFilter.of(folders=["hr"]).narrowed(SearchFilter.of(file_types=["pdf"]))
    assert kb_.search(query, 5, filters=nothing).hits == []


def test_an_index_written_before_filters_is_upgraded_without_re_embedding(settings, corpus):
    """A collection whose chunks lack the filter fields (as an older kb wrote them) refuses a
    filtered search with a clear message; the next ingestion adds the fields in place."""
    from kb.filters import SCHEMA_VERSION

    ingest(settings, corpus)
    store = knowledge(settings).store
    col = store._collection("default")
    ids = [h.chunk_id for h in store.iter_chunks("default")]
    col.update(ids=ids, metadatas=[{"folders": None, "file_type": None} for _ in ids])
    col.modify(metadata={**col.metadata, "kb_schema": 1})
    store._collections.clear()
    only_pdf = SearchFilter.of(file_types=["pdf"])
    with pytest.raises(StoreError, match="kb ingest"):
        knowledge(settings).search("parking", 3, filters=only_pdf)
    assert knowledge(settings).search("parking", 3).hits, "unfiltered search still works"

    again = ingest(settings, corpus)
    assert again.embedded == 0 and again.unchanged > 0
    assert store._collection("default").metadata["kb_schema"] == SCHEMA_VERSION
    hits = knowledge(settings).search("parking", 3, filters=only_pdf).hits
    assert hits and {h.source for h in hits} == {"policy.pdf"}
    assert all(h.metadata["folders"] == ["."] for h in store.iter_chunks("default"))


def test_the_knowledge_base_is_a_langchain_retriever(settings, corpus, facts):
    ingest(settings, corpus)
    retriever = knowledge(settings).langchain_retriever(k=2)
    docs = retriever.invoke(facts["notes.md"])
    assert len(docs) == 2 and docs[0].metadata["source"] == "notes.md"
    assert docs[0].metadata["score"] >= docs[1].metadata["score"]
    narrowed = knowledge(settings).langchain_retriever(
        k=2, filters=SearchFilter.of(file_types=["html"])
    )
    assert [d.metadata["source"] for d in narrowed.invoke(facts["notes.md"])] == ["faq.html"]


def test_identical_chunk_texts_are_embedded_once(settings, tmp_path):
    # Two versions of one policy: only the approval section changed between them.
    # Each section near a chunk's size, so each is a chunk of its own.
    sections = {
        "Booking": "Book flights through the Northwind travel desk at least 14 days ahead. "
        + "Economy class applies to every flight shorter than six hours, for every grade. " * 8,
        "Meals": "Meals abroad are refunded up to 60 euros a day with receipts. "
        + "Keep every receipt and attach it to the expense report within thirty days. " * 8,
    }
    for year, approver in (("2023", "the team lead"), ("2024", "the department head")):
        body = "".join(f"## {name}\n\n{text}\n\n" for name, text in sections.items())
        folder = tmp_path / "policies" / year
        folder.mkdir(parents=True)
        (folder / "travel.md").write_text(
            f"# Travel policy\n\n{body}## Approval\n\nTrips are approved by {approver}.\n"
        )
    summary = ingest(settings, tmp_path / "policies")
    assert summary.added == 2 and not summary.failed
    # Each version's two unchanged sections share their text with the other version's.
    assert summary.embedded == summary.chunks - 2
    kb = knowledge(settings)
    booking = [h.chunk_id for h in kb.store.iter_chunks("default") if "Book flights" in h.text]
    query = kb.embeddings.embed_query_vector("How many days ahead must flights be booked?")
    hits = kb.store.get_chunks("default", booking, query)
    assert {h.source for h in hits} == {"2023/travel.md", "2024/travel.md"}
    assert hits[0].score == pytest.approx(hits[1].score)  # one vector, stored twice
    assert_consistent(settings)
