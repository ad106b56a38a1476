"""Chinese questions: constraints (year, edition) and subjects the answer's passage must state,
near misses refused with the related passage shown, and follow-ups that stay fast and on topic.

Invented documents, ingested once (real Chroma, real embeddings). The chain's logic is driven by
the named fake chat model; two tests ask the real GGUF model."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb.answer.constraints import compare, constraints
from kb.answer.followup import (
    conversation_subjects,
    leans_on_subjects,
    needs_history,
    swapped_constraint,
    with_subjects,
)
from kb.answer.policy import RefusalPolicy
from kb.answer.subjects import checkable_subjects, chinese_subjects
from kb.answer.types import Refused
from kb.models.fake import FakeChatModel, last_user_text

DOCS = {
    "北辰集团2022年报摘要.md": "# 北辰集团2022年报摘要\n\n"
    "北辰集团2022年营业收入为128亿元，同比增长12%。北辰集团总部位于江州市。",
    "南岭集团经营简报.md": "# 南岭集团经营简报\n\n南岭集团2021年营业收入为85亿元，净利润为9亿元。",
    "南湖读书节.md": "# 南湖读书节\n\n"
    "南湖市第六届读书节于2021年5月在南湖公园举办，共有三万人参加。",
}
YEAR_MISS = "2021年北辰集团的营业收入是多少？"
RIGHT_YEAR = "2022年北辰集团的营业收入是多少？"


@pytest.fixture(scope="session")
def zh_home(tmp_path_factory, models) -> Path:
    from kb.app import KnowledgeBase
    from kb.config import Settings

    docs = tmp_path_factory.mktemp("zh-docs")
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    home = tmp_path_factory.mktemp("zh-kb")
    with KnowledgeBase(Settings(home=home), models=models) as knowledge:
        assert not knowledge.ingest([docs]).failed
    return home


@pytest.fixture
def zh_kb(zh_home, open_kb):
    from kb.config import Settings

    def build(model=None, policy=None):
        return open_kb(Settings(home=zh_home), chat_model=model, policy=policy)

    return build


def citing(*needles: str):
    """A fake reply: the figure, citing the prompt's source line that holds every needle."""

    def reply(messages) -> str:
        for line in last_user_text(messages).splitlines():
            if line.startswith("[") and all(n in line for n in needles):
                number = line[1 : line.index("]")]
                return f"{needles[-1]} [{number}]"
        return "无法回答"

    return reply


# --- pure logic ----------------------------------------------------------------------------------


def test_constraints_read_chinese_years_quarters_halves_and_editions():
    text = "华为2021财年上半年、第三季度和第七届大会，2000人"
    found = {(c.kind, c.value) for c in constraints(text)}
    assert found == {("year", "2021"), ("half", "1"), ("quarter", "3"), ("ordinal:届", "7")}
    assert {(c.kind, c.value) for c in constraints("2021年11月，第3艘")} == {
        ("year", "2021"),
        ("month", "11"),
        ("ordinal:艘", "3"),
    }


def test_a_passage_stating_only_the_neighbouring_year_is_a_near_miss():
    (miss,) = compare(YEAR_MISS, ["北辰集团2022年营业收入为128亿元"])
    assert miss.near_miss and [c.value for c in miss.stated] == ["2022"]
    assert compare(YEAR_MISS, ["2021年和2022年的营业收入分别为……"]) == []
    (unstated,) = compare(YEAR_MISS, ["北辰集团营业收入为128亿元"])
    assert not unstated.near_miss


def test_chinese_subjects_come_from_the_tagger_and_organisation_suffixes():
    assert chinese_subjects("中国人民大学文学院前身是什么") == ["中国人民大学", "文学院"]
    assert chinese_subjects(YEAR_MISS) == ["北辰"]
    assert chinese_subjects("远航科技公司的CEO是谁") == ["远航"]


def test_only_names_the_segmenter_is_sure_of_are_checked_in_the_answers_passage():
    # The guesser's mis-cuts (布发源 glued to a verb, 高华是 to the copula) name nothing a
    # passage could repeat; the dictionary's names, and names with sure boundaries, stay.
    assert checkable_subjects("扎加藏布发源于哪座山？", "zh") == []
    assert checkable_subjects("尼高·高华是哪国人？", "zh") == []
    assert checkable_subjects(YEAR_MISS, "zh") == ["北辰"]
    assert checkable_subjects("毕加索的作品曾受到哪位好友自杀的影响？", "zh") == ["毕加索"]
    # A real name the guesser found still serves retrieval and follow-ups.
    assert chinese_subjects("耶伦访华时间") == ["耶伦"]


def test_follow_ups_are_told_from_new_topics_without_the_model():
    assert needs_history("那2022年呢？", "zh") and needs_history("它成立于哪一年", "zh")
    assert needs_history("And what are its opening hours?", "en")
    assert not needs_history("南湖市第七届读书节在哪里举办？", "zh")
    assert not needs_history("How many days of annual leave do managers get?", "en")
    assert swapped_constraint(YEAR_MISS, "那2022年呢？") == RIGHT_YEAR
    assert swapped_constraint(YEAR_MISS, "那2022年的净利润呢？") is None
    subjects = conversation_subjects(["中国人民大学文学院前身是什么", "有哪些专业"], "zh")
    assert with_subjects(subjects, "它成立于哪一年", "zh") == "中国人民大学文学院成立于哪一年"
    assert leans_on_subjects("学院有多少位教师？", subjects, "zh")
    assert not leans_on_subjects("南湖市第七届读书节在哪里举办？", subjects, "zh")


