"""A folder of hostile files: broken, encrypted, disguised, huge, deeply nested, oddly named.

`write_hostile(folder, docwriters)` writes them and returns what each must produce: a failure
whose reason contains a given word, a successful ingestion (odd names, odd encodings of good
text), or either ("may"), for files whose fate depends on how forgiving a parser is (pdfium
repairs some broken cross-reference tables). `heavy=True` adds the 200 MB single-line text file;
without it the 20 MB one stands in.

Run as a script to write the folder: `python tests/hostile_files.py OUT [--heavy]`.
"""

from __future__ import annotations

import io
import json
import os
import random
import sys
import zipfile
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

MB = 1 << 20


@dataclass(frozen=True)
class Expect:
    outcome: str  # "fail" | "ok" | "may"
    word: str = ""  # for "fail": a word the reason must contain (lower case)


def _valid_docs(folder: Path, w) -> dict[str, Path]:
    """Small valid documents to truncate, encrypt or corrupt."""
    folder.mkdir(parents=True, exist_ok=True)
    paragraphs = [w.Heading("Section"), w.Para("Ordinary text about procurement rules. " * 40)]
    out = {
        "pdf": folder / "valid.pdf",
        "docx": folder / "valid.docx",
        "pptx": folder / "valid.pptx",
        "xlsx": folder / "valid.xlsx",
    }
    w.write_pdf(out["pdf"], "Valid", paragraphs * 3)
    w.write_docx(out["docx"], "Valid", paragraphs * 3)
    w.write_pptx(out["pptx"], "Valid", [w.Slide("Valid", ["Point one", "Point two"])] * 3)
    w.write_xlsx(out["xlsx"], "Valid", {"S": [["a", "b"], *[[i, i * 2] for i in range(200)]]})
    return out


class _RepeatedZeros:
    """Stands in for zipfile's deflate compressor: every 1 MiB block of zeros deflates to the
    same bytes after a full flush, so a gigabyte-sized member is written in a second instead of
    being compressed for a quarter of a minute (zipfile still computes its CRC and sizes)."""

    def __init__(self) -> None:
        self._engine = zlib.compressobj(9, zlib.DEFLATED, -15)
        self._block = self._engine.compress(bytes(MB)) + self._engine.flush(zlib.Z_FULL_FLUSH)

    def compress(self, data: bytes) -> bytes:
        assert len(data) == MB and not data.count(1)
        return self._block

    def flush(self) -> bytes:
        return self._engine.flush()


