"""The same code against servers, by configuration alone: a real Chroma server (`chroma run`)
and a real OpenAI-compatible model server (llama-cpp-python's own, serving the bundled default
GGUF)."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import chromadb
import httpx
import pytest
from conftest import SAMPLES

from kb.answer.types import Done, Token
from kb.config import Settings
from kb.errors import ModelError, StoreError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    port = free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "chroma"),
            "run",
            "--path",
            str(path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "chroma server did not start"
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_ingest_and_search_through_a_chroma_server(chroma_server, tmp_path, corpus, facts, open_kb):
    settings = Settings(home=tmp_path / "kb", chroma_url=chroma_server)
    knowledge = open_kb(settings)
    summary = knowledge.ingest([corpus])
    assert summary.added == len(facts) and not summary.failed
    assert not (tmp_path / "kb" / "chroma").exists(), "vectors went to the server, not to disk"
    hits = knowledge.search(facts["notes.md"], 1).hits
    assert hits[0].source == "notes.md"
    again = knowledge.ingest([corpus])
    assert again.unchanged == len(facts) and again.embedded == 0
    # The search depth is set through the server too.
    port = int(chroma_server.rsplit(":", 1)[1])
    col = chromadb.HttpClient(host="127.0.0.1", port=port).get_collection("kb-default")
    assert col.configuration["hnsw"]["ef_search"] == settings.vector_ef_search


def test_unreachable_chroma_server_is_a_clear_error(tmp_path, corpus, open_kb):
    settings = Settings(home=tmp_path / "kb", chroma_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StoreError, match="KB_CHROMA_URL"):
        open_kb(settings).ingest([corpus])


MODEL_SERVER_KEY = "model-server-key-0123456789"


@pytest.fixture(scope="module")
def openai_server(tmp_path_factory):
    """llama-cpp-python's own OpenAI-compatible server (`python -m llama_cpp.server`, its
    [server] extra) serving the bundled default GGUF on loopback, with an API key."""
    from kb.models.bundled import resolve_gguf

    settings = Settings()
    path = resolve_gguf(settings.llm_model, settings.models_dir)
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "llama_cpp.server",
                "--model", str(path), "--model_alias", "qwen",
                "--host", "127.0.0.1", "--port", str(port),
                "--n_ctx", "4096", "--n_threads", "2", "--seed", "42",
                "--api_key", MODEL_SERVER_KEY,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    headers = {"Authorization": f"Bearer {MODEL_SERVER_KEY}"}
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{url}/models", headers=headers, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "the model server did not start"
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_answers_through_an_openai_compatible_server(openai_server, sample_kb, open_kb):
    settings = Settings(
        home=sample_kb,
        llm_url=openai_server,
        llm_remote_model="qwen",
        llm_api_key=MODEL_SERVER_KEY,
    )
    knowledge = open_kb(settings)
    events = list(knowledge.stream("When does the Singapore office open?"))
    assert sum(isinstance(e, Token) for e in events) > 1, "the server's stream is relayed"
    assert isinstance(events[-1], Done)
    answer = events[-1].answer
    assert not answer.refused and "March 2027" in answer.answer
    assert answer.sources[0].source == "en/q3-all-hands.pptx"
    # The server applied the chain's stop sequences: the answer is one line.
    assert answer.model_answer and "\n" not in answer.model_answer.strip()
    # A server exposes no logits: the first-token check is skipped, the other gates ran.
    assert not knowledge.chat_model.is_local
    assert answer.diagnostics.get("p_not_found") is None
    assert answer.diagnostics["relevance"] is not None and "support" in answer.diagnostics
    assert knowledge.health()["chat_model"] == {"ok": True, "local": False}
    assert knowledge.status()["models"]["refusal_checks"].startswith("reduced")


def test_a_model_server_error_is_reported_with_its_status(openai_server, sample_kb, open_kb):
    settings = Settings(
        home=sample_kb, llm_url=openai_server, llm_remote_model="qwen", llm_api_key="wrong-key"
    )
    knowledge = open_kb(settings)
    with pytest.raises(ModelError) as caught:
        knowledge.ask("When does the Singapore office open?")
    message = str(caught.value)
    assert "answered HTTP 401" in message and "KB_LLM_API_KEY" in message
    assert not knowledge.chat_model.busy, "the failed generation released the model"
    assert knowledge.health()["chat_model"]["ok"] is False


def test_unreachable_model_server_is_reported(sample_kb, open_kb):
    url = f"http://127.0.0.1:{free_port()}/v1"
    knowledge = open_kb(Settings(home=sample_kb, llm_url=url))
    with pytest.raises(ModelError) as caught:
        knowledge.ask("When does the Singapore office open?")
    message = str(caught.value)
    assert "cannot connect to the model server" in message
    assert url in message and "KB_LLM_URL" in message
    assert not knowledge.chat_model.busy, "the failed generation released the model"


def test_two_api_workers_sharing_chroma_and_a_model_server_answer_alike(
    chroma_server, openai_server, tmp_path, open_kb
):
    """Two `kb serve` workers over one Chroma server and one model server, sharing one KB_HOME
    (the manifest and the keyword index, as the README's deployment section asks): what one
    ingests, both answer the same way and both list. A worker on another KB_HOME has no keyword
    index and says so instead of answering from vectors alone."""
    import shutil

    import openai
    from server_support import running

    from kb.server.app import create_app

    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(SAMPLES / "en" / "q3-all-hands.pptx", docs)
    shutil.copy(SAMPLES / "en" / "travel-expense-policy.docx", docs)
    shared = {
        "chroma_url": chroma_server,
        "collection": "workers",
        "llm_url": openai_server,
        "llm_remote_model": "qwen",
        "llm_api_key": MODEL_SERVER_KEY,
    }
    first = open_kb(Settings(home=tmp_path / "host-a", **shared))
    second = open_kb(Settings(home=tmp_path / "host-a", **shared))
    elsewhere = open_kb(Settings(home=tmp_path / "host-b", **shared))
    assert not first.ingest([docs]).failed
    answers = []
    with running(create_app(first)) as url_a, running(create_app(second)) as url_b:
        for url in (url_a, url_b):
            client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
            reply = client.chat.completions.create(
                model="workers",
                messages=[{"role": "user", "content": "When does the Singapore office open?"}],
            )
            answers.append(reply.model_extra["kb"])
    assert answers[0]["answer"] == answers[1]["answer"] and "March 2027" in answers[0]["answer"]
    assert answers[0]["sources"] == answers[1]["sources"]
    assert len(first.documents("workers")) == 2 and len(second.documents("workers")) == 2
    with pytest.raises(StoreError, match="no keyword index"):
        elsewhere.search("Singapore office", 1, collection="workers")
