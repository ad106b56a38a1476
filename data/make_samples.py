"""Generate the sample knowledge base of the fictional Aurora Robotics Ltd.

Run from the repository root:

    .venv/bin/python data/make_samples.py

Every file under ``data/samples/`` is rewritten from the content defined in this
module. Output is byte-for-byte reproducible: document metadata dates are fixed,
reportlab runs in invariant mode and the Office (zip) containers are rewritten
with fixed member timestamps, so regenerating never produces a spurious diff.

The ``write_*`` functions are deliberately generic so tests or benchmarks can
build extra documents with the same block model (``Heading``, ``Para``,
``Bullets``, ``Table``, ``PageBreak`` and ``Slide``).
"""

from __future__ import annotations

import csv
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from html import escape as html_escape
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape

import docx
import openpyxl
import pptx
from docx.oxml.ns import qn
from docx.shared import Pt
from openpyxl.styles import Font
from pptx.util import Pt as PptPt
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import PageBreak as RLPageBreak
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, TableStyle
from reportlab.platypus import Table as RLTable

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"

COMPANY_EN = "Aurora Robotics Ltd."
COMPANY_ZH = "极光机器人有限公司"
AUTHOR = "Aurora Robotics Ltd."

# One fixed instant for every piece of metadata, so output never depends on
# when the script runs.
FIXED_TIME = datetime(2026, 11, 1, 9, 0, 0)
ZIP_TIME = FIXED_TIME.timetuple()[:6]

# Built into reportlab (no font file needed) and pdfium maps it back to proper
# Unicode, so Chinese text extracts cleanly from the generated PDF.
CJK_FONT = "STSong-Light"


# --------------------------------------------------------------------------
# Document model
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Heading:
    """Section heading; level 1 sits directly under the document title."""

    text: str
    level: int = 1


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: Sequence[str]


@dataclass(frozen=True)
class Table:
    """A simple grid; the first row is the header."""

    rows: Sequence[Sequence[str]]


@dataclass(frozen=True)
class PageBreak:
    """Hard page break (honoured by PDF and DOCX, ignored elsewhere)."""


Block = Heading | Para | Bullets | Table | PageBreak


@dataclass(frozen=True)
class Slide:
    """One slide. A non-empty ``subtitle`` selects the title-slide layout.

    Bullets starting with two spaces are rendered one indentation level deeper.
    """

    title: str
    bullets: Sequence[str] = field(default_factory=tuple)
    subtitle: str = ""


# --------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------


def _normalize_ooxml(path: Path) -> None:
    """Rewrite an Office zip so repeated runs give identical bytes.

    python-docx, python-pptx and openpyxl stamp each zip member with the
    current time, and openpyxl always overwrites the "modified" core property
    with now() on save, so both are pinned after the fact.
    """
    with zipfile.ZipFile(path) as src:
        members = [(info.filename, src.read(info.filename)) for info in src.infolist()]
    stamp = FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for name, data in members:
            if name == "docProps/core.xml":
                data = re.sub(
                    rb"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:\2>)",
                    rb"\g<1>" + stamp.encode() + rb"\g<3>",
                    data,
                )
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, data)


def _pdf_styles(lang: str) -> dict[str, ParagraphStyle]:
    base = getSampleStyleSheet()
    if lang == "zh":
        pdfmetrics.registerFont(UnicodeCIDFont(CJK_FONT))
        regular = bold = CJK_FONT
        # CJK wrapping breaks between any two characters; the default
        # whitespace-based wrapping would overflow on Chinese lines.
        wrap = "CJK"
        leading = 1.6
    else:
        regular, bold, wrap, leading = "Helvetica", "Helvetica-Bold", None, 1.35

    def make(name: str, parent: str, size: float, font: str, **kw: object) -> ParagraphStyle:
        style = ParagraphStyle(
            name,
            parent=base[parent],
            fontName=font,
            fontSize=size,
            leading=size * leading,
            **kw,
        )
        if wrap:
            style.wordWrap = wrap
        return style

    return {
        "title": make("KbTitle", "Title", 20, bold, alignment=TA_CENTER, spaceAfter=6),
        "h1": make("KbH1", "Heading1", 15, bold, spaceBefore=12, spaceAfter=6),
        "h2": make("KbH2", "Heading2", 12.5, bold, spaceBefore=8, spaceAfter=4),
        "body": make("KbBody", "BodyText", 10.5, regular, spaceAfter=6),
        "bullet": make(
            "KbBullet",
            "BodyText",
            10.5,
            regular,
            leftIndent=14,
            bulletIndent=4,
            bulletFontName="Helvetica",
            spaceAfter=3,
        ),
        "cell": make("KbCell", "BodyText", 9.5, regular),
        "cellhead": make("KbCellHead", "BodyText", 9.5, bold),
    }


