"""End to end: `kb ui` serves the page and a real headless Chromium asks it a question.

Uses Debian's Chromium (`apt-get install chromium`) through Playwright's `executable_path`;
Playwright never downloads a browser here. The screenshot lands in tests/artifacts/.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "data" / "samples"
ARTIFACTS = ROOT / "tests" / "artifacts"
KB_BIN = Path(sys.executable).parent / "kb"
CHROMIUM = Path(os.environ.get("KB_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# See tests/ui/conftest.py: the 0.5B model cannot answer the sample questions reliably.
LLM_MODEL = os.environ.get("UI_TEST_LLM_MODEL", "qwen2.5-1.5b")
PROXY_HEADER = "X-Remote-User"

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


def stop(process: subprocess.Popen) -> None:
    """Stop the server and the Streamlit child it started (they share a process group)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`kb ui` on a free port over a freshly ingested copy of the samples: (url, log file)."""
    home = tmp_path_factory.mktemp("e2e-kb-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env.update(KB_HOME=str(home), KB_LLM_MODEL=LLM_MODEL, KB_LANGUAGE="en")
    # Single sign-on from a proxy on this machine; it matters only once accounts exist (the
    # sign-in tests at the end), and a browser that sends no such header never notices it.
    env.update(KB_TRUSTED_PROXY_HEADER=PROXY_HEADER, KB_TRUSTED_PROXIES="127.0.0.1")
    ingest = subprocess.run(
        [str(KB_BIN), "ingest", str(SAMPLES)],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ingest.returncode == 0, ingest.stderr[-2000:]
    port = free_port()
    log = home / "server.log"
    with log.open("w") as out:
        process = start_page(env, home, port, out)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/_stcore/health", process)
        yield f"http://127.0.0.1:{port}", log
    finally:
        stop(process)


def start_page(env: dict[str, str], home: Path, port: int, out: IO[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [str(KB_BIN), "ui", "--port", str(port)],
        env=env,
        cwd=home,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


# Records every text the first answer shows while it streams, so the test can tell a streamed
# answer (several growing texts, with the typing cursor) from one that appears all at once.
RECORD_STREAM = """
() => {
  window.__answerTexts = [];
  const observer = new MutationObserver(() => {
    const node = document.querySelector('.st-key-answer-0');
    const text = node ? node.innerText.trim() : '';
    const seen = window.__answerTexts;
    if (text && seen[seen.length - 1] !== text) seen.push(text);
  });
  observer.observe(document.body, {subtree: true, childList: true, characterData: true});
}
"""


def test_question_in_real_browser_streams_answer_with_sources(server) -> None:
    from playwright.sync_api import expect, sync_playwright

    # Fail, not skip: CI must notice when the browser is missing.
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run `apt-get install -y chromium`"
    url, log = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "ui-answer.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000}, locale="en-US")
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            page.goto(url, wait_until="domcontentloaded")
            box = page.get_by_test_id("stChatInputTextArea")
            expect(box).to_be_visible(timeout=120_000)
            expect(page.get_by_text("Ask the company knowledge base")).to_be_visible()
            page.evaluate(RECORD_STREAM)
            box.fill("How many days of annual leave do managers get?")
            box.press("Enter")

            answer = page.locator(".st-key-answer-0")
            cards = page.locator(".st-key-sources-0").get_by_test_id("stExpander")
            expect(cards.first).to_be_visible(timeout=300_000)
            expect(answer).to_contain_text("20")
            expect(answer).not_to_contain_text("▌")
            cards.first.locator("summary").click()
            mark = cards.first.locator("mark").first
            expect(mark).to_be_visible()
            expect(cards.first).to_contain_text("employee-handbook.pdf")
            page.wait_for_timeout(800)  # let the card finish opening before the screenshot
            page.screenshot(path=str(screenshot), full_page=True)

            texts = page.evaluate("window.__answerTexts")
            assert any("▌" in text for text in texts), f"no streamed text seen: {texts}"
            assert page.get_by_test_id("stException").count() == 0
            # Offline promise: the page loads nothing from anywhere but the kb server.
            outside = [u for u in requested if not u.startswith((url, "data:", "blob:"))]
            assert not outside, outside
        except Exception:
            print(log.read_text(errors="replace")[-4000:])
            raise
        finally:
            browser.close()
    assert screenshot.stat().st_size > 10_000


def _has_cjk_font() -> bool:
    fonts = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, check=False)
    return bool(fonts.stdout.strip())


def test_chinese_conversation_in_real_browser(server) -> None:
    """A Chinese conversation end to end: a question, a follow-up the chain rewrites, and a
    question asked while the previous answer still streams, which keeps that turn."""
    from playwright.sync_api import expect, sync_playwright

    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run `apt-get install -y chromium`"
    assert _has_cjk_font(), "no CJK font: run `apt-get install -y fonts-noto-cjk` (make browser)"
    url, log = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "ui-chinese.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400}, locale="zh-CN")
            page.goto(url, wait_until="domcontentloaded")
            box = page.get_by_test_id("stChatInputTextArea")
            expect(box).to_be_visible(timeout=120_000)

            def ask(question: str, index: int) -> None:
                box.fill(question)
                box.press("Enter")
                expect(page.locator(f".st-key-answer-{index}")).to_be_visible(timeout=300_000)

            ask("员工每年有几天年假？", 0)
            expect(page.locator(".st-key-sources-0")).to_be_visible(timeout=300_000)
            expect(page.locator(".st-key-answer-0")).to_contain_text("15")

            ask("那经理呢？", 1)
            expect(page.locator(".st-key-sources-1")).to_be_visible(timeout=300_000)
            expect(page.locator(".st-key-answer-1")).to_contain_text("20")

            # The next question goes in while this answer streams: the turn stays on the page.
            ask("病假有几天？", 2)
            expect(page.locator(".st-key-answer-2")).to_contain_text("▌", timeout=300_000)
            ask("婚假有几天？", 3)
            expect(page.locator(".st-key-sources-3")).to_be_visible(timeout=300_000)
            expect(page.locator(".st-key-answer-3")).to_contain_text("3")
            users = page.get_by_test_id("stChatMessage").filter(has_text="病假有几天")
            expect(users.first).to_be_visible()
            assert page.locator(".st-key-answer-2").count() == 1
            page.wait_for_timeout(500)
            page.screenshot(path=str(screenshot), full_page=True)
            assert page.get_by_test_id("stException").count() == 0
        except Exception:
            print(log.read_text(errors="replace")[-4000:])
            raise
        finally:
            browser.close()
    assert screenshot.stat().st_size > 10_000


def session_cookie(page) -> dict | None:
    """The page's session cookie as the browser holds it (None when there is none)."""
    found = [c for c in page.context.cookies() if c["name"] == "kb_session"]
    return found[0] if found else None


