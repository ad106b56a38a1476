"""What access filters cost: retrieval latency with and without them, and the recall a
restricted reader keeps for the documents they may read.

The knowledge base: a copy of ../benchkb/hybrid (five evaluation sets, 3,182 chunks; never
written to), upgraded in place (readers backfilled, nothing re-embedded) and its files spread
over four groups by a hash of their path, so a reader of one group reads about a quarter of it.
Questions: up to 60 per set from ../shared/eval with gold documents (read at run time).

- latency: the same questions asked by the operator (no filter) and by a reader of one group,
  alternating A B A B, hybrid retrieval, k=5; p50 and p95 of each, and their ratio;
- recall: for the questions whose gold document the reader may read, hit@5 for the reader
  against hit@5 unrestricted: filtering inside the index must not push their own documents out.

Skips cleanly when the knowledge base or the evaluation sets are absent.
Run: .venv/bin/python bench/access_bench.py
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE_KB = ROOT.parent / "benchkb" / "hybrid"
EVAL = ROOT.parent / "shared" / "eval"
SETS = ["cmrc2018", "domainrag", "dragonball_en", "xquad_en", "xquad_zh"]
PER_SET = 60
GROUPS = ["g0", "g1", "g2", "g3"]
K = 5
RESULTS = ROOT / "bench" / "results"


def group_of(source: str) -> str:
    return GROUPS[int(hashlib.sha1(source.encode()).hexdigest(), 16) % len(GROUPS)]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def main() -> int:
    if not SOURCE_KB.is_dir() or not EVAL.is_dir():
        print(f"skipped: needs {SOURCE_KB} and {EVAL}")
        return 0
    from kb.access import Principal
    from kb.app import KnowledgeBase
    from kb.config import Settings
    from kb.eval.metrics import matches_gold

    work = Path(tempfile.mkdtemp(prefix="kb-access-bench-"))
    home = work / "kb"
    shutil.copytree(SOURCE_KB, home, ignore=shutil.ignore_patterns("ingest.lock"))
    settings = Settings(home=home, audit=False, retrieval="hybrid")
    try:
        with KnowledgeBase(settings) as knowledge:
            store = knowledge.store
            started = time.perf_counter()
            store.upgrade("default")
            records = list(store.manifest.files("default").values())
            for record in records:
                store.set_groups("default", record, [group_of(record.source)])
            setup_s = time.perf_counter() - started
            chunks = store.count("default")
            questions = []
            for name in SETS:
                path = EVAL / name / "qa.jsonl"
                if not path.exists():
                    continue
                rows = [json.loads(x) for x in path.open(encoding="utf-8")]
                rows = [r for r in rows if r["question"].strip() and r.get("gold_ids")]
                questions += random.Random(7).sample(rows, min(PER_SET, len(rows)))
            reader = knowledge.as_principal(Principal("reader", ("g0",)))
            gold_group = {}
            for record in records:
                gold_group[record.source] = group_of(record.source)
            knowledge.search("warm-up", k=K)
            reader.search("warm-up", k=K)
            open_ms, filtered_ms = [], []
            own, open_hits, reader_hits, leaked = 0, 0, 0, 0
            for q in questions:
                t0 = time.perf_counter()
                unrestricted = knowledge.search(q["question"], k=K)
                t1 = time.perf_counter()
                restricted = reader.search(q["question"], k=K)
                t2 = time.perf_counter()
                open_ms.append((t1 - t0) * 1000)
                filtered_ms.append((t2 - t1) * 1000)
                leaked += sum(gold_group.get(h.source) != "g0" for h in restricted.hits)
                gold_sources = [s for s in gold_group if matches_gold(s, None, q["gold_ids"])]
                if gold_sources and all(gold_group[s] == "g0" for s in gold_sources):
                    own += 1
                    open_hits += any(
                        matches_gold(h.source, h.page, q["gold_ids"]) for h in unrestricted.hits
                    )
                    reader_hits += any(
                        matches_gold(h.source, h.page, q["gold_ids"]) for h in restricted.hits
                    )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    readable = sum(1 for r in records if group_of(r.source) == "g0")
    result = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "chunks": chunks,
        "files": len(records),
        "reader_files": readable,
        "questions": len(questions),
        "k": K,
        "retrieval": "hybrid",
        "regroup_all_files_s": round(setup_s, 1),
        "latency_ms": {
            "unrestricted": {
                "p50": round(pct(open_ms, 0.5), 1),
                "p95": round(pct(open_ms, 0.95), 1),
            },
            "filtered": {
                "p50": round(pct(filtered_ms, 0.5), 1),
                "p95": round(pct(filtered_ms, 0.95), 1),
            },
            "ratio_of_medians": round(
                statistics.median(filtered_ms) / statistics.median(open_ms), 2
            ),
        },
        "recall": {
            "questions_on_readers_documents": own,
            "hit_at_5_unrestricted": round(open_hits / own, 3) if own else None,
            "hit_at_5_reader": round(reader_hits / own, 3) if own else None,
        },
        "forbidden_hits_returned_to_reader": leaked,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "access.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    lat, rec = result["latency_ms"], result["recall"]
    md = f"""# Access filters: cost

{result["date"]}, {result["machine"]}, load average {result["load_average"]}.
Knowledge base: {chunks} chunks in {len(records)} files (five evaluation sets), spread over four
groups; the reader holds one group ({readable} files). {len(questions)} questions, hybrid
retrieval, k={K}, asked alternately without and with the reader's filter.

| | p50 ms | p95 ms |
|---|---|---|
| no access filter (operator) | {lat["unrestricted"]["p50"]} | {lat["unrestricted"]["p95"]} |
| reader's access filter | {lat["filtered"]["p50"]} | {lat["filtered"]["p95"]} |

Ratio of medians (filtered / unfiltered): {lat["ratio_of_medians"]}.

Recall on the {rec["questions_on_readers_documents"]} questions whose gold document the reader
may read: hit@5 {rec["hit_at_5_reader"]} for the reader against {rec["hit_at_5_unrestricted"]}
unrestricted. Forbidden chunks returned to the reader: {leaked}.
Rewriting the readers of all {len(records)} files (no re-embedding):
{result["regroup_all_files_s"]} s.
"""
    (RESULTS / "access.md").write_text(md, encoding="utf-8")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
