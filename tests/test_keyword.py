"""Keyword and hybrid retrieval through the real store: real files, Chroma, the embedding model
and the SQLite FTS5 keyword index beside it."""

from __future__ import annotations

import sqlite3

import pytest
import tests_support

from kb.errors import StoreError
from kb.filters import SearchFilter
from kb.retrieve import HybridRetriever, KeywordRetriever, Preferences, VectorRetriever
from kb.segment import index_terms, query_terms

# Catalogue entries alike in everything but their code, holder, figure or Chinese term: what
# an embedding blurs and a keyword index tells apart.
CODES = ["QX7731", "QX7713", "QX1773", "QY7731", "QX7731B", "XQ7731"]
NAMES = ["Oyelaran", "Oyelowo", "Olawale", "Oyebanji"]
FIGURES = ["4,172,305", "4,127,305", "4,172,350", "4,712,305"]
ZH_TERMS = ["鲲鹏计划", "鹏程计划", "鲲鹏工程", "凤凰计划"]


def write_catalogue(folder) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, code in enumerate(CODES):
        (folder / f"part-{i}.md").write_text(
            f"# Spare part {i}\n\nThe replacement valve with part number {code} fits the "
            "cooling pump of the north plant and is kept in aisle four.\n",
            encoding="utf-8",
        )
    for i, name in enumerate(NAMES):
        (folder / f"owner-{i}.md").write_text(
            f"# Asset owner {i}\n\nThe forklift fleet is looked after by {name}, who signs the "
            "monthly inspection sheets.\n",
            encoding="utf-8",
        )
    for i, figure in enumerate(FIGURES):
        (folder / f"budget-{i}.md").write_text(
            f"# Budget line {i}\n\nThe approved maintenance budget for the plant is "
            f"{figure} euros for the coming year.\n",
            encoding="utf-8",
        )
    for i, term in enumerate(ZH_TERMS):
        (folder / f"项目-{i}.md").write_text(
            f"# 项目说明 {i}\n\n{term}由研发中心负责，目标是提升生产线的自动化水平。\n",
            encoding="utf-8",
        )


@pytest.fixture
def catalogue(tmp_path, settings, open_kb):
    folder = tmp_path / "catalogue"
    write_catalogue(folder)
    knowledge = open_kb(settings)
    summary = knowledge.ingest([folder])
    assert not summary.failed
    return knowledge


def test_terms_segment_chinese_into_words_and_stem_english():
    terms = index_terms("北京大学的研究人员 were running tests on 3.5 kg samples in 2018")
    assert {"北京", "大学", "北京大学"} <= set(terms)  # search mode: the word and its parts
    assert "的" not in terms  # a function word
    assert {"run", "test", "sampl", "3.5", "2018", "kg"} <= set(terms)
    assert "were" not in terms and "on" not in terms
    assert query_terms("tests test TEST") == ["test"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("part number QX7731", "part-0.md"),
        ("Who is Oyelaran?", "owner-0.md"),
        ("budget of 4,172,305 euros", "budget-0.md"),
        ("鲲鹏计划由谁负责？", "项目-0.md"),
    ],
)
def test_keyword_search_finds_exact_codes_names_figures_and_chinese_terms(
    catalogue, query, expected
):
    keyword = KeywordRetriever(catalogue.store, "default", catalogue.embeddings)
    hybrid = catalogue.retriever()
    assert isinstance(hybrid, HybridRetriever)
    assert keyword.search(query, 1).hits[0].source == expected
    assert hybrid.search(query, 1).hits[0].source == expected


def test_keyword_hits_that_vector_search_misses(catalogue):
    """The embedding ranks near-identical codes and names above the asked one; BM25 does not."""
    vector = VectorRetriever(catalogue.store, catalogue.embeddings, "default")
    hybrid = catalogue.retriever()
    missed = []
    for query, expected in [
        ("QX7713", "part-1.md"),
        ("Olawale", "owner-2.md"),
        ("4,712,305", "budget-3.md"),
    ]:
        if vector.search(query, 1).hits[0].source != expected:
            missed.append(query)
        assert hybrid.search(query, 1).hits[0].source == expected, query
    assert missed, "vector search found every exact term here: the case shows nothing"


