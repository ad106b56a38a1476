"""The kb web page: employees ask the knowledge base in a chat and add documents to it.

Run with `kb ui` (see launch.py). Streamlit re-runs this script on every interaction; the one
`KnowledgeBase` (embedding model, chat model, Chroma) is built once per server process
(resources.py), so a question never reloads a model. Generation is serialized by the chat
model's lock; a session that finds the model busy says it is queued.

The functions above `main()` hold no page state, so tests call them directly.
"""

from __future__ import annotations

import dataclasses
import html
import json
import logging
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import streamlit as st

from kb.answer.types import Answer, Done, Source, StreamedText, evidence_label, label
from kb.app import (
    UNSAFE_NAME,
    UNSUPPORTED_TYPE,
    Conversation,
    KnowledgeBase,
    Principal,
    Session,
    UploadReport,
)
from kb.config import Settings, get_settings
from kb.errors import KbError
from kb.ui.i18n import LANGUAGES, pick_language, t
from kb.ui.resources import clear_status, kb_status, knowledge_base

log = logging.getLogger("kb.ui")

# Failures a user can act on: shown as their own one-line message.
EXPECTED_ERRORS = (KbError, FileNotFoundError)

CSS_PATH = Path(__file__).with_name("style.css")
HISTORY_TURNS = 6  # the chain trims by tokens too; this just bounds what we hand it
NEAREST_SHOWN = 3
# The browser keeps the sign-in session's token here (kb.app KnowledgeBase.start_session).
SESSION_COOKIE = "kb_session"
COMMENT_MAX_CHARS = 1000

# Characters that format anywhere; list markers ("1.", "-", "+") only format at a line's start.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#|<>$~])")
_MARKDOWN_LINE_START = re.compile(r"^(\s*(?:\d+)?)([.)\-+=])", re.MULTILINE)


# --- text helpers ----------------------------------------------------------------------------


def escape_markdown(text: str) -> str:
    """Text shown literally by st.markdown: no formatting, links, HTML or LaTeX from a document."""
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    return _MARKDOWN_LINE_START.sub(r"\1\\\2", text)


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one short line (messages may span lines; a traceback never shows)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _squash(text: str) -> str:
    return " ".join(text.split())


def _quote_span(snippet: str, quote: str) -> tuple[int, int] | None:
    """Where `quote` sits in `snippet`, including a quote the snippet's "…" cut short."""
    if not quote:
        return None
    start = snippet.find(quote)
    if start >= 0:
        return start, start + len(quote)
    body = snippet[:-1] if snippet.endswith("…") else snippet
    head = quote[: min(len(quote), 24)]
    start = body.find(head)
    if start >= 0 and quote.startswith(body[start:]):
        return start, len(body)
    return None


def highlight(snippet: str, quotes: Sequence[str]) -> str:
    """The snippet as HTML, every quoted evidence sentence in it wrapped in <mark>."""
    snippet = _squash(snippet)
    spans = sorted(s for q in quotes if (s := _quote_span(snippet, _squash(q))) is not None)
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out, cursor = [], 0
    for start, end in merged:
        out.append(html.escape(snippet[cursor:start]))
        out.append(f"<mark>{html.escape(snippet[start:end])}</mark>")
        cursor = end
    out.append(html.escape(snippet[cursor:]))
    return "".join(out)


def history_for_chain(turns: Sequence[Turn]) -> list[dict[str, str]]:
    """The conversation as the chain wants it; failed turns are left out."""
    history: list[dict[str, str]] = []
    for turn in turns[-HISTORY_TURNS:]:
        if turn.answer is not None:
            history.append({"role": "user", "content": turn.question})
            history.append({"role": "assistant", "content": turn.answer.answer})
    return history


# --- uploads ---------------------------------------------------------------------------------


def upload_error(item: Any, lang: str) -> str:
    """An upload's failure in the page's language (ingestion's own reasons stay as written)."""
    if item.error_code == UNSUPPORTED_TYPE:
        supported = ", ".join(KnowledgeBase.supported_extensions())
        return t(lang, "unsupported_type", ext=item.extension or "—", supported=supported)
    if item.error_code == UNSAFE_NAME:
        return t(lang, "unsafe_name")
    return item.error


