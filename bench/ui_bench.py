"""Measure the web page as an employee meets it: page load and time to the first streamed word.

    .venv/bin/python bench/ui_bench.py

Starts the real server (`kb ui`) over the sample documents with the default (bundled demo)
chat model, drives Debian's Chromium through Playwright and writes bench/results/ui.json and
bench/results/ui.md.

- page load: navigation start → the chat input is visible, each in a fresh browser context
  (empty cache, new Streamlit session); the very first load of a new server is reported apart.
- first word: the click on the send button → the first streamed text of the answer in the page,
  both timed inside the browser (performance.now) by a click listener and a MutationObserver.
  One untimed question first lets the models finish loading; each timed question starts a new
  conversation, so none pays for rewriting a follow-up.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"
WORK = ROOT / "bench" / "work" / "ui-kb"
RESULTS = ROOT / "bench" / "results"
KB_BIN = Path(sys.executable).parent / "kb"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
WARM_UP_QUESTION = "What is the IT helpdesk phone extension?"
QUESTIONS = [
    "How many days of annual leave do managers get?",
    "员工每年有几天年假？",
    "How long must passwords be?",
    "报销需要在多少天内提交？",
    "When does the new expense system go live?",
]
PAGE_LOADS = 5
ANSWER_TIMEOUT_MS = 600_000

# Installed before each question: stamps the send click and the answer's first text and end.
INSTRUMENT = """
() => {
  const t = window.__kbTimes = {};
  const button = document.querySelector('[data-testid="stChatInputSubmitButton"]');
  button.addEventListener('click', () => { t.submit = performance.now(); },
                          {capture: true, once: true});
  const observer = new MutationObserver(() => {
    const answer = document.querySelector('.st-key-answer-0');
    const text = answer ? answer.innerText.trim() : '';
    if (text && t.first === undefined) { t.first = performance.now(); t.firstText = text; }
    const done = document.querySelector('.st-key-sources-0') ||
                 (answer && answer.querySelector('[data-testid="stAlert"]'));
    if (done && t.final === undefined) {
      t.final = performance.now();
      t.finalText = answer.innerText.trim();
      observer.disconnect();
    }
  });
  observer.observe(document.body, {subtree: true, childList: true, characterData: true});
}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_http(url: str, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env["KB_HOME"] = str(WORK)  # the default chat model: no KB_LLM_MODEL on purpose
    return env


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {mem_kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        memory = ""
    gpu = "GPU" if Path("/dev/nvidia0").exists() else "no GPU"
    return f"{os.cpu_count()} cores ({cpu}){memory}, {gpu}"


def _summary(values: list[float]) -> dict[str, Any]:
    return {
        "median_ms": round(statistics.median(values), 1),
        "values_ms": [round(v, 1) for v in values],
    }


def _load_page(browser: Any, url: str) -> tuple[float, Any, Any]:
    """Open the page in a fresh context; (ms until the chat input is visible, context, page)."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="en-US")
    page = context.new_page()
    started = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.get_by_test_id("stChatInputTextArea").wait_for(state="visible", timeout=180_000)
    return (time.perf_counter() - started) * 1000, context, page


def _ask(page: Any, question: str) -> dict[str, Any]:
    """Ask in a new conversation; the browser-side timings of the answer."""
    page.get_by_role("button", name="New conversation").click()
    page.wait_for_function("!document.querySelector('.st-key-answer-0')", timeout=60_000)
    page.evaluate(INSTRUMENT)
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(question)
    page.get_by_test_id("stChatInputSubmitButton").click()
    page.wait_for_function("window.__kbTimes.final !== undefined", timeout=ANSWER_TIMEOUT_MS)
    times = page.evaluate("window.__kbTimes")
    return {
        "question": question,
        "first_word_ms": round(times["first"] - times["submit"], 1),
        "answer_complete_ms": round(times["final"] - times["submit"], 1),
        "answer": times["finalText"].splitlines()[0] if times.get("finalText") else "",
    }


def run() -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    load_before = os.getloadavg()[0]
    env = _environment()
    WORK.mkdir(parents=True, exist_ok=True)
    ingest = subprocess.run(
        [str(KB_BIN), "ingest", str(SAMPLES), "--json"],
        env=env,
        cwd=WORK,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if ingest.returncode != 0:
        raise SystemExit(f"ingestion failed: {ingest.stderr[-1000:]}")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (WORK / "server.log").open("w")
    started = time.perf_counter()
    server = subprocess.Popen(
        [str(KB_BIN), "ui", "--port", str(port)],
        env=env,
        cwd=WORK,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_for_http(f"{url}/_stcore/health", server)
        server_start_ms = (time.perf_counter() - started) * 1000
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                first_load, context, page = _load_page(browser, url)
                # Untimed: the first session loads the models (in the background of the page).
                warm_up = _ask(page, WARM_UP_QUESTION)
                loads = []
                for _ in range(PAGE_LOADS):
                    ms, extra, _page = _load_page(browser, url)
                    loads.append(ms)
                    extra.close()
                answers = [_ask(page, question) for question in QUESTIONS]
                context.close()
                chromium_version = browser.version
            finally:
                browser.close()
    finally:
        _stop(server)
        log.close()

    from importlib.metadata import version

    from kb.config import Settings

    settings = Settings(home=WORK)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "note": "shared machine: other jobs may run at the same time, expect noise",
        "load_average_1min": {
            "before": round(load_before, 2),
            "after": round(os.getloadavg()[0], 2),
        },
        "chat_model": settings.llm_model,
        "embedding_model": settings.embed_model,
        "streamlit": version("streamlit"),
        "chromium": chromium_version,
        "server_start_ms": round(server_start_ms, 1),
        "page_load": {
            "definition": "navigation start → chat input visible, fresh browser context",
            "first_after_server_start_ms": round(first_load, 1),
            **_summary(loads),
        },
        "first_word": {
            "definition": "click on send → first streamed text of the answer on the page",
            **_summary([a["first_word_ms"] for a in answers]),
        },
        "answer_complete": {
            "definition": "click on send → final answer and its source cards on the page",
            **_summary([a["answer_complete_ms"] for a in answers]),
        },
        "warm_up_question": warm_up,
        "questions": answers,
    }


def markdown(result: dict[str, Any]) -> str:
    def seconds(ms: float) -> str:
        return f"{ms / 1000:.2f} s"

    load, first, complete = result["page_load"], result["first_word"], result["answer_complete"]
    lines = [
        "# Web page: load time and time to the first streamed word",
        "",
        f"- date: {result['date']}",
        f"- machine: {result['machine']}; {result['note']} (1-minute load average "
        f"{result['load_average_1min']['before']} before, "
        f"{result['load_average_1min']['after']} after the run)",
        f"- models: chat `{result['chat_model']}`, embedding `{result['embedding_model']}`; "
        f"Streamlit {result['streamlit']}, Chromium {result['chromium']} (headless)",
        "- command: `.venv/bin/python bench/ui_bench.py`",
        "",
        "| measure | median | values |",
        "| --- | --- | --- |",
        f"| page load (→ chat input visible) | {seconds(load['median_ms'])} | "
        + ", ".join(seconds(v) for v in load["values_ms"])
        + " |",
        f"| click ask → first streamed word | {seconds(first['median_ms'])} | "
        + ", ".join(seconds(v) for v in first["values_ms"])
        + " |",
        f"| click ask → full answer + sources | {seconds(complete['median_ms'])} | "
        + ", ".join(seconds(v) for v in complete["values_ms"])
        + " |",
        "",
        f"First page load after the server started: {seconds(load['first_after_server_start_ms'])}"
        f" (server up in {seconds(result['server_start_ms'])}). The untimed warm-up question "
        f"took {seconds(result['warm_up_question']['first_word_ms'])} to its first word while "
        "the models finished loading.",
        "",
        "| question | first word | complete | answer |",
        "| --- | --- | --- | --- |",
    ]
    for item in result["questions"]:
        answer = item["answer"].replace("|", "\\|")
        lines.append(
            f"| {item['question']} | {seconds(item['first_word_ms'])} | "
            f"{seconds(item['answer_complete_ms'])} | {answer} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    result = run()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ui.json").write_text(
        json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    (RESULTS / "ui.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))


if __name__ == "__main__":
    main()
