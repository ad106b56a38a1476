"""Access control: users × groups × documents, through every entry point.

One small corpus (one fact per document, folders declared by `--groups` and `.kbaccess`) is
ingested once for the module with the real embedding model and Chroma. Every forbidden document
must be findable by an administrator and never reach anyone else: not in hits, sources, "also
retrieved", the prompt sent to the model, listings or counts.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import run_kb
from tests_support import assert_consistent, assert_groups_agree

from kb.access import UNDECLARED, AccessResolver, Principal, parse_groups
from kb.answer.types import Done, Sources
from kb.app import KnowledgeBase, SearchFilter
from kb.config import Settings
from kb.errors import AccessDenied, InputError
from kb.models.fake import FakeChatModel
from kb.users import SCRYPT_N, hash_parameters, verify_password

PASSWORD = "correct horse battery"

# Document → (folder it lives in, a question only it answers, the fact's telltale word).
DOCS = {
    "handbook.md": ("", "When does the canteen open?", "Canteen opens at 07:15 every weekday."),
    "hr/salaries.md": (
        "hr",
        "What is the salary band for level 7 engineers?",
        "The salary band for level 7 engineers is 142,000 zorkmids.",
    ),
    "finance/q3-report.md": (
        "finance",
        "What was the third quarter operating margin?",
        "The third quarter operating margin was 17.4 percent after the Osprey write-down.",
    ),
    "finance/board/merger.md": (
        "finance/board",
        "Which company is the planned merger with?",
        "The planned merger is with Quillfeather Logistics, code name Bluebird.",
    ),
}
UNDECLARED_DOC = (
    "misc/legal-hold.md",
    "Which lawsuit is under legal hold?",
    "The Hargrove lawsuit is under legal hold since March.",
)

# Who may read what: handbook (everyone), salaries (hr), q3 (finance, managers), merger (board).
USERS = {
    "ada": dict(groups=(), admin=True),
    "hana": dict(groups=("hr",)),
    "finn": dict(groups=("finance",)),
    "mona": dict(groups=("managers",)),
    "bo": dict(groups=("board",)),
    "eve": dict(groups=()),
}
READS = {
    "ada": {*DOCS, "legal-hold.md"},
    "hana": {"handbook.md", "hr/salaries.md"},
    "finn": {"handbook.md", "finance/q3-report.md"},
    "mona": {"handbook.md", "finance/q3-report.md"},
    "bo": {"handbook.md", "finance/board/merger.md"},
    "eve": {"handbook.md"},
}


_WORDS = (
    "office meeting schedule printer badge garden lobby window archive ledger invoice memo "
    "training parking visitor kitchen laptop network policy desk calendar project budget"
).split()


def _write(folder: Path, source: str, fact: str) -> None:
    import random

    path = folder / source
    path.parent.mkdir(parents=True, exist_ok=True)
    # Text of its own per file: near-duplicate chunks would be merged by retrieval's dedupe.
    rng = random.Random(source)
    filler = " ".join(" ".join(rng.sample(_WORDS, 8)).capitalize() + "." for _ in range(8))
    path.write_text(f"# {Path(source).stem}\n\n{filler}\n\n{fact}\n", encoding="utf-8")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("access-docs")
    docs = root / "docs"
    for source, (_, _, fact) in DOCS.items():
        _write(docs, source, fact)
    (docs / "hr" / ".kbaccess").write_text("hr\n", encoding="utf-8")
    (docs / "finance" / ".kbaccess").write_text("# readers\nfinance, managers\n")
    (docs / "finance" / "board" / ".kbaccess").write_text("board")
    _write(root, UNDECLARED_DOC[0], UNDECLARED_DOC[2])
    return root


@pytest.fixture(scope="module")
def home(tmp_path_factory, corpus, models) -> Path:
    home = tmp_path_factory.mktemp("access-kb")
    with KnowledgeBase(Settings(home=home), models=models) as knowledge:
        summary = knowledge.ingest([corpus / "docs"], groups="everyone")
        assert not summary.failed, summary.failed
        summary = knowledge.ingest([corpus / "misc"])  # no declaration at all
        assert not summary.failed, summary.failed
        for name, spec in USERS.items():
            knowledge.users.add(name, PASSWORD, spec["groups"], admin=spec.get("admin", False))
    return home


@pytest.fixture(scope="module")
def knowledge(home, models):
    with KnowledgeBase(Settings(home=home), models=models) as kb:
        yield kb


def sources_of(result) -> set[str]:
    return {h.source for h in result.hits}


# --- declarations ----------------------------------------------------------------------------


def test_group_names_are_checked_and_normalised():
    assert parse_groups("HR, managers\nhr # again") == ("hr", "managers")
    with pytest.raises(InputError, match="not a group name"):
        parse_groups(["a b!"])


def test_nearest_declaration_wins(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / ".kbaccess").write_text("root-file")
    (tmp_path / "a" / "b" / ".kbaccess").write_text("deep")
    plain = AccessResolver(tmp_path)
    assert plain.groups_for("x.md") == ("root-file",)
    assert plain.groups_for("a/b/c/x.md") == ("deep",)
    given = AccessResolver(tmp_path, root_groups=("cli",))
    assert given.groups_for("a/x.md") == ("cli",)  # --groups beats the root's own file
    assert given.groups_for("a/b/x.md") == ("deep",)  # a deeper file beats --groups


def test_every_chunk_carries_its_readers(knowledge):
    store = knowledge.store
    assert_consistent(store)
    groups = {h.source: h.metadata["groups"] for h in store.iter_chunks("default")}
    assert groups["hr/salaries.md"] == ["hr"]
    assert groups["finance/q3-report.md"] == ["finance", "managers"]
    assert groups["finance/board/merger.md"] == ["board"]
    assert groups["handbook.md"] == ["everyone"]
    assert groups["legal-hold.md"] == [UNDECLARED]


# --- the matrix ------------------------------------------------------------------------------


@pytest.mark.parametrize("retrieval", ["hybrid", "vector", "keyword"])
def test_matrix_of_users_and_documents(home, models, retrieval):
    """Each user asks each document's question: readable documents come first (recall kept),
    forbidden ones never appear, and scores are the administrator's for the same chunks."""
    settings = Settings(home=home, retrieval=retrieval)
    with KnowledgeBase(settings, models=models) as base:
        for source, (_, question, _) in DOCS.items():
            admin = base.as_user("ada").search(question, k=8)
            assert admin.hits[0].source == source
            admin_scores = {h.chunk_id: h.score for h in admin.hits}
            for user, readable in READS.items():
                result = base.as_user(user).search(question, k=8)
                found = sources_of(result)
                assert found <= readable, (user, source, found - readable)
                if source in readable:
                    assert result.hits[0].source == source, (user, source)
                for hit in result.hits:
                    if hit.chunk_id in admin_scores:
                        assert hit.score == pytest.approx(admin_scores[hit.chunk_id], abs=1e-6)


