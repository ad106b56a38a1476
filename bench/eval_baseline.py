"""Retrieval baseline: every development set of ../shared/eval in one knowledge base, then kb eval.

    .venv/bin/python bench/eval_baseline.py [--home bench/work/eval-kb] [--limit 300]
                                            [--finance-pages 1000]

Ingests the documents of cmrc2018, xquad_zh, xquad_en, domainrag, dragonball_en, drcd_zhhans and
financebench into one knowledge base with `kb ingest` (incremental: an interrupted build resumes),
then runs `kb eval` on all their question files at once, writing summary.json, report.md and
report.png to bench/results/eval-baseline/.

financebench's 32 filings hold 4,690 pages (about four million tokens, close to an hour of
embedding on two cores), so by default only its smallest filings up to --finance-pages pages are
ingested, and only the financebench questions whose gold pages lie in those filings are asked;
the other sets are complete. --finance-pages 0 takes every filing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT.parent / "shared" / "eval"
RESULTS = ROOT / "bench" / "results" / "eval-baseline"
WORK = ROOT / "bench" / "work"
SETS = ["cmrc2018", "xquad_zh", "xquad_en", "domainrag", "dragonball_en", "drcd_zhhans"]
KB = [str(ROOT / ".venv" / "bin" / "kb")]


def finance_subset(max_pages: int) -> tuple[Path, Path]:
    """A docs folder with the smallest filings and a question file restricted to them."""
    import pypdfium2 as pdfium

    source = EVAL / "financebench"
    filings = sorted((len(pdfium.PdfDocument(p)), p.name, p) for p in source.glob("docs/*.pdf"))
    chosen, pages = [], 0
    for count, _, path in filings:
        if max_pages and pages + count > max_pages:
            break
        chosen.append(path)
        pages += count
    target = WORK / "financebench"
    docs = target / "docs"
    if docs.exists():
        shutil.rmtree(docs)
    docs.mkdir(parents=True)
    for path in chosen:
        shutil.copy(path, docs / path.name)
    stems = {p.stem for p in chosen}
    kept = [
        line
        for line in (source / "qa.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip() and all(g.rsplit("-p", 1)[0] in stems for g in json.loads(line)["gold_ids"])
    ]
    qa = target / "qa.jsonl"
    qa.write_text("\n".join(kept) + "\n", encoding="utf-8")
    print(f"financebench: {len(chosen)} filings, {pages} pages, {len(kept)} questions", flush=True)
    return docs, qa


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=WORK / "eval-kb")
    parser.add_argument(
        "--limit",
        type=int,
        default=300,
        help="questions per set (a fixed random sample); the largest sets have thousands",
    )
    parser.add_argument("--finance-pages", type=int, default=1000)
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--ingest-only", action="store_true")
    args = parser.parse_args()
    if not EVAL.is_dir():
        print(f"skipped: {EVAL} not found (the evaluation sets are read at run time)")
        return
    finance_docs, finance_qa = finance_subset(args.finance_pages)
    env = {"KB_HOME": str(args.home), "PATH": "/usr/bin:/bin"}
    if not args.skip_ingest:
        folders = [str(EVAL / name / "docs") for name in SETS] + [str(finance_docs)]
        # Exit code 1 means some file failed; the summary names it and the rest is indexed.
        subprocess.run([*KB, "ingest", *folders, "--json"], env=env, check=False)
    if args.ingest_only:
        return
    qa_files = [str(EVAL / name / "qa.jsonl") for name in SETS] + [str(finance_qa)]
    result = subprocess.run(
        [*KB, "eval", *qa_files, "--limit", str(args.limit), "--out", str(RESULTS)], env=env
    )
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
