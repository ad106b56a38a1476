"""Pure scoring functions for `kb eval`: text normalisation, answer matching, retrieval hits.

Everything here works on plain strings, lists and dicts so the runner, the report and the tests
share one definition of "correct".
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePosixPath

# Ideographs (with extensions and compatibility forms) and kana: scripts written without spaces,
# where one character is the natural unit for F1.
_CJK = (
    "\u3040-\u30ff"  # hiragana, katakana
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\U00020000-\U0003134f"  # CJK extensions B-G
)
_CJK_RE = re.compile(f"[{_CJK}]")
# Spaces touching a CJK character carry no meaning ("136 次" and "136次" are the same answer in
# xquad_zh), so they go on either side, not only between two CJK characters.
_SPACE_NEAR_CJK = re.compile(f"(?<=[{_CJK}])\\s+|\\s+(?=[{_CJK}])")
# Unicode \b: an "a" inside Chinese text is not a word of its own and is kept.
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_TOKEN_RE = re.compile(f"[{_CJK}]|[^\\W_{_CJK}]+")
_PAGE_GOLD = re.compile(r"^(?P<stem>.+)-p(?P<page>\d+)$")


def _drop_punctuation(s: str) -> str:
    # Categories P* and S* cover ASCII and CJK punctuation alike (，。《》“” are all P*).
    return "".join(ch for ch in s if unicodedata.category(ch)[0] not in "PS")


def normalize_text(s: str) -> str:
    """Normalise text for answer comparison in any script (see module tests for examples)."""
    s = unicodedata.normalize("NFKC", s or "").casefold()
    s = _drop_punctuation(s)
    s = _ARTICLES.sub(" ", s)
    s = " ".join(s.split())
    return _SPACE_NEAR_CJK.sub("", s)


def tokens(s: str) -> list[str]:
    """F1 tokens: one per CJK character, one per run of other letters or digits."""
    return _TOKEN_RE.findall(normalize_text(s))


def _nfkc_len(s: str) -> int:
    return len(unicodedata.normalize("NFKC", s or ""))


def _contains_set(pred: str, parts: Iterable[str]) -> bool:
    normed = [p for p in (normalize_text(x) for x in parts) if p]
    return bool(normed) and all(p in pred for p in normed)


def answer_contained(
    prediction: str,
    answers: Sequence[str],
    answer_sets: Sequence[Sequence[str]] | None = None,
    max_chars: int = 300,
) -> bool:
    """True when a gold answer (or every part of one answer set) appears in the prediction.

    Predictions longer than `max_chars` never count: pasting whole passages would otherwise
    "contain" nearly every span answer.
    """
    if not prediction or _nfkc_len(prediction) > max_chars:
        return False
    pred = normalize_text(prediction)
    if any(a and a in pred for a in (normalize_text(x) for x in answers)):
        return True
    return any(_contains_set(pred, parts) for parts in answer_sets or ())


def parts_contained(prediction: str, parts: Sequence[Sequence[str]], max_chars: int = 300) -> bool:
    """True when every required part (a list of alternatives) appears in the prediction, any
    alternative counting for its part (RGB's rule); long predictions never count."""
    if not prediction or not parts or _nfkc_len(prediction) > max_chars:
        return False
    pred = normalize_text(prediction)
    return all(any(a and a in pred for a in (normalize_text(x) for x in part)) for part in parts)


def _f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    common = 0
    remaining = list(gold_tokens)
    for tok in pred_tokens:
        if tok in remaining:
            remaining.remove(tok)
            common += 1
    if common == 0:
        return 0.0
    precision = common / len(pred_tokens)
    recall = common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, answers: Sequence[str]) -> float:
    """SQuAD-style token F1 against the best-matching answer; 0.0 without usable answers."""
    pred = tokens(prediction)
    if not pred:
        return 0.0
    golds = [t for t in (tokens(a) for a in answers) if t]
    return max((_f1(pred, g) for g in golds), default=0.0)