def test_restricted_search_still_fills_k(knowledge):
    """Filtering happens inside the index: a user gets k of their own chunks, not the
    readable remainder of someone else's top k."""
    readable = sum(
        len(r.chunk_ids)
        for r in knowledge.store.manifest.files("default").values()
        if r.source in READS["hana"]
    )
    for k in (1, readable, readable + 3):
        result = knowledge.as_user("hana").search("salary band zorkmids", k=k)
        assert len(result.hits) == min(k, readable) and sources_of(result) <= READS["hana"]


def test_undeclared_documents_follow_default_access(home, models):
    question = UNDECLARED_DOC[1]
    with KnowledgeBase(Settings(home=home), models=models) as base:
        assert base.settings.default_access == "nobody"
        assert "legal-hold.md" not in sources_of(base.as_user("eve").search(question, k=8))
        assert base.as_user("ada").search(question, k=1).hits[0].source == "legal-hold.md"
    with KnowledgeBase(Settings(home=home, default_access="everyone"), models=models) as base:
        assert base.as_user("eve").search(question, k=1).hits[0].source == "legal-hold.md"


def test_callers_filters_cannot_widen_access(knowledge):
    eve = knowledge.as_user("eve")
    widened = SearchFilter(groups=("hr", "finance", "board"))
    result = eve.search(DOCS["hr/salaries.md"][1], k=8, filters=widened)
    assert sources_of(result) <= READS["eve"]
    narrowed = knowledge.as_user("finn").search("merger", k=8, filters=SearchFilter.of(["finance"]))
    assert sources_of(narrowed) == {"finance/q3-report.md"}


def test_langchain_retriever_inherits_access(knowledge):
    docs = knowledge.as_user("eve").langchain_retriever(k=8).invoke(DOCS["hr/salaries.md"][1])
    assert {d.metadata["source"] for d in docs} <= READS["eve"]


