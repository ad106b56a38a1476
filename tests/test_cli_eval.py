"""`kb eval` end to end on the sample documents with a hand-written question file."""

import json

from conftest import run_kb

QUESTIONS = [
    {
        "question": "How many days of annual leave do managers get?",
        "answers": ["20 days"],
        # page-level gold: zero-based page 1 is the handbook's second page
        "gold_ids": ["employee-handbook-p001"],
        "lang": "en",
        "type": "policy",
    },
    {
        "question": "What is the hotel cap per night in tier-1 cities?",
        "answers": ["USD 180", "180"],
        "gold_ids": ["travel-expense-policy"],
        "lang": "en",
        "type": "policy",
    },
    {
        "question": "经理每年有几天年假？",
        "answers": ["20天", "二十天"],
        "gold_ids": ["员工手册"],
        "lang": "zh",
        "type": "policy",
    },
    {
        "question": "What colour is the CEO's car?",
        "answers": [],
        "gold_ids": [],
        "unanswerable": True,
        "lang": "en",
        "type": "unanswerable",
    },
]


def test_eval_measures_retrieval_and_answers_on_the_samples(sample_kb, tmp_path):
    qa = tmp_path / "qa.jsonl"
    qa.write_text("\n".join(json.dumps(q, ensure_ascii=False) for q in QUESTIONS) + "\n")
    out = tmp_path / "report"
    result = run_kb(
        "eval",
        str(qa),
        "--answers",
        "--k",
        "1,5",
        "--out",
        str(out),
        env={"KB_HOME": str(sample_kb)},
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["n"] == 4
    overall = summary["overall"]
    assert overall["hit@5"] == 1.0, "every gold document (and page) is retrieved in the top 5"
    assert overall["answer_contained"] >= 2 / 3
    assert overall["refusal_rate"] == 1.0, "the unanswerable question is refused"
    assert set(summary["groups"]["lang"]) == {"en", "zh"}
    assert (out / "report.md").read_text(encoding="utf-8").startswith("# kb eval")
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_eval_compare_prints_the_difference(sample_kb, tmp_path):
    """Run b's question file names a wrong gold document for one of three questions, so its
    hit@1 is one third lower; the comparison must show both values and the delta."""
    env = {"KB_HOME": str(sample_kb)}
    right = QUESTIONS[:3]
    wrong = [dict(q) for q in right]
    wrong[1]["gold_ids"] = ["it-security-faq"]  # not where the hotel cap is
    for name, questions in (("a", right), ("b", wrong)):
        qa = tmp_path / f"{name}.jsonl"
        qa.write_text("\n".join(json.dumps(q, ensure_ascii=False) for q in questions) + "\n")
        result = run_kb("eval", str(qa), "--k", "1", "--out", str(tmp_path / name), env=env)
        assert result.returncode == 0, result.stderr
    a, b = (
        json.loads((tmp_path / n / "summary.json").read_text(encoding="utf-8"))["overall"]
        for n in ("a", "b")
    )
    assert a["hit@1"] == 1.0 and round(b["hit@1"], 4) == 0.6667
    result = run_kb(
        "eval",
        "--compare",
        str(tmp_path / "a" / "summary.json"),
        str(tmp_path / "b" / "summary.json"),
        env={**env, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if "overall" in line and "hit@1" in line)
    assert "1.0000" in row and "0.6667" in row and "-0.3333" in row, row


def test_eval_names_a_malformed_question_file(tmp_path, sample_kb):
    qa = tmp_path / "bad.jsonl"
    qa.write_text('{"question": "ok", "answers": [], "gold_ids": []}\nnot json\n')
    result = run_kb("eval", str(qa), env={"KB_HOME": str(sample_kb)})
    assert result.returncode != 0
    assert "bad.jsonl:2" in result.stderr


def test_eval_rewrites_follow_ups_and_reports_answer_in_context(sample_kb, tmp_path):
    """A follow-up is retrieved as the chain asks it (rewritten with its history, here in the
    {question, answers} shape public sets use), and ctx@k counts chunks holding the answer."""
    follow_up = {
        "question": "And how many days do managers get?",
        "history": [
            {
                "question": "What does the employee handbook say about annual leave?",
                "answers": ["Employees get annual leave every year."],
            },
        ],
        "answers": ["20 days"],
        "gold_ids": ["employee-handbook"],
        "type": "conversation",
    }
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps(follow_up) + "\n")
    out = tmp_path / "report"
    result = run_kb(
        "eval", str(qa), "--k", "1,5", "--out", str(out), env={"KB_HOME": str(sample_kb)}
    )
    assert result.returncode == 0, result.stderr
    record = json.loads((out / "records.jsonl").read_text(encoding="utf-8"))
    assert record["standalone_question"] != follow_up["question"]
    assert "leave" in record["standalone_question"].lower()
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["overall"]["hit@5"] == 1.0 and summary["overall"]["ctx@5"] == 1.0
    assert summary["meta"]["follow_ups"] == "rewritten by the chat model"
    assert "ctx@5" in (out / "report.md").read_text(encoding="utf-8")
