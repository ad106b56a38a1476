"""`kb ui`: run the Streamlit page as a child of this interpreter, locked down for an office LAN.

Streamlit is started with `python -m streamlit` from the same interpreter, so the page sees the
same packages and models as the CLI. Everything that could reach the internet or confuse an
employee is off: usage statistics, the welcome banner (which, on a wildcard address, looks up
the machine's public IP on the internet), the developer toolbar and tracebacks in the browser.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from kb.config import Settings

APP = Path(__file__).resolve().parent / "app.py"


def streamlit_command(settings: Settings, host: str, port: int) -> list[str]:
    """The full command line that serves the page on `host:port`."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--global.developmentMode",
        "false",
        # We print the URL ourselves; Streamlit's banner would probe checkip.amazonaws.com.
        "--logger.hideWelcomeMessage",
        "true",
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
        "--client.toolbarMode",
        "viewer",
        "--client.showErrorDetails",
        "none",
        # Larger uploads would only be refused by ingestion after a long transfer.
        "--server.maxUploadSize",
        str(max(1, int(settings.max_file_mb))),
        "--theme.base",
        "light",
    ]


def child_environment(settings: Settings, host: str, port: int) -> dict[str, str]:
    """This process's environment (KB_* included), plus what the page must agree on."""
    env = dict(os.environ)
    # The settings may have come from a .env file or CLI options: pin the ones the page and
    # this command must share, so both talk about the same knowledge base.
    env["KB_HOME"] = str(settings.home)
    env["KB_UI_HOST"] = host
    env["KB_UI_PORT"] = str(port)
    env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] = "false"
    env.setdefault("DO_NOT_TRACK", "1")
    if settings.trusted_proxy_header.strip():
        # Streamlit's server (uvicorn) would otherwise replace a loopback peer's address by
        # the X-Forwarded-For it sent: the page must judge the proxy by the proxy's own
        # address, as `kb serve` does, so the single sign-on header is believed only from it.
        env["FORWARDED_ALLOW_IPS"] = ""
    return env


def display_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("", "0.0.0.0", "::", "localhost") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def launch(settings: Settings, host: str, port: int) -> int:
    """Serve the page until the server exits or the user presses Ctrl-C; return its exit code."""
    if not APP.is_file():
        raise FileNotFoundError(f"the page's script is missing: {APP}")
    command = streamlit_command(settings, host, port)
    print(f"kb: starting the page for {settings.home} …", flush=True)
    print(f"kb: open {display_url(host, port)} in your browser (Ctrl-C stops it)", flush=True)
    if host in ("0.0.0.0", "::"):
        print("kb: listening on every network interface of this machine", flush=True)
    process = subprocess.Popen(command, env=child_environment(settings, host, port))

    def forward(signum: int, _frame: object) -> None:
        # `kill <pid of kb>` (a service manager, make) must stop the server, not orphan it.
        if process.poll() is None:
            process.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return process.wait()
    except KeyboardInterrupt:
        # The terminal sent SIGINT to the whole group; give Streamlit time to close sessions.
        try:
            return process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)
            return process.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