def write_zip_bomb(path: Path, member: str, unpacked_mb: int) -> None:
    """A real ZIP whose one member inflates to `unpacked_mb` MiB of zeros (about 1 MB on disk)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        info = zipfile.ZipInfo(member)
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=True) as fh:
            fh._compressor = _RepeatedZeros()  # a private hook, see _RepeatedZeros
            block = bytes(MB)
            for _ in range(unpacked_mb):
                fh.write(block)


def _encrypt_ooxml(source: Path, target: Path) -> None:
    import msoffcrypto.format.ooxml

    with source.open("rb") as fh:
        office = msoffcrypto.format.ooxml.OOXMLFile(fh)
        with target.open("wb") as out:
            office.encrypt("secret", out)


def _nested_html(depth: int, tag: str = "div") -> str:
    return (
        "<html><head><title>Nested</title></head><body>"
        + f"<{tag}>" * depth
        + "deep text"
        + f"</{tag}>" * depth
        + "</body></html>"
    )


def _single_line(path: Path, size: int) -> None:
    """`size` bytes of words on one line, no full stop anywhere (generated text)."""
    rng = random.Random(7)
    words = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
        for _ in range(4000)
    ]
    piece = (" ".join(rng.choice(words) for _ in range(200_000)) + " ").encode()
    with path.open("wb") as fh:
        written = 0
        while written < size:
            chunk = piece[: size - written]
            fh.write(chunk)
            written += len(chunk)


def _eml_with_attachment(path: Path, attachment_mb: int) -> None:
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = "Archive <archive@example.com>"
    message["To"] = "all@example.com"
    message["Subject"] = "Quarterly archive export"
    message["Date"] = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    message.set_content("The quarterly archive export is attached; the export runs each March.\n")
    message.add_attachment(
        os.urandom(attachment_mb * MB),
        maintype="application",
        subtype="octet-stream",
        filename="export.bin",
    )
    path.write_bytes(message.as_bytes())


def write_hostile(folder: Path, w, heavy: bool = False) -> dict[str, Expect]:
    """Write the hostile files into `folder`; returns {relative name: Expect}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(31)
    expect: dict[str, Expect] = {}
    valid = _valid_docs(folder / ".originals", w)  # hidden: kb never ingests dot folders

    def put(name: str, data: bytes, outcome: Expect) -> None:
        (folder / name).write_bytes(data)
        expect[name] = outcome

    pdf = valid["pdf"].read_bytes()
    # --- PDF -------------------------------------------------------------------------------
    put("truncated-half.pdf", pdf[: len(pdf) // 2], Expect("may"))
    put("truncated-head.pdf", pdf[:400], Expect("fail", "pdf"))
    put("header-only.pdf", b"%PDF-1.7\n", Expect("fail", "pdf"))
    put("garbage.pdf", b"%PDF-1.7\n1 0 obj <<>> garbage\n%%EOF", Expect("fail", "corrupt"))
    put("random-bytes.pdf", rng.randbytes(50_000), Expect("fail", "corrupt"))
    put("zero.pdf", b"", Expect("fail", "empty"))
    mangled = pdf.replace(b"startxref", b"startxxxx")
    put("broken-xref.pdf", mangled, Expect("may"))
    import pikepdf

    for name, encryption in {
        "encrypted-rc4.pdf": pikepdf.Encryption(
            user="secret", owner="o", R=4, aes=False, metadata=False
        ),
        "encrypted-aes256.pdf": pikepdf.Encryption(user="secret", owner="o", R=6),
    }.items():
        with pikepdf.open(valid["pdf"]) as document:
            document.save(folder / name, encryption=encryption)
        expect[name] = Expect("fail", "encrypted")
    # --- Office files ----------------------------------------------------------------------
    for fmt in ("docx", "pptx", "xlsx"):
        data = valid[fmt].read_bytes()
        put(f"truncated.{fmt}", data[: len(data) // 2], Expect("fail", "corrupt"))
        put(f"random-bytes.{fmt}", rng.randbytes(30_000), Expect("fail", "corrupt"))
        put(f"zero.{fmt}", b"", Expect("fail", "empty"))
        put(f"plain-text.{fmt}", b"just some text, not a zip\n" * 20, Expect("fail", "corrupt"))
        _encrypt_ooxml(valid[fmt], folder / f"encrypted.{fmt}")
        expect[f"encrypted.{fmt}"] = Expect("fail", "encrypted")
        member = {"docx": "word/document.xml", "pptx": "ppt/presentation.xml"}.get(
            fmt, "xl/workbook.xml"
        )
        write_zip_bomb(folder / f"zip-bomb.{fmt}", member, 1200)
        expect[f"zip-bomb.{fmt}"] = Expect("fail", "zip bomb")
        empty_zip = io.BytesIO()
        with zipfile.ZipFile(empty_zip, "w") as archive:
            archive.writestr("readme.txt", "no office document in here")
        put(f"wrong-zip.{fmt}", empty_zip.getvalue(), Expect("fail", fmt))
    broken_xml = io.BytesIO()
    with zipfile.ZipFile(valid["docx"]) as source, zipfile.ZipFile(broken_xml, "w") as target:
        for item in source.infolist():
            content = source.read(item)
            if item.filename == "word/document.xml":
                content = content[: len(content) // 3]
            target.writestr(item, content)
    put("broken-xml.docx", broken_xml.getvalue(), Expect("fail", "docx"))
    # --- text ------------------------------------------------------------------------------
    big = 200 * 1000 * 1000 if heavy else 20 * MB
    name = f"single-line-{big // 1_000_000}mb.txt"
    _single_line(folder / name, big)
    # 20 MB: refused from a sample of its text; 200 MB may run into the memory limit first.
    expect[name] = Expect("fail", "" if heavy else "chunks")
    put("zero.txt", b"", Expect("fail", "empty"))
    put("whitespace.txt", b" \n\t\n   \n" * 100, Expect("fail", "text"))
    put("nul-bytes.txt", b"text\x00with\x00nul\x00" * 500, Expect("fail", "binary"))
    put("random-bytes.txt", rng.randbytes(20_000), Expect("may"))
    invalid = b"Valid start \xff\xfe\xfa broken \xc3\x28 bytes \xe2\x82"
    put("invalid-utf8.txt", invalid * 50, Expect("may"))
    mixed = "采购规则：供应商须提前报价。\n".encode("gbk") + "混合编码的第二段文字。\n".encode()
    put("mixed-gbk-utf8.txt", mixed * 50, Expect("may"))
    put("control-chars.txt", bytes(range(1, 32)) * 200, Expect("may"))
    put("random-bytes.md", rng.randbytes(20_000), Expect("may"))
    put("random-bytes.eml", rng.randbytes(20_000), Expect("may"))
    put("truncated.eml", b"From: a@example.com\nSubject: cut", Expect("may"))
    put("zero.csv", b"", Expect("fail", "empty"))
    put("huge-field.csv", b"a,b\n" + b'"' + b"x" * 300_000 + b'",1\n', Expect("may"))
    put("random-bytes.csv", rng.randbytes(20_000), Expect("may"))
    # --- HTML ------------------------------------------------------------------------------
    put("nested-divs.html", _nested_html(100_000).encode(), Expect("may"))
    put("nested-tables.htm", _nested_html(20_000, "table").encode(), Expect("may"))
    put(
        "nested-lists.md",
        ("".join(f"{'  ' * i}- item {i}\n" for i in range(3000))).encode(),
        Expect("may"),
    )
    put("script-only.html", b"<html><script>var a = 1;</script></html>", Expect("fail", "text"))
    entity_bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + "".join(
            f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
            for i in range(1, 10)
        )
        + "]><html><body><p>&lol9;</p></body></html>"
    )
    put("entity-bomb.html", entity_bomb.encode(), Expect("may"))
    # --- e-mail with a huge attachment: its body is ordinary text and must be indexed -------
    _eml_with_attachment(folder / "huge-attachment.eml", 60 if heavy else 30)
    expect["huge-attachment.eml"] = Expect("ok")
    # --- names: ordinary content under awkward names must be indexed ------------------------
    for odd in (
        "name with  spaces.txt",
        "quotes \"double\" and 'single'.md",
        "new\nline.txt",
        "中文文件名.txt",
        "emoji 😀 report.md",
        "-leading-dash.txt",
        "semi;colon$dollar`tick`.txt",
    ):
        (folder / odd).write_text(f"Notes\n\nThe file {odd!r} holds ordinary text.\n")
        expect[odd] = Expect("ok")
    latin1 = os.fsencode(folder) + b"/latin1-caf\xe9.txt"
    with open(latin1, "wb") as fh:
        fh.write(b"Ordinary text under a name that is not UTF-8.\n")
    expect[os.fsdecode(b"latin1-caf\xe9.txt")] = Expect("fail", "utf-8")
    # --- links, special files, unreadable -------------------------------------------------
    os.symlink("loop.txt", folder / "loop.txt")
    expect["loop.txt"] = Expect("fail", "loop")
    os.symlink("loop-b.txt", folder / "loop-a.txt")
    os.symlink("loop-a.txt", folder / "loop-b.txt")
    expect["loop-a.txt"] = expect["loop-b.txt"] = Expect("fail", "loop")
    os.symlink("missing.txt", folder / "dangling.txt")
    expect["dangling.txt"] = Expect("fail", "broken")
    os.symlink(".", folder / "folder-loop")
    expect["folder-loop"] = Expect("fail", "link")
    os.mkfifo(folder / "pipe.txt")
    expect["pipe.txt"] = Expect("fail", "pipe")
    unreadable = folder / "unreadable.txt"
    unreadable.write_text("Nobody may read this.\n")
    unreadable.chmod(0)
    expect["unreadable.txt"] = Expect("fail", "permission")
    put("program.exe", b"MZ" + rng.randbytes(1000), Expect("fail", "unsupported"))
    put("no-extension", b"plain text without an extension\n", Expect("fail", "unsupported"))
    return expect


# --- running `kb ingest` over them -----------------------------------------------------------

# Root reads any file whatever its mode bits; without these two capabilities it obeys them.
DROP_READ_ANYTHING = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def _tree_rss(proc) -> tuple[int, int]:
    """(RSS of the process, RSS of its children) in bytes, 0 when gone."""
    import psutil

    try:
        parent = psutil.Process(proc.pid)
        own = parent.memory_info().rss
        children = sum(c.memory_info().rss for c in parent.children(recursive=True))
    except psutil.Error:
        return 0, 0
    return own, children


def run_ingest(
    kb_bin: Path, folder: Path, home: Path, env: dict[str, str], changing: Path | None = None
) -> dict:
    """Run `kb ingest FOLDER --json` (as root, without the power to read unreadable files),
    rewriting `changing` throughout; returns what happened: exit code, parsed JSON, stderr,
    seconds, peak RSS of kb and of its parse worker."""
    import subprocess
    import threading
    import time

    as_root = os.geteuid() == 0
    run_env = {**os.environ, **env, "KB_HOME": str(home)}
    stop = threading.Event()

    def keep_changing() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            with changing.open("a") as fh:
                fh.write(f"Line {n} of a file that is still being written.\n")
            time.sleep(0.05)

    writer = threading.Thread(target=keep_changing, daemon=True) if changing else None
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*(DROP_READ_ANYTHING if as_root else []), str(kb_bin), "ingest", str(folder), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=run_env,
        cwd=str(home),
        text=True,
    )
    if writer:
        writer.start()
    peak_own = peak_children = peak_total = 0
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(proc.communicate()), daemon=True)
    reader.start()
    while reader.is_alive():
        own, children = _tree_rss(proc)
        peak_own, peak_children = max(peak_own, own), max(peak_children, children)
        peak_total = max(peak_total, own + children)
        reader.join(0.1)
    seconds = time.perf_counter() - started
    stop.set()
    stdout, stderr = out
    try:
        summary = json.loads(stdout)
    except ValueError:
        summary = None
    return {
        "pid": proc.pid,
        "returncode": proc.returncode,
        "summary": summary,
        "stdout": stdout,
        "stderr": stderr,
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(peak_own / MB),
        "peak_worker_rss_mb": round(peak_children / MB),
        "peak_total_rss_mb": round(peak_total / MB),
        "dropped_read_capabilities": as_root,
    }


def check_outcome(expect: dict[str, Expect], good: dict[str, str], result: dict) -> list[str]:
    """Every way the run fell short of its promises (empty when it kept them all)."""
    problems = []
    summary = result["summary"]
    if result["returncode"] != 1:
        problems.append(f"exit code {result['returncode']}, expected 1")
    if "Traceback" in result["stderr"]:
        problems.append("a traceback on stderr")
    if summary is None:
        return [*problems, "no JSON summary on stdout"]
    failed = {f["path"]: f["error"] for f in summary["failed"]}
    for name, want in expect.items():
        shown = os.fsencode(f"hostile/{name}").decode("utf-8", "backslashreplace")
        reason = failed.get(shown)
        if want.outcome == "fail" and (reason is None or want.word not in reason.lower()):
            problems.append(
                f"{shown!r}: expected a failure mentioning {want.word!r}, got {reason!r}"
            )
        if want.outcome == "ok" and reason is not None:
            problems.append(f"{shown!r}: expected it indexed, failed with {reason!r}")
    for name in good:
        if f"good/{name}" in failed:
            problems.append(f"good file {name!r} failed: {failed[f'good/{name}']}")
    return problems


if __name__ == "__main__":
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("make_samples", root / "data/make_samples.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_samples"] = module
    spec.loader.exec_module(module)
    out = write_hostile(Path(sys.argv[1]), module, heavy="--heavy" in sys.argv)
    print(f"{len(out)} hostile files in {sys.argv[1]}")