# --- knowledge base access (cached per server process) ---------------------------------------


# --- page state ------------------------------------------------------------------------------


@dataclass
class Turn:
    question: str
    answer: Answer | None = None
    error: str = ""
    waited_s: float = 0.0  # time spent queued behind another user's question
    # A new question interrupted this one while it streamed: what had arrived is kept.
    stopped: bool = False
    partial: str = ""


def _turns() -> list[Turn]:
    return st.session_state.setdefault("turns", [])


def stored_turn(turn: Turn) -> dict[str, Any]:
    """A turn as a conversation keeps it across sessions (answered turns only)."""
    a = turn.answer
    assert a is not None
    return {
        "question": turn.question,
        "answer": a.answer,
        "refused": a.refused,
        "refusal_reason": a.refusal_reason,
        "language": a.language,
        "standalone_question": a.standalone_question,
        "sources": [dataclasses.asdict(s) for s in a.sources],
        "also_retrieved": [dataclasses.asdict(s) for s in a.also_retrieved],
    }


def turn_from_stored(item: dict[str, Any]) -> Turn:
    answer = Answer(
        question=item["question"],
        answer=item["answer"],
        refused=bool(item.get("refused")),
        language=item.get("language") or "en",
        standalone_question=item.get("standalone_question") or "",
        sources=[Source(**s) for s in item.get("sources") or []],
        also_retrieved=[Source(**s) for s in item.get("also_retrieved") or []],
        refusal_reason=item.get("refusal_reason"),
    )
    return Turn(question=item["question"], answer=answer)


def _save_conversation(reader: KnowledgeBase, collection: str) -> None:
    """Keep the signed-in user's conversation, so it can be resumed in a later session."""
    if reader.principal is None:
        return
    answered = [turn for turn in _turns() if turn.answer is not None]
    if not answered:
        return
    conversation_id = st.session_state.setdefault("conversation_id", uuid.uuid4().hex)
    reader.save_conversation(
        Conversation(
            id=conversation_id,
            user=reader.principal.name,
            collection=collection,
            title=answered[0].question[:80],
            turns=[stored_turn(turn) for turn in answered],
        )
    )


def _browser_language_hints() -> tuple[str | None, str | None]:
    locale = accept = None
    try:
        locale = st.context.locale
    except Exception:  # noqa: BLE001 - no browser (tests, bare mode): fall back to English
        locale = None
    try:
        accept = st.context.headers.get("Accept-Language")
    except Exception:  # noqa: BLE001 - same
        accept = None
    return locale, accept


def _language(settings: Settings) -> str:
    if "ui_lang" not in st.session_state:
        st.session_state["ui_lang"] = pick_language(settings.language, *_browser_language_hints())
    return st.session_state["ui_lang"]


# --- rendering -------------------------------------------------------------------------------


def _where(source: Source, lang: str) -> str:
    parts = [source.source]
    if source.page:
        parts.append(t(lang, "page", page=source.page))
    section = source.section
    if source.title and section.startswith(source.title + " > "):
        section = section[len(source.title) + 3 :]
    if section and section != source.title:
        parts.append(section if len(section) <= 80 else "…" + section[-79:])
    return " · ".join(parts)


def _source_cards(sources: Sequence[Source], answer: Answer, lang: str) -> None:
    for source in sources:
        heading = f"[{source.n}] {_where(source, lang)}"
        with st.expander(escape_markdown(heading), expanded=False):
            if source.title:
                st.markdown(f"**{escape_markdown(source.title)}**")
            snippet = highlight(source.snippet, answer.quotes_for(source))
            st.html(f'<div class="kb-snippet">{snippet}</div>')
            st.caption(t(lang, "relevance", score=source.score))


