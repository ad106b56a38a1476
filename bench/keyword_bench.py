"""The keyword index: Chinese segmenters, FTS5 against an in-memory BM25 library, scale, cost.

    .venv/bin/python bench/keyword_bench.py [segmenters] [engines] [scale] [cost]
                                            [--sizes 10000,100000,1000000]

segmenters: keyword-only retrieval (kb's FTS5 index, whole passages) over the pooled Chinese
  sets of ../shared/eval (cmrc2018, drcd_zhhans, xquad_zh, domainrag, rgb_zh), one index per way
  of cutting Chinese: jieba-rs search mode (kb), Python jieba search mode, jieba-rs precise
  mode, and overlapping character bigrams; hit@1 / hit@5 per set, terms per passage and
  segmentation speed.
engines: the same terms in kb's FTS5 index and in bm25s (sparse-matrix BM25 kept in memory) over
  the passages of all eight sets: hit@5 per set, query p50/p95, build time, the cost of
  replacing one document (FTS5: delete + insert in a transaction; bm25s: index everything
  again), and start-up (open + first query against loading the saved bm25s index).
scale: GENERATED text (terms drawn from the real sets' term frequencies, 100 per chunk) at
  each size: keyword search p50/p95 with real questions, index size on disk; with 10k and 100k
  chunks also hybrid search (random unit vectors in Chroma, labelled synthetic).
cost: segmenting and indexing real chunks against embedding the same chunks (the keyword
  index's share of ingestion time).

Writes bench/results/keyword.json and keyword.md (sections merge across runs). Skips cleanly
when ../shared/eval is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT.parent / "shared" / "eval"
RESULTS = ROOT / "bench" / "results"
RESULT_FILE = RESULTS / "keyword.json"
ZH_SETS = ["cmrc2018", "drcd_zhhans", "xquad_zh", "domainrag", "rgb_zh"]
ALL_SETS = [*ZH_SETS, "xquad_en", "dragonball_en", "financebench"]
QUESTIONS_PER_SET = 300


def _pct(values: list[float], q: float) -> float:
    xs = sorted(values)
    return round(xs[min(len(xs) - 1, round((len(xs) - 1) * q / 100))], 2)


def _load(name: str) -> tuple[list[dict], list[dict]]:
    corpus = [json.loads(x) for x in (EVAL / name / "corpus.jsonl").open(encoding="utf-8")]
    qa = [json.loads(x) for x in (EVAL / name / "qa.jsonl").open(encoding="utf-8")]
    qa = [q for q in qa if q["question"].strip() and q.get("gold_ids")]
    qa = random.Random(7).sample(qa, min(QUESTIONS_PER_SET, len(qa)))
    return corpus, qa


def _passage_text(row: dict) -> str:
    return f"{row.get('title', '')}\n{row['text']}"


def _gold_hit(ids: list[str], gold: list[str], k: int) -> bool:
    return bool(set(ids[:k]) & set(gold))


class FtsIndex:
    """kb's own keyword index (kb.keyword over a manifest database) in a temporary folder."""

    def __init__(self, folder: Path) -> None:
        from kb.keyword import KeywordIndex
        from kb.manifest import Manifest

        self.manifest = Manifest(folder / "manifest.sqlite3")
        self.index = KeywordIndex(self.manifest)
        with self.manifest.transaction():
            self.index.reset("bench")

    def add(self, rows: list[tuple[str, list[str]]]) -> None:
        from kb.keyword import KeywordRow

        with self.manifest.transaction():
            self.index.add(
                "bench",
                [KeywordRow(i, i, "md", (".",), " ".join(terms)) for i, terms in rows],
            )

    def search(self, terms: list[str], k: int) -> list[str]:
        return [i for i, _ in self.index.search_terms("bench", terms, k)]

    def close(self) -> None:
        self.manifest.close()


# --- segmenters ----------------------------------------------------------------------------


def _segmenters() -> dict:
    import logging
    import re

    import jieba
    import rjieba

    from kb import segment
    from kb.text import terms as bigram_terms

    jieba.setLogLevel(logging.WARNING)
    python_jieba = jieba.Tokenizer()
    python_jieba.initialize()
    run = re.compile(f"[{segment.CJK_IDEOGRAPHS}]+")

    def with_words(cut):
        def terms(text: str) -> list[str]:
            out = []
            for piece in segment._RUN.findall(segment.normalize(text)):
                if run.fullmatch(piece):
                    out += [w for w in cut(piece) if w not in segment.ZH_STOPWORDS]
                else:
                    out += segment.index_terms(piece)
            return out

        return terms

    return {
        "jieba-rs search mode (kb)": segment.index_terms,
        "Python jieba search mode": with_words(lambda s: python_jieba.cut_for_search(s)),
        "jieba-rs precise mode": with_words(lambda s: rjieba.cut(s, True)),
        "character bigrams": bigram_terms,
    }