def wait_for_cookie(page, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while session_cookie(page) is None:
        assert time.monotonic() < deadline, "the session cookie was never written"
        time.sleep(0.2)


def test_sign_in_sign_out_and_lockout_in_real_browser(server) -> None:
    """Once accounts exist the page asks for sign-in: a wrong password and an unknown name get
    the same message, a reload keeps the sign-in, sign-out (also after a reload) returns to
    the form, and repeated failures lock a name out."""
    from playwright.sync_api import expect, sync_playwright

    url, log = server
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env.update(KB_HOME=str(log.parent))
    for name, extra in (("pat", ["--admin"]), ("lee", ["--groups", "staff"])):
        added = subprocess.run(
            [str(KB_BIN), "users", "add", name, *extra],
            env=env,
            input="correct horse battery\n",
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert added.returncode == 0, added.stderr

    def failures(name: str) -> int:
        import sqlite3

        with sqlite3.connect(log.parent / "users.sqlite3", timeout=5) as db:
            rows = db.execute(
                "SELECT sum(failures) FROM sign_in_failures WHERE user = ?", (name,)
            ).fetchall()
        return int(rows[0][0] or 0)

    def sign_in(page, name: str, password: str, expect_failure: bool = False) -> None:
        before = failures(name)
        page.get_by_label("User name").fill(name)
        page.get_by_label("Password", exact=True).fill(password)
        page.get_by_role("button", name="Sign in").click()
        if expect_failure:  # wait for the server to have judged this attempt
            deadline = time.monotonic() + 60
            while failures(name) == before:
                assert time.monotonic() < deadline, "the sign-in was never judged"
                time.sleep(0.2)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000}, locale="en-US")
            page.goto(url, wait_until="domcontentloaded")
            expect(page.get_by_label("Password", exact=True)).to_be_visible(timeout=120_000)
            assert page.get_by_test_id("stChatInputTextArea").count() == 0
            failed = page.get_by_text("Wrong user name or password.")
            sign_in(page, "pat", "not the password", expect_failure=True)
            expect(failed).to_be_visible(timeout=60_000)
            sign_in(page, "nobody-here", "correct horse battery", expect_failure=True)
            expect(failed).to_be_visible(timeout=60_000)

            sign_in(page, "pat", "correct horse battery")
            expect(page.get_by_test_id("stChatInputTextArea")).to_be_visible(timeout=120_000)
            expect(page.get_by_text("Signed in as pat")).to_be_visible()
            wait_for_cookie(page)
            cookie = session_cookie(page)
            assert cookie["sameSite"] == "Strict" and cookie["path"] == "/"
            assert not cookie["secure"]  # served over http here; https adds Secure
            assert 11.9 * 3600 < cookie["expires"] - time.time() <= 12 * 3600  # KB_SESSION_HOURS

            # A reload is a new Streamlit session: the cookie brings the sign-in back.
            page.reload(wait_until="domcontentloaded")
            expect(page.get_by_text("Signed in as pat")).to_be_visible(timeout=120_000)
            expect(page.get_by_test_id("stChatInputTextArea")).to_be_visible()
            assert page.get_by_label("Password", exact=True).count() == 0

            page.get_by_role("button", name="Sign out").click()
            expect(page.get_by_label("Password", exact=True)).to_be_visible(timeout=60_000)
            assert page.get_by_test_id("stChatInputTextArea").count() == 0
            deadline = time.monotonic() + 30
            while session_cookie(page) is not None:
                assert time.monotonic() < deadline, "sign-out left the session cookie"
                time.sleep(0.2)
            # The session ended on the server too: bringing the old cookie back is no use.
            page.context.add_cookies([cookie])
            page.reload(wait_until="domcontentloaded")
            expect(page.get_by_label("Password", exact=True)).to_be_visible(timeout=120_000)
            assert page.get_by_test_id("stChatInputTextArea").count() == 0

            for _ in range(5):  # KB_LOGIN_MAX_FAILURES
                sign_in(page, "lee", "not the password", expect_failure=True)
                expect(failed).to_be_visible(timeout=60_000)
            sign_in(page, "lee", "correct horse battery")
            expect(page.get_by_text("Too many failed sign-ins")).to_be_visible(timeout=60_000)
            assert page.get_by_test_id("stChatInputTextArea").count() == 0
            assert page.get_by_test_id("stException").count() == 0
        except Exception:
            print(log.read_text(errors="replace")[-4000:])
            raise
        finally:
            browser.close()