def render_answer(answer: Answer, lang: str, index: int, turn: Turn | None = None) -> None:
    """One final answer: text (or refusal), then its source cards."""
    if answer.refused:
        st.warning(answer.answer, icon=":material/report:")
        if answer.refusal_reason in ("unsupported", "near_miss") and answer.evidence:
            st.caption(evidence_label(answer.refusal_reason, answer.language))
            for quote in answer.evidence:
                where = escape_markdown(quote.source)
                st.markdown(f"> {escape_markdown(quote.text)} — *{where}*")
        if answer.also_retrieved:
            with st.container(key=f"sources-{index}"):
                st.caption(label("nearest", answer.language))
                _source_cards(answer.also_retrieved[:NEAREST_SHOWN], answer, lang)
    else:
        st.markdown(escape_markdown(answer.answer))
        with st.container(key=f"sources-{index}"):
            st.caption(label("sources", lang))
            _source_cards(answer.sources, answer, lang)
    notes = []
    if answer.standalone_question and _squash(answer.standalone_question) != _squash(
        answer.question
    ):
        notes.append(t(lang, "understood_as", question=answer.standalone_question))
    total = answer.timings.get("total_ms") if answer.timings else None
    if total:
        notes.append(t(lang, "answered_in", seconds=float(total) / 1000))
    if turn is not None and turn.waited_s >= 0.5:
        notes.append(t(lang, "waited", seconds=turn.waited_s))
    if notes:
        st.caption(escape_markdown(" · ".join(notes)))


def _render_turn(
    turn: Turn, lang: str, index: int, reader: KnowledgeBase | None = None, collection: str = ""
) -> None:
    with st.chat_message("user"):
        st.markdown(escape_markdown(turn.question))
    with st.chat_message("assistant"), st.container(key=f"answer-{index}"):
        if turn.answer is not None:
            render_answer(turn.answer, lang, index, turn)
            if reader is not None:
                _feedback(reader, turn, index, collection, lang)
        elif turn.stopped:
            if turn.partial:
                st.markdown(escape_markdown(turn.partial))
            st.caption(t(lang, "stopped"))
        else:
            st.error(turn.error)


def _feedback(reader: KnowledgeBase, turn: Turn, index: int, collection: str, lang: str) -> None:
    """Thumbs up or down on an answer and, once rated, an optional comment beside them, stored
    with its question and sources (signed-in users only: feedback belongs to someone). A
    changed rating or a comment updates the one stored record of this answer."""
    if reader.principal is None or turn.answer is None:
        return
    key = f"feedback-{st.session_state.get('conversation_id', '')}-{index}"
    # key → (stored id, rating, comment)
    saved: dict[str, tuple[int, int, str]] = st.session_state.setdefault("feedback_saved", {})
    with st.container(horizontal=True, vertical_alignment="center", key=f"{key}-row"):
        choice = st.feedback("thumbs", key=key)
        if choice is None:
            return
        rating = 1 if choice == 1 else -1
        stored = saved.get(key)
        if stored is None or stored[1] != rating:
            comment = stored[2] if stored else ""
            feedback_id = reader.feedback(
                turn.answer, rating, comment, collection, replaces=stored and stored[0]
            )
            saved[key] = stored = (feedback_id, rating, comment)
        with st.popover(t(lang, "feedback_comment_button"), icon=":material/comment:"):
            text = st.text_area(
                t(lang, "feedback_comment"), max_chars=COMMENT_MAX_CHARS, key=f"{key}-comment"
            )
            if st.button(t(lang, "feedback_save"), key=f"{key}-save"):
                feedback_id = reader.feedback(
                    turn.answer, rating, text, collection, replaces=stored[0]
                )
                saved[key] = (feedback_id, rating, text.strip())
                st.caption(t(lang, "feedback_thanks"))


