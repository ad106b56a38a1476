"""Uploads: safe names, atomic writes that never overwrite, then real ingestion."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb.errors import UnsafeName
from kb.ingest.uploads import UNSAFE_NAME, UNSUPPORTED_TYPE, safe_filename, store_upload


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
    ],
)
def test_safe_filename(given: str, expected: str) -> None:
    assert safe_filename(given) == expected


@pytest.mark.parametrize("given", ["", ".", "..", "....", "/", "a/..", "???", "._-"])
def test_safe_filename_refuses_empty_names(given: str) -> None:
    with pytest.raises(UnsafeName):
        safe_filename(given)
