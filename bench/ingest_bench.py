"""Ingestion benchmark: kb ingest against the raw encoding limit and the stock LangChain pipeline.

    .venv/bin/python bench/ingest_bench.py [--repeats 2] [--pdfs 2]

On documents of ../shared/eval (several sets in one knowledge base, financebench PDFs included),
measured side by side in one run, alternating the variants each round:
  (a) limit  — encoding kb's own chunk texts with the same model and batch size, nothing else;
  (b) stock  — DirectoryLoader/UnstructuredFileLoader → RecursiveCharacterTextSplitter(1000,
               200) → the same embeddings → Chroma.from_documents;
  (c) kb     — `kb ingest` into an empty knowledge base, then again on the unchanged folder.
Besides files and chunks, each variant's embedded tokens are counted (the model's tokens of
each text it embeds, capped at the model's 512-token window: the rest of a longer text is cut
and never embedded), so throughput compares the text actually embedded.
Each variant runs in its own process, so peak memory (max RSS) is its own. Figures go to
bench/results/ingest.json and ingest.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT.parent / "shared" / "eval"
RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "bench" / "work"
SETS = ["xquad_en", "xquad_zh", "cmrc2018", "dragonball_en"]
CMRC_FILES = 200  # a slice keeps one round near ten minutes on two cores


def build_corpus(pdfs: int) -> Path:
    corpus = WORK / "ingest-corpus"
    if corpus.exists():
        shutil.rmtree(corpus)
    for name in SETS:
        files = sorted((EVAL / name / "docs").glob("*.md"))
        if name == "cmrc2018":
            files = files[:CMRC_FILES]
        target = corpus / name
        target.mkdir(parents=True)
        for f in files:
            shutil.copy(f, target / f.name)
    filings = sorted((EVAL / "financebench" / "docs").glob("*.pdf"), key=lambda p: p.stat().st_size)
    target = corpus / "financebench"
    target.mkdir(parents=True)
    for f in filings[:pdfs]:
        shutil.copy(f, target / f.name)
    return corpus


# --- variants, each run in a child process ----------------------------------------------


def variant_kb(corpus: Path, home: Path) -> dict:
    from kb.app import KnowledgeBase
    from kb.config import Settings

    knowledge = KnowledgeBase(Settings(home=home))
    started = time.perf_counter()
    first = knowledge.ingest([corpus])
    first_s = time.perf_counter() - started
    started = time.perf_counter()
    again = knowledge.ingest([corpus])
    again_s = time.perf_counter() - started
    assert not first.failed, first.failed
    return {
        "seconds": first_s,
        "files": first.added,
        "chunks": first.chunks,
        "rerun_seconds": again_s,
        "rerun_unchanged": again.unchanged,
        "rerun_embedded": again.embedded,
    }


def chunk_texts(corpus: Path) -> list[str]:
    """Exactly the texts kb embeds for `corpus` (same loader, splitter and title header)."""
    from kb.config import Settings
    from kb.ingest.discover import walk
    from kb.ingest.load import load
    from kb.ingest.pipeline import embedded_text
    from kb.ingest.split import split_document
    from kb.models.embeddings import load_embeddings

    settings = Settings()
    count = load_embeddings(settings).count_tokens
    texts = []
    for found in walk(corpus):
        doc = load(found.path, found.format)
        for chunk in split_document(
            doc, count, settings.chunk_tokens, settings.chunk_overlap_tokens
        ):
            texts.append(embedded_text(doc.title, found.path.name, chunk))
    return texts


def embedded_tokens(texts: list[str]) -> dict:
    """Tokens the embedding model reads from `texts`, and how many texts exceed its window."""
    from kb.config import Settings
    from kb.models.embeddings import load_embeddings

    embeddings = load_embeddings(Settings())
    counts = [embeddings.count_tokens(t) for t in texts]
    window = embeddings.max_tokens
    return {
        "tokens": sum(min(c, window) for c in counts),
        "tokens_cut": sum(max(0, c - window) for c in counts),
        "texts_over_window": sum(c > window for c in counts),
    }


def variant_limit(texts_file: Path) -> dict:
    from kb.config import Settings
    from kb.models.embeddings import load_embeddings

    texts = json.loads(texts_file.read_text())
    settings = Settings()
    embeddings = load_embeddings(settings)
    batch = settings.embed_batch_size
    started = time.perf_counter()
    for i in range(0, len(texts), batch):
        embeddings.embed_passages(texts[i : i + batch])
    return {"seconds": time.perf_counter() - started, "chunks": len(texts)}


def variant_stock(corpus: Path, home: Path) -> dict:
    from langchain_chroma import Chroma
    from langchain_community.document_loaders import (
        DirectoryLoader,
        PyPDFium2Loader,
        UnstructuredFileLoader,
    )
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from kb.config import Settings
    from kb.models.embeddings import load_embeddings

    embeddings = load_embeddings(Settings())
    started = time.perf_counter()
    # unstructured's PDF partitioner needs its [pdf] extra (not installed: kb reads PDFs with
    # pdfium), so the stock pipeline gets LangChain's own pdfium loader for PDFs.
    docs = DirectoryLoader(
        str(corpus), glob="**/*.md", loader_cls=UnstructuredFileLoader, silent_errors=False
    ).load()
    docs += DirectoryLoader(str(corpus), glob="**/*.pdf", loader_cls=PyPDFium2Loader).load()
    splits = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(
        docs
    )
    Chroma.from_documents(splits, embeddings, persist_directory=str(home), collection_name="stock")
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "files": len(docs),
        "chunks": len(splits),
        **embedded_tokens([d.page_content for d in splits]),
    }


def child(args: list[str]) -> dict:
    """Run one variant in a fresh interpreter; returns its figures plus its peak memory."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"variant {args[0]} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest child so far: exact for the first, a bound later.
    result["peak_rss_mb"] = round(max(peak, before) / 1024, 1) if peak > before else None
    return result


