"""Citation markers in an answer: "[n]" refers to the n-th source of the prompt."""

from __future__ import annotations

import re
from collections.abc import Sequence

CITATION = re.compile(r"\[(\d{1,2})\]")


def without_citations(text: str) -> str:
    return CITATION.sub("", text).strip()


def cited_numbers(text: str) -> list[int]:
    return [int(n) for n in CITATION.findall(text)]


def renumber(text: str, prompt_order: Sequence[int], cited: Sequence[int]) -> str:
    """Rewrite the prompt's source numbers in `text` so the answer's citations run [1], [2], …
    over the cited sources only.

    `prompt_order[n - 1]` is the chunk behind prompt number n; `cited` lists the chunks the
    answer cites, in citation order. A number that names no cited chunk is dropped, and an answer
    left without any citation cites its first source.
    """
    new_number = {prompt_order.index(c) + 1: i + 1 for i, c in enumerate(cited)}

    def replace(match: re.Match[str]) -> str:
        n = int(match.group(1))
        return f"[{new_number[n]}]" if n in new_number else ""

    out = CITATION.sub(replace, text).strip()
    if not CITATION.search(out):
        out = f"{out} [1]"
    return out