# --- the chain, with a fake model ----------------------------------------------------------------


def test_a_near_miss_year_is_refused_with_the_related_figure_shown(zh_kb):
    model = FakeChatModel(citing("北辰", "128亿元"))
    events = list(zh_kb(model).stream(YEAR_MISS))
    answer = events[-1].answer
    assert answer.refused and answer.refusal_reason == "near_miss"
    assert "2021年" in answer.answer and "2022年" in answer.answer and answer.answer.endswith("[1]")
    # The related passage is [1] among the nearest documents and quoted, never the answer.
    assert "北辰集团2022年报摘要" in answer.also_retrieved[0].source
    assert any("128亿元" in q.text for q in answer.evidence)
    refused = next(e for e in events if isinstance(e, Refused))
    assert refused.evidence and refused.reason == "near_miss"


def test_a_near_miss_company_is_refused(zh_kb):
    # The answer's passage states the asked year, but about another company.
    model = FakeChatModel(citing("南岭", "85亿元"))
    answer = zh_kb(model).ask(YEAR_MISS)
    assert answer.refused and answer.refusal_reason == "near_miss"
    assert "北辰" in answer.answer and "南岭集团经营简报" in answer.also_retrieved[0].source


def test_a_near_miss_edition_is_refused(zh_kb):
    model = FakeChatModel(citing("第六届", "南湖公园"))
    answer = zh_kb(model).ask("南湖市第七届读书节在哪里举办？")
    assert answer.refused and answer.refusal_reason == "near_miss"
    assert "第七届" in answer.answer and "第六届" in answer.answer


def test_the_right_year_is_answered(zh_kb):
    model = FakeChatModel(citing("北辰", "128亿元"), p_yes=0.95)
    answer = zh_kb(model).ask(RIGHT_YEAR)
    assert not answer.refused, answer.diagnostics
    assert "128亿元" in answer.answer and "北辰集团2022年报摘要" in answer.sources[0].source


def test_near_miss_gates_can_be_opened(zh_kb):
    model = FakeChatModel(citing("北辰", "128亿元"), p_yes=0.95)
    answer = zh_kb(model, RefusalPolicy.open()).ask(YEAR_MISS)
    assert not answer.refused and answer.diagnostics["near_miss"] == 1


def test_a_topic_switch_is_kept_as_asked_and_costs_no_rewrite(zh_kb):
    model = FakeChatModel(citing("第六届", "南湖公园"))
    history = [
        {"role": "user", "content": RIGHT_YEAR},
        {"role": "assistant", "content": "北辰集团2022年营业收入为128亿元 [1]。"},
    ]
    question = "南湖市第六届读书节在哪里举办？"
    answer = zh_kb(model).ask(question, history)
    assert answer.standalone_question == question
    assert answer.diagnostics["rewrite"] == "kept"
    assert len(model.calls) == 1  # the answer only: no rewrite prompt


# --- the real model ------------------------------------------------------------------------------


def test_real_model_answers_a_chinese_follow_up_and_refuses_a_near_miss(zh_kb):
    knowledge = zh_kb()
    first = knowledge.ask(YEAR_MISS)
    assert first.refused, first.answer
    history = [
        {"role": "user", "content": YEAR_MISS},
        {"role": "assistant", "content": first.answer},
    ]
    follow = knowledge.ask("那2022年呢？", history)
    assert follow.standalone_question == RIGHT_YEAR
    assert not follow.refused, (follow.answer, follow.diagnostics)
    assert "128" in follow.answer and "北辰集团2022年报摘要" in follow.sources[0].source


# An invented biography whose later chunk says 他 for the painter: the answer's chunk does not
# name him, another chunk of the same document does. The title names no one.
PAINTER = (
    "# 画家小传\n\n"
    + "毕加索是江州人，早年在江州美术学校学习油画，后来移居海滨城市南湾。"
    + "毕加索擅长风景画和人物画，作品多次在南湾美术馆展出，受到评论界的关注。" * 6
    + "\n\n"
    + "他一生中最重要的转折发生在青年时期。"
    + "他的好友陈默于1901年自杀，这件事深深影响了他此后几年的创作，画面转向忧郁的蓝色调。" * 2
)


@pytest.fixture(scope="module")
def painter_home(tmp_path_factory, models) -> Path:
    from kb.app import KnowledgeBase
    from kb.config import Settings

    docs = tmp_path_factory.mktemp("painter-docs")
    (docs / "画家小传.md").write_text(PAINTER, encoding="utf-8")
    home = tmp_path_factory.mktemp("painter-kb")
    with KnowledgeBase(Settings(home=home), models=models) as knowledge:
        summary = knowledge.ingest([docs])
    assert not summary.failed and summary.chunks >= 2
    return home


def test_a_subject_named_elsewhere_in_the_cited_document_is_not_another_subject(
    painter_home, open_kb
):
    from kb.config import Settings

    model = FakeChatModel(citing("好友陈默", "陈默"))
    knowledge = open_kb(Settings(home=painter_home), chat_model=model)
    answer = knowledge.ask("毕加索的作品曾受到哪位好友自杀的影响？")
    assert not answer.refused, answer.answer
    assert "陈默" in answer.answer
