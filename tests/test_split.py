"""Structure-first, token-sized splitting, with the real embedding model's tokenizer."""

import pytest

from kb.ingest.load import Block, Document
from kb.ingest.split import split_document
from kb.text import split_sentences


@pytest.fixture(scope="module")
def count(models):
    from kb.config import Settings

    return models.embeddings(Settings()).count_tokens


def test_chinese_sentence_ends_are_split_points():
    text = "年假为十五天。经理为二十天！是否可以结转？可以；最多五天。"
    assert split_sentences(text) == [
        "年假为十五天。",
        "经理为二十天！",
        "是否可以结转？",
        "可以；",
        "最多五天。",
    ]


def test_english_sentences_split_but_abbreviations_followed_by_lowercase_do_not():
    assert split_sentences("Leave is 15 days. Managers get 20 days, e.g. team leads.") == [
        "Leave is 15 days.",
        "Managers get 20 days, e.g. team leads.",
    ]


def test_chunks_respect_the_token_budget(count):
    sentence = "员工每年享有十五天带薪年假，年假按月累计，入职当年按比例折算。"
    doc = Document("手册", [Block(sentence * 40)])
    chunks = split_document(doc, count, chunk_tokens=64, overlap_tokens=0)
    assert len(chunks) > 5
    assert all(count(c.text) <= 64 + 4 for c in chunks)
    # Splits fall on sentence ends, never inside a sentence.
    assert all(c.text.endswith("。") for c in chunks)
    assert [c.position for c in chunks] == list(range(len(chunks)))


def test_headings_stay_with_their_text_and_name_the_section(count):
    doc = Document(
        "Handbook",
        [
            Block("Handbook", "title", level=0),
            Block("Leave", "title", level=1),
            Block("Annual leave is 15 days."),
            Block("Travel", "title", level=1),
            Block("Hotels are capped at USD 180 per night."),
        ],
    )
    chunks = split_document(doc, count, chunk_tokens=12, overlap_tokens=0)
    travel = [c for c in chunks if "USD 180" in c.text]
    assert travel and travel[0].section == "Handbook > Travel"
    assert travel[0].text.startswith("Travel")
    # No chunk ends with a heading cut off from the text it introduces.
    assert not any(c.text.endswith(("Leave", "Travel")) for c in chunks)


def test_table_pieces_repeat_the_header(count):
    rows = [["Office", "City", "Headcount"]] + [
        [f"Office {i}", "Shanghai", str(i)] for i in range(60)
    ]
    doc = Document("Directory", [Block("\n".join(" | ".join(r) for r in rows), "table", rows=rows)])
    chunks = split_document(doc, count, chunk_tokens=64, overlap_tokens=0)
    assert len(chunks) > 3
    assert all(c.text.startswith("Office | City | Headcount") for c in chunks)
    body_rows = [line for c in chunks for line in c.text.split("\n")[1:]]
    assert len(body_rows) == 60  # every row exactly once


def test_page_changes_end_a_chunk(count):
    doc = Document("Report", [Block("Page one text.", page=1), Block("Page two text.", page=2)])
    chunks = split_document(doc, count, chunk_tokens=200, overlap_tokens=0)
    assert [(c.page, c.text) for c in chunks] == [(1, "Page one text."), (2, "Page two text.")]


def test_overlap_repeats_the_last_sentence(count):
    sentences = [f"Fact number {i} is about the office." for i in range(30)]
    doc = Document("Facts", [Block(" ".join(sentences))])
    chunks = split_document(doc, count, chunk_tokens=60, overlap_tokens=15)
    first, second = chunks[0].text.split("\n"), chunks[1].text.split("\n")
    repeated = [n for n in range(1, len(first)) if second[:n] == first[-n:]]
    assert repeated, "the second chunk should start with the first chunk's last sentences"
    assert sum(count(s) for s in second[: repeated[-1]]) <= 15


def test_text_a_parser_called_titles_is_not_lost(count):
    # unstructured labels short Chinese lines as titles; a run of them is really body text.
    doc = Document("培训", [Block(f"第{i}天：培训安排", "title") for i in range(5)])
    chunks = split_document(doc, count, chunk_tokens=200, overlap_tokens=0)
    assert all(f"第{i}天" in "".join(c.text for c in chunks) for i in range(5))