def _ask(reader: KnowledgeBase, collection: str, lang: str, question: str) -> None:
    """Answer `question` live: queued notice, streamed tokens, then the final answer."""
    turns = _turns()
    index = len(turns)
    turn = Turn(question=question)
    # Kept from the start: a question asked while this one streams makes Streamlit stop this
    # run (an exception outside Exception), and the turn must stay on the page as stopped.
    turns.append(turn)
    shown = StreamedText()
    with st.chat_message("user"):
        st.markdown(escape_markdown(question))
    with st.chat_message("assistant"):
        status = st.empty()
        with st.container(key=f"answer-{index}"):
            body = st.empty()
        status.caption(t(lang, "thinking"))
        try:
            knowledge = reader
            knowledge.chain(collection)  # load the models (first question only)
            queued_at = time.perf_counter() if knowledge.model_busy else None
            if queued_at is not None:
                status.info(t(lang, "queued"), icon=":material/hourglass_top:")
            final: Answer | None = None
            events = knowledge.stream(question, history_for_chain(turns), collection)
            waiting = True
            try:
                for event in events:
                    if waiting:  # generation has started: drop the queued/searching notice
                        waiting = False
                        status.empty()
                        if queued_at is not None:
                            turn.waited_s = time.perf_counter() - queued_at
                    if isinstance(event, Done):
                        final = event.answer
                    elif shown.feed(event) and final is None:
                        body.markdown(escape_markdown(shown.text) + " ▌")
            finally:
                # Closing the generator releases the model lock even if the user interrupts.
                events.close()
            if final is None:
                raise RuntimeError("the answer ended without a result")
            turn.answer = final
        except EXPECTED_ERRORS as exc:
            turn.error = t(lang, "error", message=one_line(exc))
        except Exception as exc:  # a bug: one line here, the traceback in the server log
            log.exception("answering %r failed", question)
            turn.error = t(lang, "internal_error", kind=type(exc).__name__, message=one_line(exc))
        except BaseException:
            # Streamlit stops this run for the next question: keep what streamed, as stopped.
            turn.stopped, turn.partial = True, shown.text
            raise
        status.empty()
        # The final text can differ from the streamed one (a refusal replaces a guess).
        with body.container():
            if turn.answer is not None:
                render_answer(turn.answer, lang, index, turn)
            else:
                st.error(turn.error)
    if turn.answer is not None:
        try:
            _save_conversation(reader, collection)
        except EXPECTED_ERRORS as exc:
            st.error(t(lang, "error", message=one_line(exc)))


class _UploadProgress:
    """Shows pipeline events as a progress bar and one line per file in an st.status box."""

    def __init__(self, lang: str, count: int) -> None:
        self.lang = lang
        self.total = max(1, count)
        self.done = 0
        self.box = st.status(t(lang, "upload_progress", n=count), expanded=True)
        with self.box:
            self.bar = st.progress(0.0)

    def __call__(self, event: Any) -> None:
        if event.kind == "planned" and event.total_files:
            self.total = max(self.total, event.total_files)
        elif event.kind == "file":
            self.done += 1
            self.bar.progress(
                min(1.0, self.done / self.total),
                text=t(self.lang, "upload_running", source=event.source),
            )
            with self.box:
                if event.status == "failed":
                    st.write(
                        t(self.lang, "upload_file_failed", source=event.source, error=event.error)
                    )
                else:
                    st.write(
                        t(
                            self.lang,
                            "upload_file_ok",
                            source=event.source,
                            status=t(self.lang, f"status_{event.status}")
                            if event.status in ("added", "updated", "renamed")
                            else event.status,
                            chunks=event.chunks,
                        )
                    )
        elif event.kind == "done":
            self.bar.progress(1.0)


def _render_upload_report(report: UploadReport, lang: str) -> None:
    summary = report.summary
    if summary is not None:
        st.success(
            t(
                lang,
                "upload_done",
                added=summary.added + summary.renamed,
                updated=summary.updated,
                unchanged=summary.unchanged,
                failed=len(report.failed),
                seconds=summary.seconds,
            )
        )
    for item in report.files:
        name = (
            item.name
            if item.stored in ("", item.name)
            else (f"{item.name} ({t(lang, 'stored_as', name=item.stored)})")
        )
        if item.status == "failed":
            continue
        if item.status == "unchanged":
            st.caption(escape_markdown(t(lang, "upload_file_unchanged", source=name)))
        else:
            status = (
                t(lang, f"status_{item.status}")
                if item.status in ("added", "updated", "renamed")
                else item.status
            )
            st.caption(
                escape_markdown(
                    t(lang, "upload_file_ok", source=name, status=status, chunks=item.chunks)
                )
            )
    if report.failed:
        lines = "\n".join(
            f"- {escape_markdown(item.name)}: {escape_markdown(upload_error(item, lang))}"
            for item in report.failed
        )
        st.error(f"{t(lang, 'upload_failed_title')}\n\n{lines}")


