"""Every supported format parsed from a real file, and every kind of bad file refused clearly."""

import pytest

from kb.ingest.discover import SUPPORTED
from kb.ingest.load import LoadError, load, reflow


def _text(doc) -> str:
    return "\n".join(b.text for b in doc.blocks)


@pytest.mark.parametrize(
    "name",
    sorted(
        [
            "policy.pdf",
            "guide.docx",
            "slides.pptx",
            "budget.xlsx",
            "contacts.csv",
            "faq.html",
            "notes.md",
            "readme.txt",
            "mail.eml",
            "规定-gbk.txt",
            "notes-utf16.txt",
        ]
    ),
)
def test_every_format_yields_its_text(corpus, facts, name):
    path = corpus / name
    doc = load(path, SUPPORTED[path.suffix])
    assert facts[name] in _text(doc).replace("\n", " ")
    assert doc.title


def test_pdf_blocks_carry_pages_and_outline_titles(corpus, facts):
    doc = load(corpus / "policy.pdf", "pdf")
    page_of = {b.text: b.page for b in doc.blocks if b.kind == "text"}
    fact_pages = [page for text, page in page_of.items() if facts["policy.pdf"] in text]
    assert fact_pages == [2]
    assert doc.title == "Facilities Policy"


def test_pptx_slides_are_pages_and_bullets_are_not_titles(corpus):
    doc = load(corpus / "slides.pptx", "pptx")
    titles = [b.text for b in doc.blocks if b.kind == "title"]
    assert "Schedule" in titles
    assert not any("week 37" in t for t in titles)
    assert {b.page for b in doc.blocks if "week 37" in b.text} == {2}


def test_spreadsheet_rows_keep_their_cells(corpus):
    doc = load(corpus / "budget.xlsx", "xlsx")
    tables = [b for b in doc.blocks if b.kind == "table"]
    assert tables and tables[0].rows[0] == ["Team", "Budget (EUR)", "Owner"]
    assert ["Quantum lab", "120000", "Ada"] in tables[0].rows


def test_csv_is_a_table_with_header(corpus):
    doc = load(corpus / "contacts.csv", "csv")
    assert doc.blocks[0].rows[0] == ["name", "role"]


def test_email_subject_is_the_title(corpus):
    assert load(corpus / "mail.eml", "eml").title == "Town hall location"


def test_html_title_comes_from_the_title_element(corpus):
    assert load(corpus / "faq.html", "html").title == "Cafeteria FAQ"


@pytest.mark.parametrize("name", ["corrupt.pdf", "encrypted.pdf", "scanned.pdf"])
def test_bad_pdfs_fail_with_the_reason(bad_files, name):
    folder, reasons = bad_files
    with pytest.raises(LoadError) as info:
        load(folder / name, "pdf")
    assert reasons[name] in str(info.value)


def test_markdown_that_is_not_text_fails(tmp_path):
    path = tmp_path / "x.md"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(LoadError):
        load(path, "md")


def test_reflow_joins_wrapped_lines_but_keeps_headings():
    page = (
        "4.1 Annual leave\n"
        "Employees receive 15 days of paid annual leave per year; managers receive 20\n"
        "days. Requests go through the HR portal and should be made two weeks ahead of\n"
        "time."
    )
    lines = reflow(page).split("\n")
    assert lines[0] == "4.1 Annual leave"
    assert "managers receive 20 days." in lines[1]
    assert lines[1].endswith("ahead of time.")


def test_reflow_joins_chinese_without_spaces():
    page = (
        "年假：员工每年享有十五天带薪年假，经理每年享有二十天年假，年假按月累\n"
        "计，入职当年按比例折算。"
    )
    assert (
        reflow(page) == "年假：员工每年享有十五天带薪年假，经理每年享有二十天年假，"
        "年假按月累计，入职当年按比例折算。"
    )


def test_document_context_names_the_registrant_and_period_of_a_filing_cover():
    from kb.ingest.load import Block, Document, document_context

    cover = (
        "UNITED STATES SECURITIES AND EXCHANGE COMMISSION FORM 10-K ANNUAL REPORT For the "
        "fiscal year ended January 28, 2023 Commission file number 1-9595 ________\n"
        "NORTHWIND TRADERS, INC.\n(Exact name of registrant as specified in its charter)"
    )
    doc = Document("0000764478-23-000006", [Block(cover, page=1), Block("Revenue rose.", page=40)])
    assert document_context(doc) == (
        "NORTHWIND TRADERS, INC., 10-K, fiscal year ended January 28, 2023"
    )
    # Ordinary documents state no such thing: nothing is added to their chunks.
    memo = Document("Memo", [Block("The canteen opens at eight.", page=1)])
    assert document_context(memo) == ""
