"""A second retrieval stage: the local chat model judges which fused candidates answer the question.

    .venv/bin/python bench/rerank_bench.py [--per-set 6] [--top 8] [--model qwen2.5-0.5b]

No cross-encoder ships offline, so the only reranker at hand is the chat model itself: for each
of hybrid retrieval's top `--top` chunks it is asked whether the passage answers the question,
and the chunks are reordered by its probability of "yes" (kb.models.llm.ChatModel.reply_probs,
read from the first step's logits). Questions: a fixed sample of `--per-set` per set from the
calibrate half's cached candidates (bench/work/candidates-calibrate.json, written by
`retrieval_bench.py tune`), replayed with the facade's fusion settings. Reported: hit@1, hit@5
and MRR@10 before and after, and the seconds the judgements cost per question (what a user would
wait before the first token). Writes bench/results/rerank-MODEL.json and .md.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import retrieval_bench

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CACHE = ROOT / "bench" / "work" / "candidates-calibrate.json"
SYSTEM = "You judge whether a passage answers a question. Reply with one word: yes or no."
OPTIONS = {"yes": ["yes", "Yes", "是"], "no": ["no", "No", "否"]}
PASSAGE_CHARS = 600


def _params() -> dict:
    """The facade's fusion settings, in retrieval_bench.replay's terms."""
    from kb.app import RRF_K, YEAR_WEIGHT
    from kb.config import Settings

    settings = Settings()
    return {
        "keyword_weight": settings.keyword_weight,
        "rrf_k": RRF_K,
        "depth": settings.retrieval_candidates,
        "language": 1.0,
        "time": YEAR_WEIGHT,
    }


def _ranked(cand: dict, params: dict) -> list[dict]:
    """The hybrid top ten of one cached question, with texts."""
    _, hits = retrieval_bench.replay_hits([cand], "hybrid", params)[0]
    return [{"source": h.source, "page": h.page, "text": h.text} for h in hits]


def _judge(model, question: str, passage: str) -> float:
    from langchain_core.messages import HumanMessage, SystemMessage

    asked = HumanMessage(
        f"Question: {question}\n\nPassage: {passage[:PASSAGE_CHARS]}\n\n"
        "Does the passage contain the answer to the question? Reply yes or no."
    )
    with model.turn():
        return model.reply_probs([SystemMessage(SYSTEM), asked], OPTIONS)["yes"]


def _scores(items: list[dict], gold: list[str]) -> dict:
    from kb.eval import metrics

    rank = metrics.first_hit_rank(items[:10], gold)
    return {
        "hit@1": rank == 1,
        "hit@5": rank is not None and rank <= 5,
        "mrr@10": 0.0 if rank is None else 1.0 / rank,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-set", type=int, default=6)
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument("--model", default="qwen2.5-0.5b")
    args = parser.parse_args()
    if not CACHE.exists():
        print(f"skipped: {CACHE} not found (run retrieval_bench.py tune first)")
        return
    from kb.config import Settings
    from kb.models.llm import load_chat_model

    model = load_chat_model(Settings(llm_model=args.model))
    cands = json.loads(CACHE.read_text())
    by_set: dict[str, list[dict]] = defaultdict(list)
    for c in cands:
        by_set[c["name"]].append(c)
    rng = random.Random(5)
    picked = [
        c
        for name in sorted(by_set)
        for c in rng.sample(by_set[name], min(args.per_set, len(by_set[name])))
    ]
    params = _params()
    rows = []
    for i, c in enumerate(picked, start=1):
        ranked = _ranked(c, params)
        started = time.perf_counter()
        probs = [_judge(model, c["query"], item["text"]) for item in ranked[: args.top]]
        seconds = time.perf_counter() - started
        order = sorted(range(len(probs)), key=lambda j: (-probs[j], j))
        reranked = [ranked[j] for j in order] + ranked[args.top :]
        rows.append(
            {
                "set": c["name"],
                "before": _scores(ranked, c["q"]["gold_ids"]),
                "after": _scores(reranked, c["q"]["gold_ids"]),
                "seconds": seconds,
            }
        )
        print(f"  {i}/{len(picked)} {c['name']} {seconds:.1f} s", file=sys.stderr, flush=True)
    model.close()

    def mean(stage: str, metric: str, name: str | None = None) -> float:
        xs = [float(r[stage][metric]) for r in rows if name is None or r["set"] == name]
        return round(statistics.mean(xs), 3)

    sets = sorted({r["set"] for r in rows})
    seconds = sorted(r["seconds"] for r in rows)
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "model": args.model,
        "questions": len(rows),
        "top": args.top,
        "seconds_p50": round(seconds[len(seconds) // 2], 1),
        "seconds_max": round(seconds[-1], 1),
        "overall": {
            stage: {m: mean(stage, m) for m in ("hit@1", "hit@5", "mrr@10")}
            for stage in ("before", "after")
        },
        "sets": {
            name: {
                stage: {m: mean(stage, m, name) for m in ("hit@1", "hit@5", "mrr@10")}
                for stage in ("before", "after")
            }
            for name in sets
        },
    }
    lines = [
        "# Reranking the fused candidates with the local chat model",
        "",
        f"{result['date']}; {args.model}; {len(rows)} calibrate-half questions ({args.per_set} "
        f"per set); the top {args.top} hybrid chunks judged one by one (passages cut to "
        f"{PASSAGE_CHARS} characters). Judging took p50 {result['seconds_p50']} s per question "
        f"(max {result['seconds_max']} s).",
        "",
        "| set | hit@1 before → after | hit@5 before → after | MRR@10 before → after |",
        "|---|---|---|---|",
    ]
    for name, block in [("all", result["overall"]), *result["sets"].items()]:
        cells = [
            f"{block['before'][m]:.3f} → {block['after'][m]:.3f}"
            for m in ("hit@1", "hit@5", "mrr@10")
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"rerank-{args.model}.json").write_text(json.dumps(result, indent=1))
    (RESULTS / f"rerank-{args.model}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
