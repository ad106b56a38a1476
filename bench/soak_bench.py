"""Soak: answer questions continuously and watch memory, file descriptors, threads and latency.

    .venv/bin/python bench/soak_bench.py [--minutes 30] [--model qwen2.5-1.5b]

One `KnowledgeBase` over the sample documents answers the sample questions round-robin (with
their searches) for --minutes, as a server would; every request's latency and, every few
seconds, the process's RSS, open file descriptors and threads are recorded. Passes when RSS
after the first 10% of the run stays within 10% (and 100 MB) of its level then, and descriptors
and threads do not grow. Curves: bench/results/soak.png; figures: the "soak" section of
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
from reliability_results import RESULTS, load_now, update  # noqa: E402

WORK = ROOT / "bench" / "work" / "soak"
QUESTIONS = [
    "How many days of annual leave do managers get?",
    "What is the hotel limit for business travel?",
    "员工每年有多少天年假？",
    "Who approves expense claims?",
    "报销需要在多少天内提交？",
    "What is the capital of Mongolia?",  # not in the documents: a refusal
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--model", default="qwen2.5-1.5b")
    args = parser.parse_args()
    load = load_now()
    import psutil

    from kb.answer.types import Done
    from kb.app import KnowledgeBase
    from kb.config import Settings

    shutil.rmtree(WORK, ignore_errors=True)
    settings = Settings(home=WORK / "kb", llm_model=args.model)
    process = psutil.Process()
    samples: list[tuple[float, float, int, int]] = []  # seconds, RSS MB, fds, threads
    requests: list[tuple[float, float, bool]] = []  # seconds, latency, error
    stop = threading.Event()
    started = time.monotonic()

    def sample() -> None:
        while not stop.is_set():
            samples.append(
                (
                    time.monotonic() - started,
                    process.memory_info().rss / 2**20,
                    process.num_fds(),
                    process.num_threads(),
                )
            )
            stop.wait(5)

    with KnowledgeBase(settings) as knowledge:
        knowledge.ingest([ROOT / "data" / "samples"])
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        n = 0
        while time.monotonic() - started < args.minutes * 60:
            question = QUESTIONS[n % len(QUESTIONS)]
            began = time.monotonic()
            error = False
            try:
                knowledge.search(question)
                events = list(knowledge.stream(question))
                error = not isinstance(events[-1], Done)
            except Exception:  # noqa: BLE001 - counted, the loop goes on
                error = True
            requests.append((began - started, time.monotonic() - began, error))
            n += 1
        stop.set()
        sampler.join()

    warm = [s for s in samples if s[0] >= 0.1 * args.minutes * 60] or samples
    rss_start, rss_end = warm[0][1], warm[-1][1]
    rss_max = max(s[1] for s in warm)
    bound = max(0.10 * rss_start, 100.0)
    latencies = [r[1] for r in requests]
    half = len(latencies) // 2
    data = {
        "minutes": args.minutes,
        "model": args.model,
        "requests": len(requests),
        "errors": sum(r[2] for r in requests),
        "rss_mb_after_warmup": round(rss_start, 1),
        "rss_mb_end": round(rss_end, 1),
        "rss_mb_max": round(rss_max, 1),
        "rss_bound_mb": round(rss_start + bound, 1),
        "rss_within_bound": rss_max <= rss_start + bound,
        "fds_start_end": [warm[0][2], warm[-1][2]],
        "threads_start_end": [warm[0][3], warm[-1][3]],
        "latency_p50_first_half_s": round(statistics.median(latencies[:half] or [0]), 2),
        "latency_p50_second_half_s": round(statistics.median(latencies[half:] or [0]), 2),
    }
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(4, 1, figsize=(8, 10), sharex=True)
    minutes = [s[0] / 60 for s in samples]
    axes[0].plot(minutes, [s[1] for s in samples])
    axes[0].axhline(rss_start + bound, color="red", linestyle="--", label="bound")
    axes[0].set_ylabel("RSS (MB)")
    axes[0].legend()
    axes[1].plot(minutes, [s[2] for s in samples])
    axes[1].set_ylabel("open fds")
    axes[2].plot(minutes, [s[3] for s in samples])
    axes[2].set_ylabel("threads")
    axes[3].plot([r[0] / 60 for r in requests], latencies, ".", markersize=3)
    axes[3].set_ylabel("latency (s)")
    axes[3].set_xlabel("minutes")
    figure.suptitle(f"soak: {len(requests)} answers in {args.minutes:g} min ({args.model})")
    figure.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    figure.savefig(RESULTS / "soak.png", dpi=80)
    markdown = f"""{args.minutes:g} minutes of continuous answering ({args.model}, sample documents,
search + streamed answer per request): {len(requests)} requests, {data["errors"]} errors.
RSS {rss_start:.0f} MB after warm-up, {rss_end:.0f} MB at the end, at most {rss_max:.0f} MB
(bound {rss_start + bound:.0f} MB: {"kept" if data["rss_within_bound"] else "EXCEEDED"}); open
file descriptors {warm[0][2]} → {warm[-1][2]}, threads {warm[0][3]} → {warm[-1][3]}; median latency
{data["latency_p50_first_half_s"]} s in the first half, {data["latency_p50_second_half_s"]} s in
the second. Curves: [soak.png](soak.png).
"""
    update("soak", data, markdown, load)
    print(markdown)


if __name__ == "__main__":
    main()
