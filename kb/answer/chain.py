"""The answering chain: question (and conversation) in, grounded answer with citations out.

    condense follow-up → retrieve → gates → evidence → prompt → stream → judge → cite

Each step is a plain method over one typed `_Turn`; the chain streams typed events
(kb.answer.types) and leaves rendering to its caller. LangChain is the interface where users plug
in their own parts: the chat model (kb.models.llm), the embeddings, and the retriever.

A small local model invents answers when the documents are silent, so the chain refuses in the
three places `RefusalPolicy` describes (kb.answer.policy); the policy is a value handed in, so a
calibration run or a test can open or change the gates without touching this module.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from kb.answer import prompts
from kb.answer.citations import cited_numbers, renumber, without_citations
from kb.answer.constraints import compare, constraints
from kb.answer.evidence import (
    Evidence,
    invented_numbers,
    missing_constraints,
    select_evidence,
    support,
)
from kb.answer.followup import (
    conversation_subjects,
    leans_on_subjects,
    needs_history,
    swapped_constraint,
    with_subjects,
)
from kb.answer.guard import addresses_ai, guarded_source
from kb.answer.policy import RefusalPolicy
from kb.answer.subjects import (
    checkable_subjects,
    is_about,
    question_subjects,
    subject_coverage,
    subject_queries,
)
from kb.answer.types import (
    Answer,
    AnswerEvent,
    Done,
    Quote,
    Refused,
    Replace,
    Source,
    Sources,
    Timings,
    Token,
)
from kb.config import Settings
from kb.errors import InputError, QuestionTooLong
from kb.filters import SearchFilter
from kb.models.llm import ChatModel, Usage
from kb.retrieve import Retriever, dedupe
from kb.store import Hit
from kb.text import join_sentences, key_terms, language_of, terms

MAX_SUBJECT_QUERIES = 3  # a question naming more subjects is retrieved for the first three
SYNTHESIS = re.compile(
    r"\b(compare|comparison|summari[sz]e|summary|differences?|both|overall)\b|"
    r"总结|概括|比较|对比|区别|异同|分别",
    re.IGNORECASE,
)
_STOP = ["\n", "<|im_end|>", "Question:", "问题："]


@dataclass
class _Turn:
    """Everything one question accumulates on its way through the chain."""

    question: str
    history: list[dict[str, str]]
    filters: SearchFilter | None
    started: float
    trace: bool = False
    language: str = "en"
    standalone: str = ""
    condense_ms: float = 0.0
    rewrite: str = "none"  # how the question became standalone: none, kept, swap, subjects, model
    # A near miss found after the answer: the message saying what the sources state instead,
    # and the retrieved chunk (hit index) they state it in.
    related: tuple[str, int] | None = None
    answer_text: str = ""
    subjects: list[str] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    retrieve_ms: float = 0.0
    evidence: Evidence | None = None
    refusal: str | None = None  # a reason from kb.answer.types.REFUSAL_REASONS
    diagnostics: dict[str, Any] = field(default_factory=dict)
    numbered: list[int] = field(default_factory=list)  # prompt number n (1-based) -> hit index
    messages: list[BaseMessage] = field(default_factory=list)

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 1)


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
    def __init__(
        self,
        settings: Settings,
        retriever: Retriever,
        model: ChatModel,
        policy: RefusalPolicy | None = None,
        embed_model: str | None = None,
    ) -> None:
        self.settings = settings
        self.retriever = retriever
        self.model = model
        self.policy = policy or RefusalPolicy.calibrated()
        self.min_relevance = self.policy.relevance_floor(
            embed_model or settings.embed_model, settings.min_relevance
        )
        self._grammars: dict[str, Any] = {}

    # --- public ------------------------------------------------------------------------------

    def stream(
        self,
        question: str,
        history: Sequence[dict] | None = None,
        filters: SearchFilter | None = None,
        trace: bool = False,
    ) -> Iterator[AnswerEvent]:
        """The answer as typed events (kb.answer.types), ending with `Done(answer)`.

        `filters` narrows retrieval (every search the chain makes applies it); `trace` keeps the
        retrieved chunks and evidence sentences in `Answer.trace`."""
        turn = _Turn(
            question=question,
            history=[dict(t) for t in history or []],
            filters=filters,
            started=time.perf_counter(),
            trace=trace,
        )
        self._condense(turn)
        self._retrieve(turn)
        self._prepare(turn)
        yield from self._answer(turn)

    def invoke(
        self,
        question: str,
        history: Sequence[dict] | None = None,
        filters: SearchFilter | None = None,
        trace: bool = False,
    ) -> Answer:
        final = None
        for event in self.stream(question, history, filters, trace):
            if isinstance(event, Done):
                final = event.answer
        assert final is not None
        return final

    def standalone(self, question: str, history: Sequence[dict] | None = None) -> str:
        """The question as the chain retrieves it: a follow-up rewritten with its history."""
        turn = _Turn(
            question=question,
            history=[dict(t) for t in history or []],
            filters=None,
            started=time.perf_counter(),
        )
        self._condense(turn)
        return turn.standalone

    def prompt_for(self, question: str) -> list[BaseMessage]:
        """The messages the model would be sent for `question` (benchmarks time them); empty
        when a gate refuses before the model would run."""
        turn = _Turn(question=question, history=[], filters=None, started=time.perf_counter())
        self._condense(turn)
        self._retrieve(turn)
        self._prepare(turn)
        return turn.messages

    # --- condense: a follow-up becomes a standalone question ---------------------------------

    def _trim_history(self, history: list[dict[str, str]]) -> list[dict[str, str]]:
        kept: list[dict[str, str]] = []
        used = 0
        for turn in reversed(history):
            content = str(turn.get("content", ""))
            cost = self.model.count_tokens(content) + 4
            if used + cost > self.settings.history_tokens:
                break
            kept.insert(0, {"role": turn.get("role", "user"), "content": content})
            used += cost
        return kept

    def _condense(self, turn: _Turn) -> None:
        question = turn.question.strip()
        if not question:
            raise InputError("the question is empty")
        turn.language = language_of(question)
        turn.history = self._trim_history(turn.history)
        turn.standalone = question
        if not any(t["role"] == "user" for t in turn.history):
            return
        # Cheap tests first (kb.answer.followup): a question that reads on its own stays as
        # asked, and the common follow-ups are rewritten without the model.
        earlier = [t["content"] for t in turn.history if t["role"] == "user"]
        previous = earlier[-1]
        subjects = conversation_subjects(earlier, turn.language)
        if not (
            needs_history(question, turn.language)
            or leans_on_subjects(question, subjects, turn.language)
        ):
            turn.rewrite = "kept"
            return
        swapped = swapped_constraint(previous, question)
        if swapped:
            turn.standalone, turn.rewrite = swapped, "swap"
            return
        named = with_subjects(subjects, question, turn.language)
        if named:
            turn.standalone, turn.rewrite = named, "subjects"
            return
        started = time.perf_counter()
        names = prompts.ROLE_NAMES[turn.language]
        lines = [f"{names.get(t['role'], t['role'])}: {t['content']}" for t in turn.history]
        messages = [
            SystemMessage(prompts.CONDENSE_SYSTEM[turn.language]),
            HumanMessage(
                prompts.CONDENSE_USER[turn.language].format(
                    history="\n".join(lines), question=question
                )
            ),
        ]
        with self.model.turn():
            rewritten = "".join(self.model.stream(messages, max_tokens=64, stop=["\n"])).strip()
        turn.condense_ms = (time.perf_counter() - started) * 1000
        turn.rewrite = "model"
        # A rewrite that lost the question (empty, or rambling) is worse than none: fall back to
        # the previous question plus this one, which still retrieves the right passage. Only a
        # question that needs its history gets here, so a new topic is never glued to the old.
        turn.standalone = _checked_rewrite(rewritten, question, previous)

    # --- retrieve ----------------------------------------------------------------------------

    def _retrieve(self, turn: _Turn) -> None:
        question, k = turn.standalone, self.settings.top_k
        turn.subjects = question_subjects(question, turn.language)
        # Chinese names are tagged generously (北京, 冬奥会 and 中国队 are three): asking once per
        # name would split one event into three queries, so Chinese questions are asked whole.
        if len(turn.subjects) < 2 or turn.language != "en":
            result = self.retriever.search(question, k, turn.filters)
            turn.hits, turn.retrieve_ms = result.hits, result.retrieve_ms
            return
        # A question about several subjects ("compare A in 2018 and B in 2019") is nearest to
        # whichever subject its wording favours; asked once per subject, each one's passages
        # come back (comparisons of two companies' reports: the second company's report was
        # missing from the top 5 for most of them).
        queries = subject_queries(question, turn.subjects[:MAX_SUBJECT_QUERIES])
        hits: list[Hit] = []
        for query in queries:
            result = self.retriever.search(query, k, turn.filters)
            hits += result.hits
            turn.retrieve_ms += result.retrieve_ms
        hits.sort(key=lambda h: h.score, reverse=True)
        turn.hits = dedupe(hits)[: k * len(queries)]

    # --- gates before the model, evidence and prompt -----------------------------------------

    def _budget(self, turn: _Turn, cap: bool = True) -> int:
        language = turn.language
        fixed = (
            self.model.count_tokens(prompts.SYSTEM[language])
            + self.model.count_tokens(prompts.USER[language].format(sources="", question=""))
            + self.model.count_tokens(turn.standalone)
            + 24
        )
        room = self.model.context_window - fixed - self.settings.max_answer_tokens
        if room < 32:
            raise QuestionTooLong(
                f"the question is too long for the model's context ({self.model.context_window} "
                "tokens): shorten it, or raise KB_LLM_CTX"
            )
        cap_tokens = self.settings.context_tokens
        if language == "zh" and self.settings.context_tokens_zh >= 0:
            cap_tokens = self.settings.context_tokens_zh
        return min(cap_tokens, room) if cap else room

    def _prepare(self, turn: _Turn) -> None:
        policy, hits = self.policy, turn.hits
        budget = self._budget(turn)
        # Relevance is the best cosine similarity among the retrieved chunks: with vector
        # retrieval that is the first hit, as calibrated; with hybrid retrieval the first hit
        # may be a keyword match of lower similarity, and the gate must not read that as "the
        # documents are further away".
        relevance = max((h.score for h in hits), default=None)
        turn.diagnostics = {"relevance": None if relevance is None else round(relevance, 4)}
        if relevance is None or relevance < self.min_relevance:
            turn.refusal = "no_relevant_documents"
            return
        turn.diagnostics["rewrite"] = turn.rewrite
        covered = subject_coverage(turn.standalone, turn.subjects, hits)
        turn.diagnostics["subject_coverage"] = None if covered is None else round(covered, 4)
        # What the question pins its answer to (a year, an edition) that no retrieved passage
        # states: a signal, and for Chinese questions one the learned score reads.
        absent = compare(turn.standalone, [f"{h.metadata.get('title', '')} {h.text}" for h in hits])
        turn.diagnostics["constraints_absent"] = len(absent)
        if covered is not None and covered < policy.subject_threshold(turn.language):
            turn.refusal = "subject_not_covered"
            return
        sentences = self.settings.evidence_sentences
        several = len(turn.subjects) > 1 and turn.language == "en"
        if SYNTHESIS.search(turn.standalone) or several:
            # Comparing, summarising or asking about several subjects needs facts from several
            # places: twice the evidence. (Chinese names are tagged generously, and Chinese
            # questions are asked whole: several names there is one subject more often than not.)
            sentences, budget = 2 * sentences, min(2 * budget, self._budget(turn, cap=False))
        if self.settings.source_guard:
            # Same chunks, same order: only what the model may read of them changes.
            hits = [replace(h, text=guarded_source(h.text)) for h in hits]
        evidence = select_evidence(
            turn.standalone, hits, budget, self.model.count_tokens, max_sentences=sentences
        )
        turn.evidence = evidence
        turn.diagnostics["coverage"] = round(evidence.coverage, 4)
        if evidence.coverage < policy.min_coverage:
            turn.refusal = "no_relevant_documents"
            return
        lines = []
        for hit_index, group in evidence.by_hit().items():
            turn.numbered.append(hit_index)
            title = str(hits[hit_index].metadata.get("title", "")) or hits[hit_index].source
            lines.append(
                prompts.SOURCE_LINE[turn.language].format(
                    n=len(turn.numbered), title=title, text=join_sentences([s.text for s in group])
                )
            )
        turn.messages = [
            SystemMessage(prompts.SYSTEM[turn.language]),
            HumanMessage(
                prompts.USER[turn.language].format(
                    sources="\n".join(lines), question=turn.standalone
                )
            ),
        ]

    # --- generation --------------------------------------------------------------------------

    def _grammar(self, language: str) -> Any | None:
        if language not in self._grammars:
            gbnf = prompts.ANSWER_GRAMMAR.replace("{not_found}", prompts.NOT_FOUND[language])
            self._grammars[language] = self.model.grammar(gbnf)
        return self._grammars[language]

    def _answer(self, turn: _Turn) -> Iterator[AnswerEvent]:
        timings: dict[str, float | int | None] = {
            "retrieve_ms": round(turn.retrieve_ms, 1),
            "first_token_ms": None,
            "total_ms": 0.0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
        }
        if turn.refusal is not None:
            answer = self._refusal(turn, turn.refusal)
            yield from self._close(turn, answer, timings, streamed="")
            return
        usage = Usage()
        text = ""
        not_found = prompts.NOT_FOUND[turn.language]
        threshold = self.policy.max_not_found_prob
        with self.model.turn():
            pieces = self.model.stream(
                turn.messages,
                max_tokens=self.settings.max_answer_tokens,
                stop=_STOP,
                grammar=self._grammar(turn.language) if self.settings.answer_grammar else None,
                usage=usage,
                watch_reply=not_found,
                # Below the threshold the model may not start with "not found": the calibrated
                # threshold decides, above it the chain refuses at the first token.
                suppress_reply_below=threshold,
            )
            for piece in pieces:
                if timings["first_token_ms"] is None:
                    timings["first_token_ms"] = turn.elapsed_ms()
                    prob = usage.first_token_prob
                    turn.diagnostics["p_not_found"] = None if prob is None else round(prob, 4)
                    if prob is not None and prob >= threshold:
                        # The model leans towards "not found": stop before streaming a guess.
                        pieces.close()
                        text = not_found
                        break
                text += piece
                yield Token(piece)
            # Inside the same turn, so the answer check reuses the state this prompt left.
            turn.answer_text = text.strip()
            reason = self._judge(turn, text.strip())
            if reason is None:
                answer = self._cited_answer(turn, text.strip())
            else:
                answer = self._refusal(turn, reason, text.strip())
        timings["prompt_tokens"] = usage.prompt_tokens
        timings["completion_tokens"] = usage.completion_tokens
        streamed = "" if text == not_found and timings["first_token_ms"] else text
        yield from self._close(turn, answer, timings, streamed=streamed)

    def _close(
        self, turn: _Turn, answer: Answer, timings: dict, streamed: str
    ) -> Iterator[AnswerEvent]:
        """The events after generation: what replaces the streamed text, sources, timings."""
        answer.diagnostics = turn.diagnostics
        timings["total_ms"] = turn.elapsed_ms()
        answer.timings = timings
        if turn.trace:
            answer.trace = self._trace(turn)
        if answer.refused:
            yield Refused(
                answer.refusal_reason or "",
                answer.answer,
                answer.language,
                tuple(answer.evidence)
                if answer.refusal_reason in ("unsupported", "near_miss")
                else (),
            )
        else:
            shown = streamed.strip()
            if shown and answer.answer.startswith(shown):
                # Only citations were added to what streamed: send the rest as one more token.
                rest = answer.answer[len(shown) :]
                if rest:
                    yield Token(rest)
            elif answer.answer != shown:
                yield Replace(answer.answer)
        yield Sources(tuple(answer.sources), tuple(answer.also_retrieved), answer.language)
        yield Timings(dict(timings))
        yield Done(answer)

    # --- after generation: judge, then cite --------------------------------------------------

    def _judge(self, turn: _Turn, text: str) -> str | None:
        """Why the answer must be refused after all (a reason), or None to keep it."""
        policy, hits = self.policy, turn.hits
        body = without_citations(text)
        if not body or prompts.NOT_FOUND[turn.language] in text or _says_not_found(body):
            return "not_in_sources"
        if self.settings.source_guard and addresses_ai(body):
            return "unsupported"
        evidence = turn.evidence
        assert evidence is not None
        quoted = [
            (i, f"{hits[i].metadata.get('title', '')} {s.text}", s.text)
            for i, group in evidence.by_hit().items()
            for s in group
        ]
        source_text = "\n".join(titled for _, titled, _ in quoted)
        supported = support(body, source_text, turn.standalone)
        turn.diagnostics["support"] = round(supported, 4)
        if self._near_miss(turn, body):
            return "near_miss"
        cited_text = [body] + [titled for _, titled, plain in quoted if support(plain, body) > 0.3]
        missing = missing_constraints(turn.standalone, cited_text)
        turn.diagnostics["constraints_missing"] = len(missing)
        if missing and policy.missing_constraint_refuses:
            return "unsupported"
        invented = invented_numbers(body, source_text, turn.standalone)
        turn.diagnostics["invented_numbers"] = len(invented)
        if supported < policy.min_support or (invented and policy.invented_number_refuses):
            return "unsupported"
        if self.settings.answer_check and self.model.name not in policy.check_skipped_models:
            turn.diagnostics["p_checked"] = round(self._check(turn, text), 4)
            score = policy.score_for(turn.language)
            if score is not None:
                p_unanswerable = score.probability(turn.diagnostics)
                turn.diagnostics["p_unanswerable"] = round(p_unanswerable, 4)
                if p_unanswerable >= score.threshold:
                    return "unsupported"
        return None

    def _cited_hits(self, turn: _Turn, body: str, text: str) -> list[int]:
        """The retrieved chunks (hit indexes) the answer draws on: those it cites, else the one
        whose evidence it matches best."""
        numbered = turn.numbered
        cited = [numbered[n - 1] for n in cited_numbers(text) if 1 <= n <= len(numbered)]
        return list(dict.fromkeys(cited)) or [self._best_source_for(body, turn)]

    def _near_miss(self, turn: _Turn, body: str) -> bool:
        """Do the passages the answer is built from state a neighbouring year, quarter or
        edition instead of the asked one (kb.answer.constraints), or not name a subject the
        question asks about? Records the signals and, for a near miss, what to tell the user."""
        hits = turn.hits
        cited = self._cited_hits(turn, body, turn.answer_text)
        passages = [f"{hits[i].metadata.get('title', '')} {hits[i].text}" for i in cited]
        mismatches = compare(turn.standalone, passages)
        near = [m for m in mismatches if m.near_miss]
        turn.diagnostics["near_miss"] = len(near)
        turn.diagnostics["constraints_unstated"] = len(mismatches) - len(near)
        # A chunk deep in a document often says "he" for the person its document is about, so a
        # subject counts as named when any retrieved chunk of a cited document names it.
        documents = {hits[i].source for i in cited}
        same_document = [h for h in hits if h.source in documents]
        absent = [
            s
            for s in checkable_subjects(turn.standalone, turn.language)
            if not any(is_about(s, h) for h in same_document)
        ]
        turn.diagnostics["subjects_uncited"] = len(absent)
        policy = self.policy
        if turn.language not in policy.near_miss_languages:
            return False
        if not near:
            if absent and policy.uncited_subject_refuses:
                note = prompts.OTHER_SUBJECT[turn.language].format(asked=absent[0])
                turn.related = (note, cited[0])
                return True
            return False
        if not policy.near_miss_refuses:
            return False
        miss = near[0]
        # The chunk that states the neighbouring value, shown as related information.
        neighbours = {(c.kind, c.value) for c in miss.stated}
        where = next(
            (
                i
                for i in cited
                if any((c.kind, c.value) in neighbours for c in constraints(hits[i].text))
            ),
            cited[0],
        )
        stated = (
            "、".join(c.text for c in miss.stated[:2])
            if turn.language == "zh"
            else (", ".join(c.text for c in miss.stated[:2]))
        )
        turn.related = (
            prompts.NEAR_MISS[turn.language].format(asked=miss.asked.text, stated=stated),
            where,
        )
        return True

    def _check(self, turn: _Turn, text: str) -> float:
        """The model's probability that the sources state `text` as the answer to this very
        question (prompts.CHECK). Called inside the answering turn: the prompt up to the
        question is still evaluated in llama.cpp, so only the check's own tokens are new.
        """
        started = time.perf_counter()
        system, user = turn.messages
        asked = HumanMessage(str(user.content) + prompts.CHECK[turn.language].format(answer=text))
        probs = self.model.reply_probs([system, asked], prompts.CHECK_REPLIES[turn.language])
        turn.diagnostics["check_ms"] = round((time.perf_counter() - started) * 1000, 1)
        return probs["yes"]

    def _cited_answer(self, turn: _Turn, text: str) -> Answer:
        hits, numbered = turn.hits, turn.numbered
        evidence = turn.evidence
        assert evidence is not None
        by_hit = evidence.by_hit()
        cited = [numbered[n - 1] for n in cited_numbers(text) if 1 <= n <= len(numbered)]
        if not cited:
            cited = [self._best_source_for(without_citations(text), turn)]
        cited = list(dict.fromkeys(cited))
        snippets = {i: join_sentences([s.text for s in group]) for i, group in by_hit.items()}
        sources = [_source(i + 1, hits[h], snippets.get(h)) for i, h in enumerate(cited)]
        others = [h for i, h in enumerate(hits) if i not in cited]
        also = [_source(len(sources) + j + 1, h) for j, h in enumerate(others)]
        quotes = [
            Quote(n, sentence.text, hits[h].source, hits[h].page)
            for n, h in enumerate(cited, start=1)
            for sentence in by_hit.get(h, [])[:2]
        ]
        return Answer(
            question=turn.question,
            answer=renumber(text, numbered, cited),
            refused=False,
            language=turn.language,
            standalone_question=turn.standalone,
            sources=sources,
            also_retrieved=also,
            evidence=quotes,
            model_answer=text,
        )

    def _best_source_for(self, body: str, turn: _Turn) -> int:
        evidence = turn.evidence
        assert evidence is not None
        best_index, best_score = turn.numbered[0], -1.0
        for hit_index, group in evidence.by_hit().items():
            score = support(body, join_sentences([s.text for s in group]))
            if score > best_score:
                best_index, best_score = hit_index, score
        return best_index

    def _quotes(self, turn: _Turn, limit: int = 2) -> list[Quote]:
        """The best evidence sentences, quoted when an unsupported answer is withdrawn."""
        if turn.evidence is None:
            return []
        best = sorted(turn.evidence.sentences, key=lambda s: s.score, reverse=True)[:limit]
        quotes = []
        for sentence in best:
            hit = turn.hits[sentence.hit_index]
            n = (
                turn.numbered.index(sentence.hit_index) + 1
                if sentence.hit_index in turn.numbered
                else None
            )
            quotes.append(Quote(n, sentence.text, hit.source, hit.page))
        return quotes

    def _related_quotes(self, turn: _Turn, where: int) -> list[Quote]:
        hit = turn.hits[where]
        chosen = turn.evidence.sentences if turn.evidence else []
        sentences = sorted((s for s in chosen if s.hit_index == where), key=lambda s: s.position)
        texts = [s.text for s in sentences] or [_snippet(hit.text)]
        return [Quote(1, text, hit.source, hit.page) for text in texts[:2]]

    def _refusal(self, turn: _Turn, reason: str, model_answer: str = "") -> Answer:
        order = list(range(len(turn.hits)))
        message = prompts.REFUSAL[turn.language]
        evidence = self._quotes(turn) if reason == "unsupported" else []
        if reason == "near_miss" and turn.related is not None:
            # The passage with the neighbouring figure comes first among the nearest documents,
            # as [1], and its sentences are quoted as related information, never as the answer.
            note, where = turn.related
            order.remove(where)
            order.insert(0, where)
            message = f"{message}{note} [1]"
            evidence = self._related_quotes(turn, where)
        nearest = [_source(n, turn.hits[i]) for n, i in enumerate(order, start=1)]
        return Answer(
            question=turn.question,
            answer=message,
            refused=True,
            language=turn.language,
            standalone_question=turn.standalone,
            sources=[],
            also_retrieved=nearest,
            evidence=evidence,
            refusal_reason=reason,
            model_answer=model_answer,
        )

    @staticmethod
    def _trace(turn: _Turn) -> dict[str, Any]:
        evidence = turn.evidence
        return {
            "numbered": list(turn.numbered),
            "hits": [
                {
                    "source": h.source,
                    "title": h.metadata.get("title", ""),
                    "score": round(h.score, 4),
                    "text": h.text,
                }
                for h in turn.hits
            ],
            "evidence": []
            if evidence is None
            else [
                {"hit": s.hit_index, "text": s.text, "score": round(s.score, 4)}
                for s in evidence.sentences
            ],
        }


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