# --- the chain: sources, also retrieved, prompt, follow-ups ----------------------------------


def test_chain_never_sees_forbidden_chunks(home, models):
    fake = FakeChatModel("NOT FOUND", p_not_found=0.95)
    with KnowledgeBase(Settings(home=home), models=models, chat_model=fake) as base:
        eve = base.as_user("eve")
        history = [
            {"role": "user", "content": "Tell me about salary bands."},
            {"role": "assistant", "content": "I could not find that."},
        ]
        for source in ("hr/salaries.md", "finance/q3-report.md", "finance/board/merger.md"):
            question = DOCS[source][1]
            events = list(eve.stream(question, history))
            answer = next(e.answer for e in events if isinstance(e, Done))
            shown = {s.source for s in (*answer.sources, *answer.also_retrieved)}
            for event in events:
                if isinstance(event, Sources):
                    shown |= {s.source for s in (*event.cited, *event.also_retrieved)}
            assert shown <= READS["eve"], shown
        prompts = " ".join(str(m.content) for call in fake.calls for m in call)
        for source in ("hr/salaries.md", "finance/q3-report.md", "finance/board/merger.md"):
            assert DOCS[source][2] not in prompts
        # The same question from a reader of the document does reach its text.
        base.as_user("hana").ask(DOCS["hr/salaries.md"][1])
        prompts = " ".join(str(m.content) for call in fake.calls for m in call)
        assert "142,000 zorkmids" in prompts


def test_real_model_refuses_a_forbidden_question(home, models):
    settings = Settings(home=home, llm_model="qwen2.5-0.5b")
    with KnowledgeBase(settings, models=models) as base:
        answer = base.as_user("eve").ask(DOCS["hr/salaries.md"][1])
        assert "142,000" not in answer.answer
        assert {s.source for s in (*answer.sources, *answer.also_retrieved)} <= READS["eve"]


# --- listings and counts ---------------------------------------------------------------------


def test_listings_show_only_readable_documents(knowledge):
    assert {d.source for d in knowledge.as_user("hana").documents()} == READS["hana"]
    assert len(knowledge.as_user("ada").documents()) == len(DOCS) + 1
    own = sum(
        len(r.chunk_ids)
        for r in knowledge.store.manifest.files("default").values()
        if r.source in READS["eve"]
    )
    (collection,) = knowledge.as_user("eve").collections()
    assert collection["chunks"] == own
    status = knowledge.as_user("eve").status()
    assert status["home"] is None and status["collections"][0]["files"] == 1
    assert status["collections"][0]["chunks"] == own
    assert knowledge.as_user("eve").has_documents()
    # Someone in no group at all still reads what is declared for everyone, and only that.
    ghost = knowledge.as_principal(Principal("ghost", ("no-such-group",)))
    assert ghost.collections()[0]["chunks"] == own
    assert {d.source for d in ghost.documents()} == {"handbook.md"}


def test_readers_cannot_write(knowledge, tmp_path):
    eve = knowledge.as_user("eve")
    with pytest.raises(AccessDenied):
        eve.ingest([tmp_path])
    with pytest.raises(AccessDenied):
        eve.store_uploads([("x.md", b"# x\n\nhello")])
    with pytest.raises(AccessDenied):
        eve.export_feedback()
    hana = knowledge.as_user("hana")
    doc = next(d for d in knowledge.documents() if d.source == "hr/salaries.md")
    with pytest.raises(AccessDenied):
        hana.delete_document(doc.id)


# --- changing a folder's groups --------------------------------------------------------------


def _small_kb(tmp_path: Path, open_kb) -> tuple[KnowledgeBase, Path]:
    docs = tmp_path / "docs"
    for i in range(3):
        _write(docs, f"pay/slip-{i}.md", f"Payslip {i} shows a bonus of {900 + i} zorkmids.")
    _write(docs, "open.md", "The library lends umbrellas on rainy days.")
    (docs / "pay" / ".kbaccess").write_text("hr")
    base = open_kb(Settings(home=tmp_path / "kb"))
    base.ingest([docs], groups="everyone")
    base.users.add("hana", PASSWORD, ["hr"])
    base.users.add("finn", PASSWORD, ["finance"])
    return base, docs


