"""The chain's logic, driven by a named fake chat model (kb.models.fake.FakeChatModel) over the
real sample knowledge base (real Chroma, real embeddings): gates, citations, renumbering and the
stream's events, each branch on demand and in milliseconds. The real GGUF model answers in
tests/test_chain.py."""

from __future__ import annotations

import pytest

from kb.answer import prompts
from kb.answer.policy import RefusalPolicy
from kb.answer.refusal_score import RefusalScore
from kb.answer.types import (
    Done,
    Refused,
    Replace,
    Sources,
    StreamedText,
    Timings,
    Token,
)
from kb.filters import SearchFilter
from kb.models.fake import FakeChatModel, last_user_text

HOTEL = "What is the hotel cap in tier-1 cities?"


@pytest.fixture
def with_model(sample_settings, open_kb):
    """A knowledge base over the samples that answers with the given fake model."""

    def build(model: FakeChatModel, policy: RefusalPolicy | None = None, **settings):
        tuned = sample_settings.model_copy(update=settings) if settings else sample_settings
        return open_kb(tuned, chat_model=model, policy=policy)

    return build


def events_of(knowledge, question: str, **kwargs) -> list:
    return list(knowledge.stream(question, **kwargs))


def kinds(events: list) -> list[str]:
    return [type(e).__name__ for e in events]


def prompt_sources(model: FakeChatModel) -> list[str]:
    """The numbered source lines of the last answer prompt the fake received."""
    text = last_user_text(model.calls[-1])
    return [line for line in text.splitlines() if line.startswith("[")]


def test_citations_are_renumbered_over_the_cited_sources(with_model):
    model = FakeChatModel(lambda m: "The cap is USD 180 per night [2].")
    knowledge = with_model(model)
    events = events_of(knowledge, HOTEL)
    answer = events[-1].answer
    lines = prompt_sources(model)
    assert len(lines) >= 2, "the sample question draws on at least two sources"
    assert answer.answer == "The cap is USD 180 per night [1]."
    # Source 1 of the answer is what the prompt called source 2.
    cited_title = lines[1].split("]", 1)[1].split(":", 1)[0].strip()
    assert answer.sources[0].n == 1 and answer.sources[0].title == cited_title
    assert not {s.chunk_id for s in answer.sources} & {s.chunk_id for s in answer.also_retrieved}
    # The streamed "[2]" cannot stand, so the text is replaced rather than extended.
    assert kinds(events) == ["Token"] * kinds(events).count("Token") + [
        "Replace",
        "Sources",
        "Timings",
        "Done",
    ]
    assert events[kinds(events).index("Replace")].text == answer.answer


def test_an_answer_without_citation_cites_its_best_source(with_model):
    model = FakeChatModel("Hotels are capped at USD 180 per night in tier-1 cities")
    answer = with_model(model).ask(HOTEL)
    assert answer.answer.endswith(" [1]")
    assert answer.sources[0].source == "en/travel-expense-policy.docx"


def test_only_an_added_citation_streams_as_one_more_token(with_model):
    model = FakeChatModel("Hotels are capped at USD 180 per night in tier-1 cities")
    events = events_of(with_model(model), HOTEL)
    tokens = [e.text for e in events if isinstance(e, Token)]
    assert tokens[-1] == " [1]" and "Replace" not in kinds(events)
    shown = StreamedText()
    for event in events:
        shown.feed(event)
    assert shown.text == events[-1].answer.answer


def test_an_unrelated_question_is_refused_before_the_model_runs(with_model):
    model = FakeChatModel("Anything at all [1].")
    events = events_of(with_model(model), "Who won the 2018 football world cup?")
    assert model.calls == [], "the model is never asked"
    assert kinds(events) == ["Refused", "Sources", "Timings", "Done"]
    refused = events[0]
    assert refused.reason == "no_relevant_documents"
    assert refused.message == prompts.REFUSAL["en"]
    assert events[1].cited == () and events[1].also_retrieved, "the nearest documents remain"


def test_the_open_policy_lets_the_same_question_reach_the_model(with_model):
    model = FakeChatModel("Brazil [1].")
    answer = with_model(model, RefusalPolicy.open()).ask("Who won the 2018 football world cup?")
    assert model.calls, "with every gate open the model answers"
    assert answer.diagnostics["relevance"] is not None and "coverage" in answer.diagnostics


def test_a_confident_not_found_refuses_at_the_first_token(with_model):
    model = FakeChatModel("The cap is USD 180 [1].", p_not_found=0.9)
    events = events_of(with_model(model), HOTEL)
    assert not any(isinstance(e, Token) for e in events), "nothing is streamed"
    assert isinstance(events[0], Refused) and events[0].reason == "not_in_sources"
    assert events[-1].answer.diagnostics["p_not_found"] == 0.9


def test_an_invented_figure_is_withdrawn_and_the_sources_quoted(with_model):
    model = FakeChatModel("The hotel cap is USD 950 per night, set by John Smith [1].")
    events = events_of(with_model(model), HOTEL)
    streamed = "".join(e.text for e in events if isinstance(e, Token))
    refused = next(e for e in events if isinstance(e, Refused))
    answer = events[-1].answer
    assert "950" in streamed, "the invention was streamed, then withdrawn"
    assert refused.reason == "unsupported" and answer.answer == prompts.REFUSAL["en"]
    assert any("180" in q.text for q in refused.evidence), "the real figure is quoted"
    assert answer.diagnostics["invented_numbers"] >= 1


