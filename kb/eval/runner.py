"""Run question sets against a knowledge base and collect one record per question.

The records feed kb.eval.report (metrics, Markdown, chart). Everything goes through the
`KnowledgeBase` facade, so models load once per run. A run can be interrupted (Ctrl-C): what
was measured so far is kept and reported.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kb.app import KnowledgeBase
from kb.config import Settings
from kb.errors import InputError
from kb.eval import metrics
from kb.jsonl import read_objects


class EvalInputError(InputError):
    """A question file is missing or malformed; the message names the file and line."""


@dataclass
class Question:
    set: str
    data: dict[str, Any]


@dataclass
class EvalRun:
    records: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False
    seconds: float = 0.0


def read_questions(
    path: Path, limit: int | None = None, seed: int = 13, skipped: list[str] | None = None
) -> list[Question]:
    """Questions of a JSON-lines file; with `limit`, a seeded random sample (the same each run)
    so that a subset represents every type of question in the file, not just the first ones.

    Lines whose question is empty (public sets have a few) are skipped and named in `skipped`.
    """
    if not path.is_file():
        raise EvalInputError(f"{path}: no such question file")
    name = path.parent.name if path.name == "qa.jsonl" else path.stem
    questions = []
    for number, data in read_objects(path):
        if "question" not in data:
            raise EvalInputError(f"{path}:{number}: a 'question' field is required")
        if not str(data["question"]).strip():
            if skipped is not None:
                skipped.append(f"{path}:{number}")
            continue
        questions.append(Question(name, data))
    if limit is not None and limit < len(questions):
        questions = random.Random(seed).sample(questions, limit)
    return questions


def docs_folder(qa_path: Path) -> Path:
    folder = qa_path.parent / "docs"
    if not folder.is_dir():
        raise EvalInputError(f"{qa_path}: --ingest-docs needs a docs/ folder beside it")
    return folder


def _base_record(question: Question) -> dict[str, Any]:
    d = question.data
    return {
        "id": d.get("id"),
        "set": question.set,
        "lang": d.get("lang"),
        "type": d.get("type"),
        "question": d["question"],
        "gold_ids": list(d.get("gold_ids") or []),
        "unanswerable": bool(d.get("unanswerable")),
        "answers": list(d.get("answers") or []),
        "answer_sets": d.get("answer_sets"),
    }


def chat_history(question: Question) -> list[dict[str, str]]:
    """The question's `history` as chat turns. Two shapes are read: chat turns
    ({"role", "content"}) and earlier questions with their answers ({"question", "answers"})."""
    turns: list[dict[str, str]] = []
    for item in question.data.get("history") or []:
        if not isinstance(item, dict):
            continue
        if "role" in item:
            turns.append({"role": str(item["role"]), "content": str(item.get("content", ""))})
            continue
        if item.get("question"):
            turns.append({"role": "user", "content": str(item["question"])})
        answers = item.get("answers") or []
        if answers:
            turns.append({"role": "assistant", "content": str(answers[0])})
    return turns


def _joined_query(question: Question) -> str:
    # Without a model to rewrite a follow-up, the previous user turns carry its subject.
    previous = [t["content"] for t in chat_history(question) if t["role"] == "user"]
    return " ".join([*previous[-2:], question.data["question"]])


def _as_of(question: Question) -> int | None:
    value = str(question.data.get("as_of") or "")[:4]
    return int(value) if value.isdigit() else None


class Evaluator:
    """One run over one knowledge base: retrieval for every question, answers on request."""

    def __init__(
        self,
        knowledge: KnowledgeBase,
        collection: str | None,
        answers: bool,
        k_max: int,
        rewrite: bool = True,
    ) -> None:
        self.knowledge = knowledge
        self.collection = collection
        self.answers = answers
        self.k_max = k_max
        self.rewrite = rewrite
        knowledge.retriever(collection)  # fail early on an empty or missing collection

    def _retrieve(self, query: str, question: Question, record: dict[str, Any]) -> None:
        result = self.knowledge.search(query, self.k_max, self.collection, as_of=_as_of(question))
        record["retrieved"] = [{"source": h.source, "page": h.page} for h in result.hits]
        record["retrieve_ms"] = result.retrieve_ms
        d = question.data
        if any(metrics.short_answers(d.get("answers") or [], d.get("answer_sets"))):
            record["context_rank"] = metrics.context_rank(
                [h.text for h in result.hits], d.get("answers") or [], d.get("answer_sets")
            )

    def _query(self, question: Question) -> str:
        """What retrieval is asked: a follow-up rewritten from its history by the chat model,
        as the answering chain does (or, with rewrite off, joined to the earlier questions)."""
        history = chat_history(question)
        if not any(t["role"] == "user" for t in history):
            return question.data["question"]
        if not self.rewrite:
            return _joined_query(question)
        return self.knowledge.standalone_question(
            question.data["question"], history, self.collection
        )

    def run_one(self, question: Question) -> dict[str, Any]:
        record = _base_record(question)
        if not self.answers:
            query = self._query(question)
            if query != question.data["question"]:
                record["standalone_question"] = query
            self._retrieve(query, question, record)
            return record
        history = chat_history(question)
        answer = self.knowledge.ask(question.data["question"], history, self.collection)
        self._retrieve(answer.standalone_question, question, record)
        record.update(
            answer=answer.answer,
            refused=answer.refused,
            refusal_reason=answer.refusal_reason,
            model_answer=answer.model_answer,
            cited=[{"source": s.source, "page": s.page} for s in answer.sources],
            first_token_ms=answer.timings.get("first_token_ms"),
            total_ms=answer.timings.get("total_ms"),
            standalone_question=answer.standalone_question,
            diagnostics=answer.diagnostics,
        )
        return record


def run(
    knowledge: KnowledgeBase,
    questions: Sequence[Question],
    collection: str | None = None,
    answers: bool = False,
    k_max: int = 10,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    rewrite: bool = True,
) -> EvalRun:
    started = time.perf_counter()
    evaluator = Evaluator(knowledge, collection, answers, k_max, rewrite)
    result = EvalRun()
    try:
        for question in questions:
            record = evaluator.run_one(question)
            result.records.append(record)
            if on_record is not None:
                on_record(record)
    except KeyboardInterrupt:
        result.interrupted = True
    result.seconds = time.perf_counter() - started
    return result


@contextmanager
def throwaway_knowledge_base(
    settings: Settings,
    qa_paths: Sequence[Path],
    distractors: Sequence[Path] = (),
    progress: Callable | None = None,
) -> Iterator[tuple[KnowledgeBase, Any]]:
    """A temporary knowledge base holding the sets' docs and distractors, and its ingestion."""
    folders = [docs_folder(p) for p in qa_paths] + list(distractors)
    with tempfile.TemporaryDirectory(prefix="kb-eval-") as tmp:
        temp_settings = settings.model_copy(update={"home": Path(tmp)})
        with KnowledgeBase(temp_settings, via="eval") as knowledge:
            summary = knowledge.ingest(folders, progress=progress)
            yield knowledge, summary