def _sign_in(knowledge: KnowledgeBase, lang: str) -> None:
    """The sign-in form. One message for an unknown name and a wrong password, so the page
    never tells which accounts exist; repeated failures lock the name out from this address.
    A successful sign-in starts a session that a reload of the page resumes (`_reader`)."""
    st.title(t(lang, "sign_in_title"))
    with st.form("sign_in_form"):
        name = st.text_input(t(lang, "user_name"), key="sign_in_name")
        password = st.text_input(t(lang, "password"), type="password", key="sign_in_password")
        submitted = st.form_submit_button(t(lang, "sign_in"))
    if not submitted:
        return
    result = knowledge.sign_in(name.strip(), password, _address())
    if result.principal is not None:
        session = knowledge.start_session(result.principal)
        st.session_state["session_token"] = session.token
        st.session_state["cookie_to_write"] = session
        st.session_state.pop("cookie_to_clear", None)
        st.session_state["turns"] = []
        st.session_state.pop("conversation_id", None)
        st.rerun()
    elif result.locked:
        st.error(t(lang, "locked_out", minutes=max(1, round(result.retry_after / 60))))
    else:
        st.error(t(lang, "sign_in_failed"))


def _address() -> str:
    """The browser's address, for the sign-in lockout ("" when Streamlit cannot tell)."""
    try:
        address = st.context.ip_address
    except Exception:  # noqa: BLE001 - older Streamlit, or no browser (tests)
        return ""
    return address if isinstance(address, str) else ""


def _header_pairs() -> list[tuple[str, str]]:
    """The headers of the browser's connection, repeated ones included; [] without one."""
    try:
        headers = st.context.headers
        pairs = [(name, value) for name in headers for value in headers.get_all(name)]
    except Exception:  # noqa: BLE001 - no browser connection (tests, bare mode)
        return []
    # Without a browser (AppTest) Streamlit hands out stand-in objects, not text.
    return [(n, v) for n, v in pairs if isinstance(n, str) and isinstance(v, str)]


def _peer(headers: list[tuple[str, str]]) -> str | None:
    """The connection's address, for deciding whether a single sign-on proxy sent it.
    Streamlit reports a peer on this machine (loopback, or a local socket) as None; a
    connection always has headers, so None with headers is such a local peer."""
    if not headers:
        return None
    address = _address()
    return address or "127.0.0.1"


def _cookie(name: str) -> str:
    try:
        value = st.context.cookies.get(name)
    except Exception:  # noqa: BLE001 - no browser connection (tests, bare mode)
        return ""
    return value if isinstance(value, str) else ""  # AppTest's stand-ins are not text


def _reader(knowledge: KnowledgeBase) -> KnowledgeBase | None:
    """The knowledge base as the signed-in user reads it; None while nobody is signed in.
    Without accounts there is no sign-in and the page reads everything, as before.

    Who is signed in is decided afresh on every run (a removed account, changed groups or an
    ended session apply at once): a trusted single sign-on proxy's header first, then the
    session this tab signed in with, then the session cookie a reload brings back."""
    if not knowledge.needs_sign_in():
        return knowledge
    headers = _header_pairs()
    named = knowledge.trusted_proxy_user(headers, _peer(headers))
    principal = knowledge.user_principal(named) if named else None
    if principal is not None:
        st.session_state["signed_in_by_proxy"] = True
        return knowledge.as_principal(principal)
    st.session_state.pop("signed_in_by_proxy", None)
    principal = _session_principal(knowledge)
    return None if principal is None else knowledge.as_principal(principal)


def _session_principal(knowledge: KnowledgeBase) -> Principal | None:
    token = st.session_state.get("session_token") or _cookie(SESSION_COOKIE)
    if not token:
        return None
    principal = knowledge.resume_session(token)
    if principal is None:
        # Ended (sign-out elsewhere, a new password, a removed account) or expired: the
        # browser may forget it too.
        st.session_state.pop("session_token", None)
        st.session_state["cookie_to_clear"] = token
        return None
    st.session_state["session_token"] = token
    return principal


