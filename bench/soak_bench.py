"""Soak: `kb serve` answers continuously on loopback while its memory, file descriptors,
threads and latency are watched.

    .venv/bin/python bench/soak_bench.py [--minutes 30] [--model qwen2.5-1.5b]

The real `kb serve` (a subprocess, over the sample documents) gets a bounded request loop from
one client for --minutes: per request a search (POST /v1/search) and a streamed chat
completion (the `openai` client), the sample questions round-robin (one has no answer in the
documents: a refusal). Every request's latency and, every 5 s, the server process's RSS, open
file descriptors and threads are recorded. Passes when RSS after the first 10% of the run stays
within 10% (and at least 100 MB) of its level then, and descriptors and threads do not grow.
Curves: bench/results/soak.png; figures: the "soak" section of
bench/results/reliability.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from reliability_results import RESULTS, load_now, update  # noqa: E402

WORK = ROOT / "bench" / "work" / "soak"
KB = Path(sys.executable).parent / "kb"
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
    import httpx
    import openai
    import psutil
    from serve_bench import free_port

    shutil.rmtree(WORK, ignore_errors=True)
    env = {**os.environ, "KB_HOME": str(WORK / "kb"), "KB_LLM_MODEL": args.model}
    subprocess.run([str(KB), "ingest", str(ROOT / "data" / "samples")], env=env, check=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(KB), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    samples: list[tuple[float, float, int, int]] = []  # seconds, RSS MB, fds, threads
    requests: list[tuple[float, float, bool]] = []  # seconds, latency, error
    errors: list[str] = []
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("kb serve did not become ready")
            time.sleep(1)
        process = psutil.Process(server.pid)
        started = time.monotonic()

        def sample() -> None:
            while not stop.is_set():
                try:
                    samples.append(
                        (
                            time.monotonic() - started,
                            process.memory_info().rss / 2**20,
                            process.num_fds(),
                            process.num_threads(),
                        )
                    )
                except psutil.Error:
                    return
                stop.wait(5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="soak", max_retries=0, timeout=900)
        n = 0
        with httpx.Client(timeout=900) as http:
            while time.monotonic() - started < args.minutes * 60:
                question = QUESTIONS[n % len(QUESTIONS)]
                began = time.monotonic()
                error = ""
                try:
                    found = http.post(f"{url}/v1/search", json={"query": question, "k": 5})
                    found.raise_for_status()
                    finished = False
                    stream = client.chat.completions.create(
                        model="default",
                        messages=[{"role": "user", "content": question}],
                        stream=True,
                    )
                    for chunk in stream:
                        if chunk.choices and chunk.choices[0].finish_reason:
                            finished = True
                    if not finished:
                        error = "the stream ended without a finish reason"
                except (httpx.HTTPError, openai.APIError) as exc:
                    error = repr(exc)[:300]
                if error:
                    errors.append(error)
                requests.append((began - started, time.monotonic() - began, bool(error)))
                n += 1
        stop.set()
        sampler.join()
    finally:
        stop.set()
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()

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
        "error_samples": sorted(set(errors))[:5],
        "rss_mb_after_warmup": round(rss_start, 1),
        "rss_mb_end": round(rss_end, 1),
        "rss_mb_max": round(rss_max, 1),
        "rss_bound_mb": round(rss_start + bound, 1),
        "rss_within_bound": rss_max <= rss_start + bound,
        "fds_start_end": [warm[0][2], warm[-1][2]],
        "fds_max": max(s[2] for s in warm),
        "threads_start_end": [warm[0][3], warm[-1][3]],
        "threads_max": max(s[3] for s in warm),
        "latency_p50_first_half_s": round(statistics.median(latencies[:half] or [0]), 2),
        "latency_p50_second_half_s": round(statistics.median(latencies[half:] or [0]), 2),
        "load_average_end": round(os.getloadavg()[0], 1),
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
    figure.suptitle(
        f"soak: kb serve, {len(requests)} requests in {args.minutes:g} min ({args.model})"
    )
    figure.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    figure.savefig(RESULTS / "soak.png", dpi=80)
    markdown = f"""{args.minutes:g} minutes of continuous answering through `kb serve` on loopback
({args.model}, sample documents, one client; per request a search and a streamed chat
completion): {len(requests)} requests, {data["errors"]} errors. Server RSS {rss_start:.0f} MB
after warm-up, {rss_end:.0f} MB at the end, at most {rss_max:.0f} MB (bound
{rss_start + bound:.0f} MB: {"kept" if data["rss_within_bound"] else "EXCEEDED"}); open file
descriptors {warm[0][2]} → {warm[-1][2]} (at most {data["fds_max"]}), threads {warm[0][3]} →
{warm[-1][3]} (at most {data["threads_max"]}); median latency
{data["latency_p50_first_half_s"]} s in the first half, {data["latency_p50_second_half_s"]} s in
the second. Curves: [soak.png](soak.png).
"""
    update("soak", data, markdown, load)
    print(markdown)


if __name__ == "__main__":
    main()
