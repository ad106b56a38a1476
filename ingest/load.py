"""Turn one file into a document: a title and an ordered list of blocks (titles, text, tables).

unstructured parses the office and web formats offline (DOCX, PPTX, XLSX, HTML, Markdown, text,
e-mail). Two formats are read directly, each for a measured reason:
- PDF with pypdfium2: unstructured's pdfminer path parsed 2.7 pages/s on a 10-K filing here,
  pdfium 190 pages/s with the same text; on long filings parsing would otherwise cost more than
  embedding. The PDF outline (bookmarks) supplies section titles.
- CSV/TSV with the csv module: it keeps every row as cells, so the splitter can repeat the header
  in each chunk, and decoding goes through ingest.textio (GBK exports from Excel are common).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from kb.ingest.textio import UndecodableText, decode_text
from kb.models.bundled import SPACY_EN, verify_files
from kb.text import CJK_WIDE, is_wide

log = logging.getLogger(__name__)


class LoadError(Exception):
    """A file could not be turned into text; the message is the reason shown to the user."""


@dataclass
class Block:
    text: str
    kind: str = "text"  # "title" | "text" | "list" | "table"
    page: int | None = None  # 1-based page (PDF) or slide (PPTX) or sheet (XLSX)
    level: int = 0  # heading depth for titles, 0 = top
    rows: list[list[str]] | None = None  # tables: the first row is the header


@dataclass
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)
    # Who and when the whole document is about, when its first page says so and its pages do
    # not ("Best Buy Co., Inc. 10-K, fiscal year ended January 28, 2023"): kept with every
    # chunk for keyword search.
    context: str = ""

    @property
    def char_count(self) -> int:
        return sum(len(b.text) for b in self.blocks)


_CJK_BREAK = re.compile(f"(?<=[{CJK_WIDE}])\n(?=[{CJK_WIDE}])")
_SPACES = re.compile(r"[ \t\u00a0]+")


def clean_text(text: str, join_cjk_lines: bool = True) -> str:
    """Tidy extracted text: unify spaces, and rejoin Chinese lines that a layout wrapped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x0c", "\n")
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    if join_cjk_lines:
        text = _CJK_BREAK.sub("", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# --- PDF ---------------------------------------------------------------------------------


def reflow(text: str) -> str:
    """Rejoin the lines of a PDF page that layout wrapped, keep real breaks (headings, rows).

    A line is a wrapped continuation when it nearly fills the page width or the next line starts
    in lower case. Chinese lines join without a space.
    """
    lines = text.split("\n")
    width = max((len(line) for line in lines), default=0)
    out: list[str] = []
    for line in lines:
        if out and out[-1] and line:
            previous = out[-1]
            wrapped = len(previous) >= 0.7 * width and not previous.endswith((":", "："))
            if (wrapped or line[0].islower()) and not previous.endswith(("。", "！", "？")):
                cjk = is_wide(previous[-1]) and is_wide(line[0])
                out[-1] = previous + ("" if cjk else " ") + line
                continue
        out.append(line)
    return "\n".join(out)


def _pdf_outline(pdf) -> dict[int, list[tuple[int, str]]]:
    """Map 1-based page -> [(level, title)] from the PDF's bookmarks, when it has them."""
    outline: dict[int, list[tuple[int, str]]] = {}
    try:
        for item in pdf.get_toc(max_depth=4):
            page_index = getattr(item, "page_index", None)
            title = (getattr(item, "title", "") or "").strip()
            if page_index is not None and title:
                outline.setdefault(page_index + 1, []).append((int(item.level), title))
    except Exception:
        log.debug("unreadable PDF outline", exc_info=True)
    return outline


def _page_lines(page) -> list[tuple[str, float]]:
    """The page's text lines with the largest font size in each line."""
    import pypdfium2.raw as pdfium_raw

    textpage = page.get_textpage()
    try:
        count = textpage.count_chars()
        text = textpage.get_text_range(0, count) if count else ""
        lines: list[tuple[str, float]] = []
        current: list[str] = []
        size = 0.0
        for index, char in enumerate(text):
            if char in "\r\n":
                if current:
                    lines.append(("".join(current), size))
                current, size = [], 0.0
                continue
            current.append(char)
            if not char.isspace():
                size = max(size, pdfium_raw.FPDFText_GetFontSize(textpage, index))
        if current:
            lines.append(("".join(current), size))
        return lines
    finally:
        textpage.close()


def _heading_levels(pages: list[list[tuple[str, float]]]) -> dict[float, int]:
    """Font sizes that mark headings (clearly larger than the body text), largest = level 0.

    Most PDFs carry no outline; a heading is the one thing typography reliably signals.
    """
    weight: dict[float, int] = {}
    for lines in pages:
        for text, size in lines:
            weight[round(size, 1)] = weight.get(round(size, 1), 0) + len(text)
    if not weight:
        return {}
    body = max(weight, key=weight.get)
    larger = sorted((s for s in weight if s >= body * 1.15), reverse=True)
    return {s: min(i, 3) for i, s in enumerate(larger)}


def _drop_running_lines(pages: list[list[tuple[str, float]]]) -> list[list[tuple[str, float]]]:
    """Remove running headers and footers: edge lines repeated on most pages ("Report - Page 7").

    They would otherwise start every page's first chunk with the same noise.
    """
    if len(pages) < 3:
        return pages

    def key(text: str) -> str:
        return re.sub(r"\d+", "#", text.strip().lower())

    seen: dict[str, int] = {}
    for lines in pages:
        for text in {key(t) for t, _ in lines[:2] + lines[-2:]}:
            seen[text] = seen.get(text, 0) + 1
    running = {k for k, n in seen.items() if k and n >= max(3, len(pages) // 2)}
    return [
        [
            (t, s)
            for i, (t, s) in enumerate(lines)
            if not ((i < 2 or i >= len(lines) - 2) and key(t) in running)
        ]
        for lines in pages
    ]


def _is_heading_text(text: str) -> bool:
    text = text.strip()
    return (
        2 <= len(text) <= 80
        and not text.replace(".", "").isdigit()
        and any(c.isalpha() for c in text)
    )


def load_pdf(path: Path) -> Document:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        message = str(exc)
        if "password" in message.lower():
            raise LoadError("encrypted PDF: it needs a password, remove the protection") from exc
        raise LoadError(f"corrupt or unreadable PDF ({message})") from exc
    try:
        try:
            title = (pdf.get_metadata_dict().get("Title") or "").strip()
        except Exception:  # noqa: BLE001 - metadata is optional
            title = ""
        outline = _pdf_outline(pdf)
        pages = []
        for index in range(len(pdf)):
            page = pdf[index]
            try:
                pages.append(_page_lines(page))
            finally:
                page.close()
    finally:
        pdf.close()
    pages = _drop_running_lines(pages)
    levels = {} if outline else _heading_levels(pages)
    blocks: list[Block] = []
    for number, lines in enumerate(pages, start=1):
        for level, heading in outline.get(number, []):
            blocks.append(Block(heading, "title", page=number, level=level))
        body: list[str] = []
        for text, size in lines:
            level = levels.get(round(size, 1))
            if level is not None and _is_heading_text(text):
                if body:
                    blocks.append(Block(reflow(clean_text("\n".join(body), False)), page=number))
                    body = []
                blocks.append(Block(clean_text(text), "title", page=number, level=level))
            else:
                body.append(text)
        if body:
            text = reflow(clean_text("\n".join(body), join_cjk_lines=False))
            if text:
                blocks.append(Block(text, "text", page=number))
    if not any(b.kind == "text" for b in blocks):
        raise LoadError(
            "PDF has no extractable text (scanned images need OCR, which kb does not do)"
        )
    return Document(title=title, blocks=blocks)


# --- CSV ---------------------------------------------------------------------------------


def load_delimited(path: Path, delimiter: str | None) -> Document:
    text = decode_text(path.read_bytes())
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    rows = [
        [cell.strip() for cell in row]
        for row in csv.reader(io.StringIO(text), delimiter=delimiter)
        if any(cell.strip() for cell in row)
    ]
    if not rows:
        raise LoadError("no rows")
    body = "\n".join(" | ".join(row) for row in rows)
    return Document(title="", blocks=[Block(body, "table", rows=rows)])


# --- formats parsed by unstructured ------------------------------------------------------

_SKIPPED_CATEGORIES = {"PageBreak", "Header", "Footer", "PageNumber", "Image", "FigureCaption"}


def _table_rows(html: str | None) -> list[list[str]] | None:
    if not html:
        return None
    from lxml import html as lxml_html

    try:
        tree = lxml_html.fromstring(html)
    except (ValueError, TypeError):
        return None
    rows = []
    for tr in tree.iter("tr"):
        cells = [" ".join(td.text_content().split()) for td in tr if td.tag in ("td", "th")]
        if any(cells):
            rows.append(cells)
    return rows or None


# Markdown's hard line break ("\\" at a line end) survives unstructured as a stray backslash.
_MD_HARD_BREAK = re.compile(r"\\(?=\s|$)")


def _plausible_heading(text: str) -> bool:
    # Plain text has no heading markup and unstructured's guess is English-centric: it calls
    # most short Chinese lines titles. A heading is short and does not end like a sentence.
    return len(text) <= 40 and not re.search(r"[。！？；，,.!?;:：]$|^[问答QA][：:]", text)


def _blocks_from_elements(elements, fmt: str) -> tuple[str, list[Block]]:
    blocks: list[Block] = []
    title = ""
    titled_pages: set[int | None] = set()
    for element in elements:
        category = getattr(element, "category", "")
        text = getattr(element, "text", "") or ""
        if fmt == "md":
            text = _MD_HARD_BREAK.sub("", text)
        text = clean_text(text)
        if category in _SKIPPED_CATEGORIES or not text:
            continue
        meta = element.metadata
        page = getattr(meta, "page_number", None)
        if category == "Title" and fmt == "pptx":
            # A slide has one title; unstructured calls short bullet lines titles as well.
            if page in titled_pages:
                category = "ListItem"
            titled_pages.add(page)
        if category == "Title" and fmt == "text" and not _plausible_heading(text):
            category = "NarrativeText"
        if category == "Title":
            level = getattr(meta, "category_depth", None) or 0
            blocks.append(Block(text, "title", page=page, level=int(level)))
            title = title or text
        elif category == "Table":
            rows = _table_rows(getattr(meta, "text_as_html", None))
            body = "\n".join(" | ".join(r) for r in rows) if rows else text
            blocks.append(Block(body, "table", page=page, rows=rows))
        elif category == "ListItem":
            blocks.append(Block(text, "list", page=page))
        else:
            blocks.append(Block(text, "text", page=page))
    return title, blocks


# Longer paragraphs are never headings, and unstructured's per-paragraph language analysis is
# slow on them (a 1 MB paragraph took 55 s and 2.7 GB here): they skip it.
_LONG_PARAGRAPH = 4000
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


def _partition_plain_text(text: str):
    from unstructured.documents.elements import NarrativeText
    from unstructured.partition.text import partition_text

    paragraphs = _PARAGRAPH_BREAK.split(text)
    if max(len(p) for p in paragraphs) <= _LONG_PARAGRAPH:
        return partition_text(text=text)
    elements, short = [], []
    for paragraph in [*paragraphs, None]:
        if paragraph is None or len(paragraph) > _LONG_PARAGRAPH:
            if any(p.strip() for p in short):
                elements += partition_text(text="\n\n".join(short))
            short = []
            if paragraph is not None:
                elements.append(NarrativeText(text=paragraph))
        else:
            short.append(paragraph)
    return elements


# Office files are ZIP containers; their declared sizes bound what Python's zipfile (used by the
# docx, pptx and xlsx readers) will ever inflate, so checking them first stops ZIP bombs cheaply.
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def check_office_container(path: Path, fmt: str, max_unpacked_bytes: int | None) -> None:
    import zipfile

    with path.open("rb") as fh:
        head = fh.read(8)
    if head == _OLE_MAGIC:
        raise LoadError(
            f"encrypted or legacy {fmt.upper()} file: it is password-protected or saved in the "
            "old Office format; remove the password or save it again as ." + fmt
        )
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise LoadError(
            f"corrupt {fmt.upper()} file (not a readable ZIP container: {exc})"
        ) from exc
    if max_unpacked_bytes is not None and unpacked > max_unpacked_bytes:
        raise LoadError(
            f"{fmt.upper()} contents would unpack to {unpacked / 2**20:,.0f} MB "
            f"(> KB_MAX_UNPACKED_MB={max_unpacked_bytes / 2**20:g}): refused as a possible ZIP bomb"
        )


def _partition(path: Path, fmt: str):
    # unstructured loads this spaCy pipeline for its text heuristics: check it first.
    verify_files(SPACY_EN)
    # Imported here: unstructured takes seconds to import, and `kb search` never needs it.
    if fmt == "docx":
        from unstructured.partition.docx import partition_docx

        return partition_docx(filename=str(path))
    if fmt == "pptx":
        from unstructured.partition.pptx import partition_pptx

        return partition_pptx(filename=str(path))
    if fmt == "xlsx":
        from unstructured.partition.xlsx import partition_xlsx

        return partition_xlsx(filename=str(path), find_subtable=False)
    if fmt == "eml":
        from unstructured.partition.email import partition_email

        return partition_email(filename=str(path), process_attachments=False)
    text = decode_text(path.read_bytes())
    if not text.strip():
        raise LoadError("no text")
    if fmt == "md":
        from unstructured.partition.md import partition_md

        return partition_md(text=text)
    if fmt == "html":
        from unstructured.partition.html import partition_html

        return partition_html(text=text)
    return _partition_plain_text(text)


def _html_title(path: Path) -> str:
    match = re.search(rb"<title[^>]*>(.*?)</title>", path.read_bytes()[:65536], re.I | re.S)
    if not match:
        return ""
    try:
        return clean_text(decode_text(match.group(1)))
    except UndecodableText:
        return ""


def _eml_subject(path: Path) -> str:
    from email import message_from_bytes, policy

    message = message_from_bytes(path.read_bytes()[:65536], policy=policy.default)
    return str(message.get("subject", "") or "").strip()


def load(path: Path, fmt: str, max_unpacked_bytes: int | None = None) -> Document:
    """Parse `path` (of format `fmt`, see ingest.discover.SUPPORTED) into a Document.

    Raises LoadError with a user-facing reason for anything that yields no usable text.
    """
    try:
        if fmt in ("docx", "pptx", "xlsx"):
            check_office_container(path, fmt, max_unpacked_bytes)
        if fmt == "pdf":
            doc = load_pdf(path)
        elif fmt in ("csv", "tsv"):
            doc = load_delimited(path, "\t" if fmt == "tsv" else None)
        else:
            title, blocks = _blocks_from_elements(_partition(path, fmt), fmt)
            if fmt == "html":
                title = _html_title(path) or title
            elif fmt == "eml":
                title = _eml_subject(path) or title
            elif fmt in ("xlsx", "pptx", "text"):
                # Their first "title" is a cell or a line, not the document's name.
                title = title if fmt == "pptx" else ""
            doc = Document(title=title, blocks=blocks)
    except (LoadError, MemoryError, RecursionError):
        raise
    except UndecodableText as exc:
        raise LoadError(str(exc)) from exc
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LoadError(
            f"cannot parse {fmt.upper()} file ({type(exc).__name__}: {reason[:200]})"
        ) from exc
    if not doc.blocks or doc.char_count == 0:
        raise LoadError("no text found in the file")
    if not doc.title:
        doc.title = path.stem
    if not doc.context:
        doc.context = document_context(doc)
    return doc


# A filing's cover page: the registrant's name sits above this phrase, the period in a line
# like "For the fiscal year ended December 31, 2018"; the same shape serves annual and
# quarterly reports, current reports and their exhibits.
_REGISTRANT = re.compile(r"\(exact name of (?:the )?registrant", re.IGNORECASE)
_PERIOD = re.compile(
    r"(fiscal year|quarterly period|year|period|quarter)\s+ended\s+"
    r"([A-Z][a-z]+\.?\s+\d{1,2}\s*,\s*\d{4})",
    re.IGNORECASE,
)
_NAME_BREAK = re.compile(r"\n|_{3,}|number:?\s*[\d-]+", re.IGNORECASE)
_FORM = re.compile(r"\bFORM\s+(10-K|10-Q|8-K|20-F|6-K|S-1)\b", re.IGNORECASE)
_REPORT_DATE = re.compile(r"date of report[^:]*:\s*([A-Z][a-z]+\.?\s+\d{1,2}\s*,\s*\d{4})", re.I)


def document_context(doc: Document, pages: int = 2) -> str:
    """The subject and period a document's first pages state, for chunks that do not name
    them: a filing's registrant, form and period. Empty when the first pages hold none."""
    first = [b.text for b in doc.blocks if b.page is not None and b.page <= pages]
    if not first:
        return ""
    text = "\n".join(first)
    registrant = _REGISTRANT.search(text)
    name = ""
    if registrant is not None:
        # Reflowed cover pages run the name into what precedes it: cut at line breaks, rules
        # ("____") and the commission file number, and keep the last piece.
        pieces = _NAME_BREAK.split(text[: registrant.start()])
        name = next((p.strip() for p in reversed(pieces) if p and p.strip()), "")[-80:]
    form = _FORM.search(text)
    period = _PERIOD.search(text)
    when = f"{period.group(1)} ended {period.group(2)}" if period else ""
    if not when and (reported := _REPORT_DATE.search(text)):
        when = f"report dated {reported.group(1)}"
    if not (form and when):
        return ""
    return ", ".join(x for x in (name, form.group(1).upper(), when) if x)
