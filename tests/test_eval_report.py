"""Summaries, written reports and comparisons of `kb eval`, on a handful of hand-built records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kb.eval.report import compare, compare_table, render_compare_markdown, summarize, write_report


def _src(stem: str, page: int | None = None, ext: str = "md") -> dict:
    return {"source": f"docs/{stem}.{ext}", "page": page}


def _record(
    rid: str,
    set_: str,
    lang: str,
    type_: str | None,
    gold: list[str],
    retrieved: list,
    retrieve_ms: float,
    **answer,
) -> dict:
    record = {
        "id": rid,
        "set": set_,
        "lang": lang,
        "type": type_,
        "question": "q?",
        "gold_ids": gold,
        "unanswerable": answer.pop("unanswerable", False),
        "answers": answer.pop("answers", []),
        "answer_sets": None,
        "retrieved": retrieved,
        "retrieve_ms": retrieve_ms,
    }
    record.update(answer)
    return record


def _records() -> list[dict]:
    # Expected numbers in the tests below were worked out by hand from these five records.
    misses = [_src("x", 1, "pdf")] * 4
    return [
        # rank 1; contained (full width gold), F1 = 1 token of 4 -> 0.4; cites gold
        _record(
            "r1",
            "A",
            "zh",
            None,
            ["d1"],
            [_src("d1")],
            10.0,
            answers=["123"],
            answer="答案是１２３",
            refused=False,
            cited=[_src("d1")],
            first_token_ms=100.0,
            total_ms=200.0,
        ),
        # rank 2; refused an answerable question; no citations
        _record(
            "r2",
            "A",
            "zh",
            None,
            ["d2"],
            [_src("x"), _src("d2")],
            20.0,
            answers=["北京"],
            answer="不知道",
            refused=True,
            cited=[],
            first_token_ms=None,
            total_ms=300.0,
        ),
        # page gold F-p000 is page 1: rank 6 (page 2 at rank 1 is not a hit); half the cites gold
        _record(
            "r3",
            "B",
            "en",
            "t1",
            ["F-p000"],
            [_src("F", 2, "pdf"), *misses, _src("F", 1, "pdf")],
            30.0,
            unanswerable=True,
            answers=["Unable to answer"],
            answer="Unable to answer",
            refused=True,
            cited=[_src("F", 1, "pdf"), _src("G", 1, "pdf")],
            first_token_ms=50.0,
            total_ms=100.0,
        ),
        # nothing retrieved; answered an unanswerable question
        _record(
            "r4",
            "B",
            "en",
            "t1",
            ["e1"],
            [],
            40.0,
            unanswerable=True,
            answers=["Unable to answer"],
            answer="It is X",
            refused=False,
            cited=[_src("e1")],
            first_token_ms=70.0,
            total_ms=400.0,
        ),
        # answerable without gold answers: only counts for false refusals
        _record(
            "r5",
            "B",
            "en",
            "t2",
            ["e2"],
            [_src("e2")],
            50.0,
            answers=[],
            answer="something",
            refused=True,
            cited=[],
            first_token_ms=None,
            total_ms=500.0,
        ),
    ]


def test_summary_overall() -> None:
    s = summarize(_records())
    assert s["ks"] == [1, 5, 10]
    assert s["n"] == 5 and s["n_answered"] == 5
    assert s["overall"] == {
        "n": 5,
        "hit@1": 0.4,
        "hit@5": 0.6,
        "hit@10": 0.8,
        "mrr@10": 0.5333,  # (1 + 1/2 + 1/6 + 0 + 1) / 5
        "retrieve_ms_p50": 30.0,
        "retrieve_ms_p95": 48.0,
        "n_answered": 5,
        "answer_contained": 0.5,
        "token_f1": 0.2,
        "refusal_rate": 0.5,
        "false_refusal_rate": 0.6667,
        "citation_precision": 0.8333,  # (1 + 0.5 + 1) / 3
        "first_token_ms_p50": 70.0,
        "first_token_ms_p95": 97.0,
        "total_ms_p50": 300.0,
    }


def test_summary_per_set() -> None:
    groups = summarize(_records())["groups"]
    assert sorted(groups["set"]) == ["A", "B"]
    a, b = groups["set"]["A"], groups["set"]["B"]
    assert (a["n"], a["hit@1"], a["hit@5"], a["mrr@10"]) == (2, 0.5, 1.0, 0.75)
    assert (a["retrieve_ms_p50"], a["retrieve_ms_p95"]) == (15.0, 19.5)
    assert (a["answer_contained"], a["token_f1"], a["refusal_rate"]) == (0.5, 0.2, None)
    assert a["false_refusal_rate"] == 0.5
    assert (a["citation_precision"], a["total_ms_p50"]) == (1.0, 250.0)
    assert (b["n"], b["hit@1"], b["hit@5"]) == (3, 0.3333, 0.3333)
    assert (b["hit@10"], b["mrr@10"]) == (0.6667, 0.3889)
    assert (b["answer_contained"], b["token_f1"]) == (None, None)
    assert (b["refusal_rate"], b["false_refusal_rate"], b["citation_precision"]) == (0.5, 1.0, 0.75)
    assert (b["first_token_ms_p50"], b["total_ms_p50"]) == (60.0, 400.0)


def test_summary_per_lang_and_type_skips_missing_values() -> None:
    groups = summarize(_records())["groups"]
    assert groups["lang"]["zh"]["hit@5"] == 1.0
    assert groups["lang"]["en"]["mrr@10"] == 0.3889
    assert sorted(groups["type"]) == ["t1", "t2"]
    assert groups["type"]["t1"]["n"] == 2 and groups["type"]["t1"]["hit@10"] == 0.5
    assert groups["type"]["t2"]["false_refusal_rate"] == 1.0


def test_summary_custom_ks() -> None:
    s = summarize(_records(), ks=(2, 6))
    assert s["ks"] == [2, 6]
    assert (s["overall"]["hit@2"], s["overall"]["hit@6"]) == (0.6, 0.8)
    assert "hit@1" not in s["overall"]


def _retrieval_only() -> list[dict]:
    return [
        _record("q1", "A", "zh", None, ["d1"], [_src("d1")], 5.0, answers=["x"]),
        # no gold ids: cannot be scored for retrieval, still counted in n
        _record("q2", "A", "zh", None, [], [_src("d9")], 7.0, answers=["x"]),
    ]


def test_retrieval_only_summary_has_no_answer_metrics() -> None:
    s = summarize(_retrieval_only())
    assert s["n_answered"] == 0
    assert s["overall"]["n"] == 2
    assert s["overall"]["hit@1"] == 1.0
    assert "answer_contained" not in s["overall"] and "refusal_rate" not in s["overall"]
    assert s["groups"]["type"] == {}


def test_write_report(tmp_path: Path) -> None:
    records = _records()
    summary = summarize(records)
    summary["meta"] = {"model": "tiny", "k": 10}
    paths = write_report(summary, records, tmp_path / "run", "Eval 测试")
    assert set(paths) == {"summary", "records", "markdown", "plot"}
    assert all(p.is_file() and p.parent == tmp_path / "run" for p in paths.values())

    loaded = json.loads(paths["summary"].read_text(encoding="utf-8"))
    assert loaded["overall"] == summary["overall"]
    assert loaded["meta"] == {"title": "Eval 测试", "model": "tiny", "k": 10}

    lines = paths["records"].read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["r1", "r2", "r3", "r4", "r5"]
    assert json.loads(lines[2])["scores"]["rank"] == 6

    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    md = paths["markdown"].read_text(encoding="utf-8")
    assert md.startswith("# Eval 测试")
    assert "## Overall" in md and "## By set" in md and "## By type" in md
    assert "| set | n | hit@1 | hit@5 | hit@10 | MRR@10 | answered | contained |" in md
    assert "| A | 2 | 0.5000 | 1.0000 | 1.0000 | 0.7500 |" in md
    assert "first token p50 ms" in md and "**model**: tiny" in md


def test_write_report_retrieval_only(tmp_path: Path) -> None:
    records = _retrieval_only()
    paths = write_report(summarize(records), records, tmp_path, "retrieval")
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "| all | 2 | 1.0000 |" in md
    assert "contained" not in md and "first token" not in md
    assert paths["plot"].read_bytes()[:4] == b"\x89PNG"


def _summary(overall: dict, sets: dict) -> dict:
    return {"ks": [1], "overall": overall, "groups": {"set": sets, "lang": {}}}


def test_compare_deltas() -> None:
    a = _summary(
        {"n": 2, "hit@1": 0.5, "token_f1": None}, {"A": {"hit@1": 0.5}, "B": {"hit@1": 0.1}}
    )
    b = _summary(
        {"n": 3, "hit@1": 0.75, "token_f1": 0.4, "mrr@10": 0.8},
        {"A": {"hit@1": 0.25}, "C": {"hit@1": 0.9}},
    )
    rows = compare(a, b)
    assert rows == [
        {"group": "overall", "metric": "n", "a": 2, "b": 3, "delta": 1},
        {"group": "overall", "metric": "hit@1", "a": 0.5, "b": 0.75, "delta": 0.25},
        {"group": "overall", "metric": "token_f1", "a": None, "b": 0.4, "delta": None},
        {"group": "set=A", "metric": "hit@1", "a": 0.5, "b": 0.25, "delta": -0.25},
    ]
    md = render_compare_markdown(rows)
    assert md.splitlines()[0] == "| group | metric | a | b | delta |"
    assert "| set=A | hit@1 | 0.5000 | 0.2500 | -0.2500 |" in md
    assert "| overall | hit@1 | 0.5000 | 0.7500 | +0.2500 |" in md
    assert compare_table(rows).row_count == 4


def test_compare_summaries_loaded_from_disk(tmp_path: Path) -> None:
    records = _records()
    better = _records()
    better[1]["retrieved"] = [_src("d2")]  # r2 now found at rank 1
    pa = write_report(summarize(records), records, tmp_path / "a", "a")["summary"]
    pb = write_report(summarize(better), better, tmp_path / "b", "b")["summary"]
    rows = compare(json.loads(pa.read_text()), json.loads(pb.read_text()))
    by_key = {(r["group"], r["metric"]): r for r in rows}
    assert by_key[("overall", "hit@1")]["delta"] == pytest.approx(0.2)
    assert by_key[("set=A", "mrr@10")]["delta"] == pytest.approx(0.25)
    assert by_key[("set=B", "hit@1")]["delta"] == 0.0
    assert ("meta", "title") not in by_key


def test_answer_in_context_counts_only_questions_with_a_short_answer() -> None:
    records = [
        {**_record("q1", "A", "zh", None, ["d1"], [_src("d9")], 5.0), "context_rank": 1},
        {**_record("q2", "A", "zh", None, ["d1"], [_src("d1")], 5.0), "context_rank": None},
        # no short answer: the runner sets no context rank, and ctx@k skips the question
        _record("q3", "A", "zh", None, ["d1"], [_src("d1")], 5.0),
    ]
    s = summarize(records, ks=(1, 5))
    assert s["overall"]["ctx@1"] == 0.5 and s["overall"]["ctx@5"] == 0.5
    assert abs(s["overall"]["hit@1"] - 2 / 3) < 1e-3
