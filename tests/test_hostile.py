"""`kb ingest` over a folder of hostile files beside good ones (tests/hostile_files.py).

Every bad file is reported by name with its reason, every good file is indexed, the run ends
with exit code 1 and a JSON summary, no traceback, and no parse worker outlives it. A per-file
limit of 30 s here (120 s by default) bounds the deeply nested Markdown list that unstructured
would parse for many minutes. The 200 MB variant and the figures are `make reliability`.
"""

from __future__ import annotations

import psutil
import pytest
from conftest import FACTS, KB_BIN, write_corpus
from hostile_files import check_outcome, run_ingest, write_hostile
from tests_support import assert_consistent

pytestmark = pytest.mark.slow


def test_hostile_folder_beside_good_files(tmp_path, docwriters):
    base = tmp_path
    docs = base / "docs"
    write_corpus(docs / "good", docwriters)
    expect = write_hostile(docs / "hostile", docwriters)
    assert len(expect) >= 50
    changing = docs / "good" / "still-being-written.txt"
    changing.write_text("A log that another program keeps appending to.\n")
    home = base / "kb"
    home.mkdir()

    result = run_ingest(KB_BIN, docs, home, {"KB_PARSE_TIMEOUT_S": "30"}, changing=changing)

    problems = check_outcome(expect, FACTS, result)
    assert not problems, "\n".join(problems) + "\n" + result["stderr"][-3000:]
    failed = {f["path"]: f["error"] for f in result["summary"]["failed"]}
    assert "changed while it was being read" in failed["good/still-being-written.txt"]
    assert "longer than 30 s" in failed["hostile/nested-lists.md"]
    # Each failure is one line on stderr too (stdout holds only the JSON).
    assert result["stdout"].count("\n") == 1
    # The good files (and the odd names) are in the index, and the index is consistent.
    from kb.config import Settings
    from kb.store import Store

    store = Store(Settings(home=home))
    try:
        assert_consistent(store)
        sources = {r.source for r in store.manifest.files("default").values()}
    finally:
        store.close()
    assert {f"good/{name}" for name in FACTS} <= sources
    assert "hostile/new\nline.txt" in sources and "hostile/中文文件名.txt" in sources
    # The parse worker died with the run (a worker names its parent's pid; other kb processes
    # on this machine are not ours to judge).
    assert not [
        p
        for p in psutil.process_iter(["cmdline"])
        if "kb.ingest.worker" in (cmd := p.info["cmdline"] or []) and str(result["pid"]) in cmd
    ]
    assert result["peak_total_rss_mb"] < 4096, result
