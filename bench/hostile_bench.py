"""Hostile files beside good ones: what `kb ingest` reports, how long, how much memory.

    .venv/bin/python bench/hostile_bench.py [--light]

Writes the hostile folder of tests/hostile_files.py (with the 200 MB single-line text file;
--light uses the 20 MB one) beside one good document of every format, runs `kb ingest --json`
with the default limits (as root without the power to read unreadable files), and records
every file's outcome, the time and the peak RSS of kb and of its parse worker. Results: the
"hostile" section of bench/results/reliability.{json,md}.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))
from conftest import FACTS, KB_BIN, write_corpus  # noqa: E402
from hostile_files import check_outcome, run_ingest, write_hostile  # noqa: E402
from reliability_results import load_now, update  # noqa: E402

WORK = ROOT / "bench" / "work" / "hostile"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--light", action="store_true", help="the 20 MB file, not the 200 MB one")
    args = parser.parse_args()
    load = load_now()
    spec = importlib.util.spec_from_file_location("make_samples", ROOT / "data/make_samples.py")
    writers = importlib.util.module_from_spec(spec)
    sys.modules["make_samples"] = writers
    spec.loader.exec_module(writers)
    if WORK.exists():
        for path in WORK.rglob("*"):
            if not path.is_symlink():
                path.chmod(0o755)
        shutil.rmtree(WORK)
    docs = WORK / "docs"
    write_corpus(docs / "good", writers)
    expect = write_hostile(docs / "hostile", writers, heavy=not args.light)
    changing = docs / "good" / "still-being-written.txt"
    changing.write_text("A log that another program keeps appending to.\n")
    home = WORK / "kb"
    home.mkdir()
    result = run_ingest(KB_BIN, docs, home, {}, changing=changing)
    problems = check_outcome(expect, FACTS, result)
    summary = result["summary"] or {"failed": []}
    failed = {f["path"]: f["error"] for f in summary["failed"]}
    data = {
        "hostile_files": len(expect),
        "good_files": len(FACTS) + 1,
        "heavy": not args.light,
        "returncode": result["returncode"],
        "seconds": result["seconds"],
        "peak_rss_mb": result["peak_rss_mb"],
        "peak_worker_rss_mb": result["peak_worker_rss_mb"],
        "peak_total_rss_mb": result["peak_total_rss_mb"],
        "reported": len(failed),
        "indexed": summary.get("added", 0),
        "promises_broken": problems,
        "failures": failed,
    }
    rows = "\n".join(
        f"| {name.encode('unicode_escape').decode()} | {reason} |"
        for name, reason in sorted(failed.items())
    )
    big = "200 MB" if not args.light else "20 MB"
    markdown = f"""{len(expect)} hostile files (the {big} single-line text file included) beside
{len(FACTS)} good documents of every format and one file rewritten throughout the run; default
limits (KB_PARSE_TIMEOUT_S=120, KB_PARSE_MEMORY_MB=2048, KB_MAX_FILE_CHUNKS=10000,
KB_MAX_UNPACKED_MB=1024).

| measure | result |
|---|---|
| exit code | {result["returncode"]} |
| wall time | {result["seconds"]:.0f} s |
| peak RSS, kb | {result["peak_rss_mb"]} MB |
| peak RSS, parse worker | {result["peak_worker_rss_mb"]} MB |
| peak RSS, both | {result["peak_total_rss_mb"]} MB |
| files reported failed, each with its reason | {len(failed)} |
| files indexed | {summary.get("added", 0)} |
| promises broken (a bad file not reported, a good one not indexed, a traceback) | {len(problems)} |

| file | reason reported |
|---|---|
{rows}
"""
    update("hostile", data, markdown, load)
    print(markdown)
    for problem in problems:
        print("BROKEN:", problem)


if __name__ == "__main__":
    main()
