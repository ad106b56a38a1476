"""Reading while writing, as deployed: 8 API clients and 4 page sessions during an ingestion.

    .venv/bin/python bench/concurrency_bench.py [--files 24] [--clients 8] [--page-sessions 4]

The shape of deploy/compose.yaml on loopback: a Chroma server, the real `kb serve` (default
bundled model) and the page's sessions (Streamlit AppTest, in one process as a `kb ui` server
runs them, with its own model) share one knowledge base. Two phases:

1. during an ingestion: --files generated reports (labelled as such) are uploaded through
   POST /v1/ingest in batches while 4 clients search (POST /v1/search) and 4 ask (streamed
   chat completions through the `openai` client) without pause, and --page-sessions page
   sessions ask questions; a second `kb ingest` on the same KB_HOME starts meanwhile and must
   wait for the first (and say so) rather than interleave;
2. the same clients for as long again (at most --idle-seconds) with nothing being written.

Counted per phase and kind: requests, answers served, deliberate 429/503s (a full or slow
question queue: `KB_SERVE_QUEUE`, `KB_SERVE_QUEUE_TIMEOUT`), other errors, latency percentiles.
Afterwards the knowledge base must be consistent (Chroma, keyword index, manifest) and hold
every file. Figures: the "concurrency" section of bench/results/reliability.{json,md}.
"""

from __future__ import annotations

import argparse
import json
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
sys.path.insert(0, str(ROOT / "tests"))
from reliability_results import load_now, update  # noqa: E402

WORK = ROOT / "bench" / "work" / "concurrency"
KB = Path(sys.executable).parent / "kb"
CHROMA = Path(sys.executable).parent / "chroma"
APP = ROOT / "ui" / "app.py"
QUESTIONS = [
    "How many days of annual leave do managers get?",
    "What is the hotel limit for business travel?",
    "员工每年有多少天年假？",
    "Who approves expense claims?",
]
KINDS = ("search", "ask", "page")
PHASES = ("during_ingestion", "no_ingestion")


def write_reports(folder: Path, n: int, start: int = 0) -> None:
    folder.mkdir(parents=True)
    for i in range(start, start + n):
        body = " ".join(
            f"Generated sentence {j} of report {i} about depot {i % 7}." for j in range(150)
        )
        (folder / f"report-{i:03d}.md").write_text(f"# Report {i} (generated text)\n\n{body}\n")


class Phase:
    """The phase every client tags its next request with; also shared with the page process
    through a file."""

    def __init__(self, control: Path) -> None:
        self.file = control / "phase"
        self.set("warmup")

    def set(self, name: str) -> None:
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(name)
        tmp.replace(self.file)

    def get(self) -> str:
        return self.file.read_text().strip()


# --- the page process ------------------------------------------------------------------------


