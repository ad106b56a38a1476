"""The answering chain against the real sample knowledge base and the real bundled default model
(Qwen2.5-Coder-1.5B Q4_K_M, temperature 0, fixed seed)."""

import pytest

from kb.answer import prompts
from kb.answer.chain import AnswerChain, _Turn
from kb.answer.types import Done, StreamedText, Token
from kb.errors import QuestionTooLong
from kb.text import is_cjk


def test_answers_an_english_question_and_cites_the_slide(sample_chain):
    answer = sample_chain.invoke("When does the Singapore office open?")
    assert not answer.refused
    assert "March 2027" in answer.answer
    assert answer.sources[0].source == "en/q3-all-hands.pptx"
    assert answer.sources[0].page == 5
    assert "[1]" in answer.answer


def test_answers_a_chinese_question_in_chinese(sample_chain):
    answer = sample_chain.invoke("员工每年有几天年假？")
    assert not answer.refused
    assert "15" in answer.answer
    assert any(is_cjk(c) for c in answer.answer)
    assert answer.sources[0].source == "zh/员工手册.md"
    assert "15天" in answer.sources[0].snippet


@pytest.mark.parametrize(
    ("question", "language"),
    [
        ("Who won the 2018 football world cup?", "en"),
        ("What is the CEO's favourite colour?", "en"),
        ("公司的股票代码是什么？", "zh"),
    ],
)
def test_refuses_what_the_documents_do_not_hold(sample_chain, question, language):
    answer = sample_chain.invoke(question)
    assert answer.refused
    assert answer.answer == prompts.REFUSAL[language]
    assert answer.sources == []
    assert answer.also_retrieved, "a refusal still lists the nearest documents"


def test_follow_up_retrieves_only_after_rewriting(sample_chain):
    # By meaning alone the follow-up finds nothing about hotels (keyword search happens to
    # match the policy's word "elsewhere", so the point is made with the vector index).
    from kb.retrieve import VectorRetriever

    hybrid = sample_chain.retriever
    vector = VectorRetriever(hybrid.store, hybrid.embeddings, hybrid.collection)
    raw = vector.search("And elsewhere?", 3)
    assert "en/travel-expense-policy.docx" not in [h.source for h in raw.hits[:1]]
    history = [
        {"role": "user", "content": "What is the hotel cap in tier-1 cities?"},
        {
            "role": "assistant",
            "content": "The hotel cap is USD 180 per night in tier-1 cities [1].",
        },
    ]
    answer = sample_chain.invoke("And elsewhere?", history)
    assert answer.standalone_question != "And elsewhere?"
    assert "hotel" in answer.standalone_question.lower()
    assert not answer.refused and "130" in answer.answer
    assert answer.sources[0].source == "en/travel-expense-policy.docx"


def test_streams_tokens_before_the_final_answer(sample_chain):
    events = list(sample_chain.stream("How long must passwords be?"))
    tokens = [e.text for e in events if isinstance(e, Token)]
    assert len(tokens) > 1, "the answer must arrive piece by piece"
    assert isinstance(events[-1], Done)
    final = events[-1].answer
    # Folding the events gives exactly the final answer (tokens, then citations or a
    # replacement), and the model's own words streamed first.
    shown = StreamedText()
    for event in events:
        shown.feed(event)
    assert shown.text.strip() == final.answer
    assert shown.streamed.startswith(final.model_answer)
    assert "14" in final.answer
    timings = final.timings
    assert 0 < timings["first_token_ms"] <= timings["total_ms"]
    assert timings["prompt_tokens"] > 0 and timings["completion_tokens"] > 0


def test_cited_sources_and_also_retrieved_do_not_overlap(sample_chain):
    answer = sample_chain.invoke("What is the meal allowance per day?")
    cited = {s.chunk_id for s in answer.sources}
    others = {s.chunk_id for s in answer.also_retrieved}
    assert cited and not cited & others
    assert [s.n for s in answer.sources] == list(range(1, len(answer.sources) + 1))
    assert answer.evidence and all(q.n <= len(answer.sources) for q in answer.evidence)


def test_history_is_trimmed_to_its_token_budget(sample_chain):
    long_history = [
        {"role": "user", "content": f"Question number {i} about the office?"} for i in range(200)
    ]
    kept = sample_chain._trim_history(long_history)
    assert 0 < len(kept) < len(long_history)
    assert kept[-1] == long_history[-1]
    used = sum(sample_chain.model.count_tokens(t["content"]) + 4 for t in kept)
    assert used <= sample_chain.settings.history_tokens


def test_a_question_longer_than_the_context_is_a_clear_error(sample_settings, open_kb):
    small = sample_settings.model_copy(update={"llm_ctx": 512})
    chain = open_kb(small).chain()
    with pytest.raises(QuestionTooLong, match="too long"):
        chain.invoke("Why " + "really " * 600 + "?")