def write_pdf(
    path: Path,
    title: str,
    blocks: Sequence[Block],
    *,
    lang: str = "en",
    subject: str = "",
) -> None:
    """Write ``blocks`` as an A4 PDF with a page-number footer.

    ``lang="zh"`` switches to the built-in CID font so Chinese renders and
    extracts correctly.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    st = _pdf_styles(lang)
    footer_font = CJK_FONT if lang == "zh" else "Helvetica"

    def footer(canvas, doc) -> None:
        page = canvas.getPageNumber()
        label = f"{title}  第 {page} 页" if lang == "zh" else f"{title} - Page {page}"
        canvas.saveState()
        canvas.setFont(footer_font, 8)
        canvas.setFillColor(colors.grey)
        canvas.drawCentredString(A4[0] / 2, 1.2 * cm, label)
        canvas.restoreState()

    story: list = [Paragraph(xml_escape(title), st["title"]), Spacer(1, 6)]
    for block in blocks:
        if isinstance(block, Heading):
            style = st["h1"] if block.level <= 1 else st["h2"]
            story.append(Paragraph(xml_escape(block.text), style))
        elif isinstance(block, Para):
            story.append(Paragraph(xml_escape(block.text), st["body"]))
        elif isinstance(block, Bullets):
            story.extend(
                Paragraph(xml_escape(item), st["bullet"], bulletText="\u2022")
                for item in block.items
            )
        elif isinstance(block, Table):
            cells = [
                [Paragraph(xml_escape(c), st["cellhead" if r == 0 else "cell"]) for c in row]
                for r, row in enumerate(block.rows)
            ]
            # Paragraph cells have no natural width, so share the frame evenly.
            ncols = max(len(row) for row in cells)
            col_width = (A4[0] - 4 * cm) / ncols
            table = RLTable(cells, colWidths=[col_width] * ncols, hAlign="LEFT", repeatRows=1)
            table.setStyle(
                TableStyle(
                    [
                        ("GRID", (0, 0), (-1, -1), 0.5, colors.grey),
                        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#DDE6F0")),
                        ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ]
                )
            )
            story.extend([table, Spacer(1, 8)])
        elif isinstance(block, PageBreak):
            story.append(RLPageBreak())

    doc = SimpleDocTemplate(
        str(path),
        pagesize=A4,
        leftMargin=2 * cm,
        rightMargin=2 * cm,
        topMargin=2 * cm,
        bottomMargin=2.2 * cm,
        title=title,
        author=AUTHOR,
        subject=subject,
        creator=AUTHOR,
        # invariant=1 fixes the creation date and document ID in the output.
        invariant=1,
    )
    doc.build(story, onFirstPage=footer, onLaterPages=footer)


def _set_docx_core(core: Any, title: str, lang: str) -> None:
    # Shared by DOCX and PPTX: both expose the same core-properties API.
    core.title = title
    core.author = AUTHOR
    core.last_modified_by = AUTHOR
    core.created = FIXED_TIME
    core.modified = FIXED_TIME
    core.last_printed = FIXED_TIME
    core.revision = 1
    core.language = "zh-CN" if lang == "zh" else "en-US"


def write_docx(path: Path, title: str, blocks: Sequence[Block], *, lang: str = "en") -> None:
    """Write ``blocks`` as a Word document using the built-in Heading styles."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = docx.Document()
    _set_docx_core(document.core_properties, title, lang)

    normal = document.styles["Normal"]
    normal.font.size = Pt(10.5)
    if lang == "zh":
        # Without an explicit East Asian font Word falls back to whatever the
        # viewer's locale picks, which often renders Chinese badly.
        normal.element.get_or_add_rPr().get_or_add_rFonts().set(qn("w:eastAsia"), "SimSun")

    document.add_heading(title, level=0)
    for block in blocks:
        if isinstance(block, Heading):
            document.add_heading(block.text, level=max(1, min(block.level, 9)))
        elif isinstance(block, Para):
            document.add_paragraph(block.text)
        elif isinstance(block, Bullets):
            for item in block.items:
                document.add_paragraph(item, style="List Bullet")
        elif isinstance(block, Table):
            ncols = max(len(row) for row in block.rows)
            table = document.add_table(rows=len(block.rows), cols=ncols, style="Table Grid")
            for r, row in enumerate(block.rows):
                for c, text in enumerate(row):
                    cell = table.cell(r, c)
                    cell.text = text
                    if r == 0:
                        for run in cell.paragraphs[0].runs:
                            run.bold = True
            document.add_paragraph()
        elif isinstance(block, PageBreak):
            document.add_page_break()

    document.save(str(path))
    _normalize_ooxml(path)


def write_pptx(path: Path, title: str, slides: Sequence[Slide], *, lang: str = "en") -> None:
    """Write a deck using the default template's title / title-and-content layouts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    prs = pptx.Presentation()
    _set_docx_core(prs.core_properties, title, lang)
    title_layout, content_layout = prs.slide_layouts[0], prs.slide_layouts[1]

    for spec in slides:
        if spec.subtitle:
            slide = prs.slides.add_slide(title_layout)
            slide.shapes.title.text = spec.title
            slide.placeholders[1].text = spec.subtitle
            continue
        slide = prs.slides.add_slide(content_layout)
        slide.shapes.title.text = spec.title
        frame = slide.placeholders[1].text_frame
        for i, raw in enumerate(spec.bullets):
            level = 1 if raw.startswith("  ") else 0
            para = frame.paragraphs[0] if i == 0 else frame.add_paragraph()
            para.text = raw.strip()
            para.level = level
            # The default 28/24 pt overflows the placeholder with 5-6 bullets.
            para.font.size = PptPt(20 if level == 0 else 16)

    prs.save(str(path))
    _normalize_ooxml(path)


def write_xlsx(path: Path, title: str, sheets: Mapping[str, Sequence[Sequence[object]]]) -> None:
    """Write one worksheet per mapping entry; the first row of each is a bold header."""
    path.parent.mkdir(parents=True, exist_ok=True)
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    props = wb.properties
    props.title, props.creator, props.lastModifiedBy = title, AUTHOR, AUTHOR
    props.created = props.modified = FIXED_TIME

    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append(list(row))
        for cell in ws[1]:
            cell.font = Font(bold=True)
        ws.freeze_panes = "A2"
        for col_cells in ws.columns:
            width = max(len(str(c.value)) for c in col_cells if c.value is not None)
            ws.column_dimensions[col_cells[0].column_letter].width = min(width + 2, 70)

    wb.save(str(path))
    _normalize_ooxml(path)


def write_csv(path: Path, rows: Sequence[Sequence[object]]) -> None:
    """Write UTF-8 CSV with ``\\n`` line endings (first row is the header)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


