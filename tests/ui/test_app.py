"""The page's flows through Streamlit's AppTest, against the real models and a real store."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from kb.answer import prompts
from kb.answer.types import label
from kb.app import KnowledgeBase
from kb.config import Settings, get_settings
from kb.ui import app as page
from kb.ui import resources
from kb.ui.i18n import TEXTS, pick_language
from kb.ui.launch import child_environment, display_url, streamlit_command

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "ui" / "app.py"
SAMPLES = ROOT / "data" / "samples"
# The first run loads both models; later runs reuse them.
TIMEOUT = 300


def open_page() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    return at


def ask(at: AppTest, question: str) -> None:
    at.chat_input[0].set_value(question).run()
    assert not at.exception, at.exception


def plain(text: str) -> str:
    """Markdown as the reader sees it (the page escapes document text)."""
    return text.replace("\\", "")


def assistant(at: AppTest, index: int = -1):
    return [m for m in at.chat_message if m.name == "assistant"][index]


def answer_text(at: AppTest, index: int = -1) -> str:
    """The answer's own text: the first markdown (or the refusal warning) of the message."""
    message = assistant(at, index)
    if message.warning:
        return message.warning[0].value
    return plain(message.markdown[0].value)


def all_text(at: AppTest) -> str:
    parts = [
        e.value
        for kind in ("markdown", "caption", "error", "warning", "info", "success")
        for e in getattr(at, kind)
    ]
    return "\n".join(str(p) for p in parts)


# --- asking ----------------------------------------------------------------------------------


def test_page_shows_status_models_and_collection() -> None:
    at = open_page()
    assert at.title[0].value == TEXTS["en"]["title"]
    metrics = {m.label: m.value for m in at.sidebar.metric}
    supported = {f".{ext}" for ext in KnowledgeBase.supported_extensions()}
    samples = [p for p in SAMPLES.rglob("*") if p.suffix.lower() in supported]
    assert metrics["Files"] == str(len(samples))
    assert int(metrics["Chunks"]) > 0
    sidebar = "\n".join(c.value for c in at.sidebar.caption)
    assert "Last ingestion:" in sidebar
    settings = get_settings()
    assert settings.embed_model in plain(sidebar) and settings.llm_model in plain(sidebar)
    assert at.selectbox(key="collection").value == "default"
    assert at.sidebar.file_uploader[0].accept_multiple_files


def test_english_question_gets_answer_and_source_cards() -> None:
    at = open_page()
    ask(at, "How many days of annual leave do managers get?")
    assert "20" in answer_text(at)
    message = assistant(at)
    assert not message.warning and not message.error
    labels = [e.label for e in message.expander]
    assert labels and any("employee-handbook.pdf" in plain(label) for label in labels)
    snippets = [h.value for h in message.html]
    # The quoted evidence sentence is highlighted inside the snippet.
    assert any("<mark>" in s and "20 days" in s for s in snippets), snippets
    assert "Sources" in [c.value for c in message.caption]


def test_chinese_question_gets_chinese_answer() -> None:
    at = open_page()
    ask(at, "员工每年有几天年假？")
    text = answer_text(at)
    assert "15" in text
    labels = [plain(e.label) for e in assistant(at).expander]
    assert any("员工手册" in label for label in labels), labels


def test_follow_up_uses_the_conversation() -> None:
    at = open_page()
    ask(at, "How many days of annual leave do employees get?")
    assert "15" in answer_text(at)
    ask(at, "And for managers?")
    assert "20" in answer_text(at)
    captions = " ".join(c.value for c in assistant(at).caption)
    # The page says how it understood the follow-up (the chain's standalone question).
    assert "Understood as" in captions and "manager" in captions.lower()
    assert len(at.session_state["turns"]) == 2


def test_refusal_is_marked_and_lists_nearest_documents() -> None:
    at = open_page()
    ask(at, "What is the capital of Mars?")
    message = assistant(at)
    assert message.warning, "a refusal is shown as a warning"
    assert message.warning[0].value == prompts.REFUSAL["en"]
    captions = [c.value for c in message.caption]
    assert label("nearest", "en") in captions
    assert 1 <= len(message.expander) <= page.NEAREST_SHOWN
    assert "Sources" not in captions


def test_new_conversation_clears_history() -> None:
    at = open_page()
    ask(at, "员工每年有几天年假？")
    assert len(at.chat_message) == 2
    at.button(key="new_conversation").click().run()
    assert not at.exception
    assert len(at.chat_message) == 0
    assert at.session_state["turns"] == []
    assert TEXTS["en"]["welcome"] in [m.value for m in at.markdown]


def test_waiting_user_sees_they_were_queued() -> None:
    at = open_page()  # loads the model this test then holds
    model = resources.knowledge_base(get_settings()).chat_model
    holding = threading.Event()

    def other_user() -> None:
        with model.turn():
            holding.set()
            time.sleep(3)

    thread = threading.Thread(target=other_user)
    thread.start()
    try:
        assert holding.wait(10)
        ask(at, "员工每年有几天年假？")
    finally:
        thread.join()
    assert "15" in answer_text(at)
    captions = " ".join(c.value for c in assistant(at).caption)
    assert "in the queue" in captions, captions


# --- errors ----------------------------------------------------------------------------------


def _assert_one_line_error(at: AppTest, *words: str) -> str:
    assert not at.exception, at.exception
    errors = [e.value for e in assistant(at).error]
    assert len(errors) == 1, errors
    message = errors[0]
    assert "\n" not in message and "Traceback" not in all_text(at)
    for word in words:
        assert word in message, message
    return message


