"""How many of the true nearest chunks Chroma's vector index finds, by search depth.

    .venv/bin/python bench/vector_recall_bench.py --home KB [--ef 100,500,1000,2000,4000]
                                                  [--limit 200]

Chroma searches an HNSW graph, which is approximate: a walk through the graph that examines
`ef_search` candidates (KB_VECTOR_EF_SEARCH). For each question of the development sets'
calibrate half (bench/eval_sets.py; only questions whose gold documents are indexed) this
compares Chroma's top 100 with the exact nearest chunks (every stored vector scored by numpy):

- recall@10: the share of the exact ten nearest chunks among Chroma's top 100;
- hit@5 (documents, the chunk-level gold of each set) of the exact ranking and of Chroma's;
- search p50/p95 in milliseconds (vector search alone, the query already embedded).

Each depth runs in its own process: Chroma reads the setting when a process first loads the
index. The knowledge base is left at the default depth.

    .venv/bin/python bench/vector_recall_bench.py --scale 100000

adds the cost of depth at scale: that many SYNTHETIC vectors (random unit vectors, not text) in
a throwaway Chroma collection, search p50/p95 by depth for random queries.

Writes bench/results/vector-recall.json and vector-recall.md (the scale part merges in).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import retrieval_bench

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "bench" / "work" / "vector-recall"
FETCH = 100


def _settings(home: Path, ef: int | None = None):
    from kb.config import Settings

    return Settings(home=home) if ef is None else Settings(home=home, vector_ef_search=ef)


def prepare(home: Path, limit: int | None) -> None:
    """Every question's vector and its exact nearest chunks, saved for the per-depth processes."""
    from kb.app import KnowledgeBase

    knowledge = KnowledgeBase(_settings(home))
    col = knowledge.store._collection("default")
    ids, vectors, sources, pages = [], [], [], []
    offset = 0
    while True:
        got = col.get(include=["embeddings", "metadatas"], limit=5000, offset=offset)
        if not got["ids"]:
            break
        ids += got["ids"]
        vectors.append(np.asarray(got["embeddings"], dtype=np.float32))
        sources += [str((m or {}).get("source", "")) for m in got["metadatas"]]
        pages += [(m or {}).get("page") for m in got["metadatas"]]
        offset += len(got["ids"])
    picked = retrieval_bench.questions(
        "calibrate", limit, retrieval_bench._indexed_stems(knowledge)
    )
    queries = np.asarray(
        [knowledge.embeddings.embed_query_vector(q["question"]) for _, q in picked],
        dtype=np.float32,
    )
    chunks = np.concatenate(vectors)
    # The exact ranking, once: every per-depth process compares against it.
    exact = np.stack([np.argsort(-(chunks @ q))[:FETCH] for q in queries])
    WORK.mkdir(parents=True, exist_ok=True)
    np.save(WORK / "exact.npy", exact)
    np.save(WORK / "queries.npy", queries)
    (WORK / "meta.json").write_text(
        json.dumps(
            {
                "ids": ids,
                "sources": sources,
                "pages": pages,
                "questions": [{"set": n, "gold_ids": q["gold_ids"]} for n, q in picked],
            }
        )
    )
    knowledge.close()


def _gold_rank(order: list[int], gold: set[int]) -> int | None:
    for rank, i in enumerate(order, start=1):
        if i in gold:
            return rank
    return None