def test_a_model_that_says_not_found_is_a_refusal(with_model):
    answer = with_model(FakeChatModel("NOT FOUND")).ask(HOTEL)
    assert answer.refused and answer.refusal_reason == "not_in_sources"


def test_the_learned_score_decides_after_the_check(with_model):
    """The model's doubt enters the learned score. With the calibrated weights, doubt alone does
    not overturn an answer whose sources cover the question; a policy whose score trusts the
    check alone refuses it and quotes the sources instead."""
    doubting = FakeChatModel("The hotel cap is USD 180 per night [1].", p_yes=0.05)
    calibrated = RefusalPolicy.calibrated()
    kept = with_model(doubting).ask(HOTEL)
    assert kept.diagnostics["p_checked"] == 0.05
    assert kept.diagnostics["p_unanswerable"] < calibrated.score.threshold
    assert not kept.refused

    check_only = RefusalScore(weights={"p_checked": -10.0}, intercept=5.0, threshold=0.5)
    strict = RefusalPolicy(score=check_only)
    answer = with_model(doubting, strict).ask(HOTEL)
    assert answer.refused and answer.refusal_reason == "unsupported"
    assert answer.diagnostics["p_unanswerable"] > 0.5
    assert answer.model_answer.startswith("The hotel cap is USD 180")
    assert any("180" in q.text for q in answer.evidence), "the sources' words are quoted"

    not_asked = with_model(doubting, strict, answer_check=False).ask(HOTEL)
    assert not not_asked.refused
    assert "p_checked" not in not_asked.diagnostics


def test_filters_reach_every_search_of_the_chain(with_model):
    model = FakeChatModel("Something [1].")
    knowledge = with_model(model, RefusalPolicy.open())
    only_zh = SearchFilter.of(folders=["zh"])
    answer = knowledge.ask(HOTEL, filters=only_zh)
    retrieved = answer.sources + answer.also_retrieved
    assert retrieved and all(s.source.startswith("zh/") for s in retrieved)


def test_a_follow_up_is_rewritten_from_the_conversation(with_model):
    def reply(messages):
        if str(messages[0].content) == prompts.CONDENSE_SYSTEM["en"]:
            return "What is the hotel cap elsewhere, outside tier-1 cities?"
        return "USD 130 per night [1]."

    model = FakeChatModel(reply)
    history = [
        {"role": "user", "content": HOTEL},
        {"role": "assistant", "content": "USD 180 per night [1]."},
    ]
    answer = with_model(model).ask("And elsewhere?", history)
    condense = last_user_text(model.calls[0])
    assert HOTEL in condense and "And elsewhere?" in condense
    assert answer.standalone_question == "What is the hotel cap elsewhere, outside tier-1 cities?"
    assert "tier-1" in last_user_text(model.calls[1])


def test_a_rewrite_that_lost_the_question_falls_back_to_both_questions(with_model):
    def reply(messages):
        if str(messages[0].content) == prompts.CONDENSE_SYSTEM["en"]:
            return "I like trains."
        return "USD 130 per night [1]."

    history = [
        {"role": "user", "content": HOTEL},
        {"role": "assistant", "content": "USD 180 per night [1]."},
    ]
    answer = with_model(FakeChatModel(reply)).ask("And elsewhere?", history)
    assert answer.standalone_question == f"{HOTEL} And elsewhere?"


def test_timings_and_sources_events_carry_the_answer_s_values(with_model):
    events = events_of(with_model(FakeChatModel("USD 180 per night [1].")), HOTEL)
    sources = next(e for e in events if isinstance(e, Sources))
    timings = next(e for e in events if isinstance(e, Timings))
    done = events[-1]
    assert isinstance(done, Done)
    assert list(sources.cited) == done.answer.sources
    assert timings.values == done.answer.timings
    assert timings.values["first_token_ms"] <= timings.values["total_ms"]


def test_trace_keeps_the_retrieved_chunks_and_evidence(with_model):
    answer = with_model(FakeChatModel("USD 180 per night [1].")).ask(HOTEL, trace=True)
    assert answer.trace["hits"] and answer.trace["evidence"]
    assert {"source", "title", "score", "text"} <= set(answer.trace["hits"][0])
    plain = with_model(FakeChatModel("USD 180 per night [1].")).ask(HOTEL)
    assert plain.trace is None


def test_replace_is_the_only_way_streamed_text_is_taken_back():
    shown = StreamedText()
    shown.feed(Token("Fifteen "))
    shown.feed(Token("days [2]"))
    assert shown.text == "Fifteen days [2]"
    shown.feed(Replace("Fifteen days [1]"))
    assert shown.text == "Fifteen days [1]" and shown.streamed == "Fifteen days [2]"
    shown.feed(Refused("unsupported", "No answer.", "en"))
    assert shown.text == "No answer."