def test_empty_knowledge_base_is_a_one_line_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KB_HOME", str(tmp_path / "empty-kb"))
    get_settings.cache_clear()
    at = open_page()
    assert TEXTS["en"]["empty_collection"] in [i.value for i in at.sidebar.info]
    ask(at, "How many days of annual leave do managers get?")
    _assert_one_line_error(at, "Error:", "no documents")


def test_model_error_is_a_one_line_error(tmp_path, monkeypatch) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"this is not a model")
    monkeypatch.setenv("KB_LLM_MODEL", str(broken))
    get_settings.cache_clear()
    at = open_page()
    ask(at, "How many days of annual leave do managers get?")
    _assert_one_line_error(at, "Error:", "GGUF")
    # The page keeps working: the failed turn stays visible and is not sent as history.
    assert page.history_for_chain(at.session_state["turns"]) == []


def test_invalid_settings_are_a_one_line_error(monkeypatch) -> None:
    monkeypatch.setenv("KB_LANGUAGE", "klingon")
    get_settings.cache_clear()
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "\n" not in errors[0] and "language" in errors[0], errors


# --- language --------------------------------------------------------------------------------


def test_language_switch_shows_chinese_labels() -> None:
    at = open_page()
    assert at.button(key="new_conversation").label == "New conversation"
    at.selectbox(key="ui_lang").set_value("zh").run()
    assert not at.exception
    assert at.title[0].value == "公司知识库问答"
    assert at.button(key="new_conversation").label == "新对话"
    assert at.selectbox(key="collection").label == "文档集"
    assert "知识库状态" in [s.value for s in at.sidebar.subheader]
    ask(at, "员工每年有几天年假？")
    assert "来源" in [c.value for c in assistant(at).caption]


def test_language_setting_picks_chinese(monkeypatch) -> None:
    monkeypatch.setenv("KB_LANGUAGE", "zh")
    get_settings.cache_clear()
    at = open_page()
    assert at.title[0].value == "公司知识库问答"


@pytest.mark.parametrize(
    ("setting", "locale", "accept", "expected"),
    [
        ("auto", "zh-CN", None, "zh"),
        ("auto", None, "zh-TW,zh;q=0.9,en;q=0.8", "zh"),
        ("auto", "en-GB", "zh-CN", "en"),
        ("auto", "fr-FR", None, "en"),
        ("auto", None, None, "en"),
        ("zh", "en-US", None, "zh"),
        ("en", "zh-CN", None, "en"),
    ],
)
def test_pick_language(setting, locale, accept, expected) -> None:
    assert pick_language(setting, locale, accept) == expected


def test_every_text_exists_in_both_languages() -> None:
    assert set(TEXTS["en"]) == set(TEXTS["zh"])


# --- uploads ---------------------------------------------------------------------------------

PARKING = (
    "# Bicycle parking\n\nThe Zephyr garage has 42 bicycle spaces on level B3. "
    "Bicycle parking permits are free and issued by the facilities desk.\n"
)


def test_upload_through_the_page_is_stored_ingested_and_searchable(settings: Settings) -> None:
    at = open_page()
    files_before = int({m.label: m.value for m in at.sidebar.metric}["Files"])
    at.sidebar.file_uploader[0].set_value(
        [
            ("bicycle-parking.md", PARKING.encode(), "text/markdown"),
            ("empty.txt", b"", "text/plain"),
        ]
    ).run()
    at.button(key="upload_button").click().run()
    assert not at.exception, at.exception

    stored = settings.uploads_dir / "bicycle-parking.md"
    assert stored.read_text(encoding="utf-8") == PARKING
    success = [s.value for s in at.sidebar.success]
    assert success and "Added 1" in success[0], success
    errors = [e.value for e in at.sidebar.error]
    assert len(errors) == 1 and "empty.txt" in errors[0] and "empty" in errors[0].lower()
    # The uploader is emptied and the status counts the new file.
    assert not at.sidebar.file_uploader[0].value
    assert int({m.label: m.value for m in at.sidebar.metric}["Files"]) == files_before + 1

    question = "How many bicycle spaces has the Zephyr garage?"
    hits = resources.knowledge_base(settings).search(question, 3)
    assert hits.hits[0].source == "bicycle-parking.md"
    assert "42 bicycle spaces" in hits.hits[0].text


# --- rendering helpers and launch --------------------------------------------------------------


def test_highlight_escapes_html_and_marks_the_quote() -> None:
    snippet = "Intro <b>bold</b>. Managers receive 20 days. Outro…"
    out = page.highlight(snippet, ["Managers receive 20 days."])
    assert "&lt;b&gt;bold&lt;/b&gt;" in out
    assert "<mark>Managers receive 20 days.</mark>" in out
    cut = page.highlight(
        "Start. The quoted sentence goes on and on…",
        ["The quoted sentence goes on and on past the cut."],
    )
    assert "<mark>The quoted sentence goes on and on</mark>…" in cut


def test_launch_command_is_local_and_private(settings: Settings) -> None:
    command = streamlit_command(settings, "127.0.0.1", 8599)
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4].endswith("ui/app.py")
    options = dict(zip(command[5::2], command[6::2], strict=True))
    assert options["--server.address"] == "127.0.0.1"
    assert options["--server.port"] == "8599"
    assert options["--server.headless"] == "true"
    assert options["--browser.gatherUsageStats"] == "false"
    assert options["--global.developmentMode"] == "false"
    assert options["--logger.hideWelcomeMessage"] == "true"
    env = child_environment(settings, "127.0.0.1", 8599)
    assert env["KB_HOME"] == str(settings.home) and env["KB_LLM_MODEL"] == settings.llm_model
    assert display_url("0.0.0.0", 8501) == "http://127.0.0.1:8501"
