"""Start `kb serve`: check the bind address against the API keys, then run uvicorn."""

from __future__ import annotations

import contextlib
import logging
import signal

from kb.app import KnowledgeBase
from kb.config import Settings
from kb.server.security import check_bind, load_api_keys


def serve(settings: Settings, host: str, port: int, verbose: bool = False) -> None:
    """Serve one knowledge base until interrupted (Ctrl-C or SIGTERM shut it down cleanly)."""
    import uvicorn

    from kb.server.app import create_app

    check_bind(host, load_api_keys(settings))
    with KnowledgeBase(settings, via="api") as knowledge:
        app = create_app(knowledge)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="debug" if verbose else "info",
            # Only the request line is logged: never headers, so never a key.
            access_log=True,
            server_header=False,
            proxy_headers=False,
            timeout_graceful_shutdown=10,
        )
        logging.getLogger("kb.server").setLevel(logging.DEBUG if verbose else logging.INFO)
        # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal again for the
        # handler that was there before: make that a no-op (SIGTERM) or catch it (SIGINT), so a
        # requested stop exits 0 instead of looking like a crash or an interruption.
        signal.signal(signal.SIGTERM, lambda *_: None)
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.Server(config).run()