def test_single_sign_on_header_in_real_browser(server, tmp_path: Path) -> None:
    """A proxy on this machine names the user in KB_TRUSTED_PROXY_HEADER: the page signs them
    in without the form (no sign-out button: the proxy owns sign-in), also when the proxy
    forwards the client's address; a name without an account, or the header from an address
    that is not a configured proxy, gets the sign-in form. Runs after the sign-in test, whose
    accounts it uses."""
    from playwright.sync_api import expect, sync_playwright

    url, log = server

    def open_page(browser, target: str, headers: dict[str, str]):
        context = browser.new_context(
            viewport={"width": 1280, "height": 1000}, locale="en-US", extra_http_headers=headers
        )
        page = context.new_page()
        page.goto(target, wait_until="domcontentloaded")
        return page

    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env.update(KB_HOME=str(log.parent), KB_LLM_MODEL=LLM_MODEL, KB_LANGUAGE="en")
    # The same header, believed only from a proxy at another address than the browser's.
    env.update(KB_TRUSTED_PROXY_HEADER=PROXY_HEADER, KB_TRUSTED_PROXIES="192.0.2.1")
    port = free_port()
    other_log = tmp_path / "untrusted.log"
    with other_log.open("w") as out:
        untrusted = start_page(env, log.parent, port, out)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            # lee is locked out of the form by the sign-in test: the proxy vouches for them.
            forwarded = {PROXY_HEADER: "lee", "X-Forwarded-For": "203.0.113.7"}
            page = open_page(browser, url, forwarded)
            expect(page.get_by_text("Signed in as lee")).to_be_visible(timeout=120_000)
            expect(page.get_by_test_id("stChatInputTextArea")).to_be_visible()
            assert page.get_by_role("button", name="Sign out").count() == 0
            assert page.get_by_label("Password", exact=True).count() == 0
            assert session_cookie(page) is None  # the proxy's header is the session

            page = open_page(browser, url, {PROXY_HEADER: "nobody-here"})
            expect(page.get_by_label("Password", exact=True)).to_be_visible(timeout=120_000)
            assert page.get_by_test_id("stChatInputTextArea").count() == 0

            wait_for_http(f"http://127.0.0.1:{port}/_stcore/health", untrusted)
            page = open_page(browser, f"http://127.0.0.1:{port}", {PROXY_HEADER: "pat"})
            expect(page.get_by_label("Password", exact=True)).to_be_visible(timeout=120_000)
            assert page.get_by_test_id("stChatInputTextArea").count() == 0
            assert page.get_by_test_id("stException").count() == 0
        except Exception:
            print(log.read_text(errors="replace")[-4000:])
            print(other_log.read_text(errors="replace")[-2000:])
            raise
        finally:
            browser.close()
            stop(untrusted)
