"""Find the files to ingest under the paths a user gave, and fingerprint their content."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
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
    problem: str = ""  # why it cannot be read at all (a broken link, a FIFO…), or ""

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


def _problem(path: Path) -> str:
    """Why a directory entry that is not a regular file cannot be ingested."""
    try:
        mode = path.lstat().st_mode
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if stat.S_ISLNK(mode):
        try:
            path.stat()
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return "symbolic link loop"
            return f"broken symbolic link ({exc.strerror})"
        return "symbolic link to something that is not a file"
    kinds = {stat.S_ISFIFO: "a named pipe", stat.S_ISSOCK: "a socket", stat.S_ISCHR: "a device"}
    kinds |= {stat.S_ISBLK: "a device"}
    kind = next((name for test, name in kinds.items() if test(mode)), "special")
    return f"not a regular file ({kind})"


def _unusable_name(path: Path, root: Path) -> str:
    # Linux names are bytes; one that is not UTF-8 cannot be stored, cited or shown faithfully.
    try:
        str(path.relative_to(root)).encode("utf-8")
    except UnicodeEncodeError:
        return "the file name is not valid UTF-8; rename the file"
    return ""


def _unreadable(path: Path, root: Path, problem: str) -> FoundFile:
    return FoundFile(path, root, path.relative_to(root).as_posix(), 0, 0, problem)


def walk(target: Path) -> Iterator[FoundFile]:
    """Yield every candidate file under `target` (a folder, walked recursively, or one file).

    Unsupported formats are yielded too, and so are entries that cannot be read at all (broken
    or looping links, pipes, names that are not UTF-8), with the reason in `problem`: the
    pipeline reports each by name rather than letting a document silently go missing.
    """
    target = target.expanduser().resolve()
    if target.is_file():
        yield _found(target, target.parent)
        return
    if not target.is_dir():
        raise FileNotFoundError(f"{target}: no such file or folder")
    for dirpath, dirnames, filenames in os.walk(target):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            # Never followed (a link can loop back or leave the folder), but said so.
            dirnames.remove(name)
            path = Path(dirpath) / name
            yield _unreadable(path, target, "symbolic link to a folder (not followed)")
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if is_ignored(path):
                continue
            problem = _unusable_name(path, target)
            if not problem and not path.is_file():
                problem = _problem(path)
            if problem:
                yield _unreadable(path, target, problem)
                continue
            try:
                yield _found(path, target)
            except OSError as exc:  # gone or unreadable between listing and stat
                yield _unreadable(path, target, f"unreadable ({exc.strerror})")


def file_hash(path: Path) -> str:
    """The sha256 of a file's content, read in blocks (memory stays flat for any size)."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