def segmenters() -> dict:
    data = {name: _load(name) for name in ZH_SETS}
    out = {}
    for label, terms_of in _segmenters().items():
        with tempfile.TemporaryDirectory() as tmp:
            index = FtsIndex(Path(tmp))
            started, chars, n_terms, rows = time.perf_counter(), 0, 0, []
            for corpus, _ in data.values():
                for row in corpus:
                    text = _passage_text(row)
                    terms = terms_of(text)
                    chars += len(text)
                    n_terms += len(terms)
                    rows.append((row["id"], terms))
            seconds = time.perf_counter() - started
            index.add(rows)
            per_set = {}
            for name, (_, qa) in data.items():
                hits1 = hits5 = 0
                for q in qa:
                    ids = index.search(list(dict.fromkeys(terms_of(q["question"]))), 5)
                    hits1 += _gold_hit(ids, q["gold_ids"], 1)
                    hits5 += _gold_hit(ids, q["gold_ids"], 5)
                per_set[name] = {
                    "n": len(qa),
                    "hit@1": round(hits1 / len(qa), 3),
                    "hit@5": round(hits5 / len(qa), 3),
                }
            index.close()
        out[label] = {
            "sets": per_set,
            "mean_hit@5": round(statistics.mean(b["hit@5"] for b in per_set.values()), 3),
            "terms_per_passage": round(n_terms / len(rows), 1),
            "chars_per_second": round(chars / seconds),
        }
        print(label, out[label], file=sys.stderr, flush=True)
    return {"passages": sum(len(c) for c, _ in data.values()), "segmenters": out}


# --- engines --------------------------------------------------------------------------------


def engines() -> dict:
    import bm25s

    from kb.segment import index_terms, query_terms

    data = {name: _load(name) for name in ALL_SETS}
    ids, docs = [], []
    for corpus, _ in data.values():
        for row in corpus:
            ids.append(row["id"])
            docs.append(index_terms(_passage_text(row)))
    questions = [
        (name, q, query_terms(q["question"])) for name, (_, qa) in data.items() for q in qa
    ]
    out: dict = {"passages": len(ids), "questions": len(questions)}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        fts = FtsIndex(folder / "fts")
        fts.add(list(zip(ids, docs, strict=True)))
        fts_build = time.perf_counter() - started
        started = time.perf_counter()
        library = bm25s.BM25()
        library.index(docs, show_progress=False)
        library_build = time.perf_counter() - started
        library.save(str(folder / "bm25s"))

        def library_search(terms: list[str], k: int) -> list[str]:
            terms = [t for t in terms if t in library.vocab_dict]
            if not terms:
                return []
            found, _ = library.retrieve([terms], k=k, show_progress=False)
            return [ids[i] for i in found[0]]

        per_engine = {}
        for label, search in (("kb FTS5", fts.search), ("bm25s", library_search)):
            latencies, per_set = [], {}
            for name, q, terms in questions:
                started = time.perf_counter()
                found = search(terms, 5)
                latencies.append((time.perf_counter() - started) * 1000)
                block = per_set.setdefault(name, [0, 0])
                block[0] += 1
                block[1] += _gold_hit(found, q["gold_ids"], 5)
            per_engine[label] = {
                "hit@5": {n: round(h / c, 3) for n, (c, h) in per_set.items()},
                "query_ms_p50": _pct(latencies, 50),
                "query_ms_p95": _pct(latencies, 95),
            }
        per_engine["kb FTS5"]["build_s"] = round(fts_build, 2)
        per_engine["bm25s"]["build_s"] = round(library_build, 2)
        # Replacing one document: what every edited file costs.
        started = time.perf_counter()
        fts.add([(ids[0], docs[1])])
        per_engine["kb FTS5"]["replace_one_ms"] = round((time.perf_counter() - started) * 1000, 2)
        started = time.perf_counter()
        again = bm25s.BM25()
        again.index([docs[1], *docs[1:]], show_progress=False)
        per_engine["bm25s"]["replace_one_ms"] = round((time.perf_counter() - started) * 1000, 1)
        fts.close()
        started = time.perf_counter()
        reopened = FtsIndex.__new__(FtsIndex)
        from kb.keyword import KeywordIndex
        from kb.manifest import Manifest

        reopened.manifest = Manifest(folder / "fts" / "manifest.sqlite3")
        reopened.index = KeywordIndex(reopened.manifest)
        reopened.search(questions[0][2], 5)
        per_engine["kb FTS5"]["start_ms"] = round((time.perf_counter() - started) * 1000, 1)
        reopened.close()
        started = time.perf_counter()
        loaded = bm25s.BM25.load(str(folder / "bm25s"))
        loaded.retrieve([[t for t in questions[0][2] if t in loaded.vocab_dict] or [docs[0][0]]])
        per_engine["bm25s"]["start_ms"] = round((time.perf_counter() - started) * 1000, 1)
    out["engines"] = per_engine
    return out