def _sync_session_cookie() -> None:
    """Write or clear the session cookie in the browser. Streamlit can read cookies but not
    set them, so a small script on the page does it; it runs once per distinct content (an
    unchanged element is not rendered again, and Max-Age is fixed when the session starts).
    SameSite=Strict keeps other sites' pages from sending it; Secure is added when the page
    is served over https."""
    session: Session | None = st.session_state.get("cookie_to_write")
    token = st.session_state.get("session_token")
    secure = 'location.protocol === "https:" ? "; Secure" : ""'
    if session is not None and session.token == token:
        value = json.dumps(f"{SESSION_COOKIE}={session.token}; Max-Age={session.max_age}")
        script = f'document.cookie = {value} + "; Path=/; SameSite=Strict" + ({secure});'
    elif stale := st.session_state.get("cookie_to_clear"):
        # Only this token: another tab of the same browser may have signed in meanwhile.
        current = json.dumps(f"{SESSION_COOKIE}={stale}")
        cleared = json.dumps(f"{SESSION_COOKIE}=; Max-Age=0; Path=/; SameSite=Strict")
        script = (
            f'if (document.cookie.split("; ").includes({current})) '
            f"document.cookie = {cleared} + ({secure});"
        )
    else:
        return
    with st.container(key="kb-session-cookie"):
        st.html(f"<script>{script}</script>", unsafe_allow_javascript=True)


def _account(reader: KnowledgeBase, lang: str) -> None:
    """Who is signed in, sign-out, and their conversations (resume, delete)."""
    principal = reader.principal
    if principal is None:
        return
    st.caption(escape_markdown(t(lang, "signed_in_as", name=principal.name)))
    # A single sign-on proxy signs its users in and out; a button here could do neither.
    if not st.session_state.get("signed_in_by_proxy") and st.button(
        t(lang, "sign_out"), key="sign_out", icon=":material/logout:", width="stretch"
    ):
        token = st.session_state.pop("session_token", None)
        if token:
            reader.end_session(token)
            st.session_state["cookie_to_clear"] = token
        for key in ("turns", "conversation_id", "upload_report", "cookie_to_write"):
            st.session_state.pop(key, None)
        st.rerun()
    conversations = reader.conversations()
    if not conversations:
        return
    with st.expander(t(lang, "conversations")):
        for c in conversations[:20]:
            left, right = st.columns([4, 1])
            if left.button(c.title, key=f"resume-{c.id}", width="stretch"):
                st.session_state["turns"] = [turn_from_stored(item) for item in c.turns]
                st.session_state["conversation_id"] = c.id
                st.rerun()
            if right.button("✕", key=f"delete-{c.id}", help=t(lang, "delete_conversation")):
                reader.delete_conversation(c.id)
                if st.session_state.get("conversation_id") == c.id:
                    st.session_state["turns"] = []
                    st.session_state.pop("conversation_id", None)
                st.rerun()