def test_hybrid_hits_carry_cosine_similarity_for_the_relevance_gate(catalogue):
    vector = VectorRetriever(catalogue.store, catalogue.embeddings, "default")
    hybrid = catalogue.retriever()
    by_id = {h.chunk_id: h.score for h in vector.search("valve part number", 20).hits}
    for hit in hybrid.search("valve part number", 5).hits:
        assert -1.0 <= hit.score <= 1.0
        if hit.chunk_id in by_id:
            assert hit.score == pytest.approx(by_id[hit.chunk_id], abs=1e-4)


def test_filters_apply_inside_the_keyword_index(tmp_path, settings, open_kb):
    folder = tmp_path / "docs"
    write_catalogue(folder / "plant")
    (folder / "office").mkdir()
    (folder / "office" / "note.md").write_text(
        "# Office note\n\nThe office printer is serviced every Monday.\n", encoding="utf-8"
    )
    knowledge = open_kb(settings)
    knowledge.ingest([folder])
    keyword = KeywordRetriever(knowledge.store, "default", knowledge.embeddings)
    # Without a filter the exact code wins; filtered to the office, only the office note may
    # come back, even though it shares no word with the query (nothing to post-filter).
    assert keyword.search("QX7731", 1).hits[0].source == "plant/part-0.md"
    office = SearchFilter.of(folders=["office"])
    assert keyword.search("QX7731", 5, office).hits == []
    assert [h.source for h in keyword.search("printer", 5, office).hits] == ["office/note.md"]
    assert keyword.search("printer", 5, SearchFilter.of(folders=["plant"])).hits == []
    hybrid = knowledge.retriever()
    hits = hybrid.search("QX7731 valve", 5, office).hits
    assert hits and {h.source for h in hits} == {"office/note.md"}
    only_md = hybrid.search(
        "QX7731", 3, SearchFilter.of(file_types=["md"], sources=["plant/part-0.md"])
    )
    assert [h.source for h in only_md.hits] == ["plant/part-0.md"]


def test_same_language_preference_without_hiding_the_other_language(tmp_path, settings, open_kb):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "leave-en.md").write_text(
        "# Annual leave policy\n\nEmployees receive 25 days of annual leave; managers receive "
        "30 days.\n",
        encoding="utf-8",
    )
    (folder / "leave-zh.md").write_text(
        "# 年假制度\n\n员工每年享有25天年假，经理享有30天年假。\n", encoding="utf-8"
    )
    (folder / "parking-zh.md").write_text(
        "# 停车规定\n\n员工停车场早上六点四十五分开放，访客须在前台登记车牌。\n", encoding="utf-8"
    )
    knowledge = open_kb(settings)
    knowledge.ingest([folder])
    retriever = knowledge.retriever()
    assert retriever.search("How many days of annual leave do managers get?", 1).hits[0].source == (
        "leave-en.md"
    )
    assert retriever.search("经理每年有多少天年假？", 1).hits[0].source == "leave-zh.md"
    # A document that exists only in Chinese still answers an English question.
    assert retriever.search("When does the staff car park open?", 1).hits[0].source == (
        "parking-zh.md"
    )


def test_retrieval_setting_chooses_the_retriever(settings, open_kb, catalogue):
    home = catalogue.settings.home
    for mode, kind in [
        ("vector", VectorRetriever),
        ("keyword", KeywordRetriever),
        ("hybrid", HybridRetriever),
    ]:
        knowledge = open_kb(settings.model_copy(update={"home": home, "retrieval": mode}))
        assert isinstance(knowledge.retriever(), kind)


