"""Find the files to ingest under the paths a user gave, and fingerprint their content."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Extension -> format name understood by ingest.load.
SUPPORTED: dict[str, str] = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".pptx": "pptx",
    ".xlsx": "xlsx",
    ".csv": "csv",
    ".tsv": "tsv",
    ".html": "html",
    ".htm": "html",
    ".md": "md",
    ".markdown": "md",
    ".txt": "text",
    ".text": "text",
    ".eml": "eml",
}


def supported_extensions() -> list[str]:
    """The file extensions kb ingests, without dots, sorted ("csv", "docx", …)."""
    return sorted({ext.lstrip(".") for ext in SUPPORTED})


def describe_supported() -> str:
    return ", ".join(supported_extensions())


# Files every office folder collects that nobody means to index: editor lock files, OS metadata.
_IGNORED_NAMES = {"thumbs.db", "desktop.ini", ".ds_store"}


def is_ignored(path: Path) -> bool:
    name = path.name
    return name.startswith((".", "~$")) or name.lower() in _IGNORED_NAMES


@dataclass(frozen=True)
class FoundFile:
    path: Path  # absolute
    root: Path  # the folder the user named (or the file's parent when a file was named)
    source: str  # path relative to root, with forward slashes: what citations show
    size: int
    mtime_ns: int

    @property
    def format(self) -> str | None:
        return SUPPORTED.get(self.path.suffix.lower())


def _found(path: Path, root: Path) -> FoundFile:
    stat = path.stat()
    return FoundFile(
        path=path,
        root=root,
        source=path.relative_to(root).as_posix(),
        size=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
    )


def walk(target: Path) -> Iterator[FoundFile]:
    """Yield every candidate file under `target` (a folder, walked recursively, or one file).

    Unsupported formats are yielded too: the pipeline reports them by name rather than letting
    a document silently go missing from the knowledge base.
    """
    target = target.expanduser().resolve()
    if target.is_file():
        yield _found(target, target.parent)
        return
    if not target.is_dir():
        raise FileNotFoundError(f"{target}: no such file or folder")
    for dirpath, dirnames, filenames in os.walk(target):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if is_ignored(path) or not path.is_file():
                continue
            yield _found(path, target)


def file_hash(path: Path) -> str:
    """The sha256 of a file's content, read in blocks (memory stays flat for any size)."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
