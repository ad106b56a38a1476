"""The page server's shared resources: one `KnowledgeBase` per settings, and its status.

They live in an importable module, not in the page script: Streamlit runs the script anew for
every interaction (and under another module name), while a function defined here is one
object for the whole server process, so every session shares one knowledge base and one set of
loaded models.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from kb.app import KnowledgeBase
from kb.config import Settings


@st.cache_resource(show_spinner=False, max_entries=8)
def _cached_knowledge_base(settings_key: str, _settings: Settings) -> KnowledgeBase:
    # Keyed by every setting, so tests or a changed .env never get one built for other settings.
    return KnowledgeBase(_settings, via="page")


def knowledge_base(settings: Settings) -> KnowledgeBase:
    """The server's one knowledge base; models load on the first question only."""
    return _cached_knowledge_base(settings.model_dump_json(), settings)


@st.cache_data(show_spinner=False, ttl=20, max_entries=32)
def _cached_status(settings_key: str, reader_key: str, _reader: KnowledgeBase) -> dict[str, Any]:
    return _reader.status()


def kb_status(settings: Settings, reader: KnowledgeBase | None = None) -> dict[str, Any]:
    """The status as `reader` (the signed-in user's view) may see it, cached per reader."""
    reader = reader or knowledge_base(settings)
    principal = reader.principal
    return _cached_status(settings.model_dump_json(), repr(principal), reader)


def clear_status() -> None:
    """Forget the cached status (after an upload changed what the knowledge base holds)."""
    _cached_status.clear()
