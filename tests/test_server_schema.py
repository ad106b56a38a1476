"""`kb serve`'s OpenAPI schema is valid, carries examples, and holds under fuzzing: schemathesis
sends its examples and generated requests to every operation of a real server on loopback
(real Chroma and embeddings; a named fake answers questions so a run takes seconds per
operation), and no request may cause a server error."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate
from server_support import running

from kb.app import KnowledgeBase
from kb.config import Settings
from kb.models.fake import FakeChatModel
from kb.server.app import create_app


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory, models):
    home = tmp_path_factory.mktemp("fuzzed-kb")
    docs = tmp_path_factory.mktemp("fuzzed-docs")
    (docs / "leave.md").write_text(
        "# Leave\n\nManagers receive 30 days of annual leave.\n", encoding="utf-8"
    )
    (docs / "office.txt").write_text("The Singapore office opens in March 2027.\n")
    settings = Settings(home=home, serve_max_upload_mb=1, serve_max_files=5)
    knowledge = KnowledgeBase(settings, models=models, chat_model=FakeChatModel())
    knowledge.ingest([docs])
    with running(create_app(knowledge, warm_up=False)) as url:
        yield url
    knowledge.close()


def test_the_schema_is_valid_openapi_with_examples(fuzzed_server):
    import httpx

    schema = httpx.get(f"{fuzzed_server}/openapi.json").json()
    validate(schema)
    paths = schema["paths"]
    for path in ("/v1/chat/completions", "/v1/models", "/v1/embeddings", "/v1/search"):
        assert path in paths
    assert {"/v1/ingest", "/v1/documents", "/v1/documents/{document_id}", "/health"} <= set(paths)
    components = schema["components"]["schemas"]
    for name in ("ChatCompletionRequest", "ChatCompletion", "SearchResponse", "ErrorResponse"):
        assert components[name].get("examples"), f"{name} has no example"
    chat = paths["/v1/chat/completions"]["post"]["responses"]
    assert {"200", "400", "401", "429"} <= set(chat) and "422" not in chat
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_no_request_causes_a_server_error(fuzzed_server, tmp_path):
    """schemathesis's own command line (its pytest plugin does not load under pytest 9): every
    phase (examples, coverage, fuzzing, stateful), a fixed seed, a bounded number of cases."""
    import subprocess
    import sys
    from pathlib import Path

    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{fuzzed_server}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        "12",
        "--seed",
        "20261201",
        "--generation-deterministic",
        "--request-timeout",
        "60",
        "--workers",
        "1",
        "--no-color",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    summary = result.stdout[-3000:]
    assert result.returncode == 0, summary
    assert "No issues found" in result.stdout or "passed" in result.stdout, summary
