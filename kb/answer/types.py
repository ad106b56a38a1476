"""What answering produces: the typed answer, its sources, and the events of a streamed answer.

Every shell (CLI, page, API) renders the same events the same way:

    Token*            the answer as it is generated; append each piece
    Replace?          show this text instead of everything streamed so far
    Refused?          the documents do not hold the answer: show `message` instead of the text
    Sources           the cited sources (numbered as the answer cites them), the rest retrieved
    Timings           how long each step took
    Done              the complete `Answer`, for whoever wants it in one piece

`StreamedText` folds the text events into what should be on screen now.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Fixed phrases shells show around an answer, in the answer's language.
LABELS: dict[str, dict[str, str]] = {
    "sources": {"en": "Sources", "zh": "来源"},
    "nearest": {"en": "Nearest documents:", "zh": "最相关的文档："},
    "unsupported": {
        "en": "The model's answer was not supported by the documents, so here is what they say:",
        "zh": "模型的回答在文档中找不到依据，以下是文档原文：",
    },
    "related": {
        "en": "Related information from the documents (not the answer):",
        "zh": "文档中的相关信息（不是答案）：",
    },
}


def label(name: str, language: str) -> str:
    texts = LABELS[name]
    return texts.get(language, texts["en"])


# Why an answer was refused.
REFUSAL_REASONS = (
    "no_relevant_documents",  # retrieval found nothing close enough, or too little of the question
    "subject_not_covered",  # no source about a subject the question names mentions what is asked
    "not_in_sources",  # the model said the sources do not hold the answer
    "unsupported",  # the model answered, but the answer is not supported by the sources
    "near_miss",  # the sources state a neighbouring year or edition, not the asked one
)


def evidence_label(reason: str, language: str) -> str:
    """The heading above the sentences a refusal quotes: what the sources say instead of an
    unsupported answer, or related information next to a near miss."""
    return label("related" if reason == "near_miss" else "unsupported", language)


@dataclass
class Source:
    n: int
    source: str
    page: int | None
    title: str
    section: str
    snippet: str
    chunk_id: str
    score: float

    def public(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "source": self.source,
            "page": self.page,
            "title": self.title,
            "snippet": self.snippet,
        }


@dataclass
class Quote:
    """A sentence of a source quoted as evidence; `n` is its citation number when cited."""

    n: int | None
    text: str
    source: str
    page: int | None


@dataclass
class Answer:
    question: str
    answer: str
    refused: bool
    language: str
    standalone_question: str
    sources: list[Source] = field(default_factory=list)  # cited
    also_retrieved: list[Source] = field(default_factory=list)
    evidence: list[Quote] = field(default_factory=list)  # quoted sentences
    refusal_reason: str | None = None  # one of REFUSAL_REASONS
    model_answer: str = ""  # the model's own words, before any fallback
    timings: dict[str, float | int | None] = field(default_factory=dict)
    # The signals behind the refusal decision: relevance, coverage, p_not_found, support, …
    diagnostics: dict[str, float | None] = field(default_factory=dict)
    # With trace=True: the retrieved chunks and the evidence sentences, for calibration.
    trace: dict[str, Any] | None = None

    def quotes_for(self, source: Source) -> list[str]:
        """The evidence sentences quoted from `source` (by citation number, else by place)."""
        found = []
        for quote in self.evidence:
            same_number = quote.n is not None and quote.n == source.n
            same_place = quote.n is None and (quote.source, quote.page) == (
                source.source,
                source.page,
            )
            if same_number or same_place:
                found.append(quote.text)
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "refused": self.refused,
            "sources": [s.public() for s in self.sources],
            "timings": self.timings,
        }


# --- stream events ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    text: str


@dataclass(frozen=True)
class Replace:
    text: str


@dataclass(frozen=True)
class Refused:
    reason: str
    message: str
    language: str
    # For "unsupported": what the sources do say; for "near_miss": the related passage.
    evidence: tuple[Quote, ...] = ()


@dataclass(frozen=True)
class Sources:
    cited: tuple[Source, ...]
    also_retrieved: tuple[Source, ...]
    language: str


@dataclass(frozen=True)
class Timings:
    values: dict[str, float | int | None]


@dataclass(frozen=True)
class Done:
    answer: Answer


AnswerEvent = Token | Replace | Refused | Sources | Timings | Done


class StreamedText:
    """The answer text to show now, folded from the events seen so far."""

    def __init__(self) -> None:
        self.text = ""
        self.streamed = ""  # what arrived as tokens, before any replacement

    def feed(self, event: AnswerEvent) -> str:
        if isinstance(event, Token):
            self.text += event.text
            self.streamed += event.text
        elif isinstance(event, Replace):
            self.text = event.text
        elif isinstance(event, Refused):
            self.text = event.message
        return self.text