def parse_gold_id(gold: str) -> tuple[str, int | None]:
    """Split `X-p059` into ("X", 59) (zero-based page); a plain stem has no page."""
    m = _PAGE_GOLD.match(gold)
    if m is None:
        return gold, None
    return m["stem"], int(m["page"])


def source_stem(source: str) -> str:
    """File name without its last suffix, for either path separator."""
    return PurePosixPath(source.replace("\\", "/")).stem


def matches_gold(source: str, page: int | None, gold_ids: Iterable[str]) -> bool:
    """Whether a retrieved or cited (source, 1-based page) is one of the gold documents/pages."""
    stem = source_stem(source)
    for gold in gold_ids:
        if stem == gold:
            return True
        gold_stem, gold_page = parse_gold_id(gold)
        if stem != gold_stem:
            continue
        if gold_page is None or (page is not None and page == gold_page + 1):
            return True
    return False


def _item_matches(item: Mapping, gold_ids: Sequence[str]) -> bool:
    return matches_gold(item.get("source") or "", item.get("page"), gold_ids)


def first_hit_rank(retrieved: Sequence[Mapping], gold_ids: Sequence[str]) -> int | None:
    """1-based rank of the first retrieved item matching gold, or None."""
    for rank, item in enumerate(retrieved, start=1):
        if _item_matches(item, gold_ids):
            return rank
    return None


def hit_at_k(retrieved: Sequence[Mapping], gold_ids: Sequence[str], k: int) -> bool:
    """Whether any of the first `k` retrieved items matches gold."""
    rank = first_hit_rank(retrieved[:k], gold_ids)
    return rank is not None


def reciprocal_rank(retrieved: Sequence[Mapping], gold_ids: Sequence[str], k: int = 10) -> float:
    """1/rank of the first gold item within the top `k`, else 0.0."""
    rank = first_hit_rank(retrieved[:k], gold_ids)
    return 0.0 if rank is None else 1.0 / rank


def citation_precision(cited: Sequence[Mapping], gold_ids: Sequence[str]) -> float | None:
    """Share of citations that point at gold; None when nothing was cited."""
    if not cited:
        return None
    return sum(_item_matches(c, gold_ids) for c in cited) / len(cited)


def percentile(values: Iterable[float | None], q: float) -> float | None:
    """q-th percentile (0-100) with linear interpolation, like numpy's default.

    None and NaN are skipped because latencies may be missing (no first token when refusing).
    """
    xs = sorted(float(v) for v in values if v is not None and not math.isnan(v))
    if not xs:
        return None
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


# A gold answer longer than this is a reference answer written in free form, not a span a
# passage would contain word for word; answer-in-context ignores it (DPR's top-k accuracy
# counts short answers only).
SHORT_ANSWER_CHARS = 40


def short_answers(
    answers: Sequence[str], answer_sets: Sequence[Sequence[str]] | None = None
) -> tuple[list[str], list[list[str]]]:
    """The normalised answers, and answer sets (every part required), short enough to look for
    in a passage; both empty when the question has none."""
    singles = [a for a in (normalize_text(x) for x in answers) if 0 < len(a) <= SHORT_ANSWER_CHARS]
    sets = []
    for parts in answer_sets or ():
        normed = [normalize_text(p) for p in parts]
        if normed and all(0 < len(p) <= SHORT_ANSWER_CHARS for p in normed):
            sets.append(normed)
    return singles, sets


def context_rank(
    texts: Sequence[str], answers: Sequence[str], answer_sets: Sequence[Sequence[str]] | None = None
) -> int | None:
    """1-based rank of the first retrieved text that contains a short gold answer (or every
    part of a short answer set), or None."""
    singles, sets = short_answers(answers, answer_sets)
    for rank, text in enumerate(texts, start=1):
        passage = normalize_text(text)
        if any(a in passage for a in singles) or any(all(p in passage for p in s) for s in sets):
            return rank
    return None
