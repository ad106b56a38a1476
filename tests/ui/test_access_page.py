"""Sign-in on the page: the form, one message for unknown names and wrong passwords, lockout,
sign-out, and a signed-in user seeing only what their groups may read.

Accounts are added to the session's sample knowledge base for these tests and removed after,
so the other page tests keep their page without sign-in.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from kb.app import KnowledgeBase
from kb.config import Settings
from kb.ui.i18n import TEXTS

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "ui" / "app.py"
SAMPLES = ROOT / "data" / "samples"
PASSWORD = "correct horse battery"
EN = TEXTS["en"]


@pytest.fixture
def accounts(kb_home: Path, monkeypatch) -> Iterator[None]:
    monkeypatch.setenv("KB_LOGIN_MAX_FAILURES", "3")
    with KnowledgeBase(Settings(home=kb_home)) as knowledge:
        knowledge.ingest([SAMPLES], groups="staff")  # readers only: nothing is re-embedded
        knowledge.users.add("sam", PASSWORD, ["staff"])
        knowledge.users.add("otto", PASSWORD, ["sales"])
        knowledge.users.add("lou", PASSWORD, ["staff"])
    yield
    with KnowledgeBase(Settings(home=kb_home)) as knowledge:
        for name in ("sam", "otto", "lou"):
            knowledge.users.remove(name)


def sign_in(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input(key="sign_in_name").set_value(name)
    at.text_input(key="sign_in_password").set_value(password)
    at.button[0].click().run()
    assert not at.exception, at.exception
    return at


def new_page() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=300)
    at.run()
    assert not at.exception, at.exception
    return at


def test_sign_in_lockout_and_sign_out(accounts) -> None:
    at = new_page()
    assert at.title[0].value == EN["sign_in_title"] and not at.chat_input
    wrong = [e.value for e in sign_in(new_page(), "sam", "not the password").error]
    unknown = [e.value for e in sign_in(new_page(), "nobody-here", PASSWORD).error]
    assert wrong == unknown == [EN["sign_in_failed"]]

    at = sign_in(new_page(), "sam", PASSWORD)
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert "sam" in captions and at.chat_input
    metrics = {m.label: m.value for m in at.sidebar.metric}
    assert int(metrics["Files"]) > 0
    at.button(key="sign_out").click().run()
    assert at.title[0].value == EN["sign_in_title"] and not at.chat_input

    at = new_page()
    for _ in range(3):
        sign_in(at, "lou", "not the password")
    sign_in(at, "lou", PASSWORD)  # the right password no longer helps from this address
    assert at.error and at.error[0].value.startswith("Too many failed sign-ins")
    assert not at.chat_input


def test_user_sees_only_their_groups(accounts) -> None:
    at = sign_in(new_page(), "otto", PASSWORD)
    assert not at.sidebar.metric, "a collection with nothing otto may read shows no counts"
    assert EN["no_upload_right"] in [c.value for c in at.sidebar.caption]
    at.chat_input[0].set_value("How many days of annual leave do managers get?").run()
    assert not at.exception, at.exception
    message = [m for m in at.chat_message if m.name == "assistant"][-1]
    assert message.warning, "nothing readable: the page refuses"
    assert not message.expander, "no source or nearest document is shown"

    # The conversation is kept: a later session of the same user resumes it.
    at = sign_in(new_page(), "otto", PASSWORD)
    assert not [m for m in at.chat_message if m.name == "assistant"]
    resume = [b for b in at.sidebar.button if b.key and b.key.startswith("resume-")]
    assert len(resume) == 1
    resume[0].click().run()
    assert not at.exception, at.exception
    assert [m for m in at.chat_message if m.name == "user"]
    assert not [
        b
        for b in sign_in(new_page(), "sam", PASSWORD).sidebar.button
        if b.key and b.key.startswith("resume-")
    ]


def test_feedback_comment_is_stored_with_the_rating(accounts, kb_home: Path) -> None:
    from kb.app import Conversation

    question = "How many days of annual leave do managers get?"
    turn = {
        "question": question,
        "answer": "Managers get 30 days of annual leave [1].",
        "refused": False,
        "language": "en",
        "sources": [
            {
                "n": 1,
                "source": "handbook.md",
                "page": None,
                "title": "Handbook",
                "section": "Leave",
                "snippet": "Managers get 30 days of annual leave.",
                "chunk_id": "c1",
                "score": 0.8,
            }
        ],
    }
    with KnowledgeBase(Settings(home=kb_home)) as knowledge:
        knowledge.as_user("sam").save_conversation(
            Conversation("leave", "sam", "default", question, [turn])
        )
        before = len(knowledge.users.feedback())

    at = sign_in(new_page(), "sam", PASSWORD)
    next(b for b in at.sidebar.button if b.key == "resume-leave").click().run()
    assert not at.exception, at.exception
    assert not at.text_area, "the comment box appears once the answer is rated"
    at.feedback[0].set_value(0).run()  # thumbs down
    assert not at.exception, at.exception
    box = at.text_area(key="feedback-leave-0-comment")
    box.set_value("The handbook says 30 days, but only after two years.").run()
    at.button(key="feedback-leave-0-save").click().run()
    assert not at.exception, at.exception
    assert EN["feedback_thanks"] in [c.value for c in at.caption]
    at.feedback[0].set_value(1).run()  # changed mind: thumbs up, the comment kept
    assert not at.exception, at.exception

    with KnowledgeBase(Settings(home=kb_home)) as knowledge:
        records = knowledge.users.feedback()[before:]
    assert len(records) == 1, "one record per rated answer"
    record = records[0]
    assert record["user"] == "sam" and record["question"] == question
    assert record["rating"] == 1
    assert record["comment"] == "The handbook says 30 days, but only after two years."
    assert record["sources"] == ["handbook.md"]
