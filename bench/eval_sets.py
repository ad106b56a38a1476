"""Questions from ../shared/eval, split into two disjoint halves by a hash of their id.

Refusal thresholds are calibrated on the "calibrate" half and answer quality is reported on the
"report" half, so the reported figures are never measured on the questions that set them.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"
HALVES = ("calibrate", "report")


def _key(question_id: str) -> bytes:
    return hashlib.sha1(question_id.encode()).digest()


def questions(name: str, half: str, limit: int | None = None, seed: int = 21) -> list[dict]:
    """Up to `limit` non-empty questions of one set's `half`, a fixed random sample."""
    rows = [json.loads(x) for x in (EVAL / name / "qa.jsonl").open(encoding="utf-8")]
    rows = [r for r in rows if r["question"].strip()]
    # Stratified: answerable and unanswerable questions alternate between the halves in hash
    # order, so each half gets its share of the (few) unanswerable ones.
    picked = []
    for unanswerable in (False, True):
        stratum = sorted(
            (r for r in rows if bool(r.get("unanswerable")) == unanswerable),
            key=lambda r: _key(r["id"]),
        )
        picked += stratum[HALVES.index(half) :: 2]
    rows = picked
    if limit is not None and limit < len(rows):
        rows = random.Random(seed).sample(rows, limit)
    return rows


def ask_all(
    knowledge: Any,
    questions: list[tuple[str, dict]],
    fields: Callable[[Any], dict],
    label: str,
    trace: bool = False,
) -> list[dict]:
    """Ask every question through `knowledge` (a KnowledgeBase); one record each: the
    question's set, its gold data and whatever `fields` takes from the Answer. Progress goes to
    stderr."""
    records = []
    for i, (name, q) in enumerate(questions, start=1):
        answer = knowledge.ask(q["question"], trace=trace)
        records.append(
            {
                "set": name,
                "id": q["id"],
                "question": q["question"],
                "answers": q["answers"],
                "unanswerable": bool(q.get("unanswerable")),
                **fields(answer),
            }
        )
        if i % 25 == 0:
            print(f"  {label} {i}/{len(questions)}", file=sys.stderr, flush=True)
    return records


def refusal_by_named_subjects(rows: list[dict], refused: Callable[[dict], bool]) -> dict:
    """The share of `rows` refused, split by whether the question names several subjects
    (companies, people): comparing two companies, one of which the documents say nothing about
    the asked fact, is a different problem from asking about one."""
    from kb.answer.subjects import named_subjects

    several = [len(named_subjects(r["question"])) >= 2 for r in rows]
    out = {}
    for part, wanted in (("one_or_none", False), ("several", True)):
        group = [r for r, s in zip(rows, several, strict=True) if s == wanted]
        out[part] = {
            "rate": round(sum(map(refused, group)) / len(group), 3) if group else None,
            "n": len(group),
        }
    return out