@dataclass
class EvalRequest:
    qa_files: list[Path]
    ks: list[int]
    answers: bool = False
    limit: int | None = None
    ingest_docs: bool = False
    distractors: list[Path] = field(default_factory=list)
    collection: str | None = None
    rewrite: bool = True
    as_user: str | None = None  # measure what this account may read (kb users)


@dataclass
class EvalOutcome:
    summary: dict[str, Any]
    records: list[dict[str, Any]]
    interrupted: bool
    questions: int
    skipped: list[str]


def evaluate(
    settings: Settings,
    request: EvalRequest,
    on_start: Callable[[int], None] | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> EvalOutcome:
    """Read the question files, run them (on a throwaway knowledge base of their docs when
    asked), and summarise: what `kb eval` does, callable from code."""
    from kb.eval import report

    skipped: list[str] = []
    questions = [
        q for path in request.qa_files for q in read_questions(path, request.limit, skipped=skipped)
    ]
    meta: dict[str, Any] = {
        "question_files": [str(p) for p in request.qa_files],
        "limit": request.limit,
        "answers": request.answers,
        "embed_model": settings.embed_model,
        "llm_model": settings.llm_model if request.answers else None,
        "top_k": settings.top_k,
        "retrieval": settings.retrieval,
        "follow_ups": "rewritten by the chat model" if request.rewrite else "joined to history",
        "skipped_empty_questions": len(skipped),
        "as_user": request.as_user,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    if on_start is not None:
        on_start(len(questions))

    def execute(knowledge: KnowledgeBase) -> EvalRun:
        return run(
            knowledge,
            questions,
            collection=request.collection,
            answers=request.answers,
            k_max=max(request.ks),
            on_record=on_record,
            rewrite=request.rewrite,
        )

    if request.ingest_docs:
        with throwaway_knowledge_base(settings, request.qa_files, request.distractors) as (
            knowledge,
            ingest_summary,
        ):
            meta["ingested"] = ingest_summary.to_json()
            result = execute(knowledge)
    else:
        with KnowledgeBase(settings, via="eval") as knowledge:
            reader = knowledge if request.as_user is None else knowledge.as_user(request.as_user)
            result = execute(reader)
    summary = report.summarize(result.records, request.ks)
    meta.update(seconds=round(result.seconds, 1), interrupted=result.interrupted)
    summary["meta"] = meta
    return EvalOutcome(summary, result.records, result.interrupted, len(questions), skipped)
