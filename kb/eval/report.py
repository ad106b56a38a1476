"""Aggregate per-question eval records into summaries, reports and run-to-run comparisons.

A record is one question as the runner saw it (see `score_record` for the fields read). A summary
is a JSON-ready dict: {"ks", "n", "n_answered", "overall": {...}, "groups": {key: {value: {...}}}}.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kb.eval import metrics

GROUP_KEYS = ("set", "lang", "type")
MRR_K = 10
_P50, _P95 = 50.0, 95.0

Record = Mapping[str, Any]


# --- scoring ----------------------------------------------------------------------------


def has_answer(record: Record) -> bool:
    """Whether answers were generated for this record (retrieval-only runs have none)."""
    return "answer" in record


def score_record(record: Record, ks: Sequence[int] = (1, 5, 10)) -> dict[str, Any]:
    """Per-question scores; None where a metric does not apply to this question."""
    gold = list(record.get("gold_ids") or [])
    retrieved = list(record.get("retrieved") or [])
    rank = metrics.first_hit_rank(retrieved, gold) if gold else None
    scores: dict[str, Any] = {"rank": rank}
    for k in ks:
        scores[f"hit@{k}"] = (rank is not None and rank <= k) if gold else None
    scores[f"mrr@{MRR_K}"] = metrics.reciprocal_rank(retrieved, gold, MRR_K) if gold else None
    # Answer in context: a retrieved chunk holds a short gold answer (set by the runner, only
    # for questions that have one); it counts passages stored under other ids too.
    scorable = "context_rank" in record and not record.get("unanswerable")
    context = record.get("context_rank")
    for k in ks:
        scores[f"ctx@{k}"] = (context is not None and context <= k) if scorable else None
    if has_answer(record):
        scores.update(_answer_scores(record, gold))
    return scores


def _answer_scores(record: Record, gold: list[str]) -> dict[str, Any]:
    answer = record.get("answer") or ""
    answers = list(record.get("answers") or [])
    # Unanswerable questions carry placeholder answers ("Unable to answer"): not spans to find.
    scorable = not record.get("unanswerable") and bool(answers)
    cited = list(record.get("cited") or [])
    return {
        "answer_contained": (
            metrics.answer_contained(answer, answers, record.get("answer_sets"))
            if scorable
            else None
        ),
        "token_f1": metrics.token_f1(answer, answers) if scorable else None,
        "citation_precision": metrics.citation_precision(cited, gold) if gold else None,
    }


# --- aggregation --------------------------------------------------------------------------


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def _mean(values: Iterable[Any]) -> float | None:
    xs = [float(v) for v in values if v is not None]
    return _round(sum(xs) / len(xs)) if xs else None


def _pct(values: Iterable[Any], q: float) -> float | None:
    return _round(metrics.percentile(values, q))


def _retrieval_block(records: list[Record], scores: list[dict], ks: Sequence[int]) -> dict:
    block: dict[str, Any] = {"n": len(records)}
    for k in ks:
        block[f"hit@{k}"] = _mean(s[f"hit@{k}"] for s in scores)
    block[f"mrr@{MRR_K}"] = _mean(s[f"mrr@{MRR_K}"] for s in scores)
    if any("context_rank" in r for r in records):
        for k in ks:
            block[f"ctx@{k}"] = _mean(s.get(f"ctx@{k}") for s in scores)
    block["retrieve_ms_p50"] = _pct((r.get("retrieve_ms") for r in records), _P50)
    block["retrieve_ms_p95"] = _pct((r.get("retrieve_ms") for r in records), _P95)
    return block


def _answer_block(records: list[Record], scores: list[dict]) -> dict:
    answered = [(r, s) for r, s in zip(records, scores, strict=True) if has_answer(r)]
    answerable = [(r, s) for r, s in answered if not r.get("unanswerable")]
    unanswerable = [r for r, _ in answered if r.get("unanswerable")]
    first_token = [r.get("first_token_ms") for r, _ in answered]
    return {
        "n_answered": len(answered),
        "answer_contained": _mean(s["answer_contained"] for _, s in answerable),
        "token_f1": _mean(s["token_f1"] for _, s in answerable),
        "refusal_rate": _mean(bool(r.get("refused")) for r in unanswerable),
        "false_refusal_rate": _mean(bool(r.get("refused")) for r, _ in answerable),
        "citation_precision": _mean(s["citation_precision"] for _, s in answered),
        "first_token_ms_p50": _pct(first_token, _P50),
        "first_token_ms_p95": _pct(first_token, _P95),
        "total_ms_p50": _pct((r.get("total_ms") for r, _ in answered), _P50),
    }


def _block(records: list[Record], scores: list[dict], ks: Sequence[int]) -> dict:
    block = _retrieval_block(records, scores, ks)
    if any(has_answer(r) for r in records):
        block.update(_answer_block(records, scores))
    return block


def summarize(records: Sequence[Record], ks: Sequence[int] = (1, 5, 10)) -> dict[str, Any]:
    """Overall and per-group (set, lang, type) metrics; see the module docstring for the shape."""
    records = list(records)
    scores = [score_record(r, ks) for r in records]
    groups: dict[str, dict[str, dict]] = {}
    for key in GROUP_KEYS:
        values = sorted({r[key] for r in records if r.get(key) is not None}, key=str)
        groups[key] = {}
        for value in values:
            idx = [i for i, r in enumerate(records) if r.get(key) == value]
            groups[key][str(value)] = _block(
                [records[i] for i in idx], [scores[i] for i in idx], ks
            )
    return {
        "ks": list(ks),
        "n": len(records),
        "n_answered": sum(has_answer(r) for r in records),
        "overall": _block(records, scores, ks),
        "groups": groups,
    }


# --- writing ------------------------------------------------------------------------------


def write_report(
    summary: Mapping[str, Any], records: Sequence[Record], out_dir: Path | str, title: str
) -> dict[str, Path]:
    """Write summary.json, records.jsonl (with per-record scores), report.md and report.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "summary": out / "summary.json",
        "records": out / "records.jsonl",
        "markdown": out / "report.md",
        "plot": out / "report.png",
    }
    data = dict(summary)
    data["meta"] = {"title": title, **dict(summary.get("meta") or {})}
    paths["summary"].write_text(
        json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    _write_records(paths["records"], records, summary.get("ks") or [1, 5, 10])
    paths["markdown"].write_text(render_markdown(data, title), encoding="utf-8")
    _write_plot(paths["plot"], data, records, title)
    return paths


def _write_records(path: Path, records: Sequence[Record], ks: Sequence[int]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for record in records:
            line = {**record, "scores": score_record(record, ks)}
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")


# Column order of the Markdown tables: (summary key, header).
_ANSWER_COLUMNS = (
    ("n_answered", "answered"),
    ("answer_contained", "contained"),
    ("token_f1", "F1"),
    ("refusal_rate", "refusal"),
    ("false_refusal_rate", "false refusal"),
    ("citation_precision", "citation prec."),
)
_LATENCY_COLUMNS = (
    ("retrieve_ms_p50", "retrieve p50 ms"),
    ("retrieve_ms_p95", "retrieve p95 ms"),
)
_ANSWER_LATENCY_COLUMNS = (
    ("first_token_ms_p50", "first token p50 ms"),
    ("first_token_ms_p95", "first token p95 ms"),
    ("total_ms_p50", "total p50 ms"),
)


def _columns(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    ks = summary.get("ks") or []
    cols = [("n", "n")] + [(f"hit@{k}", f"hit@{k}") for k in ks] + [(f"mrr@{MRR_K}", "MRR@10")]
    if any(f"ctx@{k}" in (summary.get("overall") or {}) for k in ks):
        cols += [(f"ctx@{k}", f"ctx@{k}") for k in ks]
    answers = bool(summary.get("n_answered"))
    if answers:
        cols += _ANSWER_COLUMNS
    cols += _LATENCY_COLUMNS
    if answers:
        cols += _ANSWER_LATENCY_COLUMNS
    return cols


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def _table(first_header: str, rows: list[tuple[str, Mapping]], cols: list[tuple[str, str]]) -> str:
    lines = [
        "| " + " | ".join([first_header] + [h for _, h in cols]) + " |",
        "|" + "---|" * (len(cols) + 1),
    ]
    for name, block in rows:
        cells = [name.replace("|", "\\|")] + [_fmt(block.get(key)) for key, _ in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_markdown(summary: Mapping[str, Any], title: str) -> str:
    """A readable report: meta, the overall table, then one table per group key."""
    cols = _columns(summary)
    parts = [f"# {title}", ""]
    meta = summary.get("meta") or {}
    parts += [f"- **{k}**: {v}" for k, v in meta.items() if k != "title"]
    if len(parts) > 2:
        parts.append("")
    parts += ["## Overall", "", _table("", [("all", summary.get("overall") or {})], cols), ""]
    for key, groups in (summary.get("groups") or {}).items():
        if groups:
            parts += [f"## By {key}", "", _table(key, list(groups.items()), cols), ""]
    parts.append(
        "hit@k and MRR count questions with gold ids; ctx@k (answer in context) counts "
        "questions with a short gold answer (at most 40 characters) that a retrieved chunk "
        "contains; answer metrics count answerable questions, refusal rate unanswerable ones. "
        "Latencies in milliseconds."
    )
    return "\n".join(parts) + "\n"


# Tried in order after DejaVu Sans, so Chinese titles and set names render where such a font exists.
_CJK_FONTS = (
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "Microsoft YaHei",
    "SimHei",
    "PingFang SC",
)


def _font_family() -> list[str]:
    from matplotlib import font_manager

    # Only installed fonts: naming a missing family makes matplotlib log a warning per lookup.
    installed = {f.name for f in font_manager.fontManager.ttflist}
    return ["DejaVu Sans", *(name for name in _CJK_FONTS if name in installed)]


def _write_plot(
    path: Path, summary: Mapping[str, Any], records: Sequence[Record], title: str
) -> None:
    # Figure without pyplot: no global state, no display, Agg canvas chosen by savefig.
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context({"font.family": _font_family()}), warnings.catch_warnings():
        # Without a CJK font, Chinese glyphs come out as boxes; the plot is still useful.
        warnings.filterwarnings("ignore", message="Glyph .* missing")
        fig = Figure(figsize=(11, 4.5), layout="constrained")
        ax_hits, ax_lat = fig.subplots(1, 2)
        _plot_hits(ax_hits, summary)
        _plot_latency(ax_lat, records)
        fig.suptitle(title)
        fig.savefig(path, dpi=100)


def _plot_hits(ax: Any, summary: Mapping[str, Any]) -> None:
    ks = list(summary.get("ks") or [])
    series = dict((summary.get("groups") or {}).get("set") or {}) or {
        "all": summary.get("overall") or {}
    }
    for name, block in series.items():
        ys = [block.get(f"hit@{k}") for k in ks]
        if any(y is not None for y in ys):
            ax.plot(ks, [float("nan") if y is None else y for y in ys], marker="o", label=name)
    ax.set(xlabel="k", ylabel="hit@k", title="Retrieval hit@k by set", ylim=(0, 1.02))
    ax.set_xticks(ks)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")


def _plot_latency(ax: Any, records: Sequence[Record]) -> None:
    retrieve = [float(r["retrieve_ms"]) for r in records if r.get("retrieve_ms") is not None]
    first = [float(r["first_token_ms"]) for r in records if r.get("first_token_ms") is not None]
    if retrieve:
        ax.hist(retrieve, bins=30, alpha=0.6, label="retrieval")
    if first:
        ax.hist(first, bins=30, alpha=0.6, label="first token")
    ax.set(xlabel="milliseconds", ylabel="questions", title="Latency")
    if retrieve or first:
        ax.legend(fontsize="small")


# --- comparison ---------------------------------------------------------------------------


def _named_blocks(summary: Mapping[str, Any]) -> dict[str, Mapping]:
    blocks: dict[str, Mapping] = {"overall": summary.get("overall") or {}}
    for key, groups in (summary.get("groups") or {}).items():
        for value, block in groups.items():
            blocks[f"{key}={value}"] = block
    return blocks


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def compare(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows {"group", "metric", "a", "b", "delta"} (delta = b - a) for metrics in both runs.

    Groups are named "overall" or "key=value" and matched by name; a metric that is None on
    either side keeps its row with delta None, so a vanished measurement stays visible.
    """
    blocks_a, blocks_b = _named_blocks(a), _named_blocks(b)
    rows = []
    for group, block_a in blocks_a.items():
        block_b = blocks_b.get(group)
        if block_b is None:
            continue
        for metric, va in block_a.items():
            if metric not in block_b:
                continue
            vb = block_b[metric]
            delta = _round(vb - va) if _is_number(va) and _is_number(vb) else None
            rows.append({"group": group, "metric": metric, "a": va, "b": vb, "delta": delta})
    return rows


def _fmt_delta(delta: float | None) -> str:
    return "–" if delta is None else f"{delta:+.4f}"


def render_compare_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """Markdown table of `compare` rows."""
    lines = ["| group | metric | a | b | delta |", "|---|---|---|---|---|"]
    for row in rows:
        cells = [str(row["group"]), str(row["metric"]), _fmt(row["a"]), _fmt(row["b"])]
        lines.append("| " + " | ".join([*cells, _fmt_delta(row["delta"])]) + " |")
    return "\n".join(lines) + "\n"


def _lower_is_better(metric: str) -> bool:
    return "_ms_" in metric or metric == "false_refusal_rate"


def _delta_style(metric: str, delta: float | None) -> str:
    if not delta or metric.startswith("n"):
        return ""
    improved = (delta < 0) if _lower_is_better(metric) else (delta > 0)
    return "green" if improved else "red"


def compare_table(rows: Sequence[Mapping[str, Any]]) -> Any:
    """Rich table of `compare` rows; deltas green when better, red when worse."""
    from rich.table import Table

    table = Table("group", "metric", "a", "b", "delta")
    for row in rows:
        style = _delta_style(str(row["metric"]), row["delta"])
        text = _fmt_delta(row["delta"])
        cells = [str(row["group"]), str(row["metric"]), _fmt(row["a"]), _fmt(row["b"])]
        table.add_row(*cells, f"[{style}]{text}[/]" if style else text)
    return table
