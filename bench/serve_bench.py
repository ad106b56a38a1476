"""`kb serve` under concurrent load on loopback: 8 clients, bounded requests.

Starts the real `kb serve` (a subprocess, default bundled model) over a knowledge base of the
sample documents, then runs two phases, each with CLIENTS threads sending a fixed number of
requests:

- search: POST /v1/search (no chat model involved);
- answers: streamed chat completions through the `openai` client (one answer at a time on the
  model; the others wait in the server's queue).

Reports throughput, p50/p95 latency, time to first token under load, errors (429s counted
apart), and the server's resident memory sampled through the run. Writes
bench/results/serve.{json,md}.

    .venv/bin/python bench/serve_bench.py [--clients 8] [--searches 25] [--answers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

import httpx
import openai
import psutil

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "bench" / "work" / "serve-kb"
KB = Path(sys.executable).parent / "kb"

# Questions about the sample documents (English and Chinese; the last one has no answer there).
QUESTIONS = [
    "When does the Singapore office open?",
    "How long must passwords be?",
    "What is the hotel cap in tier-1 cities?",
    "员工每年有几天年假？",
    "How many days of annual leave do employees get?",
    "Who won the 2018 football world cup?",
    "报销需要在多少天内提交？",
    "Which public holidays fall in May 2027?",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


class MemorySampler:
    def __init__(self, pid: int, every: float = 0.5) -> None:
        self.process = psutil.Process(pid)
        self.every = every
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(self.process.memory_info().rss / 1e6)
            except psutil.Error:
                return
            self._stop.wait(self.every)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        s = self.samples
        return {
            "start_mb": round(s[0], 1) if s else None,
            "peak_mb": round(max(s), 1) if s else None,
            "end_mb": round(s[-1], 1) if s else None,
        }


def run_clients(clients: int, work) -> tuple[list[dict], float]:
    """Run `work(client_index)` in `clients` threads; returns their records and the wall time."""
    records: list[dict] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        for record in work(i):
            with lock:
                records.append(record)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return records, time.perf_counter() - started


def search_phase(url: str, clients: int, per_client: int) -> dict:
    def work(i: int):
        with httpx.Client(timeout=60) as http:
            for n in range(per_client):
                query = QUESTIONS[(i + n) % len(QUESTIONS)]
                started = time.perf_counter()
                try:
                    response = http.post(f"{url}/v1/search", json={"query": query, "k": 5})
                    status = response.status_code
                except httpx.HTTPError:
                    status = -1
                yield {"status": status, "seconds": time.perf_counter() - started}

    records, wall = run_clients(clients, work)
    return summarise(records, wall)


def answer_phase(url: str, clients: int, per_client: int) -> dict:
    def work(i: int):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="bench", max_retries=0, timeout=600)
        for n in range(per_client):
            question = QUESTIONS[(i * per_client + n) % len(QUESTIONS)]
            started = time.perf_counter()
            first = None
            refused = None
            try:
                stream = client.chat.completions.create(
                    model="default",
                    messages=[{"role": "user", "content": question}],
                    stream=True,
                )
                for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content and first is None:
                        first = time.perf_counter() - started
                    if chunk.choices and chunk.choices[0].finish_reason:
                        refused = chunk.model_extra["kb"]["refused"]
                status = 200
            except openai.APIStatusError as exc:
                status = exc.status_code
            except openai.APIError:
                status = -1
            yield {
                "status": status,
                "seconds": time.perf_counter() - started,
                "first_token": first,
                "refused": refused,
            }

    records, wall = run_clients(clients, work)
    result = summarise(records, wall)
    ttft = [r["first_token"] for r in records if r["first_token"] is not None]
    result["first_token_p50_s"] = _round(percentile(ttft, 0.5))
    result["first_token_p95_s"] = _round(percentile(ttft, 0.95))
    result["refused"] = sum(1 for r in records if r.get("refused"))
    return result


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def summarise(records: list[dict], wall: float) -> dict:
    ok = [r["seconds"] for r in records if r["status"] == 200]
    return {
        "requests": len(records),
        "ok": len(ok),
        "rejected_429": sum(1 for r in records if r["status"] == 429),
        "timed_out_503": sum(1 for r in records if r["status"] == 503),
        "errors": sum(1 for r in records if r["status"] not in (200, 429, 503)),
        "wall_s": round(wall, 2),
        "throughput_per_s": round(len(ok) / wall, 3) if wall else None,
        "latency_p50_s": _round(percentile(ok, 0.5)),
        "latency_p95_s": _round(percentile(ok, 0.95)),
        "latency_mean_s": _round(statistics.fmean(ok)) if ok else None,
    }


def ensure_knowledge_base(env: dict) -> None:
    status = subprocess.run(
        [str(KB), "status", "--json"], capture_output=True, text=True, env=env, check=True
    )
    if not any(c["chunks"] for c in json.loads(status.stdout)["collections"]):
        subprocess.run([str(KB), "ingest", str(ROOT / "data" / "samples")], env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--searches", type=int, default=25, help="search requests per client")
    parser.add_argument("--answers", type=int, default=2, help="answers per client")
    args = parser.parse_args()

    env = {**os.environ, "KB_HOME": str(WORK)}
    # Answers measure latency under load: a long queue timeout lets every queued one finish
    # (a timed-out question would count as an error; 503s are reported apart all the same).
    env.setdefault("KB_SERVE_QUEUE_TIMEOUT", "900")
    ensure_knowledge_base(env)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(KB), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("kb serve did not become ready")
            time.sleep(0.5)
        with MemorySampler(server.pid) as memory:
            load_before = os.getloadavg()
            search = search_phase(url, args.clients, args.searches)
            answers = answer_phase(url, args.clients, args.answers)
            load_after = os.getloadavg()
        metrics = httpx.get(f"{url}/metrics", timeout=30).text
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
    result = {
        "date": date.today().isoformat(),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB",
        "load_average": {"before": round(load_before[0], 2), "after": round(load_after[0], 2)},
        "clients": args.clients,
        "search": search,
        "answers": answers,
        "server_memory": memory.summary(),
        "server_cancelled_or_failed": [
            line for line in metrics.splitlines() if line.startswith("kb_answers_total")
        ],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serve.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    (RESULTS / "serve.md").write_text(render(result))
    print(render(result))


def render(r: dict) -> str:
    s, a, m = r["search"], r["answers"], r["server_memory"]
    lines = [
        "# kb serve under load",
        "",
        f"{r['date']}, {r['machine']}, loopback, {r['clients']} concurrent clients; load average "
        f"{r['load_average']['before']} before, {r['load_average']['after']} after.",
        "",
        "| phase | requests | ok | 429 | 503 | errors | throughput | p50 | p95 | "
        "first token p50 / p95 |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| search | {s['requests']} | {s['ok']} | {s['rejected_429']} | {s['timed_out_503']} | "
        f"{s['errors']} | {s['throughput_per_s']} /s | {_ms(s['latency_p50_s'])} | "
        f"{_ms(s['latency_p95_s'])} | |",
        f"| answers (streamed) | {a['requests']} | {a['ok']} | {a['rejected_429']} | "
        f"{a['timed_out_503']} | {a['errors']} | {a['throughput_per_s'] * 60:.1f} /min | "
        f"{a['latency_p50_s']} s | {a['latency_p95_s']} s | "
        f"{a['first_token_p50_s']} s / {a['first_token_p95_s']} s |",
        "",
        f"Answers refused (by design, e.g. the question with no answer in the samples): "
        f"{a['refused']}. Server memory (RSS): {m['start_mb']} MB at the start, "
        f"peak {m['peak_mb']} MB, {m['end_mb']} MB at the end.",
        "",
    ]
    return "\n".join(lines)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


if __name__ == "__main__":
    main()