def test_keyword_index_follows_update_rename_and_delete(tmp_path, settings, open_kb):
    folder = tmp_path / "docs"
    write_catalogue(folder)
    knowledge = open_kb(settings)
    knowledge.ingest([folder])
    store = knowledge.store
    keyword = KeywordRetriever(store, "default")
    (folder / "part-0.md").write_text(
        "# Spare part 0\n\nThe replacement gasket with part number QZ9001 fits the boiler.\n",
        encoding="utf-8",
    )
    (folder / "owner-0.md").rename(folder / "owner-zero.md")
    (folder / "budget-0.md").unlink()
    summary = knowledge.ingest([folder])
    assert (summary.updated, summary.renamed, summary.removed) == (1, 1, 1)
    tests_support.assert_consistent(store)
    assert [h.source for h in keyword.search("QZ9001", 3).hits] == ["part-0.md"]
    assert keyword.search("QX7731", 3).hits == []  # the old version is gone
    assert [h.source for h in keyword.search("Oyelaran", 1).hits] == ["owner-zero.md"]
    assert all(h.source != "budget-0.md" for h in keyword.search("4,172,305", 5).hits)
    knowledge.forget("part-0.md")
    tests_support.assert_consistent(store)
    assert keyword.search("QZ9001", 3).hits == []


def test_an_index_from_an_older_kb_is_built_by_the_next_ingest_without_embedding(
    tmp_path, settings, open_kb
):
    folder = tmp_path / "docs"
    write_catalogue(folder)
    knowledge = open_kb(settings)
    knowledge.ingest([folder])
    knowledge.close()
    # What a knowledge base written before the keyword index looks like.
    with sqlite3.connect(settings.manifest_path) as db:
        db.execute("DELETE FROM keyword_indexes")
    older = open_kb(settings)
    with pytest.raises(StoreError, match="kb ingest"):
        older.retriever()
    summary = older.ingest([folder])
    assert summary.embedded == 0 and summary.unchanged == len(list(folder.iterdir()))
    tests_support.assert_consistent(older.store)
    assert older.search("QX7731", 1).hits[0].source == "part-0.md"


def test_repair_restores_keyword_rows_lost_or_left_behind(tmp_path, settings, open_kb):
    folder = tmp_path / "docs"
    write_catalogue(folder)
    knowledge = open_kb(settings)
    knowledge.ingest([folder])
    store = knowledge.store
    ids = sorted(store.keywords.ids("default"))
    with store.manifest.transaction():
        store.keywords.delete("default", ids[:3])
    repaired = store.repair("default")
    assert repaired["keyword_rows"] == 3
    tests_support.assert_consistent(store)


def test_time_preference_follows_the_year_named_or_asked_in(tmp_path, settings, open_kb):
    folder = tmp_path / "docs"
    folder.mkdir()
    for year, places in ((2015, 30), (2016, 40), (2017, 45)):
        (folder / f"plan-{year}.md").write_text(
            f"# {year}年艺术类专业招生简章\n\n音乐表演专业计划招生{places}人，报名时间另行通知。\n",
            encoding="utf-8",
        )
    knowledge = open_kb(settings)
    knowledge.ingest([folder])
    retriever = HybridRetriever(
        knowledge.store, knowledge.embeddings, "default", preferences=Preferences(time=1.5)
    )
    question = "音乐表演专业计划招生多少人？"
    assert retriever.search("2016年" + question, 1).hits[0].source == "plan-2016.md"
    assert retriever.search(question, 1, as_of=2015).hits[0].source == "plan-2015.md"
    assert retriever.search(question, 1, as_of=2016).hits[0].source == "plan-2016.md"
    assert retriever.search("最新的" + question, 1).hits[0].source == "plan-2017.md"


def test_time_hint_and_weights_by_hand():
    from kb.store import Hit

    prefs = Preferences(language=0.5, time=2.0)

    def hit(title: str, text: str) -> Hit:
        return Hit(title, text, {"title": title}, 0.8)

    old, new = hit("2015年简章", "招生30人"), hit("2017年简章", "招生45人")
    english = hit("Plan", "The plan admits 30 students.")
    assert prefs.time_hint("2015年招生多少人", [old, new], None).years == {2015}
    as_of = prefs.time_hint("招生多少人", [old, new], 2016)
    assert (as_of.years, as_of.until) == ({2016}, 2016)
    assert prefs.weight(new, "zh", as_of) == 0.5  # dated after the question was asked
    assert prefs.weight(old, "zh", as_of) == 1.0
    assert prefs.time_hint("最新招生多少人", [old, new], None).years == {2017}
    assert prefs.weight(english, "zh", prefs.time_hint("招生多少人", [], None)) == 0.5
    assert Preferences().time_hint("2015年招生多少人", [old], None).years == frozenset()
