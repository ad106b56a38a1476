"""Evidence selection and support checks: pure logic on hand-built chunks."""

from kb.answer.evidence import question_coverage, select_evidence, support
from kb.store import Hit


def hit(text: str, title: str = "Handbook", score: float = 0.85) -> Hit:
    return Hit(chunk_id=title, text=text, metadata={"title": title, "source": title}, score=score)


def count(text: str) -> int:
    return len(text.split()) + sum(1 for c in text if "\u4e00" <= c <= "\u9fff")


def test_the_sentence_that_answers_ranks_first():
    hits = [
        hit(
            "The office opens at 08:00. Annual leave is 15 days for employees. "
            "Managers receive 20 days of annual leave. Parking is free."
        )
    ]
    evidence = select_evidence("How many days of annual leave do managers get?", hits, 200, count)
    best = max(evidence.sentences, key=lambda s: s.score)
    assert best.text == "Managers receive 20 days of annual leave."


def test_budget_and_sentence_limit_are_respected():
    hits = [hit(" ".join(f"Leave rule {i} says something about leave." for i in range(40)))]
    evidence = select_evidence("leave rule", hits, 30, count, max_sentences=3)
    assert len(evidence.sentences) <= 3
    assert sum(count(s.text) + 2 for s in evidence.sentences) <= 30


def test_duplicate_sentences_across_chunks_are_quoted_once():
    text = "Managers receive 20 days of annual leave."
    evidence = select_evidence("managers annual leave", [hit(text), hit(text, "Copy")], 200, count)
    assert [s.text for s in evidence.sentences].count(text) == 1


def test_coverage_is_low_when_the_documents_never_mention_the_topic():
    hits = [
        hit(
            "Northwind Logistics reported revenue growth in 2021. Its CEO changed in May.",
            "Northwind annual report",
        )
    ]
    asked = question_coverage(
        "What was the return on equity of Northwind in 2021?", [hits[0].text], hits
    )
    covered = question_coverage(
        "When did the CEO of Northwind change in 2021?", [hits[0].text], hits
    )
    assert asked < 0.6 < covered


def test_chinese_coverage_uses_characters_not_cross_word_bigrams():
    hits = [hit("工牌是员工进出办公楼和会议室时使用的身份凭证。", "工牌")]
    assert question_coverage("工牌是什么？", [hits[0].text], hits) == 1.0


def test_support_accepts_copied_answers_and_rejects_invented_ones():
    source = "The hotel cap is USD 180 per night in tier-1 cities and USD 130 elsewhere."
    assert support("USD 130 per night elsewhere [1]", source) == 1.0
    assert support("The hotel cap is USD 250 per night", source) < 0.5
    assert support("Contact John Smith in legal", source) < 0.5


def test_support_in_chinese():
    source = "住宿标准一线城市每晚不超过1200元，其他城市每晚不超过800元。"
    assert support("一线城市每晚不超过1200元", source) == 1.0
    assert support("一线城市每晚不超过2000元", source) < 0.5


def test_a_question_about_two_subjects_gets_evidence_for_both():
    alpha = hit(
        "Alpha Corp paid a dividend of $5 million in 2018. Alpha Corp raised its dividend "
        "policy target in 2018. The dividend of Alpha Corp was approved by its board in 2018.",
        "Alpha Corp report",
    )
    beta = hit("Beta Ltd paid a dividend of $7 million in 2019.", "Beta Ltd report", score=0.70)
    question = "Compare the dividend of Alpha Corp in 2018 and Beta Ltd in 2019."
    evidence = select_evidence(question, [alpha, beta], 200, count, max_sentences=2)
    texts = [s.text for s in evidence.sentences]
    assert any("Beta" in t for t in texts), texts
    assert len(texts) == 3, "two best sentences plus one covering the other company"
    without = select_evidence(question, [alpha, beta], 200, count, 2, cover_sentences=0)
    assert evidence.coverage > without.coverage
