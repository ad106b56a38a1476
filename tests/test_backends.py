"""The same code against servers, by configuration alone: a real Chroma server (`chroma run`)
and an OpenAI-compatible chat server (a minimal one, serving the real bundled default GGUF)."""

import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

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


def test_unreachable_chroma_server_is_a_clear_error(tmp_path, corpus, open_kb):
    settings = Settings(home=tmp_path / "kb", chroma_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StoreError, match="KB_CHROMA_URL"):
        open_kb(settings).ingest([corpus])


class _OpenAIChatHandler(BaseHTTPRequestHandler):
    """Just enough of POST /v1/chat/completions (streaming or not) over a llama_cpp.Llama."""

    llama = None
    lock = threading.Lock()
    requests: ClassVar[list] = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        params = {
            "messages": body["messages"],
            "max_tokens": body.get("max_tokens") or 128,
            "temperature": body.get("temperature", 0),
            "stop": body.get("stop"),
        }
        with self.lock:
            if body.get("stream"):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for chunk in self.llama.create_chat_completion(stream=True, **params):
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
            else:
                result = json.dumps(self.llama.create_chat_completion(**params)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(result)))
                self.end_headers()
                self.wfile.write(result)


@pytest.fixture(scope="module")
def openai_server():
    from llama_cpp import Llama

    from kb.models.bundled import resolve_gguf

    settings = Settings()
    path = resolve_gguf(settings.llm_model, settings.models_dir)
    _OpenAIChatHandler.llama = Llama(
        model_path=str(path), n_ctx=4096, n_threads=2, seed=42, verbose=False
    )
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _OpenAIChatHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_answers_through_an_openai_compatible_server(openai_server, sample_kb, open_kb):
    settings = Settings(home=sample_kb, llm_url=openai_server, llm_remote_model="qwen")
    events = list(open_kb(settings).stream("When does the Singapore office open?"))
    assert sum(isinstance(e, Token) for e in events) > 1, "the server's stream is relayed"
    assert isinstance(events[-1], Done)
    answer = events[-1].answer
    assert not answer.refused and "March 2027" in answer.answer
    assert answer.sources[0].source == "en/q3-all-hands.pptx"
    sent = _OpenAIChatHandler.requests[-1]
    assert sent["model"] == "qwen" and sent["stream"] is True
    assert sent["messages"][0]["role"] == "system"


def test_unreachable_model_server_is_reported(sample_kb, open_kb):
    url = f"http://127.0.0.1:{free_port()}/v1"
    knowledge = open_kb(Settings(home=sample_kb, llm_url=url))
    with pytest.raises(ModelError) as caught:
        knowledge.ask("When does the Singapore office open?")
    message = str(caught.value)
    assert "cannot connect to the model server" in message
    assert url in message and "KB_LLM_URL" in message
    assert not knowledge.chat_model.busy, "the failed generation released the model"
