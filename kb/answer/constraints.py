"""What a question pins its answer to, and whether a source states that or a neighbouring value.

A question asks for one year's figure, one quarter, the Nth edition of an event: "2021年A公司营收
是多少？", "第七届世界军人运动会在哪里举办？". The documents often hold the neighbouring one (the
2022 figure, the sixth edition), with the same words around it; a small model copies that figure
and cites it, so it reads as a sourced fact. The chain compares the constraints a question asks
with those the passage behind its answer states: the asked one stated is fine; only another value
of the same kind stated is a near miss, refused with the related passage shown as what it is.

Hand-written patterns rather than a general time tagger: the kinds that matter here are few and
regular (a year, a month, a quarter, a half-year, an ordinal with its classifier), and the
Chinese ones need no model to read. Relative expressions (去年, last year) cannot be resolved
without the date a passage was written, so they are recognised but never compared.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kb.text import normalize

_ZH_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}
_ZH_DIGITS.update({"六": 6, "七": 7, "八": 8, "九": 9})
_ZH_NUMBER = "[零〇一二两三四五六七八九十百]+"
_NUMBER = rf"(?:\d+|{_ZH_NUMBER})"
# Classifiers an ordinal question counts with: 第七届 (edition), 第三艘 (ship), 第二次, 第五批…
_CLASSIFIERS = "届艘次批轮期代任座颗架场款部号版家位名集"

# A year, not a count: "2000人" and "2021元" are amounts.
_YEAR = re.compile(
    r"(?<![\d.])((?:19|20)\d\d)(?:\s*(?:年|财年|年度)|(?![\d.%万亿千百元人名个多余件吨米辆台只]))"
)
_FY = re.compile(r"\bfy\s?((?:19|20)?\d\d)\b")
_MONTH_ZH = re.compile(rf"(?<![\d十])({_NUMBER})\s*月(?!份?[以之]?[前后内])")
_MONTH_ISO = re.compile(r"(?<!\d)(?:19|20)\d\d[-/.](0?[1-9]|1[0-2])(?!\d)")
_QUARTER = re.compile(rf"(前)?第?({_NUMBER})季度|\bq([1-4])\b")
_HALF = re.compile(r"(上|下)半年|\bh([12])\b")
_ORDINAL = re.compile(rf"第\s*({_NUMBER})\s*([{_CLASSIFIERS}])")
_RELATIVE = re.compile(r"去年|前年|今年|明年|上个?月|本月|上季度|本季度|last year|this year")
_MAY = r"\b(in|of|since|during|until|by|from)\s+may\b|\bmay\s+\d|\d\s+may\b"  # not the verb
_EN_MONTHS = (
    "january february march april may june july august september october november december"
).split()


@dataclass(frozen=True)
class Constraint:
    kind: str  # "year", "month", "quarter", "half" or "ordinal:<classifier>"
    value: str  # canonical: "2021", "11", "3", "1-3" (前三季度), "7"
    text: str  # as written

    def label(self) -> str:
        return self.text


def zh_number(text: str) -> int | None:
    """A Chinese or Arabic numeral as an int (七 → 7, 二十四 → 24, 一百零五 → 105)."""
    if text.isdigit():
        return int(text)
    total, current = 0, 0
    for char in text:
        if char in _ZH_DIGITS:
            current = _ZH_DIGITS[char]
        elif char == "十":
            total += (current or 1) * 10
            current = 0
        elif char == "百":
            total += (current or 1) * 100
            current = 0
        else:
            return None
    return total + current


def _year(value: str) -> str:
    return value if len(value) == 4 else f"20{value}"


def constraints(text: str) -> list[Constraint]:
    """The years, months, quarters, half-years and ordinals `text` states, in order, once each."""
    text = normalize(text)
    found: list[Constraint] = []
    for m in _YEAR.finditer(text):
        found.append(Constraint("year", m.group(1), m.group(0).strip()))
    for m in _FY.finditer(text):
        found.append(Constraint("year", _year(m.group(1)), m.group(0)))
    for m in _MONTH_ZH.finditer(text):
        month = zh_number(m.group(1))
        if month is not None and 1 <= month <= 12:
            found.append(Constraint("month", str(month), m.group(0)))
    for m in _MONTH_ISO.finditer(text):
        found.append(Constraint("month", str(int(m.group(1))), m.group(0)))
    for index, month in enumerate(_EN_MONTHS, start=1):
        hit = re.search(_MAY, text) if month == "may" else re.search(rf"\b{month}\b", text)
        if hit:
            found.append(Constraint("month", str(index), month))
    for m in _QUARTER.finditer(text):
        if m.group(3):
            found.append(Constraint("quarter", m.group(3), m.group(0)))
            continue
        number = zh_number(m.group(2))
        if number is None or not 1 <= number <= 4:
            continue
        value = f"1-{number}" if m.group(1) else str(number)
        found.append(Constraint("quarter", value, m.group(0)))
    for m in _HALF.finditer(text):
        value = ("1" if m.group(1) == "上" else "2") if m.group(1) else m.group(2)
        found.append(Constraint("half", value, m.group(0)))
    for m in _ORDINAL.finditer(text):
        number = zh_number(m.group(1))
        if number is not None and not (m.group(2) == "季" and text[m.end() : m.end() + 1] == "度"):
            found.append(Constraint(f"ordinal:{m.group(2)}", str(number), m.group(0)))
    unique: dict[tuple[str, str], Constraint] = {}
    for c in found:
        unique.setdefault((c.kind, c.value), c)
    return list(unique.values())


def relative_time(text: str) -> bool:
    """Does `text` name a time relative to when it was written (去年, this year)?"""
    return bool(_RELATIVE.search(normalize(text)))


@dataclass(frozen=True)
class Mismatch:
    """An asked constraint the answer's passages do not state, and what they state instead."""

    asked: Constraint
    stated: tuple[Constraint, ...]  # same kind, other values; empty: the kind is not stated

    @property
    def near_miss(self) -> bool:
        return bool(self.stated)


def compare(question: str, passages: Iterable[str]) -> list[Mismatch]:
    """The question's constraints that no passage states, each with the neighbouring values of
    the same kind the passages state instead.

    A passage that states several years (2021 and 2022) states the asked one too; only passages
    that state the kind and never the asked value make a near miss.
    """
    asked = constraints(question)
    if not asked:
        return []
    have: list[Constraint] = []
    for passage in passages:
        have += constraints(passage)
    values = {(c.kind, c.value) for c in have}
    out = []
    for wanted in asked:
        if (wanted.kind, wanted.value) in values:
            continue
        if wanted.kind == "quarter" and wanted.value.startswith("1-"):
            continue  # "the first three quarters" may be stated as a sum: not comparable
        others = tuple(
            dict.fromkeys(c for c in have if c.kind == wanted.kind and c.value != wanted.value)
        )
        out.append(Mismatch(wanted, others))
    return out


def near_misses(mismatches: Sequence[Mismatch]) -> list[Mismatch]:
    return [m for m in mismatches if m.near_miss]