# --- scale ----------------------------------------------------------------------------------


def _term_distribution() -> tuple[list[str], list[int]]:
    from kb.segment import index_terms

    counts: Counter = Counter()
    for name in ALL_SETS:
        corpus, _ = _load(name)
        for row in corpus[:1500]:
            counts.update(index_terms(_passage_text(row)))
    terms, weights = zip(*counts.most_common(), strict=True)
    return list(terms), list(weights)


def _queries() -> list[list[str]]:
    from kb.segment import query_terms

    out = []
    for name in ALL_SETS:
        _, qa = _load(name)
        out += [query_terms(q["question"]) for q in qa[:40]]
    return out


def scale(sizes: list[int]) -> dict:
    terms, weights = _term_distribution()
    queries = _queries()
    rng = random.Random(3)
    out = {}
    for size in sizes:
        with tempfile.TemporaryDirectory(dir=str(ROOT / "bench" / "work")) as tmp:
            folder = Path(tmp)
            index = FtsIndex(folder)
            started = time.perf_counter()
            batch = 20_000
            for start in range(0, size, batch):
                rows = [
                    (f"gen-{i}", rng.choices(terms, weights, k=100))
                    for i in range(start, min(size, start + batch))
                ]
                index.add(rows)
            build = time.perf_counter() - started
            latencies = []
            for q in queries:
                t0 = time.perf_counter()
                index.search(q, 50)
                latencies.append((time.perf_counter() - t0) * 1000)
            index.manifest.run("PRAGMA wal_checkpoint(TRUNCATE)")
            disk = sum(p.stat().st_size for p in folder.iterdir())
            out[str(size)] = {
                "chunks": size,
                "keyword_ms_p50": _pct(latencies, 50),
                "keyword_ms_p95": _pct(latencies, 95),
                "index_mb": round(disk / 2**20, 1),
                "build_s": round(build, 1),
                "index_rows_per_s": round(size / build),
                # Other work on this 2-core machine moves the latencies; the load says how much.
                "load_average": round(os.getloadavg()[0], 1),
            }
            index.close()
        print(size, out[str(size)], file=sys.stderr, flush=True)
    return {"generated": True, "terms_per_chunk": 100, "sizes": out}


# --- cost -----------------------------------------------------------------------------------