def write_html(
    path: Path,
    title: str,
    blocks: Sequence[Block],
    *,
    lang: str = "en",
    description: str = "",
) -> None:
    """Write a standalone UTF-8 HTML page: title as <h1>, level-N headings as <h(N+1)>."""
    path.parent.mkdir(parents=True, exist_ok=True)
    e = html_escape
    out = [
        "<!DOCTYPE html>",
        f'<html lang="{"zh-CN" if lang == "zh" else "en"}">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta name="author" content="{e(AUTHOR)}">',
    ]
    if description:
        out.append(f'<meta name="description" content="{e(description)}">')
    out += [
        f"<title>{e(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:48em;margin:2em auto;line-height:1.5}"
        "table{border-collapse:collapse}td,th{border:1px solid #999;padding:4px 8px}</style>",
        "</head>",
        "<body>",
        "<main>",
        f"<h1>{e(title)}</h1>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            level = min(block.level + 1, 6)
            out.append(f"<h{level}>{e(block.text)}</h{level}>")
        elif isinstance(block, Para):
            out.append(f"<p>{e(block.text)}</p>")
        elif isinstance(block, Bullets):
            out.append("<ul>")
            out += [f"<li>{e(item)}</li>" for item in block.items]
            out.append("</ul>")
        elif isinstance(block, Table):
            out.append("<table>")
            head, *body = block.rows
            out.append("<tr>" + "".join(f"<th>{e(c)}</th>" for c in head) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in body]
            out.append("</table>")
    out += ["</main>", "</body>", "</html>", ""]
    path.write_text("\n".join(out), encoding="utf-8", newline="\n")


def write_markdown(path: Path, title: str, blocks: Sequence[Block]) -> None:
    """Write UTF-8 Markdown: title as ``#``, level-N headings as N+1 hashes."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    parts = [f"# {title}"]
    for block in blocks:
        if isinstance(block, Heading):
            parts.append("#" * min(block.level + 1, 6) + " " + block.text)
        elif isinstance(block, Para):
            parts.append(block.text)
        elif isinstance(block, Bullets):
            parts.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            head, *body = block.rows
            lines = ["| " + " | ".join(cell(c) for c in head) + " |"]
            lines.append("|" + "|".join(" --- " for _ in head) + "|")
            lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in body]
            parts.append("\n".join(lines))
    path.write_text("\n\n".join(parts) + "\n", encoding="utf-8", newline="\n")


def write_text(path: Path, title: str, blocks: Sequence[Block], *, encoding: str = "utf-8") -> None:
    """Write plain text, one blank line between blocks.

    ``encoding`` exists so the corpus can include legacy encodings such as GBK;
    encoding is strict, so a character the codec cannot represent fails loudly
    instead of silently turning into '?'.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = [title]
    for block in blocks:
        if isinstance(block, (Heading, Para)):
            parts.append(block.text)
        elif isinstance(block, Bullets):
            parts.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            parts.append("\n".join("\t".join(row) for row in block.rows))
    path.write_bytes(("\n\n".join(parts) + "\n").encode(encoding))


def write_eml(
    path: Path,
    *,
    sender: str,
    to: str,
    subject: str,
    date: datetime,
    message_id: str,
    body: str,
) -> None:
    """Write a single-part text/plain RFC 822 message.

    ``date`` and ``message_id`` are parameters rather than generated so the
    file stays reproducible.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    # Keep every body line under 78 characters: longer lines make the email
    # package switch to quoted-printable, which breaks grepping the raw file.
    msg.set_content(body)
    path.write_bytes(msg.as_bytes())


# --------------------------------------------------------------------------
# Content: English
# --------------------------------------------------------------------------

EN_HANDBOOK: list[Block] = [
    Para("Version 4.2. Effective 1 January 2026. Owner: People & Culture Department."),
    Heading("1. Welcome to Aurora Robotics"),
    Para(
        "Aurora Robotics Ltd. designs and builds autonomous mobile robots for warehouses, "
        "factories and hospitals. Our headquarters is in Shanghai, and we have offices in "
        "Shenzhen and Singapore. This handbook explains what you can expect from the company "
        "and what the company expects from you."
    ),
    Para(
        "The handbook applies to all permanent employees in every office unless a local "
        "supplement says otherwise. Where local law gives employees more generous terms, "
        "local law prevails. Questions about any policy should go to your manager or to "
        "People & Culture at hr@aurora.example."
    ),
    Heading("2. Working Hours"),
    Para(
        "Standard working hours are 9:30 to 18:00, Monday to Friday. "
        "This includes a one-hour lunch break, normally taken between 12:00 and 13:00."
    ),
    Para(
        "Core hours, when everyone is expected to be available for meetings, are 10:00 to "
        "16:00. Flexible start times between 8:30 and 10:30 may be agreed with your manager "
        "as long as your team's core hours are covered. Staff working in the robot test "
        "lab or at customer warehouses follow the shift plan published by their site lead."
    ),
    Para(
        "Overtime must be approved in advance by your manager. Approved overtime is "
        "compensated with time off in lieu or with overtime pay where local law requires it. "
        "Record your hours in the HR portal by the last working day of each month."
    ),
    Heading("3. Probation"),
    Para(
        "The probation period is 3 months. "
        "During probation your manager holds check-ins at the end of the first and second "
        "months and a formal review before the end of the third month. A successful review "
        "confirms your permanent employment; otherwise probation may end the contract in "
        "line with local law."
    ),
    Para(
        "New employees are paired with a mentor for their first three months and must "
        "complete the mandatory courses on the Aurora Academy learning platform within "
        "30 days of joining, including information security and workplace safety."
    ),
    PageBreak(),
    Heading("4. Leave"),
    Heading("4.1 Annual leave", level=2),
    Para("Employees receive 15 days of paid annual leave per year; managers receive 20 days."),
    Para(
        "Annual leave accrues monthly from your start date and is pro-rated in your first "
        "calendar year. Requests are submitted in the HR portal and should be made at least "
        "two weeks in advance for absences of three working days or more."
    ),
    Para(
        "Up to 5 unused days may be carried over to the following year and must be taken "
        "by 31 March. Other unused days lapse at year end unless local law requires them "
        "to be paid out. Managers are asked to help their teams plan leave before December."
    ),
    Heading("4.2 Sick leave", level=2),
    Para(
        "Employees receive 10 days of paid sick leave per year. "
        "A medical certificate is required for absences longer than two consecutive working "
        "days. Sick leave beyond 10 days is handled according to local statutory rules."
    ),
    Para(
        "If you are ill, tell your manager before 10:00 on the first day of absence and "
        "record the absence in the HR portal when you return."
    ),
    Heading("4.3 Other leave", level=2),
    Bullets(
        [
            "Marriage leave: 3 days of paid leave, taken within 12 months of the marriage.",
            "Bereavement leave: 3 days of paid leave for the loss of an immediate family member.",
            "Parental leave: as provided by local law, plus 5 additional paid days from Aurora.",
            "Volunteer day: 1 paid day per year for approved community work.",
        ]
    ),
    Para(
        "Public holidays follow the official calendar of each office's location. The list "
        "of public holidays for the year is published by People & Culture each December."
    ),
    PageBreak(),
    Heading("5. Remote Work"),
    Para(
        "Employees may work remotely up to 2 days per week with manager approval. "
        "Remote days are agreed in advance with your manager and recorded in the team "
        "calendar; they cannot be carried over from one week to the next."
    ),
    Para(
        "When working remotely you must connect through the company VPN, keep customer data "
        "on company devices only, and be reachable during core hours. Roles that require lab "
        "or warehouse access, such as robot test engineers, may have fewer remote days."
    ),
    Heading("6. Code of Conduct"),
    Para(
        "We expect everyone to act with honesty, respect and care for safety. Harassment "
        "and discrimination of any kind are not tolerated. Conflicts of interest, gifts "
        "above USD 50 and outside employment must be declared to People & Culture."
    ),
    Para(
        "Safety comes first around robots: only trained staff may enter a live robot test "
        "area, and anyone may stop a test if they see an unsafe situation."
    ),
    Heading("7. Pay and Benefits"),
    Para(
        "Salaries are paid on the 10th of each month. All permanent employees are covered by "
        "supplementary health insurance and receive an annual health check. Employees in "
        "China receive a monthly meal subsidy; the Singapore office follows local practice."
    ),
    Heading("8. Contacts"),
    Bullets(
        [
            "People & Culture: hr@aurora.example",
            "IT Helpdesk: it-helpdesk@aurora.example, extension 8000",
            "Information Security: security@aurora.example",
            "Facilities (Shanghai HQ): facilities-sh@aurora.example",
        ]
    ),
]

EN_TRAVEL_POLICY: list[Block] = [
    Para("Policy owner: Finance Department. Version 3.0. Effective 1 January 2026."),
    Heading("1. Purpose and Scope"),
    Para(
        "This policy explains how Aurora Robotics employees book business travel and claim "
        "reimbursement for reasonable business expenses. It applies to all employees and "
        "contractors travelling on company business from any office."
    ),
    Para(
        "Travellers are expected to spend company money as carefully as their own. Costs "
        "that exceed the limits below are reimbursed only up to the limit unless an "
        "exception was approved before the trip."
    ),
    Heading("2. Booking Travel"),
    Para(
        "Flights and hotels must be booked through the company travel portal unless a "
        "cheaper fare is available elsewhere and the booking is refundable."
    ),
    Para(
        "Economy class is required for flights under 6 hours. "
        "Premium economy may be booked for flights of 6 hours or longer. Business class "
        "requires written approval from a vice president."
    ),
    Para(
        "For journeys in mainland China under 5 hours, high-speed rail (second class) "
        "should be preferred over flying. Taxis and ride-hailing are reimbursed for "
        "business journeys; keep every receipt."
    ),
    Heading("3. Accommodation and Meals"),
    Para(
        "The hotel cap is USD 180 per night in tier-1 cities and USD 130 per night elsewhere. "
        "Tier-1 cities are Shanghai, Beijing, Shenzhen, Guangzhou, Singapore, Hong Kong, "
        "Tokyo, London, New York and San Francisco."
    ),
    Para(
        "The meal allowance is USD 60 per day. "
        "It covers breakfast, lunch, dinner and tips. Alcohol is not reimbursable except "
        "during approved client entertainment."
    ),
    Heading("Summary of limits", level=2),
    Table(
        [
            ["Expense", "Tier-1 cities", "Other cities", "Notes"],
            ["Hotel, per night", "USD 180", "USD 130", "Including taxes and fees"],
            ["Meals, per day", "USD 60", "USD 60", "Itemised receipts above USD 25"],
            ["Flights under 6 hours", "Economy", "Economy", "Book via travel portal"],
            ["Flights of 6 hours or more", "Premium economy", "Premium economy", ""],
            ["Ground transport", "Taxi or ride-hailing", "Taxi or ride-hailing", "Keep receipts"],
        ]
    ),
    Heading("4. Approvals"),
    Para(
        "Any single expense above USD 500 needs prior approval from the department head. "
        "Request the approval in writing before you commit the money and attach it to "
        "your claim."
    ),
    Para(
        "International trips must be approved by your line manager at least 10 working days "
        "before departure so that visas, insurance and the travel portal booking can be "
        "arranged in time."
    ),
    Heading("5. Submitting Claims"),
    Para(
        "Expense claims must be submitted within 30 days of the trip. "
        "Late claims are reimbursed only with the written consent of the Finance Director."
    ),
    Para(
        "Attach an itemised receipt for every expense. Foreign currency amounts are converted "
        "at the rate published on the day of the expense, and approved claims are paid with "
        "the next monthly payroll."
    ),
    Heading("6. Non-reimbursable Items"),
    Bullets(
        [
            "Personal entertainment, minibar items and in-room movies.",
            "Traffic fines, parking fines and penalties of any kind.",
            "Seat or cabin upgrades without prior approval.",
            "Expenses for family members or other people travelling with you.",
        ]
    ),
    Heading("7. Contact"),
    Para("Questions about this policy: finance@aurora.example."),
]

EN_SECURITY_FAQ: list[Block] = [
    Para(
        "This page answers the most common information security questions from Aurora "
        "Robotics staff. It is maintained by the Information Security team and reviewed "
        "every quarter."
    ),
    Heading("How long must my password be, and how often do I change it?"),
    Para("Passwords must be at least 14 characters long and must be changed every 90 days."),
    Para(
        "We recommend a passphrase of four or more unrelated words. You cannot reuse any of "
        "your last 10 passwords, and the same password must never be used for personal "
        "accounts."
    ),
    Heading("Do I need multi-factor authentication?"),
    Para(
        "Yes. Multi-factor authentication is enabled for e-mail, the VPN, the HR portal and "
        "the source code repositories. Use the authenticator app on your company phone or a "
        "hardware key issued by IT."
    ),
    Heading("When do I need to use the VPN?"),
    Para(
        "You must connect through the VPN whenever you work off the office network. "
        "This includes working from home, hotels, airports and customer sites. Public Wi-Fi "
        "without the VPN is never allowed for company work."
    ),
    Heading("How do I report a phishing e-mail?"),
    Para(
        "Report suspected phishing to security@aurora.example. "
        "Forward the message as an attachment, do not click links or open attachments, and "
        "delete it after reporting. If you already clicked a link, call the IT Helpdesk "
        "immediately on extension 8000."
    ),
    Heading("How often are laptops replaced?"),
    Para(
        "Laptops are refreshed every 3 years. "
        "IT contacts you about two months before your refresh date. Faulty laptops are "
        "repaired or replaced at any time through the IT Helpdesk."
    ),
    Heading("Can I use a personal USB drive?"),
    Para(
        "No. Personal USB storage is blocked on company laptops. Request an encrypted "
        "company drive from IT if you need to move large files offline."
    ),
    Heading("What should I do if my laptop or phone is lost or stolen?"),
    Para(
        "Report it to the IT Helpdesk within 24 hours so the device can be locked and wiped "
        "remotely. Also report theft to the local police and keep the report number."
    ),
    Heading("Can I install software myself?"),
    Para(
        "Install software only from the Self Service portal. Anything else must be "
        "requested through the IT Helpdesk and reviewed by Information Security."
    ),
    Heading("Who do I contact for help?"),
    Para(
        "The IT Helpdesk is available from 8:30 to 19:00 on working days at "
        "it-helpdesk@aurora.example or extension 8000."
    ),
]

EN_ALL_HANDS: list[Slide] = [
    Slide(
        "Q3 2026 All-Hands",
        subtitle="Aurora Robotics Ltd. | 15 October 2026 | Shanghai HQ and online",
    ),
    Slide(
        "Agenda",
        [
            "Q3 2026 results",
            "New product: Orion AMR-7",
            "Offices and people",
            "Company updates",
            "Q4 priorities and Q&A",
        ],
    ),
    Slide(
        "Q3 2026 Results",
        [
            "Q3 2026 revenue was USD 48.2 million, up 23% year on year",
            "Gross margin 41%, up 2 percentage points",
            "Order backlog of USD 96 million at quarter end",
            "Logistics customers were 62% of revenue",
            "  Healthcare and manufacturing grew fastest",
        ],
    ),
    Slide(
        "New Product: Orion AMR-7",
        [
            "Our new product is the Orion AMR-7 warehouse robot",
            "Payload up to 700 kg, 10 hours per charge",
            "Works alongside people with certified safety scanners",
            "Pilot deployments with three logistics customers in Q4",
            "  General availability planned for Q1 2027",
        ],
    ),
    Slide(
        "Offices and People",
        [
            "The Singapore office opens in March 2027",
            "  Sales and support hub for Southeast Asia",
            "  Team of 35 works from a temporary serviced office until then",
            "Shanghai HQ: 420 people; Shenzhen: 180 people",
            "Hiring 60 engineers in Q4, mostly in navigation and perception",
        ],
    ),
    Slide(
        "Company Updates",
        [
            "New expense system Ledgerly goes live on 1 December 2026",
            "Employee engagement survey opens on 1 November",
            "Plan your remaining annual leave before year end",
            "Security reminder: report phishing to security@aurora.example",
        ],
    ),
    Slide(
        "Q4 Priorities",
        [
            "Deliver Orion AMR-7 pilots on time and on budget",
            "Close the year above USD 180 million in revenue",
            "Prepare the Singapore office opening",
            "Questions? Submit them anonymously at ask.aurora.example",
        ],
    ),
]

EN_OFFICES: dict[str, list[list[object]]] = {
    "Offices": [
        ["Office", "City", "Address", "Headcount", "Facilities contact"],
        [
            "Shanghai HQ",
            "Shanghai",
            "18F Aurora Tower, 2000 Zhangjiang Road, Pudong New Area, Shanghai",
            420,
            "Li Na, facilities-sh@aurora.example, ext. 8100",
        ],
        [
            "Shenzhen",
            "Shenzhen",
            "9F Block B, 88 Keyuan Road, Nanshan District, Shenzhen",
            180,
            "Chen Hao, facilities-sz@aurora.example, ext. 8200",
        ],
        [
            "Singapore",
            "Singapore",
            "Level 12, 8 Harbour Vista Road, Singapore (temporary until March 2027)",
            35,
            "Priya Nair, facilities-sg@aurora.example, ext. 8300",
        ],
    ],
    "Meeting rooms": [
        ["Office", "Room", "Floor", "Capacity", "Video conferencing"],
        ["Shanghai HQ", "Polaris", "18F", 20, "Yes"],
        ["Shanghai HQ", "Vega", "18F", 8, "Yes"],
        ["Shanghai HQ", "Sirius", "17F", 6, "Yes"],
        ["Shanghai HQ", "Robot Lab Briefing Room", "1F", 12, "No"],
        ["Shenzhen", "Lyra", "9F", 10, "Yes"],
        ["Shenzhen", "Orion", "9F", 4, "No"],
        ["Singapore", "Merlion", "Level 12", 8, "Yes"],
    ],
}

EN_HOLIDAYS: list[list[str]] = [
    ["date", "holiday", "office"],
    ["2027-01-01", "New Year's Day", "All offices"],
    ["2027-02-06", "Spring Festival (Chinese New Year)", "Shanghai & Shenzhen"],
    ["2027-02-08", "Chinese New Year (observed)", "Singapore"],
    ["2027-03-26", "Good Friday", "Singapore"],
    ["2027-04-05", "Qingming Festival", "Shanghai & Shenzhen"],
    ["2027-05-01", "Labour Day", "All offices"],
    ["2027-05-20", "Vesak Day", "Singapore"],
    ["2027-06-09", "Dragon Boat Festival", "Shanghai & Shenzhen"],
    ["2027-08-09", "National Day", "Singapore"],
    ["2027-09-15", "Mid-Autumn Festival", "Shanghai & Shenzhen"],
    ["2027-10-01", "National Day", "Shanghai & Shenzhen"],
    ["2027-12-25", "Christmas Day", "Singapore"],
]

EN_IT_EMAIL_BODY = """\
Dear colleagues,

The new expense system Ledgerly goes live on 1 December 2026.
From that date, all expense claims, travel advances and corporate card
reconciliations must be submitted in Ledgerly at
https://ledgerly.aurora.example.

The old expense system will be read-only after 31 January 2027.
Claims already in progress can be completed there until 31 January 2027;
after that date you can still view and export old claims, but not create
or edit them.

What you need to do:
- Sign in to Ledgerly with your normal company account (multi-factor
  authentication is required).
- Check that your bank details and cost centre were migrated correctly.
- Complete the 20-minute "Ledgerly basics" course on Aurora Academy.

The travel and expense policy itself does not change: claims must still be
submitted within 30 days of the trip.

Questions? Reply to this message or call the IT Helpdesk on extension 8000.

Best regards,
IT Helpdesk
Aurora Robotics Ltd.
"""


# --------------------------------------------------------------------------
# Content: Chinese
# --------------------------------------------------------------------------

ZH_HANDBOOK: list[Block] = [
    Para("版本：4.2 ｜ 生效日期：2026年1月1日 ｜ 归口部门：人力资源部"),
    Heading("一、总则"),
    Para(
        "本手册适用于极光机器人有限公司（Aurora Robotics Ltd.）全体正式员工，包括上海总部、"
        "深圳办公室及新加坡办公室。各地法律法规另有更优规定的，从其规定。"
    ),
    Para("员工对本手册内容有疑问的，可咨询直属经理或发送邮件至 hr@aurora.example。"),
    Heading("二、工作时间"),
    Para("工作时间为周一至周五9:30至18:00，其中12:00至13:00为午休时间。"),
    Para(
        "核心工作时间为10:00至16:00，员工在此期间应保持可联系。经直属经理同意，员工可在"
        "8:30至10:30之间弹性上班。机器人测试实验室及客户仓库现场人员按现场排班表执行。"
    ),
    Para("加班须事先经直属经理批准，公司按当地法律规定安排调休或支付加班费。"),
    Heading("三、试用期"),
    Para(
        "试用期为3个月。直属经理将在入职第一个月和第二个月末与新员工进行沟通，"
        "并在试用期结束前完成转正评估。"
    ),
    Heading("四、假期"),
    Para("年假：员工每年享有15天带薪年假，经理每年享有20天。"),
    Para(
        "年假自入职之日起按月累计，入职当年按比例折算。连续休假3个工作日及以上的，"
        "应至少提前两周在人事系统中提交申请。未休年假最多可结转5天至次年，须在次年3月31日前休完。"
    ),
    Table(
        [
            ["假期类型", "天数", "说明"],
            ["年假（员工）", "15天", "带薪，按月累计"],
            ["年假（经理）", "20天", "带薪，按月累计"],
            ["病假", "10天", "带薪；连续超过2个工作日须提供病假证明"],
            ["婚假", "3天", "带薪，须在结婚后12个月内休完"],
            ["丧假", "3天", "带薪，适用于直系亲属"],
        ]
    ),
    Heading("五、远程办公"),
    Para("每周最多可远程办公2天，需提前经直属经理批准。"),
    Para(
        "远程办公期间必须通过公司VPN访问内部系统，客户数据只能存放在公司设备上，"
        "并在核心工作时间内保持可联系。"
    ),
    Heading("六、薪酬与福利"),
    Para(
        "工资于每月10日发放。公司为全体正式员工缴纳社会保险和住房公积金，"
        "并提供补充商业医疗保险及年度体检。"
    ),
    Heading("七、联系方式"),
    Bullets(
        [
            "人力资源部：hr@aurora.example",
            "IT服务台：it-helpdesk@aurora.example，分机8000",
            "信息安全：security@aurora.example",
        ]
    ),
]

ZH_EXPENSE_POLICY: list[Block] = [
    Para("归口部门：财务部 ｜ 版本：3.0 ｜ 生效日期：2026年1月1日"),
    Heading("一、目的与适用范围"),
    Para(
        "为规范公司差旅及日常费用管理，合理控制成本，特制定本制度。"
        "本制度适用于公司全体员工及因公出差的外包人员。"
    ),
    Para("员工应本着节约、合理的原则使用公司资金，超出标准的部分原则上由个人承担。"),
    Heading("二、交通"),
    Para(
        "飞行时间6小时以内的航班须乘坐经济舱。国内5小时以内的行程优先选择高铁二等座。"
        "机票和酒店应通过公司差旅平台预订。"
    ),
    Heading("三、住宿与餐饮"),
    Para("住宿标准一线城市每晚不超过1200元，其他城市每晚不超过800元。"),
    Para("一线城市包括北京、上海、广州、深圳，以及新加坡、香港等境外城市。"),
    Para("每日餐补150元。餐补按出差天数发放，无需提供餐饮发票；招待客户的餐费另行报销。"),
    Heading("费用标准一览", level=2),
    Table(
        [
            ["费用类别", "一线城市", "其他城市", "备注"],
            ["住宿（每晚）", "不超过1200元", "不超过800元", "含税费"],
            ["餐补（每日）", "150元", "150元", "按出差天数发放"],
            ["市内交通", "据实报销", "据实报销", "须提供发票"],
            ["机票", "经济舱", "经济舱", "飞行时间6小时以内"],
        ]
    ),
    Heading("四、审批"),
    Para("单笔超过3000元须部门负责人事先审批。"),
    Para("境外出差须至少提前10个工作日经直属经理批准，以便办理签证及保险。"),
    Heading("五、报销提交"),
    Para("报销须在出差结束后30天内提交。逾期提交的，须经财务总监书面同意方可报销。"),
    Para(
        "报销时须附上合规发票及行程单。外币费用按消费当日汇率折算，"
        "审批通过的报销款随下月工资一并发放。"
    ),
    Heading("六、不予报销的费用"),
    Bullets(
        [
            "个人娱乐消费、酒店迷你吧及付费影视。",
            "交通违章罚款及各类滞纳金。",
            "未经批准的舱位或房型升级。",
            "随行家属或其他非公务人员的费用。",
        ]
    ),
    Heading("七、附则"),
    Para("本制度由财务部负责解释，自2026年1月1日起施行。咨询邮箱：finance@aurora.example。"),
]


def _qa(question: str, answer: str) -> Para:
    # Question and answer go on adjacent lines with a blank line between pairs,
    # so chunkers that split on blank lines keep each pair together.
    return Para(f"问：{question}\n答：{answer}")


ZH_FAQ: list[Block] = [
    Para("极光机器人有限公司 行政部 ｜ 更新日期：2026年11月1日"),
    Heading("一、交通"),
    _qa("公司班车几点发车？", "公司班车每天早上8:00从人民广场站发车，约8:50到达上海总部。"),
    _qa("下班有班车吗？", "有。返程班车每天18:15从总部大堂门口出发，终点为人民广场站。"),
    _qa(
        "可以开车上班吗？",
        "总部地下车库车位有限，需向行政部申请停车证，按先到先得原则分配。",
    ),
    Heading("二、餐饮"),
    _qa("食堂几点开饭？", "食堂午餐时间11:30至13:30，晚餐时间17:30至19:00。"),
    _qa("食堂如何付款？", "使用工牌刷卡消费，公司每月向工牌充值餐补。"),
    Heading("三、行政"),
    _qa("工牌丢失怎么办？", "工牌丢失请联系行政部，补办费用50元。补办一般需要1个工作日。"),
    _qa(
        "访客如何登记？",
        "请提前一天在行政系统中预约，访客到达后在前台凭身份证件领取临时访客卡。",
    ),
    _qa("快递寄到哪里？", "个人快递请寄至总部一楼收发室，收发室工作时间为9:00至18:00。"),
    Heading("四、IT与网络"),
    _qa(
        "办公室Wi-Fi叫什么？",
        "员工Wi-Fi 名称为 Aurora-Staff，使用公司账号登录；访客请连接 Aurora-Guest。",
    ),
    _qa("电脑坏了找谁？", "请联系IT服务台，邮箱 it-helpdesk@aurora.example，分机8000。"),
]

ZH_SECURITY: list[Block] = [
    Para("本规定由信息安全部制定，适用于公司全体员工、实习生及外包人员。"),
    Heading("一、账号与密码"),
    Para("密码至少14位，每90天更换一次。"),
    Para(
        "不得与他人共用账号，不得在个人网站或应用中使用与公司账号相同的密码。"
        "邮件、VPN及代码仓库均须启用多因素认证。"
    ),
    Heading("二、远程访问"),
    Para("离开办公室网络必须使用VPN。"),
    Para(
        "在家、酒店、机场或客户现场办公时，均须先连接公司VPN后再访问内部系统。"
        "严禁在未连接VPN的公共Wi-Fi下处理公司业务。"
    ),
    Heading("三、电子邮件与钓鱼防范"),
    Para("发现钓鱼邮件请转发至 security@aurora.example。"),
    Para("请勿点击可疑链接或打开可疑附件。如已误点链接，请立即致电IT服务台（分机8000）。"),
    Heading("四、设备管理"),
    Para(
        "公司笔记本电脑每3年更换一次。禁止在公司电脑上使用个人U盘，"
        "如需拷贝大文件请向IT部门申请加密U盘。"
    ),
    Para("设备丢失或被盗，须在24小时内报告IT服务台，以便远程锁定并清除数据。"),
    Heading("五、数据分类"),
    Table(
        [
            ["级别", "示例", "处理要求"],
            ["公开", "官网新闻、产品宣传册", "无特殊要求"],
            ["内部", "制度文件、会议纪要", "仅限公司内部传阅"],
            ["机密", "客户数据、源代码、财务数据", "加密存储，按需授权"],
        ]
    ),
    Heading("六、违规处理"),
    Para("违反本规定的，公司将视情节轻重给予警告、通报批评直至解除劳动合同。"),
]

ZH_ONBOARDING: list[Slide] = [
    Slide("新员工入职培训", subtitle="极光机器人有限公司 ｜ 人力资源部 ｜ 2026年版"),
    Slide(
        "入职第一周安排",
        [
            "周一：报到、领取工牌和电脑、开通IT账号",
            "周二：公司介绍与企业文化",
            "周三：信息安全与安全生产培训",
            "周四：部门介绍，与导师见面",
            "周五：产品演示，参观机器人测试实验室",
        ],
    ),
    Slide(
        "导师制度",
        [
            "每位新员工配一名导师，为期3个月",
            "导师每周与新员工至少面谈一次",
            "导师协助制定试用期目标",
            "试用期结束前，导师参与转正评估",
        ],
    ),
    Slide(
        "培训平台：极光学堂",
        [
            "公司在线培训平台为“极光学堂”",
            "  网址：learn.aurora.example",
            "必修课程须在入职30天内完成",
            "  信息安全、安全生产、费用报销",
            "选修课程涵盖机器人导航、项目管理等",
        ],
    ),
    Slide(
        "常用联系方式",
        [
            "人力资源部：hr@aurora.example",
            "IT服务台：it-helpdesk@aurora.example，分机8000",
            "行政部：工牌、班车、会议室",
        ],
    ),
    Slide(
        "欢迎加入极光！",
        [
            "有任何问题，随时联系你的导师或直属经理",
        ],
    ),
]

ZH_ANNUAL_REPORT: list[Block] = [
    Heading("一、董事长致辞"),
    Para(
        "2025年是极光机器人有限公司快速发展的一年。面对复杂的宏观环境，公司坚持以技术为本、"
        "以客户为中心，仓储物流、智能制造和医疗三大业务板块均实现增长。"
    ),
    Para(
        "公司持续加大研发投入，自主导航与感知技术取得重要突破，为新一代仓储机器人"
        "Orion AMR-7 的推出奠定了基础。在此，我谨代表董事会向全体员工、客户和合作伙伴表示衷心感谢。"
    ),
    Heading("二、主要财务数据"),
    Para("2025年营业收入为1.72亿元，同比增长31%。"),
    Para("研发投入占营业收入的18%。"),
    Table(
        [
            ["指标", "2025年", "2024年", "同比变化"],
            ["营业收入", "1.72亿元", "1.31亿元", "+31%"],
            ["研发投入", "0.31亿元", "0.22亿元", "+41%"],
            ["净利润", "0.19亿元", "0.12亿元", "+58%"],
            ["毛利率", "40%", "38%", "+2个百分点"],
        ]
    ),
    Para(
        "收入增长主要来自仓储物流客户的批量订单，该板块收入占比达到60%。"
        "医疗板块收入同比增长超过50%，成为增速最快的业务。"
    ),
    PageBreak(),
    Heading("三、员工与组织"),
    Para("截至2025年12月31日，员工总数635人。"),
    Para("其中上海总部420人，深圳办公室180人，新加坡办公室35人；研发人员占员工总数的55%。"),
    Para("公司全年开展培训课程120余场，新员工均配备导师，员工敬业度调查得分较上年提高5分。"),
    Heading("四、业务回顾"),
    Bullets(
        [
            "仓储物流：新增客户28家，累计部署机器人超过3000台。",
            "智能制造：与多家汽车零部件企业达成合作。",
            "医疗：院内物资配送机器人进入15家医院。",
        ]
    ),
    Heading("五、2026年展望"),
    Para(
        "2026年，公司将推出新一代仓储机器人 Orion AMR-7，并筹备新加坡办公室的正式启用，"
        "进一步拓展东南亚市场。公司将继续保持研发投入，提升产品可靠性和交付能力。"
    ),
]


# --------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------


def main() -> None:
    en, zh = SAMPLES_DIR / "en", SAMPLES_DIR / "zh"

    write_pdf(
        en / "employee-handbook.pdf",
        f"{COMPANY_EN} Employee Handbook",
        EN_HANDBOOK,
        subject="Employee handbook",
    )
    write_docx(en / "travel-expense-policy.docx", "Travel and Expense Policy", EN_TRAVEL_POLICY)
    write_html(
        en / "it-security-faq.html",
        "IT Security FAQ",
        EN_SECURITY_FAQ,
        description="Frequently asked information security questions at Aurora Robotics.",
    )
    write_pptx(en / "q3-all-hands.pptx", "Q3 2026 All-Hands", EN_ALL_HANDS)
    write_xlsx(en / "office-directory.xlsx", "Office Directory", EN_OFFICES)
    write_csv(en / "public-holidays-2027.csv", EN_HOLIDAYS)
    write_eml(
        en / "it-announcement.eml",
        sender="Aurora IT Helpdesk <it-helpdesk@aurora.example>",
        to="All Staff <all-staff@aurora.example>",
        subject="Ledgerly, our new expense system, goes live on 1 December 2026",
        date=datetime(2026, 11, 16, 10, 0, 0, tzinfo=timezone(timedelta(hours=8))),
        message_id="<20261116100000.ledgerly-launch@aurora.example>",
        body=EN_IT_EMAIL_BODY,
    )

    write_markdown(zh / "员工手册.md", f"{COMPANY_ZH} 员工手册", ZH_HANDBOOK)
    write_docx(zh / "报销制度.docx", "差旅及费用报销制度", ZH_EXPENSE_POLICY, lang="zh")
    write_text(zh / "常见问题.txt", "员工常见问题（行政与后勤）", ZH_FAQ, encoding="gbk")
    write_html(zh / "信息安全规定.html", "信息安全规定", ZH_SECURITY, lang="zh")
    write_pptx(zh / "新员工培训.pptx", "新员工入职培训", ZH_ONBOARDING, lang="zh")
    write_pdf(
        zh / "年度报告摘要.pdf",
        f"{COMPANY_ZH} 2025年度报告摘要",
        ZH_ANNUAL_REPORT,
        lang="zh",
        subject="2025年度报告摘要",
    )

    for path in sorted(SAMPLES_DIR.rglob("*")):
        if path.is_file():
            print(f"{path.stat().st_size:>8}  {path.relative_to(SAMPLES_DIR)}")


if __name__ == "__main__":
    main()
