"""Scoring functions of `kb eval` on hand-written cases whose results were worked out by hand."""

from __future__ import annotations

import random

import numpy as np
import pytest

from kb.eval.metrics import (
    answer_contained,
    citation_precision,
    hit_at_k,
    matches_gold,
    normalize_text,
    parse_gold_id,
    percentile,
    reciprocal_rank,
    token_f1,
    tokens,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("《红楼梦》", "红楼梦"),
        ("１２３，４５６。", "123456"),
        ("Ｔｈｅ  Quick， Brown\tFox！", "quick brown fox"),
        ("U.S. 1,577", "us 1577"),
        ("An apple a day", "apple day"),
        ("这 是 “测试”", "这是测试"),
        ("136 次", "136次"),
        ("威廉·琼斯（英国）：学者", "威廉琼斯英国学者"),
        ("theory, another", "theory another"),
        ("$1,577.00 + 5%", "157700 5"),
    ],
)
def test_normalize_text(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


def test_tokens_split_cjk_per_character_and_latin_per_word() -> None:
    expected = ["北", "京", "大", "学", "in", "2010", "年", "capital"]
    assert tokens("北京大学 in 2010年, the Capital!") == expected


def test_full_width_answer_matches_half_width_prediction() -> None:
    assert answer_contained("答案是123元。", ["１２３"])
    assert answer_contained("答案是１２３元", ["123"])


def test_title_marks_do_not_matter() -> None:
    assert answer_contained("红楼梦", ["《红楼梦》"])
    assert answer_contained("是《红楼梦》。", ["红楼梦"])
    assert not answer_contained("红楼", ["《红楼梦》"])


def test_english_containment_ignores_case_articles_and_punctuation() -> None:
    assert answer_contained("It was Kawann Short, I think.", ["kawann short"])
    assert answer_contained("They won the Super Bowl.", ["a super bowl"])
    assert not answer_contained("Kawann Long", ["Kawann Short"])


def test_long_predictions_never_count() -> None:
    exactly_300 = "x" * 298 + "锣鼓"
    assert answer_contained(exactly_300, ["锣鼓"])
    assert not answer_contained("x" + exactly_300, ["锣鼓"])
    assert not answer_contained("锣鼓" * 200, ["锣鼓"])
    assert answer_contained("锣鼓" * 200, ["锣鼓"], max_chars=400)


def test_length_limit_is_measured_after_nfkc() -> None:
    # "ｘ" is one character either way, but "㎞" expands to "km" under NFKC.
    assert answer_contained("ｘ" * 298 + "锣鼓", ["锣鼓"])
    assert not answer_contained("㎞" * 150 + "锣鼓", ["锣鼓"])


def test_answer_sets_need_every_part() -> None:
    sets = [["汉语", "法语", "英语"]]
    assert not answer_contained("用汉语和法语教学", [], sets)
    assert answer_contained("用英语、汉语和法语教学", [], sets)
    assert answer_contained("创办于2010年", [], [["2011"], ["2010年"]])


def test_empty_answers_never_match() -> None:
    assert not answer_contained("anything at all", [""])
    assert not answer_contained("anything at all", ["。", "the"])
    assert not answer_contained("anything at all", [], [[], ["", "！"]])
    assert not answer_contained("", ["x"])


def test_token_f1_english_by_hand() -> None:
    # pred tokens: cat sat on mat (4); gold: cat on mat (3); overlap 3 -> P 3/4, R 1 -> F1 6/7
    assert token_f1("The cat sat on the mat.", ["A cat on the mat"]) == pytest.approx(6 / 7)


def test_token_f1_chinese_by_hand_takes_best_answer() -> None:
    # vs 清华大学: overlap 大学 -> P = R = 1/2 -> 0.5; vs 北京: P 2/4, R 1 -> 2/3
    assert token_f1("北京大学", ["清华大学"]) == pytest.approx(0.5)
    assert token_f1("北京大学", ["清华大学", "北京"]) == pytest.approx(2 / 3)


def test_token_f1_counts_repeated_tokens_once_each() -> None:
    # overlap 1 (gold has one 好) -> P 1/2, R 1 -> 2/3
    assert token_f1("好好", ["好"]) == pytest.approx(2 / 3)


def test_token_f1_without_usable_answers_is_zero() -> None:
    assert token_f1("北京", []) == 0.0
    assert token_f1("北京", ["。"]) == 0.0
    assert token_f1("", ["北京"]) == 0.0
    assert token_f1("北京", ["北京"]) == 1.0


def test_parse_gold_id() -> None:
    assert parse_gold_id("3M_2018_10K-p059") == ("3M_2018_10K", 59)
    assert parse_gold_id("Foo-p000") == ("Foo", 0)
    assert parse_gold_id("cmrc-DEV_1") == ("cmrc-DEV_1", None)
    assert parse_gold_id("domainrag-152-e5e6ee5d58") == ("domainrag-152-e5e6ee5d58", None)


def test_page_level_gold_is_zero_based() -> None:
    gold = ["Foo_10K-p059"]
    assert matches_gold("docs/Foo_10K.pdf", 60, gold)
    assert not matches_gold("docs/Foo_10K.pdf", 59, gold)
    assert not matches_gold("docs/Foo_10K.pdf", None, gold)
    assert not matches_gold("docs/Bar_10K.pdf", 60, gold)


def test_document_level_gold_ignores_page_and_folders() -> None:
    assert matches_gold("cmrc2018/docs/cmrc-DEV_1.md", None, ["cmrc-DEV_1"])
    assert matches_gold("docs\\cmrc-DEV_1.md", 3, ["x", "cmrc-DEV_1"])
    assert not matches_gold("cmrc2018/docs/cmrc-DEV_10.md", None, ["cmrc-DEV_1"])
    assert not matches_gold("cmrc2018/docs/cmrc-DEV_1.md", None, [])


def test_file_named_like_a_page_id_matches() -> None:
    assert matches_gold("pages/Foo_10K-p059.md", None, ["Foo_10K-p059"])


def _doc(stem: str, page: int | None = None) -> dict:
    return {"source": f"set/docs/{stem}.md", "page": page}


def test_hit_at_k_and_reciprocal_rank_on_ranked_list() -> None:
    retrieved = [_doc("a"), _doc("b"), _doc("gold"), _doc("gold2")]
    gold = ["gold", "gold2"]
    assert not hit_at_k(retrieved, gold, 2)
    assert hit_at_k(retrieved, gold, 3)
    assert reciprocal_rank(retrieved, gold) == pytest.approx(1 / 3)
    assert reciprocal_rank(retrieved, gold, k=2) == 0.0
    assert reciprocal_rank([], gold) == 0.0
    assert reciprocal_rank([_doc("gold2")], gold) == 1.0


def test_citation_precision() -> None:
    assert citation_precision([_doc("g"), _doc("x")], ["g"]) == 0.5
    assert citation_precision([_doc("g")], ["g"]) == 1.0
    assert citation_precision([], ["g"]) is None


def test_percentile_by_hand_and_against_numpy() -> None:
    assert percentile([4, 1, 3, 2], 50) == pytest.approx(2.5)
    assert percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)
    assert percentile([None, 5.0], 95) == 5.0
    assert percentile([], 50) is None
    assert percentile([None], 50) is None
    rng = random.Random(7)
    values = [rng.uniform(0, 1000) for _ in range(37)]
    for q in (0, 10, 50, 95, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_context_rank_finds_the_first_chunk_holding_a_short_answer() -> None:
    from kb.eval.metrics import context_rank

    texts = ["The plant opened in 1998.", "Its budget is 4,172,305 euros.", "预算为四百万欧元。"]
    assert context_rank(texts, ["4,172,305"]) == 2
    assert context_rank(texts, ["1998"]) == 1
    assert context_rank(texts, ["2001"]) is None
    # Every part of an answer set must be in one chunk.
    assert context_rank(texts, [], [["budget", "euros"]]) == 2
    assert context_rank(texts, [], [["1998", "euros"]]) is None


def test_long_free_form_answers_are_not_looked_for_in_context() -> None:
    from kb.eval.metrics import SHORT_ANSWER_CHARS, context_rank, short_answers

    long_answer = "x" * (SHORT_ANSWER_CHARS + 1)
    assert short_answers([long_answer]) == ([], [])
    assert context_rank([long_answer], [long_answer]) is None
    assert short_answers(["  ", "Paris"]) == (["paris"], [])
