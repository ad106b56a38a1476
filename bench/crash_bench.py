"""Crash safety at scale: SIGKILL `kb ingest`, `kb forget` and an upload at random moments.

    .venv/bin/python bench/crash_bench.py [--kills 20] [--files 100] [--seed 1]

The corpus is generated text (labelled as such in every file): --files Markdown reports of
about 20 chunks each at KB_CHUNK_TOKENS=64, so thousands of chunks. Steps:
1. reference: one uninterrupted `kb ingest`; its chunks (ids, texts, source, position) are the
   expected content;
2. ingestion: --kills restarts of `kb ingest`, each SIGKILLed at a random moment (a random
   share of the chunks committed, plus a random delay; two inside start-up). After every kill
   the knowledge base is repaired as the next run begins and checked: nothing half-written, no
   orphan or duplicate chunk, and every file it holds identical, chunk for chunk, to the
   reference. A last run completes it, and must equal the reference exactly;
3. `kb forget` of the largest file, SIGKILLed at a random moment, then `kb ingest`: equal to the
   reference (3 times);
4. `KnowledgeBase.store_uploads` in a child process, SIGKILLed at a random moment, then the same
   upload again: equal to an uninterrupted upload (3 times);
5. disk full: the knowledge base on a tmpfs smaller than it needs (root only): the error must be
   one clear line, and the index consistent, completing to the reference once there is room.
Figures go to the "crash" and "disk_full" sections of bench/results/reliability.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))
from reliability_results import load_now, update  # noqa: E402
from tests_support import assert_consistent  # noqa: E402

WORK = ROOT / "bench" / "work" / "crash"
KB = Path(sys.executable).parent / "kb"
ENV = {"KB_CHUNK_TOKENS": "64", "KB_CHUNK_OVERLAP_TOKENS": "8", "KB_EMBED_BATCH_SIZE": "32"}

WORDS = (
    "depot invoice shipment pallet freight ledger audit budget quarter supplier contract "
    "warehouse forklift inventory customs tariff carrier route schedule delay claim refund "
    "policy safety training badge access permit inspection maintenance repair vendor quote"
).split()


def write_corpus(folder: Path, files: int, seed: int) -> None:
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    for i in range(files):
        paragraphs = [
            "This report is generated text for a crash-safety benchmark.",
            *(
                " ".join(
                    f"{rng.choice(WORDS).capitalize()} {rng.choice(WORDS)} {n} of report {i} "
                    f"lists {rng.randint(1, 999)} {rng.choice(WORDS)}s."
                    for n in range(12)
                )
                for _ in range(10 if i else 60)  # report 0 is the large one `kb forget` removes
            ),
        ]
        (folder / f"report-{i:03d}.md").write_text(f"# Report {i}\n\n" + "\n\n".join(paragraphs))


def env(home: Path) -> dict[str, str]:
    return {**os.environ, **ENV, "KB_HOME": str(home)}


def kb(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    run = subprocess.run(
        [str(KB), *args], env=env(home), capture_output=True, text=True, timeout=3600
    )
    if check and run.returncode != 0:
        raise SystemExit(f"kb {' '.join(args)} failed ({run.returncode}): {run.stderr[-2000:]}")
    return run


def close(store) -> None:
    """Close `store` and drop Chroma's per-process cache of open databases: this script removes
    and rebuilds knowledge bases at the same paths (and other processes write them), and a
    cached database whose files were replaced refuses writes ("attempt to write a readonly
    database"). Only one store is open at a time here, so dropping them all is safe."""
    import gc

    from chromadb.api.shared_system_client import SharedSystemClient

    store.close()
    del store
    SharedSystemClient.clear_system_cache()
    gc.collect()


def snapshot(home: Path) -> dict[str, tuple]:
    """Chunk id -> (text, source, position, section) of the default collection."""
    from kb.config import Settings
    from kb.store import Store

    store = Store(Settings(home=home))
    try:
        if not store.has_collection("default"):
            return {}
        return {
            h.chunk_id: (h.text, h.source, h.metadata.get("position"), h.metadata.get("section"))
            for h in store.iter_chunks("default")
        }
    finally:
        close(store)


def repaired_and_checked(home: Path, reference: dict[str, tuple]) -> dict:
    """What the next run does first (repair), then the checks: consistent, and every file held
    identical to the reference."""
    from kb.config import Settings
    from kb.store import Store

    store = Store(Settings(home=home, **{k[3:].lower(): v for k, v in ENV.items()}))
    try:
        if not store.has_collection("default"):
            return {"files": 0, "chunks": 0, "repaired": {}, "identical": True}
        repaired = {k: v for k, v in store.repair("default").items() if v}
        assert_consistent(store)
        held = {
            h.chunk_id: (h.text, h.source, h.metadata.get("position"), h.metadata.get("section"))
            for h in store.iter_chunks("default")
        }
        files = len(store.manifest.files("default"))
    finally:
        close(store)
    identical = all(reference.get(i) == v for i, v in held.items())
    return {"files": files, "chunks": len(held), "repaired": repaired, "identical": identical}


def committed_chunks(home: Path) -> int:
    path = home / "manifest.sqlite3"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            rows = db.execute("SELECT chunk_ids FROM files WHERE pending_ids IS NULL").fetchall()
    except sqlite3.Error:
        return 0
    return sum(len(json.loads(r[0])) for r in rows)


def kill_at(cmd: list[str], home: Path, until, extra_delay: float, deadline_s: float) -> dict:
    proc = subprocess.Popen(
        cmd, env=env(home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    started = time.monotonic()
    while not until() and proc.poll() is None and time.monotonic() - started < deadline_s:
        time.sleep(0.02)
    time.sleep(extra_delay)
    finished = proc.poll() is not None
    if not finished:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    return {"after_s": round(time.monotonic() - started, 2), "killed": not finished}


def ingest_kills(docs: Path, home: Path, reference: dict, kills: int, rng: random.Random) -> list:
    total = len(reference)
    targets = sorted(rng.uniform(0.02, 0.97) for _ in range(kills - 2))
    plan = [("start-up", rng.uniform(0.3, 3.0)) for _ in range(2)] + [
        ("chunks", t) for t in targets
    ]
    trials = []
    for i, (kind, value) in enumerate(plan):
        if kind == "start-up":
            moment = kill_at([str(KB), "ingest", str(docs)], home, lambda: True, value, 60)
            moment["target"] = f"start-up + {value:.1f} s"
        else:
            goal = int(value * total)
            moment = kill_at(
                [str(KB), "ingest", str(docs)],
                home,
                lambda goal=goal: committed_chunks(home) >= goal,
                rng.uniform(0, 1.0),
                1800,
            )
            moment["target"] = f"{value:.0%} of chunks committed + delay"
        moment.update(repaired_and_checked(home, reference))
        trials.append(moment)
        print(f"kill {i + 1}/{len(plan)}: {moment}", flush=True)
    return trials


def forget_kills(docs: Path, home: Path, reference: dict, rng: random.Random, n: int) -> list:
    trials = []
    for i in range(n):
        delay = rng.uniform(2.0, 8.0)  # start-up of the command is most of a forget's life
        moment = kill_at([str(KB), "forget", "report-000.md"], home, lambda: True, delay, 60)
        moment["target"] = f"forget + {delay:.1f} s"
        moment.update(repaired_and_checked(home, reference))
        kb(home, "ingest", str(docs))
        moment["after_ingest_equal"] = snapshot(home) == reference
        trials.append(moment)
        print(f"forget kill {i + 1}: {moment}", flush=True)
    return trials


UPLOADER = """
import sys
from pathlib import Path
from kb.app import KnowledgeBase
from kb.config import Settings
files = [(p.name, p.read_bytes()) for p in sorted(Path(sys.argv[1]).glob("*.md"))]
with KnowledgeBase(Settings()) as knowledge:
    report = knowledge.store_uploads(files)
    sys.exit(1 if report.failed else 0)
"""


def upload_kills(upload_docs: Path, rng: random.Random, n: int) -> list:
    script = WORK / "uploader.py"
    script.write_text(UPLOADER)
    home = WORK / "upload-kb"
    shutil.rmtree(home, ignore_errors=True)
    cmd = [sys.executable, str(script), str(upload_docs)]
    subprocess.run(cmd, env=env(home), check=True, capture_output=True, timeout=3600)
    reference = snapshot(home)
    trials = []
    for i in range(n):
        shutil.rmtree(home)
        delay = rng.uniform(3.0, 25.0)
        moment = kill_at(cmd, home, lambda: True, delay, 60)
        moment["target"] = f"upload + {delay:.1f} s"
        moment.update(repaired_and_checked(home, reference))
        subprocess.run(cmd, env=env(home), check=True, capture_output=True, timeout=3600)
        moment["after_upload_equal"] = snapshot(home) == reference
        uploads = home / "uploads"
        moment["partials_left"] = len(list(uploads.glob(".upload-*"))) if uploads.exists() else 0
        trials.append(moment)
        print(f"upload kill {i + 1}: {moment}", flush=True)
    return trials


def disk_full(docs: Path, reference: dict, reference_bytes: int) -> dict:
    if os.geteuid() != 0:
        return {"skipped": "mounting a tmpfs needs root"}
    mount = WORK / "small-disk"
    mount.mkdir(exist_ok=True)
    size = max(reference_bytes // 2, 8 * 2**20)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], check=True)
    try:
        home = mount / "kb"
        run = kb(home, "ingest", str(docs), check=False)
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        result = {
            "disk_bytes": size,
            "returncode": run.returncode,
            "stderr_lines": len(lines),
            "error": lines[-1] if lines else "",
            "traceback": "Traceback" in run.stderr,
        }
        moved = WORK / "after-disk-full"
        shutil.rmtree(moved, ignore_errors=True)
        shutil.copytree(home, moved, symlinks=True)
    finally:
        subprocess.run(["umount", str(mount)], check=True)
    result.update(repaired_and_checked(moved, reference))
    kb(moved, "ingest", str(docs))
    result["completed_equal"] = snapshot(moved) == reference
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    load = load_now()
    rng = random.Random(args.seed)
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    docs = WORK / "docs"
    write_corpus(docs, args.files, args.seed)
    home = WORK / "kb"
    started = time.perf_counter()
    kb(home, "ingest", str(docs))
    reference_s = time.perf_counter() - started
    reference = snapshot(home)
    reference_bytes = sum(p.stat().st_size for p in home.rglob("*") if p.is_file())
    print(f"reference: {len(reference)} chunks in {reference_s:.0f} s", flush=True)
    shutil.rmtree(home)

    trials = ingest_kills(docs, home, reference, args.kills, rng)
    kb(home, "ingest", str(docs))
    final_equal = snapshot(home) == reference
    again = json.loads(kb(home, "ingest", str(docs), "--json").stdout)
    forgets = forget_kills(docs, home, reference, rng, 3)
    upload_docs = WORK / "upload-docs"
    write_corpus(upload_docs, 8, args.seed + 1)
    uploads = upload_kills(upload_docs, rng, 3)
    full = disk_full(docs, reference, reference_bytes)

    killed = [t for t in trials if t["killed"]]
    data = {
        "files": args.files,
        "chunks": len(reference),
        "reference_seconds": round(reference_s, 1),
        "ingest_kills": len(killed),
        "ingest_kills_consistent_and_identical": sum(t["identical"] for t in killed),
        "final_equal_to_reference": final_equal,
        "rerun_embedded": again["embedded"],
        "forget_kills": sum(t["killed"] for t in forgets),
        "forget_equal_after_ingest": sum(t["after_ingest_equal"] for t in forgets),
        "upload_kills": sum(t["killed"] for t in uploads),
        "upload_equal_after_retry": sum(t["after_upload_equal"] for t in uploads),
        "trials": trials,
        "forgets": forgets,
        "uploads": uploads,
    }
    rows = "\n".join(
        f"| {i + 1} | {t['target']} | {t['after_s']} | {t['files']} | {t['chunks']} | "
        f"{t['repaired'] or '-'} | {'yes' if t['identical'] else 'NO'} |"
        for i, t in enumerate(trials)
    )
    table = [
        ("`kb ingest` SIGKILLed", f"{len(killed)} times"),
        (
            "after each: consistent, every file identical to the reference",
            f"{data['ingest_kills_consistent_and_identical']} / {len(killed)}",
        ),
        (
            "final run equal to the uninterrupted one (ids, texts, positions, sections)",
            "yes" if final_equal else "NO",
        ),
        ("a further run re-embedded", f"{again['embedded']} chunks"),
        (
            "`kb forget` SIGKILLed (or finished before its kill), then `kb ingest`: equal to "
            "the reference",
            f"{data['forget_equal_after_ingest']} / {len(forgets)} ({data['forget_kills']} killed)",
        ),
        (
            "upload SIGKILLed, then uploaded again: equal to an uninterrupted upload",
            f"{data['upload_equal_after_retry']} / {data['upload_kills']}",
        ),
    ]
    summary = "\n".join(f"| {name} | {value} |" for name, value in table)
    markdown = f"""Generated corpus: {args.files} files, {len(reference):,} chunks
(KB_CHUNK_TOKENS=64); an uninterrupted `kb ingest` took {reference_s:.0f} s.

| measure | result |
|---|---|
{summary}

| kill | moment | after (s) | files held | chunks held | repaired | identical |
|---|---|---|---|---|---|---|
{rows}
"""
    update("crash", data, markdown, load)
    if "skipped" not in full:
        full_md = f"""`kb ingest` with KB_HOME on a {full["disk_bytes"] / 2**20:.0f} MB tmpfs (the
finished knowledge base needs {reference_bytes / 2**20:.0f} MB): exit code {full["returncode"]},
{full["stderr_lines"]} line(s) on stderr, traceback: {"yes" if full["traceback"] else "no"}.

> {full["error"]}

Moved to a larger disk: consistent and every file identical: {"yes" if full["identical"] else "NO"}
({full["files"]} files held); `kb ingest` then completed it equal to the reference:
{"yes" if full["completed_equal"] else "NO"}.
"""
        update("disk_full", full, full_md, load)
    print(json.dumps({k: v for k, v in data.items() if not isinstance(v, list)}, indent=1))
    print(json.dumps(full, indent=1))


if __name__ == "__main__":
    main()