def test_changing_groups_rewrites_metadata_without_embedding(tmp_path, open_kb):
    base, docs = _small_kb(tmp_path, open_kb)
    question = "Which payslip shows a bonus of 901 zorkmids?"
    assert "pay/slip-1.md" in sources_of(base.as_user("hana").search(question))
    assert "pay/slip-1.md" not in sources_of(base.as_user("finn").search(question))
    (docs / "pay" / ".kbaccess").write_text("finance")
    summary = base.ingest([docs])
    assert summary.regrouped == 3 and summary.embedded == 0 and summary.updated == 0
    assert_consistent(base.store)
    assert "pay/slip-1.md" not in sources_of(base.as_user("hana").search(question))
    assert "pay/slip-1.md" in sources_of(base.as_user("finn").search(question, k=8))
    # --groups for the folder is remembered, and a new value rewrites what no file overrides.
    (docs / "pay" / ".kbaccess").unlink()
    summary = base.ingest([docs], groups="hr")
    assert summary.regrouped == 4 and summary.embedded == 0
    again = base.ingest([docs])
    assert again.regrouped == 0
    assert {d.source for d in base.as_user("hana").documents()} == {
        "open.md",
        "pay/slip-0.md",
        "pay/slip-1.md",
        "pay/slip-2.md",
    }
    assert base.as_user("finn").documents() == []


def test_uploads_go_into_the_uploaders_group(tmp_path, open_kb):
    base, _ = _small_kb(tmp_path, open_kb)
    base.users.set_groups("hana", upload=True)
    hana, finn = base.as_user("hana"), base.as_user("finn")
    note = b"# Offsite\n\nThe hr offsite takes place at Lake Vindel in October."
    report = hana.store_uploads([("offsite.md", note)])
    assert not report.failed and report.summary.added == 1
    (uploaded,) = [d for d in hana.documents() if d.uploaded]
    assert uploaded.groups == ("hr",)
    question = "Where does the hr offsite take place?"
    assert hana.search(question, k=1).hits[0].source == "offsite.md"
    assert "offsite.md" not in sources_of(finn.search(question, k=8))
    with pytest.raises(AccessDenied):
        hana.store_uploads([("x.md", note)], group="finance")
    open_doc = next(d for d in hana.documents() if d.source == "open.md")
    with pytest.raises(AccessDenied):
        hana.delete_document(open_doc.id)  # readable, but not her upload
    with pytest.raises(AccessDenied):
        finn.delete_document(uploaded.id)  # no upload right at all
    assert hana.delete_document(uploaded.id).source == "offsite.md"
    assert not [d for d in base.documents() if d.uploaded]


