"""Killing `kb ingest` at any moment leaves a knowledge base that the next run completes.

Two kinds of kill: SIGKILL of the real CLI at several points of a real ingestion (timed by
watching the manifest), and a deterministic kill inside each step of a file's write (journal,
vector write, commit) — the driver below wraps the real store methods to SIGKILL its own
process there, a fault no real part produces on demand.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from tests_support import assert_consistent_home

N_DOCS = 24


def write_docs(folder: Path, docwriters) -> list[str]:
    folder.mkdir(parents=True)
    facts = []
    for i in range(N_DOCS):
        fact = f"Warehouse {i} stores exactly {1000 + i} pallets of spare parts."
        facts.append(fact)
        body = " ".join(
            f"Section {j} of report {i} describes routine operations." for j in range(30)
        )
        (folder / f"report-{i:02d}.md").write_text(f"# Report {i}\n\n{body}\n\n{fact}\n")
    docwriters.write_pdf(
        folder / "handbook.pdf",
        "Handbook",
        [docwriters.Heading("Leave"), docwriters.Para("Leave is 15 days.")],
    )
    return facts


def manifest_rows(home: Path) -> int:
    path = home / "manifest.sqlite3"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT count(*) FROM files WHERE pending_ids IS NULL").fetchone()[0]
    except sqlite3.Error:
        return 0


def kb(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KB_HOME": str(home)}
    return subprocess.run(
        [str(Path(sys.executable).parent / "kb"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def check_recovered(home: Path, docs: Path, facts: list[str]) -> None:
    rerun = kb(home, "ingest", str(docs), "--json")
    assert rerun.returncode == 0, rerun.stderr
    assert_consistent_home(home, expected_files=N_DOCS + 1)
    again = json.loads(kb(home, "ingest", str(docs), "--json").stdout)
    assert again["unchanged"] == N_DOCS + 1 and again["embedded"] == 0
    # One process answers the three searches (each `kb` start loads the models again).
    picks = (0, N_DOCS // 2, N_DOCS - 1)
    questions = home / "questions.jsonl"
    questions.write_text("".join(json.dumps({"question": facts[i]}) + "\n" for i in picks))
    searched = kb(home, "search", "--input", str(questions), "-k", "1")
    assert searched.returncode == 0, searched.stderr
    found = [json.loads(line) for line in searched.stdout.splitlines() if line.strip()]
    assert [f["results"][0]["source"] for f in found] == [f"report-{i:02d}.md" for i in picks]


@pytest.mark.parametrize(
    "kill_after_files",
    [
        0,
        pytest.param(3, marks=pytest.mark.reliability),
        pytest.param(12, marks=pytest.mark.reliability),
    ],
)
def test_sigkill_of_the_real_cli_at_several_points(tmp_path, docwriters, kill_after_files):
    docs = tmp_path / "docs"
    facts = write_docs(docs, docwriters)
    home = tmp_path / "kb"
    env = {**os.environ, "KB_HOME": str(home), "KB_EMBED_BATCH_SIZE": "4"}
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "kb"), "ingest", str(docs)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while manifest_rows(home) < kill_after_files and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    if kill_after_files == 0:
        time.sleep(1.5)  # inside start-up: model loading, planning, first parse
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the ingestion finished before it could be killed"
    check_recovered(home, docs, facts)


DRIVER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from kb.app import KnowledgeBase
    from kb.config import Settings
    from kb.store import Store

    step, nth = sys.argv[3], int(sys.argv[4])
    calls = {"n": 0}
    original = getattr(Store, step)

    def die_on_nth(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == nth and step in ("commit_file", "_add_keywords"):
            os.kill(os.getpid(), signal.SIGKILL)  # just before this step's writes
        result = original(self, *args, **kwargs)
        if calls["n"] == nth:
            os.kill(os.getpid(), signal.SIGKILL)  # right after this step completed
        return result

    setattr(Store, step, die_on_nth)
    settings = Settings(home=Path(sys.argv[1]), embed_batch_size=4)
    KnowledgeBase(settings).ingest([Path(sys.argv[2])])
    sys.exit("the fault was never reached")
""")


@pytest.mark.parametrize(
    ("step", "nth"),
    [
        ("begin_file", 2),  # journal written and old chunks deleted, nothing new written
        ("add_chunks", 5),  # vectors in Chroma, manifest row still pending
        ("_add_keywords", 4),  # vectors in Chroma, keyword rows not yet written
        ("commit_file", 9),  # killed just before the commit
        ("repair", 1),  # the next run's own repair interrupted too
    ],
)
def test_kill_inside_each_write_step(tmp_path, docwriters, step, nth):
    docs = tmp_path / "docs"
    facts = write_docs(docs, docwriters)
    home = tmp_path / "kb"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    if step == "repair":
        # Leave an interrupted run behind first, then kill the repairing run as well.
        subprocess.run(
            [sys.executable, str(driver), str(home), str(docs), "add_chunks", "3"],
            capture_output=True,
            timeout=600,
        )
    run = subprocess.run(
        [sys.executable, str(driver), str(home), str(docs), step, str(nth)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    check_recovered(home, docs, facts)
