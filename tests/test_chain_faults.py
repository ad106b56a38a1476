"""Faults the real model cannot produce on demand, injected with a named fake chat model."""

from collections.abc import Iterator

from kb import prompts
from kb.chain import AnswerChain
from kb.models.llm import ChatModel


class FakeInventingModel(ChatModel):
    """A fake: always 'answers' with an invention, as small models do when sources are silent."""

    def __init__(self, reply: str, real: ChatModel) -> None:
        super().__init__(real.chat, "fake", real.context_window)
        self.reply = reply

    def stream(
        self,
        messages,
        max_tokens,
        stop=None,
        grammar=None,
        usage=None,
        watch_reply=None,
        suppress_reply_below=None,
    ) -> Iterator[str]:
        yield from (self.reply[i : i + 4] for i in range(0, len(self.reply), 4))


def test_an_unsupported_answer_is_replaced_by_quoted_evidence(sample_settings, sample_chain):
    fake = FakeInventingModel(
        "The hotel cap is USD 950 per night, set by John Smith [1].", sample_chain.model
    )
    chain = AnswerChain(sample_settings, sample_chain.retriever, fake)
    events = list(chain.stream("What is the hotel cap in tier-1 cities?"))
    streamed = "".join(e["text"] for e in events if e["type"] == "token")
    answer = events[-1]["answer"]
    assert "950" in streamed, "the invention was streamed, then withdrawn"
    assert answer.refused and answer.refusal_reason == "unsupported"
    assert answer.answer == prompts.REFUSAL["en"]
    assert "950" not in answer.answer
    assert any("180" in q["text"] for q in answer.evidence), "the real figure is quoted"


def test_a_model_that_says_not_found_is_a_refusal(sample_settings, sample_chain):
    fake = FakeInventingModel("NOT FOUND", sample_chain.model)
    chain = AnswerChain(sample_settings, sample_chain.retriever, fake)
    answer = chain.invoke("What is the hotel cap in tier-1 cities?")
    assert answer.refused and answer.refusal_reason == "not_in_sources"


class FakeDoubtingModel(FakeInventingModel):
    """A fake: answers like the real model but, asked to check its answer, says no."""

    def reply_probs(self, messages, options):
        return {"yes": 0.05, "no": 0.95}


def test_the_learned_score_decides_after_the_check(sample_settings, sample_chain, monkeypatch):
    """The model's doubt enters the learned score (kb.refusal_score). With the calibrated
    weights, doubt alone does not overturn an answer whose sources cover the question; a score
    that trusts the check alone (a test-only score) refuses it and quotes the sources instead."""
    import kb.chain
    from kb.refusal_score import RefusalScore

    fake = FakeDoubtingModel("The hotel cap is USD 180 per night [1].", sample_chain.model)
    chain = AnswerChain(sample_settings, sample_chain.retriever, fake)  # the check: on
    question = "What is the hotel cap in tier-1 cities?"
    kept = chain.invoke(question)
    assert kept.diagnostics["p_checked"] == 0.05
    assert kept.diagnostics["p_unanswerable"] < kb.chain.REFUSAL_SCORE.threshold
    assert not kept.refused

    check_only = RefusalScore(weights={"p_checked": -10.0}, intercept=5.0, threshold=0.5)
    monkeypatch.setattr(kb.chain, "REFUSAL_SCORE", check_only)
    answer = chain.invoke(question)
    assert answer.refused and answer.refusal_reason == "unsupported"
    assert answer.diagnostics["p_unanswerable"] > 0.5
    assert answer.model_answer.startswith("The hotel cap is USD 180")
    assert any("180" in q["text"] for q in answer.evidence), "the sources' words are quoted"

    off = sample_settings.model_copy(update={"answer_check": False})
    unchecked = AnswerChain(off, sample_chain.retriever, fake)
    not_asked = unchecked.invoke(question)
    assert not not_asked.refused
    assert "p_checked" not in not_asked.diagnostics
    assert "p_unanswerable" not in not_asked.diagnostics
