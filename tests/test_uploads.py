"""Uploads: safe names, atomic writes that never overwrite, then real ingestion."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb.errors import UnsafeName
from kb.ingest.uploads import (
    INGEST_FAILED,
    TOO_LARGE,
    TOO_MANY_FILES,
    UNSAFE_NAME,
    UNSUPPORTED_TYPE,
    remove_abandoned_partials,
    safe_filename,
    store_upload,
)


def test_unsafe_upload_names_stay_inside_the_uploads_folder(settings, open_kb) -> None:
    uploads = settings.uploads_dir.resolve()
    report = open_kb(settings).store_uploads(
        [
            ("../../etc/passwd.txt", b"The visitor wifi password rotates every Monday.\n"),
            ("C:\\Users\\eve\\..\\evil name?.md", b"# Note\n\nThe archive room is on floor 9.\n"),
            ("....", b"dots only"),
            ("", b"no name"),
            ("/", b"just a slash"),
            ("payload.exe", b"MZ"),
        ],
    )
    by_name = {f.name: f for f in report.files}
    passwd = by_name["../../etc/passwd.txt"]
    assert passwd.stored == "passwd.txt" and passwd.status == "added", passwd
    assert (uploads / "passwd.txt").is_file()
    assert by_name["C:\\Users\\eve\\..\\evil name?.md"].stored == "evil_name_.md"
    for bad in ("....", "", "/", "payload.exe"):
        assert by_name[bad].status == "failed" and not by_name[bad].stored, by_name[bad]
    assert by_name["payload.exe"].error_code == UNSUPPORTED_TYPE
    assert by_name["...."].error_code == UNSAFE_NAME
    # Nothing was written anywhere but the uploads folder (no leftovers either).
    assert not (uploads.parent / "etc").exists()
    assert not list(uploads.glob(".upload-*"))
    for path in uploads.iterdir():
        assert path.resolve().parent == uploads


def test_same_name_with_other_content_never_overwrites(tmp_path: Path) -> None:
    first = store_upload(tmp_path, "report.md", b"version one")
    again = store_upload(tmp_path, "sub/dir/report.md", b"version one")
    other = store_upload(tmp_path, "report.md", b"version two")
    assert first == again == tmp_path / "report.md"
    assert other != first and other.name.startswith("report-") and other.suffix == ".md"
    assert first.read_bytes() == b"version one" and other.read_bytes() == b"version two"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("..\\..\\windows\\system.ini.md", "system.ini.md"),
        ("报销制度（2027）.docx", "报销制度_2027_.docx"),
        ("my report (final).pdf", "my_report_final_.pdf"),
        (".bashrc.txt", "bashrc.txt"),
        ("a<b>c|d:e*.html", "a_b_c_d_e_.html"),
        ("x" * 300 + ".txt", "x" * 100 + ".txt"),
        # NUL and control characters never reach the file system.
        ("a\x00b\x01c.txt", "a_b_c.txt"),
        # Windows device names, with any extension and in any case.
        ("CON.txt", "CON_.txt"),
        ("nul.md", "nul_.md"),
        ("Lpt1.pdf", "Lpt1_.pdf"),
        ("aux.tar.txt", "aux.tar_.txt"),
        ("console.txt", "console.txt"),
        # Compatibility forms fold before the path is cut: full-width slashes and dots, "‥".
        ("．．／．．／etc／passwd.txt", "passwd.txt"),
        ("‥/‥/secret.md", "secret.md"),
        ("ｒｅｐｏｒｔ.pdf", "report.pdf"),
        # Look-alikes from other scripts, and direction overrides, are not letters here.
        ("pаypal.txt", "p_ypal.txt"),
        ("invoice\u202etxt.md", "invoice_txt.md"),
        ("/etc/cron.d/job.txt", "job.txt"),
        ("C:\\Windows\\win.ini.txt", "win.ini.txt"),
    ],
)
def test_safe_filename(given: str, expected: str) -> None:
    assert safe_filename(given) == expected


@pytest.mark.parametrize("given", ["", ".", "..", "....", "/", "a/..", "???", "._-"])
def test_safe_filename_refuses_empty_names(given: str) -> None:
    with pytest.raises(UnsafeName):
        safe_filename(given)


def test_very_long_chinese_names_fit_the_file_system(tmp_path: Path) -> None:
    name = "报销制度" * 80 + ".docx"
    safe = safe_filename(name)
    assert safe.endswith(".docx") and len(safe.encode()) <= 200
    stored = store_upload(tmp_path, name, b"first")
    other = store_upload(tmp_path, name, b"second")  # gets a hash suffix, still fits
    assert stored.exists() and other.exists() and len(other.name.encode()) < 255


def test_abandoned_temporaries_are_removed_live_ones_kept(tmp_path: Path) -> None:
    import fcntl
    import os

    abandoned = tmp_path / ".upload-dead.partial"
    abandoned.write_bytes(b"half an upload")
    live = tmp_path / ".upload-live.partial"
    live.write_bytes(b"being written")
    old = 1_000_000_000
    os.utime(abandoned, (old, old))
    os.utime(live, (old, old))
    with live.open("rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert remove_abandoned_partials(tmp_path) == 1
    assert not abandoned.exists() and live.exists()


def test_upload_limits_and_errors_without_server_paths(settings, open_kb) -> None:
    limited = settings.model_copy(update={"upload_max_files": 3, "upload_max_mb": 0.01})
    knowledge = open_kb(limited)
    report = knowledge.store_uploads(
        [
            ("ok.md", b"# Parking\n\nThe garage opens at 06:45.\n"),
            ("big.txt", b"x " * 10_000),  # 20 KB > 0.01 MB for the whole upload
            ("broken.pdf", b"%PDF-1.7\n1 0 obj garbage"),
            ("fourth.md", b"# Four\n\nOne too many.\n"),
        ]
    )
    by_name = {f.name: f for f in report.files}
    assert by_name["ok.md"].status == "added"
    assert (
        by_name["big.txt"].error_code == TOO_LARGE
        and "KB_UPLOAD_MAX_MB" in by_name["big.txt"].error
    )
    assert by_name["broken.pdf"].error_code == INGEST_FAILED
    assert by_name["fourth.md"].error_code == TOO_MANY_FILES
    stored = {p.name for p in limited.uploads_dir.iterdir()}
    assert stored == {"ok.md", "broken.pdf"}
    home = str(limited.home)
    for item in report.files:
        assert home not in item.error and "Traceback" not in item.error, item
