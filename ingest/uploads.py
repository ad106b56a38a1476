"""Files uploaded through the page or the API: safe names, atomic writes, then ingestion.

Every result is typed (`UploadReport`, one `UploadedFile` per upload, with a machine-readable
`error_code` beside the English `error`), so each shell words it in its own language.
"""

from __future__ import annotations

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

UNSUPPORTED_TYPE = "unsupported_type"
UNSAFE_NAME = "unsafe_name"
INGEST_FAILED = "ingest_failed"


def safe_filename(name: str) -> str:
    """A file name safe to create in the uploads folder, whatever the browser sent.

    Only the last path component is kept (either slash), characters outside letters, digits,
    CJK and `._-` become `_`, and leading dots go (no hidden or `..` names).
    """
    base = re.split(r"[\\/]", unicodedata.normalize("NFC", name or ""))[-1]
    base = _UNSAFE_CHARS.sub("_", base)
    base = re.sub(r"_{2,}", "_", base).lstrip(".").strip()
    if not base.strip("._-"):
        raise UnsafeName(f"unusable file name {name!r}")
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    if not stem.strip("._-"):
        raise UnsafeName(f"unusable file name {name!r}")
    stem = stem[:_MAX_STEM]
    return f"{stem}.{suffix}" if dot else stem


def _same_content(path: Path, digest: str) -> bool:
    try:
        return file_hash(path) == digest
    except OSError:
        return False


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
    temporary = folder / f".upload-{uuid.uuid4().hex}.partial"
    with temporary.open("xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    try:
        for candidate in candidates:
            target = folder / candidate
            if target.resolve().parent != folder:  # cannot happen after sanitizing; stay sure
                raise UnsafeName(f"unusable file name {name!r}")
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


def handle_uploads(
    folder: Path,
    files: Sequence[tuple[str, bytes]],
    ingest: IngestPaths,
    progress: Callable[[Any], None] | None = None,
) -> UploadReport:
    """Store uploaded (name, bytes) pairs safely under `folder`, then `ingest(paths, on_event)`
    them (without pruning: other uploads stay); one result per upload, in order."""
    report = UploadReport()
    stored: dict[str, UploadedFile] = {}
    paths: list[Path] = []
    for name, data in files:
        result = UploadedFile(name=name)
        report.files.append(result)
        suffix = Path(name.replace("\\", "/")).suffix.lower()
        result.extension = suffix
        if suffix not in SUPPORTED:
            result.status, result.error_code = "failed", UNSUPPORTED_TYPE
            result.error = (
                f"unsupported file type '{suffix or 'no extension'}' "
                f"(supported: {describe_supported()})"
            )
            continue
        try:
            path = store_upload(folder, name, data)
        except UnsafeName as exc:
            result.status, result.error_code, result.error = "failed", UNSAFE_NAME, str(exc)
            continue
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
            item.status, item.chunks, item.error = event.status, event.chunks, event.error
            if event.status == "failed":
                item.error_code = INGEST_FAILED
        if progress is not None:
            progress(event)

    report.summary = ingest(paths, on_event)
    for failure in report.summary.failed:
        item = stored.get(Path(failure.path).name)
        if item is not None:
            item.status, item.error, item.error_code = "failed", failure.error, INGEST_FAILED
    for item in stored.values():
        if not item.status:  # ingestion reports no event for files it already holds
            item.status = "unchanged"
    return report
