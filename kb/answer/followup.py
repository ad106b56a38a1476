"""Does a question need its conversation, and the cheap rewrites that need no model.

The model's rewrite of a follow-up costs a prompt of its own (and evicts the answer prompt's
cached system prefix from llama.cpp), which roughly doubled the time of every later answer; and
its fallback glued the previous question onto a new topic ("How many days of annual leave do
managers get?" after two questions about the helpdesk). So, in order:

1. A question that reads on its own (no pronoun pointing back, no elliptical opening, enough
   words of its own) is kept exactly as asked: a new topic stays a new topic.
2. "那2022年呢？" / "And in 2023?": the previous question with its year (quarter, edition)
   swapped for the new one.
3. A Chinese follow-up that points back ("它成立于哪一年", "有哪些专业"), or names no subject of
   its own while the conversation does ("学院有多少位教师？"): the conversation's named subjects
   put in place of the pronoun, or in front of the question.
4. Anything else goes to the model (kb.answer.chain).

Hand-written rules rather than a classifier: the signals are few and fixed (pronouns and
openings of two languages), and each rule is a line a reviewer can check.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from kb.answer.constraints import constraints
from kb.answer.subjects import question_subjects
from kb.text import key_terms, normalize

_ZH_POINTERS = re.compile(
    r"它|他们|她们|(?<![尤极与])其(?![他它实余])|(?<![应活])该|(?<![因如彼就从])此|这个|那个|这些|"
    r"那些|这里|那里|上述|前者|后者"
)
_ZH_OPENINGS = re.compile(r"^(那|那么|还有|另外|以及|而|并且|再|又)")
_ZH_TAIL = re.compile(r"呢[？?]?$")
_EN_POINTERS = re.compile(
    r"\b(it|its|they|them|their|this|that|these|those|he|she|his|her|him|there|one|ones)\b",
    re.IGNORECASE,
)
_EN_OPENINGS = re.compile(r"^(and|also|what about|how about|same for|and what|then)\b", re.I)
# A question this short names too little to be on its own ("有哪些专业", "When?").
MIN_OWN_TERMS = {"zh": 5, "en": 3}


def needs_history(question: str, language: str) -> bool:
    """Does `question` lean on the conversation before it?"""
    text = question.strip()
    if language == "zh":
        if _ZH_POINTERS.search(text) or _ZH_OPENINGS.search(text) or _ZH_TAIL.search(text):
            return True
    elif _EN_POINTERS.search(text) or _EN_OPENINGS.search(text):
        return True
    own = key_terms(text)
    return len(own) < MIN_OWN_TERMS.get(language, 3)


_SWAP_ONLY = re.compile(r"^(那|那么|还有|and|what about|how about)?\W*(.*?)\W*(呢)?\W*$", re.I)


def swapped_constraint(previous: str, question: str) -> str | None:
    """The previous question with the follow-up's year (month, quarter, edition) in place of
    its own, when the follow-up asks nothing but that ("那2022年呢？", "And in 2023?")."""
    new = constraints(question)
    if not new:
        return None
    rest = normalize(question)
    for c in new:
        rest = rest.replace(normalize(c.text), " ")
    rest = re.sub(r"^(那么|那|还有|and|what about|how about)|呢|in|for|the|[\W_]", "", rest)
    if rest:
        return None  # the follow-up asks more than another year
    old = {c.kind: c for c in constraints(previous)}
    result = previous
    for c in new:
        if c.kind not in old:
            return None
        result = _replace_once(result, old[c.kind].text, c.text)
        if result is None:
            return None
    return result


def _replace_once(text: str, old: str, new: str) -> str | None:
    index = normalize(text).find(normalize(old))
    if index < 0 or len(normalize(text)) != len(text):
        return None  # the text changes length when normalised: positions would not match
    return text[:index] + new + text[index + len(old) :]


def conversation_subjects(earlier: Sequence[str], language: str) -> list[str]:
    """The named subjects of the latest earlier question that names any (Chinese only): what a
    conversation is about until a question names something else."""
    if language != "zh":
        return []
    for question in reversed(earlier):
        subjects = question_subjects(question, "zh")
        if subjects:
            return subjects
    return []


def leans_on_subjects(question: str, subjects: Sequence[str], language: str) -> bool:
    """A Chinese question that names no subject of its own while the conversation has one
    ("学院有多少位教师？" after questions about 哲学院) is about the conversation's subject."""
    return language == "zh" and bool(subjects) and not question_subjects(question, "zh")


def with_subjects(subjects: Sequence[str], question: str, language: str) -> str | None:
    """A Chinese follow-up with the conversation's subjects put where it points back
    ("它成立于哪一年" after a question about 文学院 → "文学院成立于哪一年"), else in front."""
    if language != "zh":
        return None
    subjects = [s for s in subjects if s not in question]
    if not subjects:
        return None
    named = "".join(subjects)
    body = _ZH_OPENINGS.sub("", question.strip())
    pointer = re.search(r"它们|它|其|该|此", body)
    if pointer:
        return body[: pointer.start()] + named + body[pointer.end() :]
    return named + body
