"""Shared fixtures: isolated knowledge bases, real models, and real documents of every format.

Every test runs against a real Chroma in a temporary folder, the real bundled embedding model
and, for answers, the real bundled GGUF model: nothing here is a mock.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"
KB_BIN = Path(sys.executable).parent / "kb"


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory, monkeypatch) -> Iterator[None]:
    """No test reads the developer's .env or writes the real knowledge base."""
    from kb.config import get_settings

    for name in list(os.environ):
        if name.startswith("KB_"):
            monkeypatch.delenv(name)
    home = tmp_path_factory.mktemp("kb-home")
    monkeypatch.setenv("KB_HOME", str(home))
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))  # so no stray .env is picked up
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def settings(tmp_path):
    from kb.config import Settings

    return Settings(home=tmp_path / "kb", llm_model="qwen2.5-0.5b")


@pytest.fixture(scope="session")
def docwriters():
    """The writer functions that produced data/samples, reused to make test documents."""
    path = ROOT / "data" / "make_samples.py"
    spec = importlib.util.spec_from_file_location("kb_make_samples", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["kb_make_samples"] = module
    spec.loader.exec_module(module)
    return module


def run_kb(*args: str, env: dict | None = None, timeout: int = 600, input_text: str | None = None):
    """Run the real `kb` entry point; returns the CompletedProcess."""
    import subprocess

    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [str(KB_BIN), *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        input=input_text,
    )


# --- documents ---------------------------------------------------------------------------

# One fact per document, so a search can prove that the document was indexed.
FACTS = {
    "policy.pdf": "The parking garage opens at 06:45 for badge holders.",
    "guide.docx": "Visitors must be escorted by a host wearing an orange lanyard.",
    "slides.pptx": "The Falcon project ships its first prototype in week 37",
    "budget.xlsx": "Quantum lab",
    "contacts.csv": "Helga Svensson",
    "faq.html": "The cafeteria serves ramen every Thursday.",
    "notes.md": "Backups are copied to the Zurich vault every night.",
    "readme.txt": "The printer on floor 3 is named Gutenberg.",
    "mail.eml": "The town hall moves to the Atrium on Friday.",
    "规定-gbk.txt": "会议室预订须提前两天在行政系统中提交。",
    "notes-utf16.txt": "The sauna is closed for renovation until May.",
}


def write_corpus(folder: Path, w) -> dict[str, str]:
    """Write one real document of every supported format into `folder`; returns FACTS."""
    from datetime import datetime

    folder.mkdir(parents=True, exist_ok=True)
    w.write_pdf(
        folder / "policy.pdf",
        "Facilities Policy",
        [
            w.Heading("Opening hours"),
            w.Para("The office opens at 08:00."),
            w.PageBreak(),
            w.Heading("Parking"),
            w.Para(FACTS["policy.pdf"]),
        ],
    )
    w.write_docx(
        folder / "guide.docx",
        "Visitor Guide",
        [
            w.Heading("Escorts"),
            w.Para(FACTS["guide.docx"]),
            w.Table([["Area", "Escort needed"], ["Lab", "Yes"], ["Lobby", "No"]]),
        ],
    )
    w.write_pptx(
        folder / "slides.pptx",
        "Falcon Update",
        [
            w.Slide("Falcon Update", subtitle="Engineering all-hands"),
            w.Slide("Schedule", [FACTS["slides.pptx"], "Field tests follow in week 40"]),
        ],
    )
    w.write_xlsx(
        folder / "budget.xlsx",
        "Budget",
        {
            "Budget": [
                ["Team", "Budget (EUR)", "Owner"],
                ["Quantum lab", 120000, "Ada"],
                ["Robotics", 80000, "Linus"],
            ]
        },
    )
    w.write_csv(
        folder / "contacts.csv",
        [["name", "role"], ["Helga Svensson", "Archivist"], ["Tomas Berg", "Driver"]],
    )
    w.write_html(
        folder / "faq.html", "Cafeteria FAQ", [w.Heading("Menu"), w.Para(FACTS["faq.html"])]
    )
    w.write_markdown(
        folder / "notes.md", "Operations Notes", [w.Heading("Backups"), w.Para(FACTS["notes.md"])]
    )
    (folder / "readme.txt").write_text(f"Printers\n\n{FACTS['readme.txt']}\n", encoding="utf-8")
    w.write_eml(
        folder / "mail.eml",
        sender="Office <office@example.com>",
        to="all@example.com",
        subject="Town hall location",
        date=datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
        message_id="<townhall@example.com>",
        body=f"Hello all,\n\n{FACTS['mail.eml']}\n\nRegards,\nOffice\n",
    )
    (folder / "规定-gbk.txt").write_bytes(f"会议室规定\n\n{FACTS['规定-gbk.txt']}\n".encode("gbk"))
    (folder / "notes-utf16.txt").write_bytes(
        f"Sauna\n\n{FACTS['notes-utf16.txt']}\n".encode("utf-16")
    )
    return FACTS


def write_bad_files(folder: Path) -> dict[str, str]:
    """Files that must fail, each with a word its error message must contain."""
    import pikepdf

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corrupt.pdf").write_bytes(b"%PDF-1.7\n1 0 obj <<>> garbage without xref\n%%EOF")
    pdf = pikepdf.new()
    pdf.add_blank_page()
    pdf.save(folder / "encrypted.pdf", encryption=pikepdf.Encryption(user="secret", owner="o"))
    blank = pikepdf.new()
    blank.add_blank_page()
    blank.save(folder / "scanned.pdf")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    return {
        "corrupt.pdf": "corrupt",
        "encrypted.pdf": "encrypted",
        "scanned.pdf": "no extractable text",
        "empty.txt": "empty",
        "picture.png": "unsupported",
    }


@pytest.fixture
def corpus(tmp_path, docwriters) -> Path:
    folder = tmp_path / "docs"
    write_corpus(folder, docwriters)
    return folder


@pytest.fixture
def facts() -> dict[str, str]:
    return dict(FACTS)


@pytest.fixture
def bad_files(tmp_path) -> tuple[Path, dict[str, str]]:
    folder = tmp_path / "bad"
    return folder, write_bad_files(folder)


@pytest.fixture(scope="session")
def models():
    """The real models, loaded once per test session and shared by every knowledge base."""
    from kb.models.cache import ModelCache

    cache = ModelCache()
    yield cache
    cache.close()


@pytest.fixture
def open_kb(models):
    """Build `KnowledgeBase`s over the session's shared models; closed after the test."""
    from kb.app import KnowledgeBase

    opened = []

    def build(settings, **kwargs):
        knowledge = KnowledgeBase(settings, models=models, **kwargs)
        opened.append(knowledge)
        return knowledge

    yield build
    for knowledge in opened:
        knowledge.close()


@pytest.fixture(scope="session")
def sample_kb(tmp_path_factory, models) -> Path:
    """A knowledge base ingested once from data/samples (real files, Chroma and embeddings)."""
    from kb.app import KnowledgeBase
    from kb.config import Settings

    home = tmp_path_factory.mktemp("sample-kb")
    with KnowledgeBase(Settings(home=home), models=models) as knowledge:
        summary = knowledge.ingest([SAMPLES])
    assert not summary.failed, summary.failed
    return home


@pytest.fixture(scope="session")
def sample_settings(sample_kb):
    """Settings for the sample knowledge base with the default bundled model.

    The answering tests use the model users get (Qwen2.5-Coder-1.5B, loads in about 2 s): the
    0.5B model refuses or mangles several of the sample questions (see bench/results).
    """
    from kb.config import Settings

    return Settings(home=sample_kb)


@pytest.fixture(scope="session")
def sample_knowledge(sample_settings, models):
    """The facade over the sample knowledge base, with the default bundled model."""
    from kb.app import KnowledgeBase

    knowledge = KnowledgeBase(sample_settings, models=models)
    yield knowledge
    knowledge.close()


@pytest.fixture(scope="session")
def sample_chain(sample_knowledge):
    return sample_knowledge.chain()