def test_the_fixed_prefix_is_reused_between_questions(sample_chain):
    """The second question evaluates only its own tokens: llama.cpp's state after the first
    already holds the system prompt, and the chain's prompt starts with exactly it."""
    sample_chain.invoke("How long must passwords be?")
    llama = sample_chain.model.llama
    first = list(llama._input_ids)
    sample_chain.invoke("When does the Singapore office open?")
    second = list(llama._input_ids)
    shared = 0
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        shared += 1
    system_tokens = sample_chain.model.count_tokens(prompts.SYSTEM["en"])
    assert shared >= system_tokens


def _prepared(chain, question: str) -> _Turn:
    turn = _Turn(question=question, history=[], filters=None, started=0.0)
    chain._condense(turn)
    chain._retrieve(turn)
    chain._prepare(turn)
    return turn


def test_the_answer_check_doubts_an_answer_to_another_question(sample_chain):
    """The model's check, on the real model: an answer the sources state passes, an answer to
    another question does not (p(yes) either side of one half), and a figure they never give is
    trusted less than the real one.
    (The 1.5B model's doubt about a wrong figure is not always below one half: an invented
    number is refused by its own gate, tests/test_chain_faults.py.)"""

    state = _prepared(sample_chain, "What is the hotel cap in tier-1 cities?")
    with sample_chain.model.turn():
        faithful = sample_chain._check(state, "The hotel cap is USD 180 per night [1].")
        invented = sample_chain._check(state, "The hotel cap is USD 950 per night [1].")
        other = sample_chain._check(state, "The Singapore office opens in March 2027 [1].")
    assert faithful >= 0.5 > other
    assert faithful > invented
    assert state.diagnostics["check_ms"] > 0


def test_the_answer_check_reuses_the_evaluated_answer_prompt(sample_chain, monkeypatch):
    """The check repeats the answer prompt with the answer appended, so its tokens start with
    what llama.cpp has evaluated for the answer: only the check's own few are new."""
    model = sample_chain.model
    llama = model.llama
    seen: dict[str, list[int]] = {}
    real = model.reply_probs

    def spy(messages, options):
        seen["before"] = list(llama._input_ids)
        result = real(messages, options)
        seen["after"] = list(llama._input_ids)
        return result

    monkeypatch.setattr(model, "reply_probs", spy)
    checked = AnswerChain(
        sample_chain.settings.model_copy(update={"answer_check": True}),
        sample_chain.retriever,
        model,
    )
    answer = checked.invoke("How long must passwords be?")
    assert not answer.refused and "p_checked" in answer.diagnostics
    before, after = seen["before"], seen["after"]
    pairs = enumerate(zip(before, after, strict=False))
    shared = next((i for i, (a, b) in pairs if a != b), len(before))
    answer_tokens = answer.timings["completion_tokens"]
    # Shared: the whole prompt but its closing template tokens (the answer follows those).
    assert shared >= len(before) - answer_tokens - 12
    assert len(after) - shared < 120


def test_below_the_threshold_the_model_cannot_start_with_not_found(sample_chain):
    """The first step's probability of "NOT FOUND" is recorded; below `suppress_reply_below`
    the reply cannot start with it, whatever greedy decoding would have picked."""
    from langchain_core.messages import HumanMessage, SystemMessage

    from kb.models.llm import Usage

    model = sample_chain.model
    messages = [
        SystemMessage(prompts.SYSTEM["en"]),
        HumanMessage(
            prompts.USER["en"].format(
                sources="[1] Canteen: The canteen serves lunch from 12:00 to 14:00.",
                question="What is the CEO's favourite colour?",
            )
        ),
    ]

    def reply(suppress: float | None) -> tuple[str, float | None]:
        usage = Usage()
        with model.turn():
            text = "".join(
                model.stream(
                    messages,
                    max_tokens=12,
                    stop=["\n"],
                    usage=usage,
                    watch_reply=prompts.NOT_FOUND["en"],
                    suppress_reply_below=suppress,
                )
            )
        return text.strip(), usage.first_token_prob

    free, p_free = reply(None)
    assert free.startswith("NOT FOUND") and p_free is not None and p_free > 0.5
    forced, p_forced = reply(1.01)
    assert not forced.startswith("NOT")
    # The same first step (up to what llama.cpp reuses from its cache).
    assert p_forced is not None and abs(p_forced - p_free) < 0.02


def test_the_small_model_is_not_asked_to_check_its_answers(sample_settings, open_kb):
    """The 0.5B model's check doubted nearly every good answer (bench/results): it is skipped,
    while the default model's check runs."""
    small = open_kb(sample_settings.model_copy(update={"llm_model": "qwen2.5-0.5b"})).chain()
    answer = small.invoke("What is the hotel cap in tier-1 cities?")
    assert small.settings.answer_check
    assert not answer.refused and "p_checked" not in answer.diagnostics
    default = open_kb(sample_settings).chain()
    checked = default.invoke("What is the hotel cap in tier-1 cities?")
    assert not checked.refused and "p_checked" in checked.diagnostics