def measure(home: Path, ef: int | None) -> dict:
    """One depth (None: exact search), in this process."""
    from kb.eval.metrics import matches_gold

    exact_orders = np.load(WORK / "exact.npy")
    queries = np.load(WORK / "queries.npy")
    meta = json.loads((WORK / "meta.json").read_text())
    position = {cid: i for i, cid in enumerate(meta["ids"])}
    col = None
    if ef is not None:
        from kb.store import Store

        col = Store(_settings(home, ef))._collection("default")
    per_set: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    latencies = []
    for vector, exact_order, q in zip(queries, exact_orders, meta["questions"], strict=True):
        exact = exact_order.tolist()
        if col is None:
            order = exact
        else:
            started = time.perf_counter()
            got = col.query(query_embeddings=vector.reshape(1, -1), n_results=FETCH, include=[])
            latencies.append((time.perf_counter() - started) * 1000)
            order = [position[i] for i in got["ids"][0] if i in position]
        gold = {
            i
            for i in set(exact) | set(order)
            if matches_gold(meta["sources"][i], meta["pages"][i], q["gold_ids"])
        }
        rank = _gold_rank(order, gold)
        block = per_set[q["set"]]
        block["recall@10"].append(len(set(exact[:10]) & set(order)) / 10)
        block["hit@5"].append(rank is not None and rank <= 5)
    out = {
        "ef_search": ef,
        "sets": {
            name: {
                "n": len(b["hit@5"]),
                "recall@10": round(statistics.mean(b["recall@10"]), 3),
                "hit@5": round(statistics.mean(b["hit@5"]), 3),
            }
            for name, b in per_set.items()
        },
    }
    if latencies:
        xs = sorted(latencies)
        out["ms_p50"] = round(xs[len(xs) // 2], 1)
        out["ms_p95"] = round(xs[int(len(xs) * 0.95)], 1)
    return out


def scale(size: int, depths: list[int], queries: int = 200) -> dict:
    """Search time by depth over `size` synthetic vectors (one process per depth)."""
    import chromadb

    rng = np.random.default_rng(11)
    vectors = rng.standard_normal((size, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    asked = rng.standard_normal((queries, 384)).astype(np.float32)
    out = {"chunks": size, "synthetic": True, "depths": {}}
    with tempfile.TemporaryDirectory(dir=str(ROOT / "bench" / "work")) as tmp:
        client = chromadb.PersistentClient(path=tmp)
        col = client.create_collection(
            "scale", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
        )
        started = time.perf_counter()
        for start in range(0, size, 5000):
            col.add(
                ids=[str(i) for i in range(start, min(size, start + 5000))],
                embeddings=vectors[start : start + 5000],
            )
        out["build_s"] = round(time.perf_counter() - started, 1)
        for depth in depths:
            got = subprocess.run(
                [sys.executable, __file__, "--scale-one", tmp, str(depth)],
                input=json.dumps(asked.tolist()),
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            out["depths"][str(depth)] = json.loads(got.strip().splitlines()[-1])
            print(size, depth, out["depths"][str(depth)], file=sys.stderr, flush=True)
    out["load_average"] = round(os.getloadavg()[0], 1)
    return out


def scale_one(path: str, depth: int) -> dict:
    import chromadb

    asked = np.asarray(json.loads(sys.stdin.read()), dtype=np.float32)
    col = chromadb.PersistentClient(path=path).get_collection("scale")
    col.modify(configuration={"hnsw": {"ef_search": depth}})
    col = chromadb.PersistentClient(path=path).get_collection("scale")
    latencies = []
    for q in asked:
        started = time.perf_counter()
        col.query(query_embeddings=q.reshape(1, -1), n_results=50, include=[])
        latencies.append((time.perf_counter() - started) * 1000)
    xs = sorted(latencies)
    return {"ms_p50": round(xs[len(xs) // 2], 1), "ms_p95": round(xs[int(len(xs) * 0.95)], 1)}


def render(result: dict) -> str:
    if "runs" not in result:
        return _render_scale(result)
    return _render_runs(result) + _render_scale(result)


def _render_scale(result: dict) -> str:
    sc = result.get("scale")
    if not sc:
        return ""
    lines = [
        f"## Search time by depth at {sc['chunks']:,} SYNTHETIC vectors ({sc['date']}, load "
        f"{sc['load_average']})",
        "",
        f"Random unit vectors, random queries, top 50; the collection built in {sc['build_s']} s.",
        "",
        "| ef_search | p50 ms | p95 ms |",
        "|---|---|---|",
    ]
    for depth, block in sc["depths"].items():
        lines.append(f"| {depth} | {block['ms_p50']} | {block['ms_p95']} |")
    return "\n".join(lines) + "\n"


def _render_runs(result: dict) -> str:
    runs = result["runs"]
    sets = list(runs[0]["sets"])
    lines = [
        "# Vector search: Chroma's graph against exact search",
        "",
        f"{result['date']}; knowledge base {result['chunks']:,} chunks; calibrate half, "
        f"{result['questions']} questions. recall@10: share of the exact ten nearest chunks "
        "in Chroma's top 100; hit@5: gold document in the top five (no near-duplicate "
        "removal); p50/p95: the vector search alone, query embedded beforehand.",
        "",
        "| ef_search | " + " | ".join(sets) + " | p50 ms | p95 ms |",
        "|---" * (len(sets) + 3) + "|",
    ]
    for run in runs:
        label = "exact (numpy)" if run["ef_search"] is None else str(run["ef_search"])
        cells = [f"{run['sets'][s]['recall@10']:.3f} / {run['sets'][s]['hit@5']:.3f}" for s in sets]
        lines.append(
            f"| {label} | "
            + " | ".join(cells)
            + f" | {run.get('ms_p50', '')} | {run.get('ms_p95', '')} |"
        )
    lines += ["", "Cells: recall@10 / hit@5.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path)
    parser.add_argument("--scale", type=int, default=None)
    parser.add_argument("--scale-one", nargs=2, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--ef", default="100,500,1000,2000,4000")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scale_one is not None:
        print(json.dumps(scale_one(args.scale_one[0], int(args.scale_one[1]))))
        return
    earlier = (
        json.loads((RESULTS / "vector-recall.json").read_text())
        if (RESULTS / "vector-recall.json").exists()
        else {}
    )
    if args.scale is not None:
        (ROOT / "bench" / "work").mkdir(parents=True, exist_ok=True)
        earlier["scale"] = {
            **scale(args.scale, [int(x) for x in args.ef.split(",")]),
            "date": time.strftime("%Y-%m-%d %H:%M"),
        }
        (RESULTS / "vector-recall.json").write_text(json.dumps(earlier, indent=1))
        (RESULTS / "vector-recall.md").write_text(render(earlier))
        print(render(earlier))
        return
    if args.home is None:
        parser.error("--home is required (or --scale N)")
    if not retrieval_bench.EVAL.is_dir():
        print(
            f"skipped: {retrieval_bench.EVAL} not found (the evaluation sets are read at run time)"
        )
        return
    if args.one is not None:
        ef = None if args.one == "exact" else int(args.one)
        print(json.dumps(measure(args.home, ef)))
        return
    prepare(args.home, args.limit)
    runs = []
    for ef in ["exact", *args.ef.split(",")]:
        out = subprocess.run(
            [sys.executable, __file__, "--home", str(args.home), "--one", ef],
            check=True,
            capture_output=True,
            text=True,
            env=os.environ,
        ).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
        print(ef, runs[-1], file=sys.stderr, flush=True)
    # Leave the knowledge base at the configured depth.
    from kb.store import Store

    Store(_settings(args.home))._collection("default")
    meta = json.loads((WORK / "meta.json").read_text())
    result = {
        **({"scale": earlier["scale"]} if "scale" in earlier else {}),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "chunks": len(meta["ids"]),
        "questions": len(meta["questions"]),
        "runs": runs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "vector-recall.json").write_text(json.dumps(result, indent=1))
    (RESULTS / "vector-recall.md").write_text(render(result))
    print(render(result))


if __name__ == "__main__":
    main()