def _sidebar(settings: Settings, reader: KnowledgeBase) -> tuple[str, str]:
    """Language, conversation, collection, status and uploads; returns (language, collection)."""
    with st.sidebar:
        lang = st.selectbox(
            t(_language(settings), "language"),
            list(LANGUAGES),
            key="ui_lang",
            format_func=LANGUAGES.get,
        )
        if st.button(
            t(lang, "new_conversation"),
            key="new_conversation",
            icon=":material/add_comment:",
            width="stretch",
        ):
            st.session_state["turns"] = []
            st.session_state.pop("conversation_id", None)
        _account(reader, lang)
        try:
            status = kb_status(settings, reader)
        except EXPECTED_ERRORS as exc:
            st.error(t(lang, "error", message=one_line(exc)))
            status = {
                "collections": [],
                "models": {"embedding": settings.embed_model, "llm": settings.llm_model},
            }
        except Exception as exc:
            log.exception("status failed")
            st.error(t(lang, "internal_error", kind=type(exc).__name__, message=one_line(exc)))
            status = {
                "collections": [],
                "models": {"embedding": settings.embed_model, "llm": settings.llm_model},
            }
        by_name = {c["name"]: c for c in status["collections"]}
        names = sorted(set(by_name) | {settings.collection})
        if st.session_state.get("collection") not in names:
            st.session_state["collection"] = settings.collection
        collection = st.selectbox(t(lang, "collection"), names, key="collection")

        st.subheader(t(lang, "status"))
        info = by_name.get(collection)
        if info and info.get("chunks"):
            left, right = st.columns(2)
            left.metric(t(lang, "files"), info["files"])
            right.metric(t(lang, "chunks"), info["chunks"])
            last = info.get("last_ingestion")
            if last and last.get("finished_at"):
                when = datetime.fromtimestamp(float(last["finished_at"])).strftime("%Y-%m-%d %H:%M")
                st.caption(t(lang, "last_ingestion", when=when))
            else:
                st.caption(t(lang, "never_ingested"))
        else:
            st.info(t(lang, "empty_collection"))
        st.caption(
            escape_markdown(
                t(lang, "models")
                + ": "
                + t(lang, "embedding_model", name=status["models"]["embedding"])
                + " · "
                + t(lang, "answer_model", name=status["models"]["llm"])
            )
        )

        st.subheader(t(lang, "upload"))
        principal = reader.principal
        group = None
        if principal is not None:
            if not principal.upload_groups:
                st.caption(t(lang, "no_upload_right"))
                return lang, collection
            group = st.selectbox(t(lang, "upload_into"), principal.upload_groups, key="group")
        generation = st.session_state.setdefault("uploader_generation", 0)
        uploads = st.file_uploader(
            t(lang, "upload_label"),
            accept_multiple_files=True,
            type=KnowledgeBase.supported_extensions(),
            key=f"uploader-{generation}",
        )
        if st.button(
            t(lang, "upload_button"), key="upload_button", disabled=not uploads, width="stretch"
        ):
            files = [(f.name, f.getvalue()) for f in uploads or []]
            progress = _UploadProgress(lang, len(files))
            try:
                report = reader.store_uploads(files, collection, progress, group=group)
            except EXPECTED_ERRORS as exc:
                progress.box.update(state="error", expanded=False)
                st.error(t(lang, "error", message=one_line(exc)))
            except Exception as exc:
                log.exception("upload failed")
                progress.box.update(state="error", expanded=False)
                st.error(t(lang, "internal_error", kind=type(exc).__name__, message=one_line(exc)))
            else:
                progress.box.update(
                    label=t(lang, "upload_complete"),
                    state="error" if report.failed else "complete",
                    expanded=False,
                )
                st.session_state["upload_report"] = report
                # A fresh uploader key empties the box; the status must show the new files.
                st.session_state["uploader_generation"] = generation + 1
                clear_status()
                st.rerun()
        report = st.session_state.get("upload_report")
        if report is not None:
            _render_upload_report(report, lang)
    return lang, collection


def _warm_up(reader: KnowledgeBase, collection: str) -> None:
    """Load the models after the page is drawn, so the first question does not wait for them."""
    try:
        reader.chain(collection)
    except Exception:  # asking will report the same problem as a one-line error
        log.debug("warm-up failed", exc_info=True)


def main() -> None:
    try:
        _page()
    except Exception as exc:  # a bug outside the guarded flows: still one line, never a traceback
        log.exception("the page failed")
        st.error(
            t(
                st.session_state.get("ui_lang", "en"),
                "internal_error",
                kind=type(exc).__name__,
                message=one_line(exc),
            )
        )


def _page() -> None:
    settings = get_settings()
    lang = _language(settings)
    # An emoji favicon becomes a data: URL; a :material: one would be fetched from Google.
    st.set_page_config(
        page_title=t(lang, "page_title"),
        page_icon="📚",
        layout="centered",
        initial_sidebar_state="expanded",
    )
    if CSS_PATH.is_file():
        st.html(f"<style>{CSS_PATH.read_text(encoding='utf-8')}</style>")
    reader = _reader(knowledge_base(settings))
    _sync_session_cookie()
    if reader is None:
        _sign_in(knowledge_base(settings), lang)
        return
    lang, collection = _sidebar(settings, reader)
    st.title(t(lang, "title"))
    st.caption(t(lang, "subtitle"))
    turns = _turns()
    welcome = st.empty()
    if not turns:
        welcome.markdown(t(lang, "welcome"))
    for index, turn in enumerate(turns):
        _render_turn(turn, lang, index, reader, collection)
    question = st.chat_input(t(lang, "chat_placeholder"), key="question")
    if question and question.strip():
        welcome.empty()
        _ask(reader, collection, lang, question.strip())
    _warm_up(reader, collection)


if __name__ == "__main__":
    main()
