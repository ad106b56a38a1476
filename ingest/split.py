"""Split a document into chunks: by structure first, then by size in embedding tokens.

- A heading starts a new chunk (unless the current one is still small), and every chunk knows
  its section path, so a passage is never separated from the heading that gives it meaning.
- Long text breaks at paragraph ends, then sentence ends — Chinese 。！？； as well as . ! ? —
  then clause marks, and only as a last resort inside a run of characters.
- A table is split by rows and every piece repeats the header row.
- A page change (PDF page, slide, sheet) ends a chunk, so a citation's page number is exact.

LangChain's RecursiveCharacterTextSplitter measures every candidate piece with the length
function; here each sentence is measured once with the embedding model's own token counter and
sizes are added up, which keeps splitting cheap next to embedding.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from kb.ingest.load import Block, Document
from kb.text import is_wide, split_sentences

TokenCount = Callable[[str], int]

_CLAUSE_END = re.compile(r"(?<=[，、,:：])")


@dataclass
class Chunk:
    text: str
    section: str
    page: int | None
    position: int
    kind: str  # "text" | "table"
    tokens: int


@dataclass
class _Unit:
    text: str
    tokens: int
    heading: bool = False
    starts_block: bool = False  # first unit of a paragraph, list item or line
    section: str = ""  # the section path this unit belongs to


def _hard_split(text: str, limit: int, count: TokenCount) -> list[str]:
    """Split a run with no usable punctuation into pieces of at most `limit` tokens."""
    pieces: list[str] = []
    words = re.findall(r"\S+\s*", text) if " " in text else list(text)
    current = ""
    for word in words:
        candidate = current + word
        if current and count(candidate) > limit:
            pieces.append(current.strip())
            current = word
        else:
            current = candidate
    if current.strip():
        pieces.append(current.strip())
    return pieces


def _units(text: str, limit: int, count: TokenCount) -> Iterator[_Unit]:
    """Break `text` into units of at most `limit` tokens at the best boundaries available."""
    tokens = count(text)
    if tokens <= limit:
        yield _Unit(text, tokens)
        return
    for sentence in split_sentences(text):
        tokens = count(sentence)
        if tokens <= limit:
            yield _Unit(sentence, tokens)
            continue
        for clause in (c for c in _CLAUSE_END.split(sentence) if c.strip()):
            tokens = count(clause)
            if tokens <= limit:
                yield _Unit(clause, tokens)
            else:
                for piece in _hard_split(clause, limit, count):
                    yield _Unit(piece, count(piece))


def _joiner(left: str, right: str) -> str:
    # Chinese text needs no space between sentences; everything else gets one line break.
    if left and right and is_wide(left[-1]) and is_wide(right[0]):
        return ""
    return "\n"


class _Packer:
    """Accumulates units into chunks of at most `limit` tokens, with sentence overlap."""

    def __init__(self, limit: int, overlap: int) -> None:
        self.limit = limit
        self.overlap = overlap
        self.units: list[_Unit] = []
        self.section = ""
        self.page: int | None = None
        self.out: list[Chunk] = []

    @property
    def tokens(self) -> int:
        return sum(u.tokens for u in self.units)

    def has_content(self) -> bool:
        return any(not u.heading for u in self.units)

    def flush(self, keep_overlap: bool = False) -> None:
        if not self.has_content():
            return
        # Headings at the end belong to what follows, never to the chunk before it.
        carried: list[_Unit] = []
        while self.units and self.units[-1].heading:
            carried.insert(0, self.units.pop())
        text = self.units[0].text
        for previous, unit in zip(self.units, self.units[1:], strict=False):
            separate = previous.heading or unit.heading or unit.starts_block
            text += ("\n" if separate else _joiner(text, unit.text)) + unit.text
        self.out.append(Chunk(text, self._section(), self.page, len(self.out), "text", self.tokens))
        tail: list[_Unit] = []
        if keep_overlap and self.overlap:
            budget = self.overlap
            for unit in reversed(self.units):
                if unit.heading or unit.tokens > budget:
                    break
                tail.insert(0, unit)
                budget -= unit.tokens
        self.units = tail + carried

    def _section(self) -> str:
        # A chunk may straddle a heading; it belongs to the section most of its text is in.
        weight: dict[str, int] = {}
        for unit in self.units:
            weight[unit.section] = weight.get(unit.section, 0) + max(unit.tokens, 1)
        return max(weight, key=weight.get) if weight else self.section

    def add(self, unit: _Unit) -> None:
        if self.units and self.tokens + unit.tokens > self.limit:
            self.flush(keep_overlap=True)
            # Overlap must not push a chunk over the limit.
            while self.units and self.tokens + unit.tokens > self.limit:
                self.units.pop(0)
        self.units.append(unit)

    def add_table(self, block: Block, count: TokenCount) -> None:
        rows = block.rows or [[line] for line in block.text.split("\n") if line.strip()]
        header, body = rows[0], rows[1:] or []
        header_text = " | ".join(header)
        header_tokens = count(header_text)
        room = max(self.limit - header_tokens, self.limit // 2)
        lines: list[str] = []
        used = 0
        pieces: list[list[str]] = []
        for row in body:
            line = " | ".join(row)
            tokens = count(line)
            if lines and used + tokens > room:
                pieces.append(lines)
                lines, used = [], 0
            lines.append(line)
            used += tokens
        if lines or not pieces:
            pieces.append(lines)
        for piece in pieces:
            text = "\n".join([header_text, *piece])
            self.out.append(
                Chunk(text, self.section, self.page, len(self.out), "table", count(text))
            )


def split_document(
    doc: Document, count: TokenCount, chunk_tokens: int = 200, overlap_tokens: int = 24
) -> list[Chunk]:
    """Chunks of `doc`, in reading order, each at most about `chunk_tokens` tokens."""
    packer = _Packer(chunk_tokens, min(overlap_tokens, chunk_tokens // 4))
    headings: list[tuple[int, str]] = []
    min_tokens = chunk_tokens // 3
    for block in doc.blocks:
        if block.page != packer.page and packer.has_content():
            packer.flush()
        if not packer.has_content():
            packer.page = block.page
        if block.kind == "title":
            last = packer.units[-1] if packer.units else None
            if last is not None and last.heading and headings and headings[-1][0] >= block.level:
                # A heading followed directly by a sibling heading had no body: it was text that
                # a parser took for a title (short Chinese lines often are). Keep it as text.
                last.heading = False
            if packer.tokens >= min_tokens and packer.has_content():
                packer.flush()
            while headings and headings[-1][0] >= block.level:
                headings.pop()
            headings.append((block.level, block.text))
            packer.section = " > ".join(h for _, h in headings)
            packer.units.append(
                _Unit(block.text, count(block.text), heading=True, section=packer.section)
            )
            continue
        packer.section = " > ".join(h for _, h in headings)
        if block.kind == "table":
            packer.flush()
            packer.units = []
            packer.add_table(block, count)
            continue
        for i, unit in enumerate(_units(block.text, chunk_tokens, count)):
            unit.starts_block = i == 0
            unit.section = packer.section
            packer.add(unit)
    for unit in packer.units:
        # Whatever is left is the document's last words, even if a parser called them titles.
        unit.heading = False
    packer.flush()
    return packer.out
