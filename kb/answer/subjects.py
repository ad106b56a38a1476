"""The named subjects of a question, and whether the sources say anything about each of them.

Most questions that the documents cannot answer still look answerable: "Who was appointed CFO of
Northwind Trading in August 2022?" retrieves Northwind's report (which says nothing about a CFO)
and another company's report (whose new CFO was appointed in August 2022). Coverage of the
question's words by all the evidence together is then high, and a small model happily answers
with the other company's CFO. Asking the question subject by subject separates the two: some
source must be about Northwind Trading *and* mention what is asked about it.

The same split serves retrieval: a question comparing two companies is asked once per company,
so that both companies' passages reach the evidence, not only the one nearer the whole question.

Subjects are proper names as English writes them (capitalised words: "Northwind Trading Ltd.",
"DataCorp", "Leeds"). Chinese has no capitals: there the names are the words jieba's
part-of-speech tagger marks as people, places, organisations and other proper names (kb.segment),
plus Latin acronyms ("RCEP"); a passage is about such a name when it contains it as written.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

from kb.answer.evidence import idf_weights
from kb.segment import NAME_TAGS, dictionary_words, tagged_words
from kb.store import Hit
from kb.text import CJK_IDEOGRAPHS, key_terms, normalize, split_sentences

_WORD = re.compile(r"[A-Za-z0-9][\w&'’.-]*")
# Capitalised for grammar, not because they name something.
_NOT_NAMES = frozenset(
    """what who whom whose when where which why how is are was were did does do can could
    should would will has have had compare based describe according list summarize summarise
    explain give tell name in on at of for by from to the a an and or with during after before
    between i if please january february march april may june july august september october
    november december monday tuesday wednesday thursday friday saturday sunday""".split()
)
# Honorifics: "Mr David Anderson" is the David Anderson a chunk may name without "Mr".
_HONORIFICS = frozenset({"mr", "mrs", "ms", "dr", "prof", "sir"})
MIN_ASKED_TERMS = 2
# Lower-case words that may sit inside a name ("Bank of America", "Procter & Gamble").
_JOINERS = frozenset({"of", "&", "de", "der", "van", "von", "la", "le"})


def _clean(word: str) -> str:
    word = re.sub(r"(['’]s?|[.,;:!?])+$", "", word)
    return word


def named_subjects(question: str) -> list[str]:
    """Proper names in an English question, in order, without duplicates.

    A run of capitalised words is one name ("Harbor Logistics Group Co."); "and" and commas
    separate names. Question words and month names are not names, and
    a name does not start with an honorific ("Mr", "Dr").
    """
    names: list[str] = []
    current: list[str] = []
    pending: list[str] = []  # joiners seen inside a run, kept only if a capital follows

    def close() -> None:
        if current:
            name = " ".join(current)
            if name not in names:
                names.append(name)
        current.clear()
        pending.clear()

    words = list(_WORD.finditer(question))
    for index, match in enumerate(words):
        raw = match.group(0)
        word = _clean(raw)
        gap = question[words[index - 1].end() : match.start()] if index else " "
        if any(c in gap for c in ",;:(") or not word:
            close()
        # The first word is capitalised anyway: it starts a name only if the next word is
        # capitalised too ("Northwind Trading's ...", not "Invoices sent ...").
        first_alone = (
            index == 0
            and not any(c.isupper() for c in word[1:])
            and not (len(words) > 1 and words[1].group(0)[0].isupper())
        )
        lower = word.lower()
        if lower in _HONORIFICS and not current:
            continue
        if word and word[0].isupper() and lower not in _NOT_NAMES and not first_alone:
            current.extend(pending)
            pending.clear()
            current.append(word)
        elif current and lower in _JOINERS:
            pending.append(word)
        else:
            close()
        if raw != word and not re.search(r"\b(?:Inc|Co|Ltd|Corp|Jr|Sr|St|Mr|Mrs|Ms|Dr)\.$", raw):
            close()  # a possessive or punctuation ends the name
    close()
    # A name made only of stopwords ("US") cannot be looked for in a chunk's terms.
    return [name for name in names if key_terms(name)]


# Latin words in Chinese questions that name a role or a measure, not a subject.
_NOT_ZH_NAMES = frozenset("ceo cfo cto coo cio gdp cpi ppi pmi app ai vs top mvp ipo etf".split())
_CJK = re.compile(f"[{CJK_IDEOGRAPHS}]")
# Words jieba tags as names that name no subject a passage must repeat: news about China rarely
# says 中国, and 城市 or 研发 are tagging noise (rgb_zh's development half); 东西 ("thing") is
# tagged as a place.
_GENERIC_ZH = frozenset("中国 我国 全国 国内 国外 海外 世界 全球 国际 城市 研发 东西".split())


# Words that end an organisation's name: the word before them is its distinctive part, which
# jieba's tagger often misses (远航/v 科技/n 公司/n).
_ORG_SUFFIXES = frozenset(
    "公司 集团 银行 大学 学院 医院 科技 电子 汽车 股份 控股 证券 保险 研究院 协会".split()
)
_NAME_PART_TAGS = ("n", "v", "j", "eng")  # tags a name's distinctive word may carry


def _certain_spans(words: Sequence[str], plain_words: Sequence[str]) -> set[tuple[int, int]]:
    """Character spans of the tagged words whose boundaries jieba is sure of: the word and its
    neighbours are the same with its unknown-word guesser (HMM) on and off.

    The guesser invents names out of mis-cut text: 扎加藏布发源 comes out as 扎加藏 + 布发源,
    尼高·高华是 as 尼高 + 高华是, 以兆康苑 keeps the preposition. Such a name appears in no passage
    as written, and the answer's passage was refused as "about another subject" (6 of 160
    answerable cmrc2018 and xquad_zh questions in the answer benchmark)."""

    def spans(tokens: Sequence[str]) -> list[tuple[int, int]]:
        out, at = [], 0
        for token in tokens:
            out.append((at, at + len(token)))
            at += len(token)
        return out

    plain = set(spans(plain_words))
    tagged = spans(words)
    certain = set()
    for index, span in enumerate(tagged):
        around = tagged[max(index - 1, 0) : index + 2]
        if all(s in plain for s in around):
            certain.add(span)
    return certain


def chinese_subjects(question: str, certain_only: bool = False) -> list[str]:
    """Proper names in a Chinese question, in order, without duplicates: jieba's name tags
    (people, places, organisations, other names, abbreviations), Latin acronyms, and
    organisations named by a word before a suffix such as 集团 or 科技.

    With `certain_only`, a name jieba's guesser found counts only where its boundaries are
    certain (`_certain_spans`): for the check that an answer's passage names every subject,
    which needs the name as written. The guesser also finds real names (本泽马, 耶伦) that
    retrieval and follow-ups use, so they are kept otherwise."""
    names: list[str] = []
    words = tagged_words(question)
    # The second segmentation is needed only to tell sure names from guessed ones.
    certain = (
        _certain_spans([w for w, _ in words], dictionary_words(question)) if certain_only else set()
    )
    starts = list(itertools.accumulate((len(w) for w, _ in words), initial=0))
    for index, (word, tag) in enumerate(words):
        span = (starts[index], starts[index + 1])
        word = word.strip()
        latin = tag == "eng" and len(word) > 1 and word.lower() not in _NOT_ZH_NAMES
        sure = span in certain or not certain_only
        is_name = (tag in NAME_TAGS and len(word) > 1 and sure) or (latin and word[:1].isupper())
        if not is_name and index and word in _ORG_SUFFIXES:
            before, before_tag = words[index - 1]
            in_name = before not in _ORG_SUFFIXES and len(before) > 1
            sure = (starts[index - 1], span[0]) in certain or not certain_only
            if in_name and sure and before_tag.startswith(_NAME_PART_TAGS) and before not in names:
                word, is_name = before, True
        if is_name and word not in names and word not in _GENERIC_ZH:
            names.append(word)
    return names


def question_subjects(question: str, language: str) -> list[str]:
    """The named subjects of a question in either language."""
    return chinese_subjects(question) if language == "zh" else named_subjects(question)


def checkable_subjects(question: str, language: str) -> list[str]:
    """The subjects a passage can be checked for by name: in Chinese, only names whose
    boundaries the segmenter is sure of."""
    if language == "zh":
        return chinese_subjects(question, certain_only=True)
    return named_subjects(question)


def _names_in(subject: str, text: str) -> bool:
    """Does `text` (normalised) name `subject`? A Chinese name is found as written; an English
    one by its terms (kb.answer.subjects.mentions_name)."""
    if _CJK.search(subject):
        name = normalize(subject)
        # Chinese abbreviations keep the full name's characters in order (恒指 for 恒生指数,
        # 世锦赛 for 世界锦标赛): a name is also found spelled out, a few characters apart.
        return name in text or bool(re.search(".{0,3}".join(map(re.escape, name)), text))
    return mentions_name(key_terms(subject), key_terms(text))


def _same_name(term: str, other: str) -> bool:
    # "North American" names what "North America" does, "German" what "Germany" does; a
    # different ending ("Kestrel", "Kestrex") is another name.
    short, long = sorted((term, other), key=len)
    return len(short) >= 5 and len(long) - len(short) <= 2 and long.startswith(short)


def mentions_name(wanted: set[str], found: set[str]) -> bool:
    """Do the terms `found` in a text name every term of a subject (`wanted`)?"""
    return bool(wanted) and all(
        t in found or any(_same_name(t, f) for f in found if f[:1] == t[:1]) for t in wanted
    )


def is_about(subject: str, hit: Hit) -> bool:
    """Does the chunk (or its document's title) name the subject?"""
    return _names_in(subject, normalize(f"{hit.metadata.get('title', '')}\n{hit.text}"))


def subject_queries(question: str, subjects: Sequence[str]) -> list[str]:
    """One query per subject: the question with the other subjects taken out."""
    queries = []
    for subject in subjects:
        query = question
        for other in subjects:
            if other != subject:
                query = query.replace(other, " ")
        queries.append(re.sub(r"\s+", " ", query).strip())
    return queries


def subject_coverage(question: str, subjects: Sequence[str], hits: Sequence[Hit]) -> float | None:
    """For the least-covered subject, the share of the rest of the question (weighted by rarity
    among the hits) that two sentences of one chunk about that subject mention.

    None when the question names no subject or asks nothing beyond its subjects.
    """
    if not subjects or not hits:
        return None
    named = set().union(*(key_terms(s) for s in subjects))
    asked = key_terms(question) - named
    if len(asked) < MIN_ASKED_TERMS:
        # One word left ("Where is the Leeds Warehouse located?") is too little to judge by:
        # a passage that answers may well say it differently.
        return None
    idf = idf_weights(asked, [key_terms(h.text) for h in hits])
    total = sum(idf.values())
    # Each chunk's terms and sentence pairs once, whatever the number of subjects.
    named_in: list[str] = []
    pair_terms: list[list[set[str]]] = []
    for hit in hits:
        title = key_terms(str(hit.metadata.get("title", "")))
        named_in.append(normalize(f"{hit.metadata.get('title', '')}\n{hit.text}"))
        sentences = [key_terms(s) | title for s in split_sentences(hit.text)] or [title]
        pairs = itertools.combinations(sentences, 2) if len(sentences) > 1 else [sentences]
        pair_terms.append([set().union(*pair) for pair in pairs])
    worst = 1.0
    for subject in subjects:
        best = 0.0
        for hit_text, pairs in zip(named_in, pair_terms, strict=True):
            if not _names_in(subject, hit_text):
                continue  # not about this subject (is_about)
            for covered in pairs:
                best = max(best, sum(idf[t] for t in asked if t in covered) / total)
        worst = min(worst, best)
    return worst