def run_child_main(argv: list[str]) -> None:
    name = argv[0]
    if name == "kb":
        out = variant_kb(Path(argv[1]), Path(argv[2]))
    elif name == "stock":
        out = variant_stock(Path(argv[1]), Path(argv[2]))
    elif name == "limit":
        out = variant_limit(Path(argv[1]))
    elif name == "texts":
        texts = chunk_texts(Path(argv[1]))
        Path(argv[2]).write_text(json.dumps(texts, ensure_ascii=False))
        # kb embeds these texts (identical ones once), as does the limit variant.
        out = {"chunks": len(texts), **embedded_tokens(list(dict.fromkeys(texts)))}
    else:
        raise SystemExit(f"unknown variant {name}")
    out["peak_rss_mb_self"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--pdfs", type=int, default=2, help="financebench filings to include")
    args = parser.parse_args()
    if not EVAL.is_dir():
        print(f"skipped: {EVAL} not found (the evaluation sets are read at run time)")
        return
    corpus = build_corpus(args.pdfs)
    files = sum(1 for p in corpus.rglob("*") if p.is_file())
    size = sum(p.stat().st_size for p in corpus.rglob("*") if p.is_file())
    texts_file = WORK / "chunk-texts.json"
    kb_texts = child(["texts", str(corpus), str(texts_file)])
    rounds: list[dict] = []
    for _ in range(args.repeats):
        round_ = {}
        for variant in ("limit", "kb", "stock"):
            with tempfile.TemporaryDirectory(prefix=f"bench-{variant}-") as tmp:
                if variant == "limit":
                    round_[variant] = child(["limit", str(texts_file)])
                else:
                    round_[variant] = child([variant, str(corpus), tmp])
            print(variant, json.dumps(round_[variant]), flush=True)
        rounds.append(round_)

    def median(variant: str, key: str) -> float:
        return statistics.median(r[variant][key] for r in rounds)

    kb_s, limit_s, stock_s = (
        median("kb", "seconds"),
        median("limit", "seconds"),
        median("stock", "seconds"),
    )
    rerun_s = median("kb", "rerun_seconds")
    kb_chunks = rounds[0]["kb"]["chunks"]
    summary = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores, "
        "no GPU",
        "corpus": {
            "sets": SETS,
            "cmrc2018_files": CMRC_FILES,
            "financebench_pdfs": args.pdfs,
            "files": files,
            "bytes": size,
        },
        "repeats": args.repeats,
        "kb": {
            "seconds": round(kb_s, 1),
            "files_per_s": round(files / kb_s, 2),
            "chunks": kb_chunks,
            "chunks_per_s": round(kb_chunks / kb_s, 2),
            "peak_rss_mb": max(r["kb"]["peak_rss_mb_self"] for r in rounds),
            "rerun_seconds": round(rerun_s, 2),
            "rerun_share_of_first_run": round(rerun_s / kb_s, 4),
        },
        "limit": {
            "seconds": round(limit_s, 1),
            "chunks": rounds[0]["limit"]["chunks"],
            "peak_rss_mb": max(r["limit"]["peak_rss_mb_self"] for r in rounds),
        },
        "stock": {
            "seconds": round(stock_s, 1),
            "chunks": rounds[0]["stock"]["chunks"],
            "peak_rss_mb": max(r["stock"]["peak_rss_mb_self"] for r in rounds),
        },
        "ratios": {
            "kb_over_limit": round(kb_s / limit_s, 3),
            "stock_over_kb": round(stock_s / kb_s, 3),
            "rerun_over_first": round(rerun_s / kb_s, 4),
        },
        "targets": {
            "kb_over_limit_max": 1.3,
            "stock_over_kb_min": 1.5,
            "rerun_over_first_max": 0.03,
        },
        "tokens": {
            "kb": kb_texts["tokens"],
            "kb_cut": kb_texts["tokens_cut"],
            "kb_over_window": kb_texts["texts_over_window"],
            "stock": rounds[0]["stock"]["tokens"],
            "stock_cut": rounds[0]["stock"]["tokens_cut"],
            "stock_over_window": rounds[0]["stock"]["texts_over_window"],
            "kb_per_s": round(kb_texts["tokens"] / kb_s, 1),
            "limit_per_s": round(kb_texts["tokens"] / limit_s, 1),
            "stock_per_s": round(rounds[0]["stock"]["tokens"] / stock_s, 1),
        },
        "rounds": rounds,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ingest.json").write_text(json.dumps(summary, indent=2))
    tok = summary["tokens"]
    table = [
        f"# Ingestion benchmark ({summary['date']}, {summary['machine']})",
        "",
        f"Corpus: {files} files ({size / 2**20:.1f} MB) from {', '.join(SETS)} "
        f"(cmrc2018: first {CMRC_FILES}) and {args.pdfs} financebench PDFs; median of "
        f"{args.repeats} alternating rounds.",
        "",
        "| variant | seconds | chunks | chunks/s | files/s | tokens embedded | tokens/s "
        "| tokens cut (texts over 512) | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| (a) limit: encode kb's chunk texts only | {limit_s:.1f} | "
        f"{summary['limit']['chunks']} | {summary['limit']['chunks'] / limit_s:.2f} | - | "
        f"{tok['kb']:,} | {tok['limit_per_s']:,} | - | {summary['limit']['peak_rss_mb']} |",
        f"| kb ingest | {kb_s:.1f} | {kb_chunks} | {kb_chunks / kb_s:.2f} | "
        f"{files / kb_s:.2f} | {tok['kb']:,} | {tok['kb_per_s']:,} | "
        f"{tok['kb_cut']:,} ({tok['kb_over_window']}) | {summary['kb']['peak_rss_mb']} |",
        f"| (b) stock LangChain pipeline | {stock_s:.1f} | {summary['stock']['chunks']} | "
        f"{summary['stock']['chunks'] / stock_s:.2f} | {files / stock_s:.2f} | "
        f"{tok['stock']:,} | {tok['stock_per_s']:,} | "
        f"{tok['stock_cut']:,} ({tok['stock_over_window']}) | "
        f"{summary['stock']['peak_rss_mb']} |",
        f"| kb ingest again, unchanged | {rerun_s:.2f} | 0 | - | - | - | - | - | - |",
        "",
        "Tokens: the embedding model's tokens of each embedded text, capped at its 512-token "
        "window; tokens cut: those past the window, never embedded.",
        "",
        f"kb / limit = **{kb_s / limit_s:.2f}×** (target ≤ 1.3); stock / kb = "
        f"**{stock_s / kb_s:.2f}×** (target ≥ 1.5); re-run / first run = "
        f"**{100 * rerun_s / kb_s:.1f}%** (target < 3%).",
        "",
    ]
    (RESULTS / "ingest.md").write_text("\n".join(table))
    print("\n".join(table))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        run_child_main(sys.argv[2:])
    else:
        main()
