"""Reading JSON-lines files (question batches, evaluation sets) with file:line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kb.errors import InputError


def read_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of `path`.

    A missing file, a line that is not JSON, or a line that is not an object raises
    `InputError` naming the file and the line, so a user finds the fault at once.
    """
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError as exc:
                raise InputError(f"{path}:{number}: not valid JSON ({exc})") from exc
            if not isinstance(item, dict):
                raise InputError(f"{path}:{number}: each line must be a JSON object")
            yield number, item


def validate_history(history: Any, where: str) -> list[dict[str, str]]:
    """A conversation as `[{"role": "user"|"assistant", "content": str}]`, or InputError."""
    if history is None:
        return []
    if not isinstance(history, list) or any(
        not isinstance(t, dict) or t.get("role") not in ("user", "assistant") for t in history
    ):
        raise InputError(
            f'{where}: \'history\' must be a list of {{"role": "user"|"assistant", "content": ...}}'
        )
    return [{"role": t["role"], "content": str(t.get("content", ""))} for t in history]