def page_worker(control: Path, sessions: int) -> None:
    """Run `sessions` page sessions (AppTest, one thread each) until the phase file says stop;
    one JSON line per question in control/page.jsonl."""
    import logging

    from streamlit.testing.v1 import AppTest

    logging.getLogger("streamlit").setLevel(logging.ERROR)
    phase = Phase.__new__(Phase)
    phase.file = control / "phase"
    out = (control / "page.jsonl").open("a", buffering=1)
    lock = threading.Lock()

    def write(record: dict) -> None:
        with lock:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")

    def assistants(at: AppTest) -> list:
        return [m for m in at.chat_message if m.name == "assistant"]

    def ask(at: AppTest, question: str) -> tuple[bool, str]:
        before = len(assistants(at))
        at.chat_input[0].set_value(question).run()
        if at.exception:
            return False, str(at.exception[0].value)[:300]
        shown = assistants(at)
        if len(shown) <= before:
            return False, "no answer shown"
        if shown[-1].error:
            return False, str(shown[-1].error[0].value)[:300]
        return True, ""

    # One question first: the page's process loads its models once, as a `kb ui` server does.
    first = AppTest.from_file(str(APP), default_timeout=1800)
    first.run()
    ok, error = ask(first, QUESTIONS[0])
    if not ok:
        raise SystemExit(f"the page did not answer: {error}")
    (control / "page-ready").write_text("ready")

    def session(i: int) -> None:
        at = AppTest.from_file(str(APP), default_timeout=1800)
        at.run()
        n = i
        while (name := phase.get()) != "stop":
            if name not in PHASES:
                time.sleep(0.5)
                continue
            # A new conversation each time, so every question costs the same (no history).
            at.button(key="new_conversation").click().run()
            began = time.perf_counter()
            try:
                ok, error = ask(at, QUESTIONS[n % len(QUESTIONS)])
            except Exception as exc:  # noqa: BLE001 - counted as an error
                ok, error = False, repr(exc)[:300]
            write(
                {
                    "phase": name,
                    "kind": "page",
                    "status": 200 if ok else -1,
                    "seconds": time.perf_counter() - began,
                    "error": error,
                }
            )
            n += 1

    threads = [threading.Thread(target=session, args=(i,)) for i in range(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


# --- the API clients -------------------------------------------------------------------------


def api_clients(url: str, phase: Phase, record: list, lock: threading.Lock, clients: int):
    import httpx
    import openai

    def add(item: dict) -> None:
        with lock:
            record.append(item)

    def searcher(i: int) -> None:
        n = i
        with httpx.Client(timeout=600) as http:
            while (name := phase.get()) != "stop":
                began = time.perf_counter()
                try:
                    response = http.post(
                        f"{url}/v1/search", json={"query": QUESTIONS[n % len(QUESTIONS)], "k": 5}
                    )
                    status = response.status_code
                    if status == 200 and not response.json()["results"]:
                        status, error = -1, "no hits"
                    else:
                        error = "" if status == 200 else response.text[:300]
                except Exception as exc:  # noqa: BLE001 - counted as an error
                    status, error = -1, repr(exc)[:300]
                add(
                    {
                        "phase": name,
                        "kind": "search",
                        "status": status,
                        "error": error,
                        "seconds": time.perf_counter() - began,
                    }
                )
                n += 1

    def asker(i: int) -> None:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="bench", max_retries=0, timeout=1800)
        n = i
        while (name := phase.get()) != "stop":
            began = time.perf_counter()
            first = None
            error = ""
            try:
                stream = client.chat.completions.create(
                    model="default",
                    messages=[{"role": "user", "content": QUESTIONS[n % len(QUESTIONS)]}],
                    stream=True,
                )
                finished = False
                for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content and first is None:
                        first = time.perf_counter() - began
                    if chunk.choices and chunk.choices[0].finish_reason:
                        finished = True
                status = 200 if finished else -1
                error = "" if finished else "stream ended without a finish reason"
            except openai.APIStatusError as exc:
                status, error = exc.status_code, str(exc)[:300]
            except Exception as exc:  # noqa: BLE001 - counted as an error
                status, error = -1, repr(exc)[:300]
            add(
                {
                    "phase": name,
                    "kind": "ask",
                    "status": status,
                    "error": error,
                    "seconds": time.perf_counter() - began,
                    "first_token": first,
                }
            )
            if status in (429, 503):
                time.sleep(5)  # as a client honouring Retry-After would, roughly
            n += 1

    half = clients // 2
    threads = [threading.Thread(target=searcher, args=(i,)) for i in range(half)]
    threads += [threading.Thread(target=asker, args=(i,)) for i in range(clients - half)]
    for thread in threads:
        thread.start()
    return threads


# --- figures -----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def stats(records: list[dict]) -> dict:
    ok = [r["seconds"] for r in records if r["status"] == 200]
    first = [r["first_token"] for r in records if r.get("first_token") is not None]
    out = {
        "requests": len(records),
        "ok": len(ok),
        "rejected_429": sum(1 for r in records if r["status"] == 429),
        "timed_out_503": sum(1 for r in records if r["status"] == 503),
        "errors": sum(1 for r in records if r["status"] not in (200, 429, 503)),
        "p50_s": None if not ok else round(statistics.median(ok), 2),
        "p95_s": None if not ok else round(percentile(ok, 0.95), 2),
        "max_s": None if not ok else round(max(ok), 2),
    }
    if first:
        out["first_token_p50_s"] = round(statistics.median(first), 2)
    samples = [r["error"] for r in records if r["status"] not in (200, 429, 503)]
    if samples:
        out["error_samples"] = sorted(set(samples))[:5]
    return out


def wait_http(url: str, process: subprocess.Popen, what: str, seconds: float = 600) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{what} did not become ready")
        time.sleep(1)


def stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=24)
    parser.add_argument("--batch", type=int, default=20, help="files per upload request")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--page-sessions", type=int, default=4)
    parser.add_argument("--idle-seconds", type=float, default=300)
    parser.add_argument("--model", default="qwen2.5-1.5b")
    parser.add_argument("--page-worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.page_worker:
        page_worker(args.page_worker, args.page_sessions)
        return

    import httpx
    from serve_bench import free_port
    from tests_support import assert_consistent

    load = load_now()
    shutil.rmtree(WORK, ignore_errors=True)
    control = WORK / "control"
    control.mkdir(parents=True)
    write_reports(WORK / "reports", args.files)
    write_reports(WORK / "second", 3, start=args.files)
    chroma_port, serve_port = free_port(), free_port()
    chroma_url = f"http://127.0.0.1:{chroma_port}"
    url = f"http://127.0.0.1:{serve_port}"
    env = {
        **os.environ,
        "KB_HOME": str(WORK / "kb"),
        "KB_CHROMA_URL": chroma_url,
        "KB_LLM_MODEL": args.model,
        # Deliberate 503s are counted apart, but a long wait lets answers under this load
        # finish instead of being turned away after the default two minutes.
        "KB_SERVE_QUEUE_TIMEOUT": "600",
        "ANONYMIZED_TELEMETRY": "False",
    }
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    chroma = server = page = None
    phase = Phase(control)
    record: list[dict] = []
    lock = threading.Lock()
    uploads: list[dict] = []
    try:
        chroma = subprocess.Popen(
            [
                str(CHROMA),
                "run",
                "--path",
                str(WORK / "chroma"),
                "--host",
                "127.0.0.1",
                "--port",
                str(chroma_port),
            ],
            env=env,
            **quiet,
        )
        wait_http(f"{chroma_url}/api/v2/heartbeat", chroma, "the Chroma server")
        subprocess.run([str(KB), "ingest", str(ROOT / "data" / "samples")], env=env, check=True)
        server = subprocess.Popen([str(KB), "serve", "--port", str(serve_port)], env=env, **quiet)
        wait_http(f"{url}/health", server, "kb serve")
        # Load the server's chat model before timing anything.
        httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "default", "messages": [{"role": "user", "content": QUESTIONS[0]}]},
            timeout=1800,
        ).raise_for_status()
        page = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--page-worker",
                str(control),
                "--page-sessions",
                str(args.page_sessions),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(control / "page.log").open("w"),
        )
        deadline = time.monotonic() + 1800
        while not (control / "page-ready").exists():
            if page.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the page sessions did not start: see " + str(control))
            time.sleep(1)

        phase.set("during_ingestion")
        clients = api_clients(url, phase, record, lock, args.clients)
        started = time.perf_counter()
        reports = sorted((WORK / "reports").iterdir())
        second = None
        second_started = threading.Event()

        def start_second() -> None:
            nonlocal second
            second_started.wait()
            time.sleep(5)
            second = subprocess.Popen(
                [str(KB), "ingest", str(WORK / "second")],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )

        starter = threading.Thread(target=start_second)
        starter.start()
        with httpx.Client(timeout=3600) as http:
            for i in range(0, len(reports), args.batch):
                second_started.set()
                batch = reports[i : i + args.batch]
                began = time.perf_counter()
                response = http.post(
                    f"{url}/v1/ingest",
                    files=[("files", (p.name, p.read_bytes(), "text/markdown")) for p in batch],
                )
                body = response.json()
                uploads.append(
                    {
                        "files": len(batch),
                        "status": response.status_code,
                        "seconds": round(time.perf_counter() - began, 1),
                        "failed": [
                            f["name"] for f in body.get("files", []) if f["status"] == "failed"
                        ],
                        "chunks": (body.get("summary") or {}).get("chunks"),
                    }
                )
        starter.join()
        _, second_err = second.communicate(timeout=3600)
        ingest_s = time.perf_counter() - started
        idle_s = min(ingest_s, args.idle_seconds)
        phase.set("no_ingestion")
        time.sleep(idle_s)
        phase.set("stop")
        for thread in clients:
            thread.join()
        page.wait(timeout=3600)
        metrics = httpx.get(f"{url}/metrics", timeout=60).text
    finally:
        phase.set("stop")
        stop(page)
        stop(server)
    try:
        from kb.config import Settings
        from kb.store import Store

        store = Store(Settings(home=WORK / "kb", chroma_url=chroma_url))
        try:
            assert_consistent(store)
            stored = len(store.manifest.files("default"))
            consistent = True
        except AssertionError as exc:
            consistent, stored = f"INCONSISTENT: {exc}", None
        finally:
            store.close()
    finally:
        stop(chroma)

    page_file = control / "page.jsonl"
    if page_file.exists():
        record += [json.loads(line) for line in page_file.read_text().splitlines() if line]
    results = {
        p: {k: stats([r for r in record if r["phase"] == p and r["kind"] == k]) for k in KINDS}
        for p in PHASES
    }
    samples = sum(1 for p in (ROOT / "data" / "samples").rglob("*") if p.is_file())
    expected = samples + args.files + 3
    data = {
        "files": args.files,
        "upload_requests": uploads,
        "ingest_seconds": round(ingest_s, 1),
        "idle_seconds": round(idle_s, 1),
        "second_ingest": {
            "exit_code": second.returncode,
            "waited": "waiting for another ingestion" in second_err,
            "stderr_tail": second_err.strip().splitlines()[-1:] if second_err.strip() else [],
        },
        "files_in_kb": stored,
        "files_expected_at_least": expected,
        "consistent": consistent,
        "clients": args.clients,
        "page_sessions": args.page_sessions,
        "model": args.model,
        "server_answers_metric": [
            line for line in metrics.splitlines() if line.startswith("kb_answers_total")
        ],
        **results,
    }
    chunks = sum(u["chunks"] or 0 for u in uploads)
    failed = sum(len(u["failed"]) for u in uploads)
    errors = sum(results[p][k]["errors"] for p in PHASES for k in KINDS)

    def row(p: str, k: str) -> str:
        s = results[p][k]
        first = s.get("first_token_p50_s", "-")
        return (
            f"| {p.replace('_', ' ')} | {k} | {s['requests']} | {s['ok']} | {s['rejected_429']} | "
            f"{s['timed_out_503']} | {s['errors']} | {s['p50_s']} | {s['p95_s']} | {first} |"
        )

    rows = "\n".join(row(p, k) for p in PHASES for k in KINDS)
    second_line = f"exit code {second.returncode}, " + (
        "waited for the first and said so" if data["second_ingest"]["waited"] else "did not wait"
    )
    summary = " ".join(
        [
            f"Real `kb serve` ({args.model}) and {args.page_sessions} page sessions (Streamlit",
            "AppTest, one process with its own model) over one Chroma server and KB_HOME, on",
            f"loopback: {args.clients // 2} clients searching and",
            f"{args.clients - args.clients // 2} asking (streamed) without pause while",
            f"{args.files} generated reports were uploaded through /v1/ingest in batches of",
            f"{args.batch} ({chunks} chunks, {ingest_s:.0f} s, {failed} failed), then for",
            f"{idle_s:.0f} s with nothing written. A second `kb ingest` started during the",
            f"upload: {second_line}. Afterwards the knowledge base held {stored} files (at",
            f"least {expected} expected) and was",
            f"{'consistent' if consistent is True else consistent}. Errors other than",
            f"deliberate 429/503: {errors}.",
        ]
    )
    markdown = f"""{summary}

| phase | request | sent | served | 429 | 503 | errors | p50 (s) | p95 (s) | first token p50 (s) |
|---|---|---|---|---|---|---|---|---|---|
{rows}
"""
    update("concurrency", data, markdown, load)
    print(markdown)


if __name__ == "__main__":
    main()
