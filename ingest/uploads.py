"""Files uploaded through the page or the API: safe names, atomic writes, then ingestion.

Every result is typed (`UploadReport`, one `UploadedFile` per upload, with a machine-readable
`error_code` beside the English `error`), so each shell words it in its own language.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kb.errors import UnsafeName
from kb.ingest.discover import SUPPORTED, describe_supported, file_hash

# Letters and digits (ASCII), CJK ideographs, kana and hangul, and . _ - survive in file names.
_UNSAFE_CHARS = re.compile(
    r"[^0-9A-Za-z\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af._-]"
)
_MAX_STEM = 100
# Bytes, not characters: a Chinese character takes three, and Linux allows 255 per name; this
# leaves room for the "-<hash>" a second file of the same name gets.
_MAX_STEM_BYTES = 180
# Names Windows reserves for devices, with any extension: harmless here, but a copy of the
# uploads folder on a Windows share would break on them.
_DEVICE_NAMES = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
_DEVICE_NAMES |= {f"{kind}{n}" for kind in ("COM", "LPT") for n in "123456789"}
_MAX_SHOWN_NAME = 80

UNSUPPORTED_TYPE = "unsupported_type"
UNSAFE_NAME = "unsafe_name"
INGEST_FAILED = "ingest_failed"
TOO_LARGE = "too_large"
TOO_MANY_FILES = "too_many_files"
STORE_FAILED = "store_failed"


def _shown(name: str) -> str:
    """The user's name for a file, short and printable, for error messages."""
    name = "".join(c if c.isprintable() else "?" for c in name or "")
    return name if len(name) <= _MAX_SHOWN_NAME else name[: _MAX_SHOWN_NAME - 1] + "…"


def safe_filename(name: str) -> str:
    """A file name safe to create in the uploads folder, whatever the browser sent.

    Compatibility forms fold first (NFKC: a full-width "／" or "．．" is a slash or dots, so it
    cannot smuggle a path through), then only the last path component is kept (either slash),
    characters outside letters, digits, CJK and `._-` become `_` (NUL, control characters and
    look-alikes from other scripts included), leading dots go (no hidden or `..` names), Windows
    device names get a `_`, and the stem is cut to fit Linux's limit on a name's bytes.
    """
    base = re.split(r"[\\/]", unicodedata.normalize("NFKC", name or ""))[-1]
    base = _UNSAFE_CHARS.sub("_", base)
    base = re.sub(r"_{2,}", "_", base).lstrip(".").strip()
    if not base.strip("._-"):
        raise UnsafeName(f"unusable file name {_shown(name)!r}")
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    if not stem.strip("._-"):
        raise UnsafeName(f"unusable file name {_shown(name)!r}")
    stem = stem[:_MAX_STEM]
    while len(stem.encode("utf-8")) > _MAX_STEM_BYTES:
        stem = stem[:-1]
    if stem.split(".")[0].upper() in _DEVICE_NAMES:
        stem += "_"
    if len(suffix.encode("utf-8")) > 16:
        raise UnsafeName(f"unusable file name {_shown(name)!r} (extension too long)")
    return f"{stem}.{suffix}" if dot else stem


def _same_content(path: Path, digest: str) -> bool:
    try:
        return file_hash(path) == digest
    except OSError:
        return False


_PARTIAL_PREFIX = ".upload-"


def remove_abandoned_partials(folder: Path, min_age_s: float = 60.0) -> int:
    """Delete temporaries left by uploads whose process was killed mid-write (nobody holds
    their lock any more, and they are older than `min_age_s`, so one just created and not yet
    locked is left alone); returns how many."""
    import time

    removed = 0
    for path in folder.glob(f"{_PARTIAL_PREFIX}*.partial"):
        try:
            if time.time() - path.stat().st_mtime < min_age_s:
                continue
            with path.open("rb") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                path.unlink(missing_ok=True)
                removed += 1
        except (BlockingIOError, FileNotFoundError):
            continue  # a live upload, or already gone
    return removed


def store_upload(folder: Path, name: str, data: bytes) -> Path:
    """Save an upload under `folder` with a safe name; never overwrite another file.

    The same content under the same name reuses the stored file. A different file with that
    name gets a short content-hash suffix. Files are created atomically (hard link from a hidden
    temporary), so two people uploading the same name at once cannot clobber each other.
    """
    safe = safe_filename(name)
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(data).hexdigest()
    stem, dot, suffix = safe.rpartition(".")
    if not dot:
        stem, suffix = safe, ""
    ext = f".{suffix}" if suffix else ""
    candidates = [safe, f"{stem}-{digest[:8]}{ext}", f"{stem}-{digest[:16]}{ext}"]
    remove_abandoned_partials(folder)
    temporary = folder / f"{_PARTIAL_PREFIX}{uuid.uuid4().hex}.partial"
    with temporary.open("xb") as fh:
        # Held until the temporary is gone, so a cleanup elsewhere can tell a live upload from
        # one abandoned by a killed process.
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
            for candidate in candidates:
                target = folder / candidate
                if target.resolve().parent != folder:  # cannot happen after sanitizing
                    raise UnsafeName(f"unusable file name {_shown(name)!r}")
                try:
                    os.link(temporary, target)
                    return target
                except FileExistsError:
                    if _same_content(target, digest):
                        return target
            raise UnsafeName(f"too many different files named {safe!r}")
        finally:
            temporary.unlink(missing_ok=True)


