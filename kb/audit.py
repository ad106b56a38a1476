"""The audit log: one JSON line per question or search, saying who asked what, when and
through which entry point (`via`: cli, page, api, eval, or library for code calling kb
directly), and which sources were retrieved and cited. No answer text unless
KB_AUDIT_ANSWERS, never a password or an API key.

Written through `logging.handlers.RotatingFileHandler` (size-based rotation, `audit.jsonl`,
`audit.jsonl.1`, …), read back across every rotated file by `read_audit`.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_lock = threading.Lock()
_loggers: dict[str, logging.Logger] = {}


def _logger(path: Path, max_bytes: int, backups: int) -> logging.Logger:
    key = str(path.resolve())
    with _lock:
        logger = _loggers.get(key)
        if logger is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            logger = logging.getLogger(f"kb.audit.{len(_loggers)}")
            logger.propagate = False
            logger.setLevel(logging.INFO)
            handler = logging.handlers.RotatingFileHandler(
                path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
            )
            handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(handler)
            _loggers[key] = logger
        return logger


class AuditLog:
    def __init__(self, path: Path, max_bytes: int, backups: int, answers: bool) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.answers = answers

    def record(
        self,
        action: str,
        user: str | None,
        collection: str,
        question: str,
        retrieved: list[str],
        cited: list[str] | None = None,
        answer: str | None = None,
        via: str | None = None,
        **extra: Any,
    ) -> None:
        entry: dict[str, Any] = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "user": user,
            "via": via,
            "action": action,
            "collection": collection,
            "question": question,
            "retrieved": list(dict.fromkeys(retrieved)),
            "cited": list(dict.fromkeys(cited or [])),
            **extra,
        }
        if self.answers and answer is not None:
            entry["answer"] = answer
        line = json.dumps(entry, ensure_ascii=False)
        _logger(self.path, self.max_bytes, self.backups).info(line)

    def files(self) -> list[Path]:
        """The log and its rotated files, oldest first."""
        rotated = [self.path.with_name(f"{self.path.name}.{i}") for i in range(self.backups, 0, -1)]
        return [p for p in [*rotated, self.path] if p.exists()]

    def read(
        self,
        source: str | None = None,
        user: str | None = None,
        since: datetime | None = None,
        via: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Entries, oldest first, that retrieved or cited `source` (a path as cited, or its
        end), by `user`, at or after `since`, that came in `via` an entry point."""
        for path in self.files():
            with path.open(encoding="utf-8") as fh:
                for line in fh:
                    try:
                        entry = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    if user is not None and entry.get("user") != user:
                        continue
                    if via is not None and entry.get("via") != via:
                        continue
                    if since is not None and datetime.fromisoformat(entry["at"]) < since:
                        continue
                    if source is not None:
                        seen = [*entry.get("retrieved", []), *entry.get("cited", [])]
                        if not any(s == source or s.endswith("/" + source) for s in seen):
                            continue
                    yield entry
