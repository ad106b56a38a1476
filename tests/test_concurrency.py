"""Reading while writing: an ingestion runs while 8 threads search and ask through one
`KnowledgeBase`, or 8 API clients through `kb serve` while files are uploaded; two `kb ingest`
processes share one KB_HOME.

The asking threads use `FakeChatModel`, a named fake: with the real model the 4 askers would
only queue behind one another on two cores; what is tested here is that retrieval, the chain
and the store stay correct and responsive while the index is written. The real model under
the same load (and page sessions beside the API clients) is measured by
bench/concurrency_bench.py.
"""

from __future__ import annotations

import os
import subprocess
import threading

import httpx
import openai
import pytest
from conftest import FACTS, KB_BIN, write_corpus
from server_support import running
from tests_support import assert_consistent, assert_consistent_home

from kb.answer.types import Done
from kb.models.fake import FakeChatModel
from kb.server.app import create_app

pytestmark = pytest.mark.slow


def write_reports(folder, n: int, words: int = 400) -> None:
    """Generated reports (labelled as such), a few chunks each."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        body = " ".join(
            f"Generated sentence {j} of report {i} about depot {i % 7}." for j in range(words // 8)
        )
        (folder / f"report-{i:03d}.md").write_text(f"# Report {i}\n\n{body}\n")


@pytest.mark.reliability  # the API test below puts the same load through kb serve
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


def test_8_api_clients_search_and_ask_during_an_upload(settings, open_kb, tmp_path, docwriters):
    write_corpus(tmp_path / "base", docwriters)
    write_reports(tmp_path / "more", 24)
    model = FakeChatModel("The parking garage opens at 06:45 for badge holders [1].")
    knowledge = open_kb(settings, chat_model=model)
    knowledge.ingest([tmp_path / "base"])
    uploading = threading.Event()
    done = threading.Event()
    errors: list[str] = []
    during: dict[str, int] = {}

    with running(create_app(knowledge, warm_up=False)) as url:

        def upload() -> None:
            files = [
                ("files", (p.name, p.read_bytes(), "text/markdown"))
                for p in sorted((tmp_path / "more").iterdir())
            ]
            uploading.set()
            try:
                response = httpx.post(f"{url}/v1/ingest", files=files, timeout=900)
                assert response.status_code == 200, response.text
                assert all(f["status"] == "added" for f in response.json()["files"])
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(f"upload: {exc!r}")
            finally:
                done.set()

        def client(name: str, ask: bool) -> None:
            uploading.wait()
            chat = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
            questions = list(FACTS.values())
            n = 0
            while not done.is_set():
                question = questions[n % len(questions)]
                try:
                    if ask:
                        stream = chat.chat.completions.create(
                            model="default",
                            messages=[{"role": "user", "content": f"What about {question}?"}],
                            stream=True,
                        )
                        reasons = [c.choices[0].finish_reason for c in stream if c.choices]
                        assert reasons[-1], "the stream ended without a finish reason"
                    else:
                        found = httpx.post(
                            f"{url}/v1/search", json={"query": question, "k": 3}, timeout=300
                        )
                        assert found.status_code == 200 and found.json()["results"], found.text
                except openai.APIStatusError as exc:
                    # A full or slow question queue is a deliberate answer, not an error.
                    if exc.status_code not in (429, 503):
                        errors.append(f"{name}: {exc!r}")
                        return
                except Exception as exc:  # noqa: BLE001 - collected and asserted below
                    errors.append(f"{name}: {exc!r}")
                    return
                n += 1
                if not done.is_set():
                    during[name] = n

        threads = [threading.Thread(target=upload)]
        threads += [threading.Thread(target=client, args=(f"search-{i}", False)) for i in range(4)]
        threads += [threading.Thread(target=client, args=(f"ask-{i}", True)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=900)
    assert not errors, errors
    # Every client was served while the upload was still being ingested.
    assert sorted(during) == sorted(
        [f"search-{i}" for i in range(4)] + [f"ask-{i}" for i in range(4)]
    )
    assert_consistent(knowledge.store)
    assert len(knowledge.store.manifest.files("default")) == len(FACTS) + 24


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
