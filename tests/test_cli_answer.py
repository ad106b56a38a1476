"""`kb search`, `kb ask` and `kb chat` through the real entry point: contracts and errors."""

import json

import pytest
from conftest import run_kb

TEST_MODEL: dict[str, str] = {}  # the default bundled model, as users run it

SEARCH_KEYS = {"rank", "score", "source", "page", "title", "chunk_id", "text"}
ASK_KEYS = {"question", "answer", "refused", "sources", "timings"}
SOURCE_KEYS = {"n", "source", "page", "title", "snippet"}
TIMING_KEYS = {"retrieve_ms", "first_token_ms", "total_ms", "prompt_tokens", "completion_tokens"}


@pytest.fixture
def kb_env(sample_kb):
    return {"KB_HOME": str(sample_kb), **TEST_MODEL}


def test_search_json_contract(kb_env):
    result = run_kb("search", "hotel cap per night", "-k", "3", "--json", env=kb_env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"query", "results"} and data["query"] == "hotel cap per night"
    assert len(data["results"]) == 3
    for rank, item in enumerate(data["results"], start=1):
        assert set(item) == SEARCH_KEYS and item["rank"] == rank
    assert data["results"][0]["source"] == "en/travel-expense-policy.docx"
    # Ranks follow the fused keyword and vector ranking; each score is the chunk's cosine
    # similarity to the query.
    assert all(-1.0 <= r["score"] <= 1.0 for r in data["results"])


def test_search_pages_are_one_based(kb_env):
    data = json.loads(
        run_kb("search", "annual leave managers 20 days", "-k", "5", "--json", env=kb_env).stdout
    )
    pdf = [r for r in data["results"] if r["source"] == "en/employee-handbook.pdf"]
    assert pdf and pdf[0]["page"] == 2
    assert all(r["page"] is None for r in data["results"] if r["source"].endswith(".md"))


def test_search_text_output_shows_sources_and_scores(kb_env):
    result = run_kb("search", "hotel cap per night", "-k", "2", env=kb_env)
    assert "en/travel-expense-policy.docx" in result.stdout and "score" in result.stdout


def test_ask_json_contract(kb_env):
    result = run_kb("ask", "员工每年有几天年假？", "--json", env=kb_env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == ASK_KEYS
    assert data["question"] == "员工每年有几天年假？"
    assert set(data["timings"]) == TIMING_KEYS
    assert data["refused"] is False
    assert "15" in data["answer"] and "[1]" in data["answer"]
    assert data["sources"] and [s["n"] for s in data["sources"]] == list(
        range(1, len(data["sources"]) + 1)
    )
    for source in data["sources"]:
        assert set(source) == SOURCE_KEYS
    assert data["sources"][0]["source"] == "zh/员工手册.md"
    assert data["timings"]["first_token_ms"] > 0


def test_ask_streams_the_answer_then_prints_sources(kb_env):
    result = run_kb("ask", "员工每年有几天年假？", env=kb_env)
    assert result.returncode == 0, result.stderr
    assert "15" in result.stdout
    assert "zh/员工手册.md" in result.stdout
    # The answer streams once; what the chain adds after it (a citation) does not repeat it.
    answer_line = result.stdout.strip().splitlines()[0]
    assert "15" in answer_line and "[1]" in answer_line
    assert result.stdout.count(answer_line.split("[")[0].strip()) == 1


def test_batch_mode_answers_in_order_with_history(kb_env, tmp_path):
    batch = tmp_path / "questions.jsonl"
    lines = [
        {"question": "Who won the 2018 football world cup?"},
        {
            "question": "And elsewhere?",
            "history": [
                {"role": "user", "content": "What is the hotel cap in tier-1 cities?"},
                {"role": "assistant", "content": "USD 180 per night [1]."},
            ],
        },
        {"question": "员工每年有几天年假？"},
    ]
    batch.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines) + "\n")
    result = run_kb("ask", "--input", str(batch), env=kb_env)
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["question"] for a in answers] == [x["question"] for x in lines]
    assert all(set(a) == ASK_KEYS for a in answers)
    assert answers[0]["refused"] is True
    # The follow-up is answered from its history: the hotel cap outside tier-1 cities.
    assert answers[1]["refused"] is False and "130" in answers[1]["answer"]
    assert answers[1]["sources"][0]["source"] == "en/travel-expense-policy.docx"
    assert answers[2]["refused"] is False and "15" in answers[2]["answer"]


def test_search_batch_mode(kb_env, tmp_path):
    batch = tmp_path / "queries.jsonl"
    batch.write_text('{"question": "hotel cap"}\n{"question": "年假"}\n')
    result = run_kb("search", "--input", str(batch), "-k", "2", env=kb_env)
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["query"] for r in rows] == ["hotel cap", "年假"]
    assert all(len(r["results"]) == 2 for r in rows)


def test_bad_batch_line_names_the_file_and_line(kb_env, tmp_path):
    batch = tmp_path / "bad.jsonl"
    batch.write_text('{"question": "ok?"}\n{"quest": "typo"}\n')
    result = run_kb("ask", "--input", str(batch), env=kb_env)
    assert result.returncode == 2
    assert f"{batch}:2" in result.stderr and "question" in result.stderr


def test_empty_knowledge_base_is_a_clear_error():
    result = run_kb("ask", "anything?", env=TEST_MODEL)
    assert result.returncode == 2
    assert "kb ingest" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_model_file_is_a_clear_error(kb_env, tmp_path):
    result = run_kb(
        "ask", "anything?", env={**kb_env, "KB_LLM_MODEL": str(tmp_path / "missing.gguf")}
    )
    assert result.returncode == 2
    assert "missing.gguf" in result.stderr and "KB_LLM_MODEL" in result.stderr
    assert "Traceback" not in result.stderr


def test_corrupt_model_file_is_a_clear_error(kb_env, tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model at all" * 100)
    result = run_kb("ask", "anything?", env={**kb_env, "KB_LLM_MODEL": str(junk)})
    assert result.returncode == 2 and "not a GGUF file" in result.stderr


def test_truncated_model_file_is_a_clear_error(kb_env, tmp_path):
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 64)
    result = run_kb("ask", "anything?", env={**kb_env, "KB_LLM_MODEL": str(truncated)})
    assert result.returncode == 2 and "cannot load the model file" in result.stderr
    assert "Traceback" not in result.stderr


def test_question_longer_than_the_context_is_a_clear_error(kb_env):
    result = run_kb("ask", "why " * 2000, env={**kb_env, "KB_LLM_CTX": "512"})
    assert result.returncode == 2 and "too long" in result.stderr


def test_chat_keeps_the_conversation(kb_env):
    script = "What is the hotel cap in tier-1 cities?\nAnd elsewhere?\n/exit\n"
    result = run_kb("chat", env=kb_env, input_text=script)
    assert result.returncode == 0, result.stderr
    # Each turn starts at the "> " prompt: the answer line, then its sources. The second
    # answer, to "And elsewhere?", must come from the first question's context.
    turns = result.stdout.split("\n> ")[1:]
    assert len(turns) >= 2, result.stdout
    first, second = turns[0], turns[1]
    assert "180" in first.splitlines()[0]
    assert "130" in second.splitlines()[0], second
    assert "travel-expense-policy.docx" in second