REGROUP_DRIVER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from kb.app import KnowledgeBase
    from kb.config import Settings
    from kb.keyword import KeywordIndex
    from kb.store import Store

    where, nth = sys.argv[3], int(sys.argv[4])
    owner = KeywordIndex if where == "keywords" else Store
    name = "set_groups" if where == "keywords" else "_write_groups"
    original = getattr(owner, name)
    calls = {"n": 0}

    def die(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == nth:
            os.kill(os.getpid(), signal.SIGKILL)  # just before this write
        return original(self, *args, **kwargs)

    setattr(owner, name, die)
    KnowledgeBase(Settings(home=Path(sys.argv[1]))).ingest([Path(sys.argv[2])])
    sys.exit("the fault was never reached")
""")


@pytest.mark.parametrize(
    ("where", "nth"),
    [
        ("vectors", 2),  # first file changed in both indexes, the second only journalled
        ("keywords", 2),  # second file's vectors rewritten, its keyword rows not yet
    ],
)
def test_sigkill_during_a_change_of_groups(tmp_path, open_kb, where, nth):
    base, docs = _small_kb(tmp_path, open_kb)
    base.close()
    (docs / "pay" / ".kbaccess").write_text("finance")
    driver = tmp_path / "driver.py"
    driver.write_text(REGROUP_DRIVER)
    run = subprocess.run(
        [sys.executable, str(driver), str(tmp_path / "kb"), str(docs), where, str(nth)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    reopened = open_kb(Settings(home=tmp_path / "kb"))
    assert reopened.store.manifest.regrouping("default"), "the change was journalled"
    summary = reopened.ingest([docs])
    assert summary.repaired.get("regrouped_files", 0) >= 1 and summary.embedded == 0
    assert_consistent(reopened.store)
    assert_groups_agree(reopened.store)
    question = "Which payslip shows a bonus of 901 zorkmids?"
    for retrieval in ("vector", "keyword"):
        settings = Settings(home=tmp_path / "kb", retrieval=retrieval)
        view = open_kb(settings)
        assert not {"pay/slip-0.md", "pay/slip-1.md", "pay/slip-2.md"} & sources_of(
            view.as_user("hana").search(question, k=8)
        )
        assert "pay/slip-1.md" in sources_of(view.as_user("finn").search(question, k=8))


def test_older_knowledge_base_is_upgraded_to_undeclared(tmp_path, open_kb):
    """A knowledge base written before groups existed: chunks without `groups`, keyword rows
    and manifest rows without the columns. Opening and ingesting upgrades it in place."""
    import sqlite3

    base, docs = _small_kb(tmp_path, open_kb)
    store = base.store
    col = store._collection("default")
    got = col.get(include=["metadatas"])
    col.update(
        ids=got["ids"],
        metadatas=[{k: v for k, v in m.items() if k != "groups"} for m in got["metadatas"]],
    )
    # Chroma merges metadata on update: write the old schema's records afresh instead.
    full = col.get(include=["metadatas", "documents", "embeddings"])
    col.delete(ids=full["ids"])
    col.add(
        ids=full["ids"],
        embeddings=full["embeddings"],
        documents=full["documents"],
        metadatas=[{k: v for k, v in m.items() if k != "groups"} for m in full["metadatas"]],
    )
    col.modify(metadata={**(col.metadata or {}), "kb_schema": 2})
    base.close()
    db = sqlite3.connect(tmp_path / "kb" / "manifest.sqlite3")
    tables = [
        r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE name LIKE 'kw_%_docs'")
    ]
    for table in tables:
        db.execute(f"ALTER TABLE {table} DROP COLUMN groups")
    db.execute("ALTER TABLE files DROP COLUMN groups")
    db.execute("ALTER TABLE files DROP COLUMN pending_groups")
    db.execute("DELETE FROM access_roots")
    db.commit()
    db.close()
    (docs / "pay" / ".kbaccess").unlink()

    upgraded = open_kb(Settings(home=tmp_path / "kb"))
    with pytest.raises(Exception, match="older kb"):
        upgraded.as_user("hana").search("umbrellas")
    summary = upgraded.ingest([docs])
    assert summary.embedded == 0
    assert_consistent(upgraded.store)
    hits = list(upgraded.store.iter_chunks("default"))
    assert {tuple(h.metadata["groups"]) for h in hits} == {(UNDECLARED,)}
    assert upgraded.as_user("hana").search("umbrellas").hits == []
    everyone = open_kb(Settings(home=tmp_path / "kb", default_access="everyone"))
    assert everyone.as_user("hana").search("umbrellas").hits[0].source == "open.md"


# --- users -----------------------------------------------------------------------------------


def test_passwords_are_hashed_with_scrypt_at_owasp_cost(knowledge):
    stored = knowledge.users.stored_hash("eve")
    assert PASSWORD not in stored
    params = hash_parameters(stored)
    assert params == {"n": SCRYPT_N, "r": 8, "p": 1, "salt_bytes": 16}
    assert SCRYPT_N >= 2**17
    assert verify_password(PASSWORD, stored) and not verify_password(PASSWORD + "x", stored)
    assert stored != knowledge.users.stored_hash("hana")  # salted


def test_sign_in_lockout_and_no_enumeration(tmp_path):
    from kb.users import Users

    users = Users(tmp_path / "users.sqlite3", max_failures=3, lockout_seconds=60)
    users.add("sam", PASSWORD, ["staff"])
    unknown = users.sign_in("nobody-here", PASSWORD, "10.0.0.1")
    wrong = users.sign_in("sam", "wrong password", "10.0.0.1")
    assert unknown == wrong  # the same answer: no way to tell which names exist
    assert users.sign_in("sam", PASSWORD, "10.0.0.1").principal == Principal("sam", ("staff",))
    for _ in range(3):
        assert users.sign_in("sam", "wrong password", "10.0.0.1").principal is None
    locked = users.sign_in("sam", PASSWORD, "10.0.0.1")
    assert locked.locked and locked.principal is None and locked.retry_after > 0
    # Another address is not locked out by someone else's guesses.
    assert users.sign_in("sam", PASSWORD, "10.0.0.2").principal is not None
    users.set_password("sam", PASSWORD + "!")
    assert users.sign_in("sam", PASSWORD + "!", "10.0.0.1").principal is not None
    with pytest.raises(InputError, match="at least"):
        users.add("tiny", "short")


def test_page_sessions_are_hashed_at_rest_expire_and_end(tmp_path):
    import sqlite3
    import time

    with KnowledgeBase(Settings(home=tmp_path, session_hours=12)) as base:
        base.users.add("sam", PASSWORD, ["staff"])
        base.users.add("kim", PASSWORD, ["staff"])
        signed_in = base.sign_in("sam", PASSWORD, "10.0.0.1")
        session = base.start_session(signed_in.principal)
        assert len(session.token) >= 43 and session.max_age == 12 * 3600
        assert session.expires_at == pytest.approx(time.time() + 12 * 3600, abs=60)
        with sqlite3.connect(base.settings.users_path) as db:
            stored = db.execute("SELECT * FROM sessions").fetchall()
        assert len(stored) == 1 and session.token not in repr(stored)
        assert stored[0][0] == hashlib.sha256(session.token.encode()).hexdigest()
        assert stored[0][1] == "sam"

        # Resumed with the user read afresh: changed groups apply at once.
        assert base.resume_session(session.token) == Principal("sam", ("staff",))
        base.users.set_groups("sam", ["staff", "hr"])
        assert base.resume_session(session.token).groups == ("staff", "hr")
        assert base.resume_session(session.token + "x") is None
        assert base.resume_session("") is None

        # Sign-out ends exactly that session.
        other = base.start_session(signed_in.principal)
        base.end_session(session.token)
        assert base.resume_session(session.token) is None
        assert base.resume_session(other.token) is not None
        # A new password ends every session of the user, not anyone else's.
        kims = base.start_session(base.user_principal("kim"))
        base.users.set_password("sam", PASSWORD + "!")
        assert base.resume_session(other.token) is None
        assert base.resume_session(kims.token) is not None
        # So does removing the user.
        base.users.remove("kim")
        assert base.resume_session(kims.token) is None

    with KnowledgeBase(Settings(home=tmp_path, session_hours=0.5 / 3600)) as base:
        short = base.start_session(base.user_principal("sam"))
        assert base.resume_session(short.token) is not None
        time.sleep(0.7)
        assert base.resume_session(short.token) is None  # expired
        fresh = base.start_session(base.user_principal("sam"))  # sweeps what expired
        with sqlite3.connect(base.settings.users_path) as db:
            left = db.execute("SELECT digest FROM sessions").fetchall()
        assert left == [(hashlib.sha256(fresh.token.encode()).hexdigest(),)]


def test_trusted_proxy_header_is_believed_only_from_configured_proxies(tmp_path):
    headers = [("X-Remote-User", "eve"), ("Host", "kb.example")]
    with KnowledgeBase(Settings(home=tmp_path)) as off:
        assert off.trusted_proxy_user(headers, "127.0.0.1") is None  # off by default
    settings = Settings(
        home=tmp_path, trusted_proxy_header="x-remote-user", trusted_proxies="10.1.2.3, ::1"
    )
    with KnowledgeBase(settings) as base:
        assert base.trusted_proxy_user(headers, "10.1.2.3") == "eve"
        assert base.trusted_proxy_user(headers, "::ffff:10.1.2.3") == "eve"  # dual-stack
        assert base.trusted_proxy_user(headers, "127.0.0.1") == "eve"  # loopback is this host
        assert base.trusted_proxy_user(headers, "10.1.2.4") is None
        assert base.trusted_proxy_user(headers, None) is None
        assert base.trusted_proxy_user([("Host", "kb.example")], "10.1.2.3") is None
        assert base.trusted_proxy_user([("x-remote-user", " ")], "10.1.2.3") is None
        # Two different values: a proxy that appends would let the client choose.
        twice = [*headers, ("x-remote-user", "ada")]
        assert base.trusted_proxy_user(twice, "10.1.2.3") is None


def test_conversations_and_feedback_belong_to_their_user(knowledge, tmp_path):
    from kb.app import Conversation
    from kb.eval.runner import read_questions

    hana, eve = knowledge.as_user("hana"), knowledge.as_user("eve")
    hana.save_conversation(Conversation("c1", "hana", "default", "pay", [{"question": "q"}]))
    assert [c.id for c in hana.conversations()] == ["c1"]
    assert eve.conversations() == [] and eve.conversation("c1") is None
    assert not eve.delete_conversation("c1") and hana.conversation("c1") is not None
    # Saving under someone else's id never takes their conversation over.
    eve.save_conversation(Conversation("c1", "eve", "default", "mine", []))
    assert hana.conversation("c1").title == "pay"
    assert hana.delete_conversation("c1") and hana.conversations() == []

    fake = FakeChatModel("Canteen opens at 07:15 [1].", p_not_found=0.0)
    with KnowledgeBase(knowledge.settings, models=None, chat_model=fake) as base:
        base._models = knowledge._models
        answer = base.as_user("hana").ask(DOCS["handbook.md"][1])
        first = base.as_user("hana").feedback(answer, -1)
        # A changed rating and a comment added later update the one record of this answer.
        again = base.as_user("hana").feedback(answer, 1, "  spot on ", replaces=first)
        assert again == first
        base.as_user("eve").feedback(answer, -1, replaces=first)  # not eve's: a new record
    lines = knowledge.as_user("ada").export_feedback()
    assert [line["feedback"]["rating"] for line in lines][-2:] == [1, -1]
    assert [line["feedback"]["comment"] for line in lines][-2:] == ["spot on", ""]
    assert [line["feedback"]["user"] for line in lines][-2:] == ["hana", "eve"]
    path = tmp_path / "feedback.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    questions = read_questions(path)
    assert questions[-2].data["question"] == DOCS["handbook.md"][1]
    if answer.sources:
        assert questions[-2].data["gold_ids"] == [s.source for s in answer.sources]
    assert "gold_ids" not in questions[-1].data


# --- audit -----------------------------------------------------------------------------------


def test_audit_log_records_who_saw_what(knowledge):
    knowledge.as_user("hana").search(DOCS["hr/salaries.md"][1], k=3)
    entries = list(knowledge.audit.read(source="hr/salaries.md"))
    assert entries and entries[-1]["user"] == "hana" and entries[-1]["action"] == "search"
    assert entries[-1]["via"] == "library"  # code calling the facade, not one of the shells
    assert "hr/salaries.md" in entries[-1]["retrieved"]
    assert all(e["user"] != "eve" for e in entries)
    text = knowledge.settings.audit_path.read_text()
    assert PASSWORD not in text and '"answer"' not in text


def test_audit_log_records_the_entry_point(home, models):
    question = DOCS["handbook.md"][1]
    with KnowledgeBase(Settings(home=home), models=models, via="page") as page:
        page.as_user("eve").search(question, k=1)
        page.as_principal(None, via="api").search(question, k=1)
        entries = list(page.audit.read())
        assert [(e["user"], e["via"]) for e in entries[-2:]] == [("eve", "page"), (None, "api")]
        assert all(e["via"] == "page" for e in page.audit.read(via="page"))
        assert entries[-2] in list(page.audit.read(user="eve", via="page"))
    with pytest.raises(ValueError, match="entry point"):
        KnowledgeBase(Settings(home=home), via="telnet")


def test_audit_log_rotates_and_is_read_across_files(tmp_path):
    from kb.audit import AuditLog

    log = AuditLog(tmp_path / "audit.jsonl", max_bytes=600, backups=5, answers=False)
    for i in range(12):
        log.record("search", "hana", "default", f"question {i}", [f"doc-{i}.md"])
    assert len(log.files()) > 1
    assert [e["question"] for e in log.read(user="hana")][-1] == "question 11"
    assert [e["question"] for e in log.read(source="doc-11.md")] == ["question 11"]


# --- the command line ------------------------------------------------------------------------


def test_cli_as_user_users_and_audit(home):
    env = {"KB_HOME": str(home)}
    question = DOCS["finance/board/merger.md"][1]
    finn = run_kb("search", question, "--as", "finn", "-k", "8", "--json", env=env)
    assert finn.returncode == 0, finn.stderr
    found = {r["source"] for r in json.loads(finn.stdout)["results"]}
    assert found and found <= READS["finn"]
    bo = run_kb("search", question, "--as", "bo", "-k", "1", "--json", env=env)
    assert json.loads(bo.stdout)["results"][0]["source"] == "finance/board/merger.md"
    ghost = run_kb("search", question, "--as", "ghost", env=env)
    assert ghost.returncode == 2 and ghost.stderr.count("\n") == 1 and "ghost" in ghost.stderr
    added = run_kb("users", "add", "cli-user", "--groups", "hr", env=env, input_text=PASSWORD)
    assert added.returncode == 0, added.stderr
    listed = json.loads(run_kb("users", "list", "--json", env=env).stdout)
    assert {"name": "cli-user", "groups": ["hr"]}.items() <= next(
        u for u in listed if u["name"] == "cli-user"
    ).items()
    audit = run_kb("audit", "--source", "finance/board/merger.md", "--json", env=env)
    users = {json.loads(line)["user"] for line in audit.stdout.splitlines()}
    assert "bo" in users and "finn" not in users
    # Every entry says where the question came from; --via filters by it.
    from_cli = run_kb("audit", "--via", "cli", "--json", env=env)
    entries = [json.loads(line) for line in from_cli.stdout.splitlines()]
    assert {"finn", "bo"} <= {e["user"] for e in entries}
    assert {e["via"] for e in entries} == {"cli"}
    from_page = run_kb("audit", "--via", "page", "--user", "bo", "--json", env=env)
    assert from_page.returncode == 0 and from_page.stdout.strip() == ""
    table = run_kb("audit", "--via", "cli", "--user", "bo", env=env, timeout=120)
    assert table.returncode == 0 and " via " in table.stdout and " cli " in table.stdout
    wrong = run_kb("audit", "--via", "telnet", env=env)
    assert wrong.returncode == 2 and "cli, page, api, eval" in wrong.stderr
    assert os.environ.get("KB_HOME") != str(home)


def test_eval_measures_what_a_user_may_read(home, tmp_path):
    from kb.eval.runner import EvalRequest, evaluate

    qa = tmp_path / "qa.jsonl"
    lines = [
        {"id": source, "question": question, "gold_ids": [source]}
        for source, (_, question, _) in DOCS.items()
    ]
    qa.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    settings = Settings(home=home)
    outcome = evaluate(settings, EvalRequest(qa_files=[qa], ks=[1], as_user="eve", rewrite=False))
    seen = {r["source"] for record in outcome.records for r in record["retrieved"]}
    assert seen and seen <= READS["eve"]
    assert outcome.summary["meta"]["as_user"] == "eve"
    with KnowledgeBase(settings) as base:
        entries = [e for e in base.audit.read(via="eval") if e["user"] == "eve"]
    assert len(entries) >= len(DOCS)


# --- the API ---------------------------------------------------------------------------------


def test_api_reads_as_the_key_owner(home, models):
    import httpx
    from server_support import running

    from kb.server.app import create_app

    settings = Settings(
        home=home,
        api_keys="operator-key-0123456789",
        trusted_proxy_header="X-Remote-User",
        trusted_proxies="127.0.0.1",
    )
    with KnowledgeBase(settings, models=models) as base:
        keys = {user: base.users.new_api_key(user) for user in ("finn", "eve")}
        with running(create_app(base, warm_up=False)) as url:

            def call(method: str, path: str, key: str | None = None, **kwargs):
                headers = kwargs.pop("headers", {})
                if key:
                    headers["Authorization"] = f"Bearer {key}"
                return httpx.request(method, url + path, headers=headers, timeout=120, **kwargs)

            question = DOCS["finance/q3-report.md"][1]
            assert call("POST", "/v1/search", json={"query": question}).status_code == 401
            assert (
                call(
                    "POST", "/v1/search", "wrong-key-0123456789", json={"query": question}
                ).status_code
                == 401
            )
            for user, key in keys.items():
                found = call("POST", "/v1/search", key, json={"query": question, "k": 8})
                assert found.status_code == 200, found.text
                sources = {r["source"] for r in found.json()["results"]}
                assert sources and sources <= READS[user], (user, sources)
                listed = call("GET", "/v1/documents", key).json()["documents"]
                assert {d["source"] for d in listed} == READS[user]
            operator = call(
                "POST", "/v1/search", "operator-key-0123456789", json={"query": question}
            )
            assert operator.json()["results"][0]["source"] == "finance/q3-report.md"
            proxied = call(
                "POST",
                "/v1/search",
                json={"query": question, "k": 8},
                headers={"X-Remote-User": "eve"},
            )
            assert {r["source"] for r in proxied.json()["results"]} <= READS["eve"]
            unknown = call(
                "POST", "/v1/search", json={"query": question}, headers={"X-Remote-User": "nemo"}
            )
            assert unknown.status_code == 401
            api_users = [e["user"] for e in base.audit.read(via="api")]
            assert {"finn", "eve", None} <= set(api_users)
            upload = call(
                "POST", "/v1/ingest", keys["eve"], files={"files": ("x.md", b"# x\n\nhi")}
            )
            assert upload.status_code == 403
