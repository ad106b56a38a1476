"""Small text utilities shared by ingestion and answering: sentences, terms, language."""

from __future__ import annotations

import re
import unicodedata

# A sentence ends after Chinese full stops (and ；), or after . ! ? followed by a space or line end.
_SENTENCE_END = re.compile(
    r"(?<=[。！？；!?])(?![”」』）)\"'])|(?<=[.!?][”\"')])\s+|(?<=[.!?])\s+(?=[A-Z0-9\"“(])|\n+"
)
# Chinese ideographs (the unified blocks and extension A): what Chinese words are made of.
CJK_IDEOGRAPHS = "\u3400-\u4dbf\u4e00-\u9fff"
# Every full-width East Asian character: ideographs, CJK punctuation, kana, full-width forms.
# Text made of these is written without spaces, and a tokenizer spends about one token on each.
CJK_WIDE = "\u3000-\u9fff\uff00-\uffef"
_CJK_CHAR = re.compile(f"[{CJK_IDEOGRAPHS}]")
_WIDE_CHAR = re.compile(f"[{CJK_WIDE}]")
_LATIN_WORD = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)*")
_CJK_RUN = re.compile(f"[{CJK_IDEOGRAPHS}]+")

EN_STOPWORDS = frozenset(
    """a an the of to in on at by for with from as is are was were be been being and or but not no
    do does did done doing have has had having what which who whom whose when where why how that
    this these those there their they them it its he she his her him we our us you your i me my
    can could would should will shall may might must about into over after before during than then
    so such also any all each other some more most many much very just only own same too up out
    if because while until again further once here both few nor off s t don now according
    give tell name list describe explain based""".split()
)
# Words that frame a question ("compare …", "… respectively", "when did … occur") rather than
# name what it is about: an answer need not repeat them, so they do not count towards coverage.
EN_STOPWORDS |= frozenset(
    """compare compared comparing comparison respectively between among earlier later happen
    happened happens occur occurred occurs specific specifically mention mentioned regarding
    summarize summarise summary""".split()
)
# Question words and particles that never identify content in a Chinese question.
ZH_STOP_CHARS = frozenset("的了是在和与及或吗呢吧啊么什么哪谁几多少怎样如何为何请问是否有没")


def is_cjk(char: str) -> bool:
    """Whether `char` is a Chinese ideograph."""
    return bool(_CJK_CHAR.match(char))


def is_wide(char: str) -> bool:
    """Whether `char` is full-width East Asian text (joined to its neighbours without spaces)."""
    return bool(_WIDE_CHAR.match(char))


def count_wide(text: str) -> int:
    return len(_WIDE_CHAR.findall(text))


def language_of(text: str) -> str:
    """'zh' when Chinese characters make up a fair share of the letters, else 'en'."""
    cjk = len(_CJK_CHAR.findall(text))
    latin = len(re.findall(r"[A-Za-z]", text))
    return "zh" if cjk and cjk * 3 >= latin else "en"


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`, punctuation kept, empty pieces dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def join_sentences(sentences: list[str]) -> str:
    """Join sentences the way the language writes them: no space between Chinese ones."""
    out = ""
    for sentence in sentences:
        if (out and not (is_cjk(out[-1]) or out[-1] in "。！？；")) or (
            out and not is_cjk(sentence[0])
        ):
            out += " "
        out += sentence
    return out


def _accent_folding() -> dict[int, str]:
    # Latin letters with diacritics to their base letters ("Müller" -> "muller"): questions
    # are often typed without accents that the documents have, and the word pattern below would
    # otherwise split "müller" into "m" and "ller". Only Latin letters: CJK and kana are
    # left as they are.
    table = {}
    for code in range(0xC0, 0x250):
        base = "".join(
            c for c in unicodedata.normalize("NFKD", chr(code)) if not unicodedata.combining(c)
        )
        if base != chr(code) and base.isascii() and base.isalpha():
            table[code] = base
    return table


_ACCENT_FOLDING = _accent_folding()


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower().translate(_ACCENT_FOLDING)


def terms(text: str) -> list[str]:
    """Content terms for lexical matching: English words (no stopwords), numbers, and Chinese
    character bigrams (single characters for one-character runs), after NFKC and lower-casing.

    Bigrams are the standard unit for Chinese matching without a word segmenter: most Chinese
    words are two characters, and overlapping bigrams cover longer ones.
    """
    text = normalize(text)
    out: list[str] = []
    for word in _LATIN_WORD.findall(text):
        if word not in EN_STOPWORDS and (len(word) > 1 or word.isdigit()):
            out.append(_stem(word))
    for run in _CJK_RUN.findall(text):
        if len(run) == 1:
            if run not in ZH_STOP_CHARS:
                out.append(run)
            continue
        for i in range(len(run) - 1):
            gram = run[i : i + 2]
            if not (gram[0] in ZH_STOP_CHARS and gram[1] in ZH_STOP_CHARS):
                out.append(gram)
    return out


def _stem(word: str) -> str:
    # Enough stemming to match plural and simple verb forms; a full stemmer buys little here.
    if word.isdigit() or len(word) <= 3:
        return word
    for suffix in ("ies", "es", "s", "ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def key_terms(text: str) -> set[str]:
    """Terms for asking "does this text mention what the question asks about": English content
    words and single Chinese characters. Bigrams across Chinese word boundaries ("牌是" in
    "工牌是什么") rarely occur in the answer text, so for coverage single characters measure
    better: answerable Chinese questions then score like English ones.
    """
    text = normalize(text)
    found = {
        _stem(w)
        for w in _LATIN_WORD.findall(text)
        if w not in EN_STOPWORDS and (len(w) > 1 or w.isdigit())
    }
    found.update(c for c in text if is_cjk(c) and c not in ZH_STOP_CHARS)
    return found
