"""Run question sets against a knowledge base and collect one record per question.

The records feed kb.eval.report (metrics, Markdown, chart). Models load once per run. A run can
be interrupted (Ctrl-C): what was measured so far is kept and reported.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kb.config import Settings


class EvalInputError(ValueError):
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
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError as exc:
                raise EvalInputError(f"{path}:{number}: not valid JSON ({exc})") from exc
            if not isinstance(data, dict) or "question" not in data:
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


def _retrieval_query(question: Question) -> str:
    # Without a model to rewrite a follow-up, the previous user turns carry its subject.
    history = question.data.get("history") or []
    previous = [str(t.get("content", "")) for t in history if t.get("role") == "user"]
    return " ".join([*previous[-2:], question.data["question"]])


class Evaluator:
    """Holds the loaded models for one run over one knowledge base."""

    def __init__(self, settings: Settings, collection: str | None, answers: bool, k_max: int):
        from kb import services
        from kb.retrieve import Retriever

        self.settings = settings
        self.k_max = k_max
        name = collection or settings.collection
        self.retriever = Retriever(services.store(settings), services.embeddings(settings), name)
        self.chain = None
        if answers:
            from kb.chain import AnswerChain
            from kb.models.llm import load_chat_model

            self.chain = AnswerChain(settings, self.retriever, load_chat_model(settings))

    def _retrieve(self, query: str) -> tuple[list[dict[str, Any]], float]:
        result = self.retriever.search(query, self.k_max)
        retrieved = [{"source": h.source, "page": h.page} for h in result.hits]
        return retrieved, result.retrieve_ms

    def run_one(self, question: Question) -> dict[str, Any]:
        record = _base_record(question)
        if self.chain is None:
            record["retrieved"], record["retrieve_ms"] = self._retrieve(_retrieval_query(question))
            return record
        history = question.data.get("history") or []
        answer = self.chain.invoke(question.data["question"], history)
        record["retrieved"], record["retrieve_ms"] = self._retrieve(answer.standalone_question)
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
    settings: Settings,
    questions: Sequence[Question],
    collection: str | None = None,
    answers: bool = False,
    k_max: int = 10,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> EvalRun:
    started = time.perf_counter()
    evaluator = Evaluator(settings, collection, answers, k_max)
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
) -> Iterator[tuple[Settings, Any]]:
    """Yield settings for a temporary knowledge base holding the sets' docs and distractors."""
    from kb import services

    folders = [docs_folder(p) for p in qa_paths] + list(distractors)
    with tempfile.TemporaryDirectory(prefix="kb-eval-") as tmp:
        temp_settings = settings.model_copy(update={"home": Path(tmp)})
        summary = services.ingest(temp_settings, folders, progress=progress)
        yield temp_settings, summary