def cost(n: int = 300) -> dict:
    from kb.config import Settings
    from kb.keyword import row_for
    from kb.models.cache import ModelCache

    texts = []
    for name in ALL_SETS:
        corpus, _ = _load(name)
        texts += [_passage_text(r)[:600] for r in corpus[: n // len(ALL_SETS) + 1]]
    texts = texts[:n]
    cache = ModelCache()
    embeddings = cache.embeddings(Settings())
    embeddings.embed_passages(texts[:8])  # warm
    timings = {"embed": [], "keyword": []}
    with tempfile.TemporaryDirectory() as tmp:
        index = FtsIndex(Path(tmp))
        for round_ in range(3):  # alternating, medians
            started = time.perf_counter()
            embeddings.embed_passages(texts)
            timings["embed"].append(time.perf_counter() - started)
            started = time.perf_counter()
            rows = [row_for(f"c{round_}-{i}", t, {"source": "x.md"}) for i, t in enumerate(texts)]
            index.add([(r.chunk_id, r.terms.split()) for r in rows])
            timings["keyword"].append(time.perf_counter() - started)
        index.close()
    cache.close()
    embed, keyword = statistics.median(timings["embed"]), statistics.median(timings["keyword"])
    return {
        "chunks": len(texts),
        "embed_s": round(embed, 3),
        "keyword_s": round(keyword, 4),
        "keyword_share_of_embedding": round(keyword / embed, 4),
        "load_average": os.getloadavg()[0],
    }


# --- report ---------------------------------------------------------------------------------


def render(results: dict) -> str:
    lines = ["# Keyword index", ""]
    if "segmenters" in results:
        seg = results["segmenters"]
        sets = list(next(iter(seg["segmenters"].values()))["sets"])
        lines += [
            f"## Chinese segmentation ({seg['date']}, {seg['passages']} passages of five Chinese "
            "sets in one FTS5 index, keyword-only, whole passages)",
            "",
            "| segmenter | " + " | ".join(f"{s} hit@5" for s in sets) + " | mean hit@5 | "
            "terms/passage | chars/s |",
            "|---" * (len(sets) + 4) + "|",
        ]
        for label, b in seg["segmenters"].items():
            cells = [label, *(f"{b['sets'][s]['hit@5']:.3f}" for s in sets)]
            cells += [f"{b['mean_hit@5']:.3f}", str(b["terms_per_passage"])]
            cells.append(f"{b['chars_per_second']:,}")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if "engines" in results:
        eng = results["engines"]
        sets = list(next(iter(eng["engines"].values()))["hit@5"])
        lines += [
            f"## FTS5 against an in-memory BM25 library ({eng['date']}, {eng['passages']} "
            f"passages of all eight sets, {eng['questions']} questions, same terms)",
            "",
            "| engine | " + " | ".join(sets) + " | query p50 ms | p95 ms | build s | "
            "replace one document ms | start ms |",
            "|---" * (len(sets) + 6) + "|",
        ]
        for label, b in eng["engines"].items():
            cells = [label, *(f"{b['hit@5'][s]:.3f}" for s in sets)]
            cells += [str(b[x]) for x in ("query_ms_p50", "query_ms_p95", "build_s")]
            cells += [str(b["replace_one_ms"]), str(b["start_ms"])]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if "scale" in results:
        sc = results["scale"]
        lines += [
            f"## Scale (GENERATED text, {sc['terms_per_chunk']} terms per chunk; {sc['date']})",
            "",
            "| chunks | keyword p50 ms | keyword p95 ms | index on disk MB | build s | rows/s "
            "| load |",
            "|---|---|---|---|---|---|---|",
        ]
        for b in sc["sizes"].values():
            lines.append(
                f"| {b['chunks']:,} | {b['keyword_ms_p50']} | {b['keyword_ms_p95']} | "
                f"{b['index_mb']} | {b['build_s']} | {b['index_rows_per_s']:,} "
                f"| {b.get('load_average', '~3')} |"
            )
        lines.append("")
    if "cost" in results:
        c = results["cost"]
        lines += [
            f"## Ingestion cost ({c['date']}, {c['chunks']} real chunks, medians of 3, "
            f"load {c['load_average']:.1f})",
            "",
            f"Embedding {c['embed_s']} s, segmenting and indexing {c['keyword_s']} s: the "
            f"keyword index adds {100 * c['keyword_share_of_embedding']:.2f}% to embedding time.",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", default=["segmenters", "engines", "scale", "cost"])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    args = parser.parse_args()
    if not EVAL.is_dir():
        print(f"skipped: {EVAL} not found (the evaluation sets are read at run time)")
        return
    (ROOT / "bench" / "work").mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULT_FILE.read_text()) if RESULT_FILE.exists() else {}
    for part in args.parts:
        if part == "scale":
            data = scale([int(x) for x in args.sizes.split(",")])
            # Sizes measured in earlier runs stay (a 1M-chunk build takes most of an hour).
            earlier = results.get("scale", {}).get("sizes", {})
            data["sizes"] = {**earlier, **data["sizes"]}
        else:
            data = {"segmenters": segmenters, "engines": engines, "cost": cost}[part]()
        data["date"] = time.strftime("%Y-%m-%d %H:%M")
        results[part] = data
        RESULTS.mkdir(parents=True, exist_ok=True)
        RESULT_FILE.write_text(json.dumps(results, ensure_ascii=False, indent=1))
        (RESULTS / "keyword.md").write_text(render(results))
    print(render(results))


if __name__ == "__main__":
    main()
