"""Reading while writing, with the real models: 8 threads search and ask through one
`KnowledgeBase` while an ingestion runs, against the same clients with no ingestion.

    .venv/bin/python bench/concurrency_bench.py [--files 60] [--model qwen2.5-1.5b]

4 threads search and 4 ask (the real chat model: answers queue for it, one at a time, as they
would in a server) while `ingest` adds --files generated reports (labelled as such); then the
same clients run for as long again with nothing being written. Errors, requests served and
latency percentiles for both phases go to the "concurrency" section of
bench/results/reliability.{json,md}.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from reliability_results import load_now, update  # noqa: E402

WORK = ROOT / "bench" / "work" / "concurrency"
QUESTIONS = [
    "How many days of annual leave do managers get?",
    "What is the hotel limit for business travel?",
    "员工每年有多少天年假？",
    "Who approves expense claims?",
]


def write_reports(folder: Path, n: int) -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        body = " ".join(
            f"Generated sentence {j} of report {i} about depot {i % 7}." for j in range(150)
        )
        (folder / f"report-{i:03d}.md").write_text(f"# Report {i} (generated text)\n\n{body}\n")


def run_clients(knowledge, until: threading.Event, record: list) -> list[threading.Thread]:
    from kb.answer.types import Done

    def client(kind: str, offset: int) -> None:
        n = offset
        while not until.is_set():
            question = QUESTIONS[n % len(QUESTIONS)]
            began = time.perf_counter()
            try:
                if kind == "ask":
                    ok = isinstance(list(knowledge.stream(question))[-1], Done)
                else:
                    ok = bool(knowledge.search(question).hits)
                record.append((kind, time.perf_counter() - began, ok))
            except Exception as exc:  # noqa: BLE001 - counted as an error
                record.append((kind, time.perf_counter() - began, False))
                print("error:", repr(exc), flush=True)
            n += 1

    threads = [threading.Thread(target=client, args=("search", i)) for i in range(4)]
    threads += [threading.Thread(target=client, args=("ask", i)) for i in range(4)]
    for thread in threads:
        thread.start()
    return threads


def stats(record: list, kind: str) -> dict:
    times = sorted(t for k, t, _ in record if k == kind)
    if not times:
        return {"n": 0}
    return {
        "n": len(times),
        "errors": sum(1 for k, _, ok in record if k == kind and not ok),
        "p50_s": round(statistics.median(times), 3),
        "p95_s": round(times[int(0.95 * (len(times) - 1))], 3),
        "max_s": round(times[-1], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=60)
    parser.add_argument("--model", default="qwen2.5-1.5b")
    args = parser.parse_args()
    load = load_now()
    from kb.app import KnowledgeBase
    from kb.config import Settings

    shutil.rmtree(WORK, ignore_errors=True)
    write_reports(WORK / "reports", args.files)
    settings = Settings(home=WORK / "kb", llm_model=args.model)
    results = {}
    with KnowledgeBase(settings) as knowledge:
        knowledge.ingest([ROOT / "data" / "samples"])
        knowledge.ask(QUESTIONS[0])  # load the chat model before timing anything
        during: list = []
        done = threading.Event()
        clients = run_clients(knowledge, done, during)
        started = time.perf_counter()
        summary = knowledge.ingest([WORK / "reports"])
        ingest_s = time.perf_counter() - started
        done.set()
        for thread in clients:
            thread.join()
        idle: list = []
        stop = threading.Event()
        clients = run_clients(knowledge, stop, idle)
        time.sleep(ingest_s)
        stop.set()
        for thread in clients:
            thread.join()
    for phase, record in (("during_ingestion", during), ("no_ingestion", idle)):
        results[phase] = {"search": stats(record, "search"), "ask": stats(record, "ask")}
    data = {
        "files": args.files,
        "chunks": summary.chunks,
        "ingest_seconds": round(ingest_s, 1),
        "ingest_failed": len(summary.failed),
        "model": args.model,
        **results,
    }

    def row(phase: str, kind: str) -> str:
        s = results[phase][kind]
        if not s["n"]:
            return f"| {phase.replace('_', ' ')} | {kind} | 0 | - | - | - | - |"
        return (
            f"| {phase.replace('_', ' ')} | {kind} | {s['n']} | {s['errors']} | {s['p50_s']} | "
            f"{s['p95_s']} | {s['max_s']} |"
        )

    rows = "\n".join(
        row(p, k) for p in ("during_ingestion", "no_ingestion") for k in ("search", "ask")
    )
    markdown = f"""4 searching and 4 asking threads on one `KnowledgeBase` ({args.model}) while
`ingest` added {args.files} generated reports ({summary.chunks} chunks, {ingest_s:.0f} s,
{len(summary.failed)} failed), then the same clients for as long with nothing written.

| phase | request | served | errors | p50 (s) | p95 (s) | max (s) |
|---|---|---|---|---|---|---|
{rows}
"""
    update("concurrency", data, markdown, load)
    print(markdown)


if __name__ == "__main__":
    main()
