"""Extractive evidence: the sentences of the retrieved chunks that best answer a question.

A small local model answers well from two or three relevant sentences and badly from four
1,000-character chunks: it drifts, paraphrases and runs slowly (prompt evaluation dominates time
to first token). So the chain sends the model only the best sentences, ranked by how much of the
question's vocabulary they contain (weighted by rarity among the candidates, so an entity name
counts more than "year"), plus the retrieval score of the chunk they come from. The same scores
tell how much of the question the sources cover at all, and whether an answer's key terms are
really in the sources.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kb.store import Hit
from kb.text import key_terms, normalize, split_sentences, terms


@dataclass
class Sentence:
    text: str
    hit_index: int  # which retrieved chunk it came from
    position: int  # order inside that chunk
    score: float = 0.0
    terms: set[str] = field(default_factory=set)


@dataclass
class Evidence:
    """Selected sentences grouped by source chunk, in a prompt-ready order."""

    sentences: list[Sentence]
    coverage: float  # share of the question's (idf-weighted) terms found in the evidence
    best_sentence_score: float

    def by_hit(self) -> dict[int, list[Sentence]]:
        grouped: dict[int, list[Sentence]] = {}
        for sentence in sorted(self.sentences, key=lambda s: (s.hit_index, s.position)):
            grouped.setdefault(sentence.hit_index, []).append(sentence)
        return grouped


def idf_weights(question_terms: set[str], documents: Sequence[set[str]]) -> dict[str, float]:
    """Rarity of each question term among `documents` (term sets): rare terms weigh more."""
    n = len(documents) + 1
    df = Counter(t for doc in documents for t in doc if t in question_terms)
    return {t: math.log(1 + n / (1 + df[t])) for t in question_terms}


def candidate_sentences(hits: Sequence[Hit]) -> list[Sentence]:
    sentences: list[Sentence] = []
    seen: set[str] = set()
    for index, hit in enumerate(hits):
        for position, text in enumerate(split_sentences(hit.text)):
            key = re.sub(r"\s+", "", text)
            if len(key) < 4 or key in seen:
                continue
            seen.add(key)
            sentences.append(Sentence(text, index, position, terms=set(terms(text))))
    return sentences


def select_evidence(
    question: str,
    hits: Sequence[Hit],
    budget_tokens: int,
    count_tokens: Callable[[str], int],
    max_sentences: int = 3,
    cover_sentences: int = 1,
) -> Evidence:
    """Pick the best sentences of `hits` for `question` within `budget_tokens` model tokens,
    plus up to `cover_sentences` that mention parts of the question the best ones miss."""
    question_terms = set(terms(question))
    sentences = candidate_sentences(hits)
    if not sentences:
        return Evidence([], 0.0, 0.0)
    # Rarity among the candidate sentences plus the chunks' titles.
    idf = idf_weights(question_terms, [s.terms for s in sentences])
    total = sum(idf.values()) or 1.0
    top_score = max((h.score for h in hits), default=0.0)
    title_terms = [set(terms(str(h.metadata.get("title", "")))) for h in hits]
    for sentence in sentences:
        # A title names the subject that a passage's sentences leave implicit.
        known = sentence.terms | title_terms[sentence.hit_index]
        lexical = sum(idf[t] for t in question_terms if t in known) / total
        retrieval = hits[sentence.hit_index].score - top_score  # <= 0, small
        sentence.score = lexical + 2.0 * retrieval - 0.01 * sentence.position
    ranked = sorted(sentences, key=lambda s: s.score, reverse=True)
    chosen: list[Sentence] = []
    used = 0
    for sentence in ranked:
        if len(chosen) >= max_sentences:
            break
        cost = count_tokens(sentence.text) + 2
        if used + cost > budget_tokens:
            if chosen:
                continue
            # The best sentence alone is too long: cut it to the budget rather than send nothing.
            sentence = Sentence(
                _truncate(sentence.text, budget_tokens, count_tokens),
                sentence.hit_index,
                sentence.position,
                sentence.score,
                sentence.terms,
            )
            cost = budget_tokens
        chosen.append(sentence)
        used += cost
    chosen += _covering_sentences(
        question, hits, sentences, chosen, budget_tokens - used, count_tokens, cover_sentences
    )
    coverage = question_coverage(question, [s.text for s in chosen], hits)
    return Evidence(chosen, coverage, ranked[0].score)


def _covering_sentences(
    question: str,
    hits: Sequence[Hit],
    candidates: Sequence[Sentence],
    chosen: Sequence[Sentence],
    room: int,
    count_tokens: Callable[[str], int],
    limit: int,
) -> list[Sentence]:
    """Sentences that mention what the chosen ones leave out of the question, most first.

    The best-scoring sentences all repeat the question's most prominent part; a question about
    two companies or two years then reaches the model, and the coverage gate, with only one of
    them. With it (and framing words out of the question's terms, kb.text), false refusals of
    answerable dragonball_en questions fell from 0.17 to 0.07 on the report half, refusals of
    unanswerable ones unchanged (docs/experiments.md).
    """
    wanted = key_terms(question)
    idf = idf_weights(wanted, [key_terms(h.text) for h in hits])
    covered: set[str] = set()
    for sentence in chosen:
        covered |= key_terms(sentence.text)
    for hit in hits:
        covered |= key_terms(str(hit.metadata.get("title", "")))
    taken = {id(sentence) for sentence in chosen}
    mentions = {id(c): key_terms(c.text) for c in candidates if id(c) not in taken}
    added: list[Sentence] = []
    for _ in range(limit):
        best, best_gain = None, 0.0
        for sentence in candidates:
            if id(sentence) not in mentions:
                continue
            gain = sum(idf[t] for t in wanted - covered if t in mentions[id(sentence)])
            if gain > best_gain:
                best, best_gain = sentence, gain
        if best is None:
            break
        cost = count_tokens(best.text) + 2
        if cost > room:
            break
        added.append(best)
        room -= cost
        covered |= mentions.pop(id(best))
    return added


def question_coverage(question: str, texts: Sequence[str], hits: Sequence[Hit]) -> float:
    """Share of the question's key terms, weighted by rarity in the retrieved chunks, that the
    given texts (or the titles of the retrieved documents) mention.

    An answerable question's terms are nearly all in its evidence; a question about something
    the documents never discuss ("the return on equity of X") leaves its key terms uncovered
    even when retrieval found the right company.
    """
    wanted = key_terms(question)
    if not wanted:
        return 1.0
    chunk_terms = [key_terms(h.text) for h in hits]
    idf = idf_weights(wanted, chunk_terms)
    covered: set[str] = set()
    for text in texts:
        covered |= key_terms(text)
    for hit in hits:
        covered |= key_terms(str(hit.metadata.get("title", "")))
    return sum(idf[t] for t in wanted if t in covered) / (sum(idf.values()) or 1.0)


def _truncate(text: str, budget: int, count_tokens: Callable[[str], int]) -> str:
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if count_tokens(text[:mid]) <= budget:
            low = mid
        else:
            high = mid - 1
    return text[:low]


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def support(answer: str, source_text: str, question: str = "") -> float:
    """Share of the answer's content terms (and every number) that occur in the sources.

    A faithful short answer copies its key words and figures from the sources; an invented one
    brings its own names and numbers. Words the answer repeats from the question are no
    invention ("Children mostly work in agriculture" for "Where do children mostly work?").
    """
    question_terms = set(terms(question))
    answer_terms = set(terms(answer)) - question_terms
    if not answer_terms:
        return 1.0
    source_norm = normalize(source_text)
    source_terms = set(terms(source_text))
    found = sum(1 for t in answer_terms if t in source_terms)
    question_norm = normalize(question)
    numbers = [n for n in _NUMBER.findall(normalize(answer)) if n not in question_norm]
    missing_numbers = [n for n in numbers if n not in source_norm]
    share = found / len(answer_terms)
    if missing_numbers:
        share = min(share, 1 - len(missing_numbers) / max(len(numbers), 1))
    return share


def invented_numbers(answer: str, source_text: str, question: str = "") -> list[str]:
    """Numbers in the answer that neither the sources nor the question contain.

    An invented figure is the most harmful thing a small model says; unlike term overlap, a
    missing number rarely means a harmless paraphrase.
    """
    known = normalize(source_text) + " " + normalize(question)
    return [n for n in _NUMBER.findall(normalize(answer)) if n not in known]


_MONTHS = (
    "january february march april may june july august september october november december"
).split()
_YEAR = re.compile(r"(?<!\d)(1[6-9]\d\d|20\d\d)(?!\d)")
_ZH_MONTH = re.compile(r"(?<![\d十])(1[0-2]|[1-9]|十[一二]?|[一二三四五六七八九])月")


def time_constraints(question: str) -> set[str]:
    """Years and months a question pins its answer to ("in August 2020", "2021年3月")."""
    text = normalize(question)
    found = set(_YEAR.findall(text))
    found |= {m for m in _MONTHS if m != "may" and re.search(rf"\b{m}\b", text)}
    if re.search(r"\b(in|of|since|during|until|by|from)\s+may\b|\bmay\s+\d|\d\s+may\b", text):
        found.add("may")  # the month, not the verb
    found |= {f"{m}月" for m in _ZH_MONTH.findall(text)}
    return found


def missing_constraints(question: str, texts: Sequence[str]) -> set[str]:
    """The question's time constraints that none of `texts` mentions.

    An answer about "April" to a question about "February 2020" answers another question.
    """
    wanted = time_constraints(question)
    if not wanted:
        return set()
    have = normalize(" ".join(texts))
    return {w for w in wanted if w not in have}