@dataclass
class UploadedFile:
    name: str  # as the user uploaded it
    stored: str = ""  # the name in the uploads folder ("" when not stored)
    status: str = ""  # added | updated | renamed | unchanged | failed
    chunks: int = 0
    error: str = ""  # English, for logs and the API
    error_code: str = ""  # unsupported_type | unsafe_name | ingest_failed
    extension: str = ""


@dataclass
class UploadReport:
    files: list[UploadedFile] = field(default_factory=list)
    summary: Any = None  # kb.ingest.pipeline.IngestSummary, when ingestion ran

    @property
    def failed(self) -> list[UploadedFile]:
        return [f for f in self.files if f.status == "failed"]


IngestPaths = Callable[[list[Path], Callable[[Any], None]], Any]


@dataclass(frozen=True)
class UploadLimits:
    max_files: int = 50  # files in one upload
    max_bytes: int = 200 * 2**20  # all files of one upload together
    max_file_bytes: int = 200 * 2**20  # one file (the ingestion's own limit)


def _scrub(message: str, folder: Path) -> str:
    """An error message without the server's folders in it (people uploading see these)."""
    for where in (str(folder) + os.sep, str(folder), str(folder.parent)):
        message = message.replace(where, "")
    return message


def handle_uploads(
    folder: Path,
    files: Sequence[tuple[str, bytes]],
    ingest: IngestPaths,
    progress: Callable[[Any], None] | None = None,
    limits: UploadLimits | None = None,
) -> UploadReport:
    """Store uploaded (name, bytes) pairs safely under `folder`, then `ingest(paths, on_event)`
    them (without pruning: other uploads stay); one result per upload, in order. Files past
    the count or size limits fail with TOO_MANY_FILES or TOO_LARGE and are never written."""
    limits = limits or UploadLimits()
    report = UploadReport()
    stored: dict[str, UploadedFile] = {}
    paths: list[Path] = []
    accepted_bytes = 0
    for index, (name, data) in enumerate(files):
        result = UploadedFile(name=name)
        report.files.append(result)
        suffix = Path(unicodedata.normalize("NFKC", name).replace("\\", "/")).suffix.lower()
        result.extension = suffix
        if index >= limits.max_files:
            result.status, result.error_code = "failed", TOO_MANY_FILES
            result.error = (
                f"too many files in one upload (at most {limits.max_files}, KB_UPLOAD_MAX_FILES)"
            )
            continue
        try:
            safe_filename(name)
        except UnsafeName as exc:
            result.status, result.error_code, result.error = "failed", UNSAFE_NAME, str(exc)
            continue
        if suffix not in SUPPORTED:
            result.status, result.error_code = "failed", UNSUPPORTED_TYPE
            result.error = (
                f"unsupported file type '{_shown(suffix) or 'no extension'}' "
                f"(supported: {describe_supported()})"
            )
            continue
        if len(data) > limits.max_file_bytes or accepted_bytes + len(data) > limits.max_bytes:
            result.status, result.error_code = "failed", TOO_LARGE
            one = len(data) > limits.max_file_bytes
            result.error = f"too large ({len(data) / 2**20:.1f} MB; at most " + (
                f"{limits.max_file_bytes / 2**20:g} MB per file, KB_MAX_FILE_MB)"
                if one
                else f"{limits.max_bytes / 2**20:g} MB per upload, KB_UPLOAD_MAX_MB)"
            )
            continue
        try:
            path = store_upload(folder, name, data)
        except UnsafeName as exc:
            result.status, result.error_code, result.error = "failed", UNSAFE_NAME, str(exc)
            continue
        except OSError as exc:
            result.status, result.error_code = "failed", STORE_FAILED
            result.error = f"could not be stored ({exc.strerror or type(exc).__name__})"
            continue
        accepted_bytes += len(data)
        result.stored = path.name
        if path.name in stored:  # the same file twice in one upload
            result.status = "unchanged"
            continue
        stored[path.name] = result
        paths.append(path)
    if not paths:
        return report

    def on_event(event: Any) -> None:
        if event.kind == "file" and event.source in stored:
            item = stored[event.source]
            item.status, item.chunks = event.status, event.chunks
            item.error = _scrub(event.error, folder)
            if event.status == "failed":
                item.error_code = INGEST_FAILED
        if progress is not None:
            progress(event)

    report.summary = ingest(paths, on_event)
    for failure in report.summary.failed:
        item = stored.get(Path(failure.path).name)
        if item is not None:
            item.status, item.error_code = "failed", INGEST_FAILED
            item.error = _scrub(failure.error, folder)
    for item in stored.values():
        if not item.status:  # ingestion reports no event for files it already holds
            item.status = "unchanged"
    return report
