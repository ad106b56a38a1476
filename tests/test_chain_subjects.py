"""Questions that name subjects (companies), through the real chain: real Chroma, the bundled
embedding model and the bundled default GGUF model, on invented company reports."""

from pathlib import Path

import pytest

from kb.answer.policy import RefusalPolicy
from kb.app import KnowledgeBase
from kb.config import Settings

MIN_SUBJECT_COVERAGE = RefusalPolicy.calibrated().min_subject_coverage

REPORTS = {
    "northwind.md": "# Northwind Trading Ltd.\n\n"
    "Northwind Trading Ltd. is a wholesaler of kitchen equipment founded in 2009 in York. "
    "In March 2022, Northwind Trading Ltd. opened a warehouse in Leeds. "
    "In August 2022, the company refinanced its bank loans, lowering interest costs by "
    "4 million pounds. Revenue for 2022 was 120 million pounds.\n",
    "bluefin.md": "# Bluefin Analytics\n\n"
    "Bluefin Analytics is a data consultancy founded in 2015 in Bristol. "
    "In August 2022, Bluefin Analytics appointed Priya Raman as its new CFO. "
    "In November 2022, Bluefin Analytics opened an office in Cardiff. "
    "Revenue for 2022 was 18 million pounds.\n",
    "harbor.md": "# Harbor Logistics Group\n\n"
    "Harbor Logistics Group runs container depots in three ports. "
    "In May 2022, Harbor Logistics Group bought forty electric trucks. "
    "Its safety record improved in 2022, with no lost-time accidents.\n",
}


@pytest.fixture(scope="module")
def reports(tmp_path_factory, models) -> KnowledgeBase:
    folder: Path = tmp_path_factory.mktemp("reports")
    for name, text in REPORTS.items():
        (folder / name).write_text(text, encoding="utf-8")
    settings = Settings(home=tmp_path_factory.mktemp("reports-kb"))
    knowledge = KnowledgeBase(settings, models=models)
    summary = knowledge.ingest([folder])
    assert not summary.failed
    yield knowledge
    knowledge.close()


def test_a_question_answered_only_for_another_subject_is_refused(reports):
    # Northwind's report has August 2022 and Bluefin's has a CFO appointed in August 2022:
    # together they cover every word of the question, yet nothing says who Northwind's CFO is.
    chain = reports.chain()
    answer = chain.invoke("Who was appointed CFO of Northwind Trading Ltd. in August 2022?")
    assert answer.refused and answer.refusal_reason == "subject_not_covered"
    assert "Priya" not in answer.answer
    assert answer.diagnostics["subject_coverage"] < MIN_SUBJECT_COVERAGE


def test_a_question_about_its_subject_is_answered(reports):
    chain = reports.chain()
    answer = chain.invoke("When did Northwind Trading Ltd. open a warehouse in Leeds?")
    assert not answer.refused
    assert "March 2022" in answer.answer
    assert answer.sources[0].source == "northwind.md"
    assert answer.diagnostics["subject_coverage"] >= MIN_SUBJECT_COVERAGE


def test_a_comparison_retrieves_every_subject(reports, open_kb):
    # With one chunk per search, only asking once per subject can bring back both reports.
    settings = reports.settings.model_copy(update={"top_k": 1})
    chain = open_kb(settings).chain()
    question = "Compare the 2022 revenue of Northwind Trading Ltd. and Bluefin Analytics."
    single = chain.retriever.search(question, 1)
    assert len(single.hits) == 1
    answer = chain.invoke(question)
    retrieved = {s.source for s in answer.sources + answer.also_retrieved}
    assert retrieved == {"northwind.md", "bluefin.md"}
    assert not answer.refused
    assert "120" in answer.answer or "18" in answer.answer
