"""Words for keyword search: Chinese segmented into words, English tokenised and stemmed.

One function, `index_terms`, turns any text into the terms the keyword index stores and the
terms a query asks for, so both sides always agree. Chinese runs go through jieba's search
mode (a word plus the shorter words inside it: "北京大学" gives 北京, 大学 and 北京大学, so a
question that writes either matches), in jieba-rs (`rjieba`): the same dictionary and
algorithm as Python jieba, 24 times faster here and loaded in 0.2 s instead of 2.3 s (figures
in bench/results/keyword.md). Latin words are folded, lower-cased and stemmed with the Snowball
English stemmer; numbers stay whole ("2018", "3.5"). Stopwords are dropped: they carry no
meaning for ranking and make an index query read the longest posting lists.

`TOKENIZER_ID` names this recipe; an index built with another one is rebuilt (kb.store).
"""

from __future__ import annotations

import re
from functools import lru_cache

from kb.text import CJK_IDEOGRAPHS, EN_STOPWORDS, normalize

# Bumped whenever the terms for a text change, so stored indexes are rebuilt, never mixed.
TOKENIZER_ID = "jieba-search+snowball-en/2"

# Runs of Chinese ideographs, or of Latin letters and digits ("3.5" and "1,000" stay one number).
_RUN = re.compile(f"[{CJK_IDEOGRAPHS}]+|[a-z0-9]+(?:[.,][0-9]+)*")
# Function words of Chinese that jieba returns as words of their own; dropping them keeps
# queries on the posting lists that decide the ranking.
ZH_STOPWORDS = frozenset(
    """的 了 是 在 和 与 及 或 吗 呢 吧 啊 么 也 都 就 而 被 把 对 从 向 以 于 之 其 这 那 这个 那个
    什么 哪 哪个 哪些 谁 几 多少 怎么 怎样 如何 为何 为什么 请问 是否 有 没有 有没有 一个 一种
    我 你 他 她 它 我们 你们 他们 中 上 下 等 个 年 月 日""".split()
)
# Year, month and day markers are dropped as words ("2018年" keeps "2018"): a question's "年"
# alone would otherwise match every dated passage.


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return _stemmer().stemWord(word)


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def chinese_words(run: str) -> list[str]:
    """jieba's search-mode words of a run of Chinese characters (unknown words found by its
    HMM, as jieba does by default)."""
    import rjieba

    return rjieba.cut_for_search(run, True)


def index_terms(text: str) -> list[str]:
    """The keyword-index terms of `text`, in order (repeats kept: they count for BM25)."""
    out: list[str] = []
    for run in _RUN.findall(normalize(text)):
        first = run[0]
        if first.isascii():
            if first.isdigit():
                out.append(run)
            elif run not in EN_STOPWORDS and len(run) > 1:
                out.append(_stem(run))
            continue
        for word in chinese_words(run):
            if word not in ZH_STOPWORDS:
                out.append(word)
    return out


def query_terms(text: str) -> list[str]:
    """The distinct terms of a query, in order of first appearance."""
    return list(dict.fromkeys(index_terms(text)))


# jieba's part-of-speech tags for proper names: people (nr, nrt, nrfg), places (ns),
# organisations (nt) and other names (nz). Abbreviations (j: 恒指, 世锦赛) are left out: passages
# often spell them out (恒生指数), and a name must be found as written.
NAME_TAGS = frozenset({"nr", "nrt", "nrfg", "ns", "nt", "nz"})


def tagged_words(text: str) -> list[tuple[str, str]]:
    """jieba's words of `text` with their part-of-speech tags (HMM on, as jieba's default)."""
    import rjieba

    return [(word, tag) for word, tag in rjieba.tag(text, True)]


def dictionary_words(text: str) -> list[str]:
    """jieba's words of `text` from its dictionary alone (unknown-word guesser off): where
    these and `tagged_words` agree, the segmentation is not a guess."""
    import rjieba

    return rjieba.cut(text, False)
