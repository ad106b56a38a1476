"""Reading while writing: an ingestion runs while 8 threads search and ask through one
`KnowledgeBase`, and two `kb ingest` processes share one KB_HOME.

The asking threads use `FakeChatModel`, a named fake: with the real model the 4 askers would
only queue behind one another on two cores; what is tested here is that retrieval, the chain
and the store stay correct and responsive while the index is written. The real model under
the same load is measured by bench/concurrency_bench.py.
"""

from __future__ import annotations

import os
import subprocess
import threading

import pytest
from conftest import FACTS, KB_BIN, write_corpus
from tests_support import assert_consistent, assert_consistent_home

from kb.answer.types import Done
from kb.models.fake import FakeChatModel

pytestmark = pytest.mark.slow


def write_reports(folder, n: int, words: int = 400) -> None:
    """Generated reports (labelled as such), a few chunks each."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        body = " ".join(
            f"Generated sentence {j} of report {i} about depot {i % 7}." for j in range(words // 8)
        )
        (folder / f"report-{i:03d}.md").write_text(f"# Report {i}\n\n{body}\n")


def test_search_and_ask_from_8_threads_during_an_ingestion(settings, open_kb, tmp_path, docwriters):
    write_corpus(tmp_path / "base", docwriters)
    write_reports(tmp_path / "more", 30)
    model = FakeChatModel("The parking garage opens at 06:45 for badge holders [1].")
    knowledge = open_kb(settings, chat_model=model)
    knowledge.ingest([tmp_path / "base"])

    ingesting = threading.Event()
    done = threading.Event()
    errors: list[str] = []
    during: dict[str, int] = {}

    def ingest() -> None:
        ingesting.set()
        try:
            summary = knowledge.ingest([tmp_path / "more"])
            assert summary.added == 30 and not summary.failed
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(f"ingest: {exc!r}")
        finally:
            done.set()

    def client(name: str, ask: bool) -> None:
        ingesting.wait()
        questions = list(FACTS.values())
        n = 0
        while not done.is_set():
            question = questions[n % len(questions)]
            try:
                if ask:
                    events = list(knowledge.stream(f"What do the documents say about {question}?"))
                    assert isinstance(events[-1], Done)
                else:
                    assert knowledge.search(question, k=3).hits
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(f"{name}: {exc!r}")
                return
            n += 1
            if not done.is_set():
                during[name] = n

    threads = [threading.Thread(target=ingest)]
    threads += [threading.Thread(target=client, args=(f"search-{i}", False)) for i in range(4)]
    threads += [threading.Thread(target=client, args=(f"ask-{i}", True)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=900)
    assert not errors, errors
    # Every client was served while the ingestion was still running.
    assert sorted(during) == sorted(
        [f"search-{i}" for i in range(4)] + [f"ask-{i}" for i in range(4)]
    )
    assert_consistent(knowledge.store)
    assert len(knowledge.store.manifest.files("default")) == len(FACTS) + 30


def test_two_ingest_processes_on_one_home_take_turns(tmp_path, docwriters):
    write_corpus(tmp_path / "a", docwriters)
    write_reports(tmp_path / "b", 12)
    home = tmp_path / "kb"
    env = {"KB_HOME": str(home)}
    runs = [
        subprocess.Popen(
            [str(KB_BIN), "ingest", str(tmp_path / folder)],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for folder in ("a", "b")
    ]
    outputs = [run.communicate(timeout=900) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    # One of them found the other writing and said it would wait.
    assert sum("waiting for another ingestion" in err for _, err in outputs) == 1, outputs
    assert_consistent_home(home, expected_files=len(FACTS) + 12)
