"""A scripted chat model: a fake, for fast and exact tests of the answering chain's logic.

It never runs a network: each call is answered by `reply(messages)`, the first-step probability
of the watched reply (the not-found marker) and the answer check's p(yes) are fixed numbers.
The real GGUF model answers in the end-to-end tests; this fake drives the gates, citations and
stream events to each branch on demand, in milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from langchain_core.messages import BaseMessage

from kb.models.llm import ChatModel, Usage


def last_user_text(messages: Sequence[BaseMessage]) -> str:
    return str(messages[-1].content) if messages else ""


class FakeChatModel(ChatModel):
    """A fake chat model that replies from a script.

    `reply` is a fixed string or a function of the messages. Every call's messages are kept in
    `calls`, so a test can assert what the chain sent.
    """

    def __init__(
        self,
        reply: str | Callable[[Sequence[BaseMessage]], str] = "NOT FOUND",
        *,
        p_not_found: float | None = 0.0,
        p_yes: float = 0.9,
        name: str = "fake",
        context_window: int = 4096,
        piece: int = 4,
    ) -> None:
        super().__init__(name, context_window)
        self.reply = reply
        self.p_not_found = p_not_found
        self.p_yes = p_yes
        self.piece = piece
        self.calls: list[list[BaseMessage]] = []
        self.checks: list[list[BaseMessage]] = []

    @property
    def is_local(self) -> bool:
        return self.p_not_found is not None

    def _text(self, messages: Sequence[BaseMessage]) -> str:
        return self.reply(messages) if callable(self.reply) else self.reply

    def stream(
        self,
        messages: Sequence[BaseMessage],
        max_tokens: int,
        stop: Sequence[str] | None = None,
        grammar: Any | None = None,
        usage: Usage | None = None,
        watch_reply: str | None = None,
        suppress_reply_below: float | None = None,
    ) -> Iterator[str]:
        self.calls.append(list(messages))
        text = self._text(messages)
        for marker in stop or ():
            if marker and marker in text:
                text = text[: text.index(marker)]
        if usage is not None and watch_reply is not None:
            usage.first_token_prob = self.p_not_found
        for start in range(0, len(text), self.piece):
            yield text[start : start + self.piece]
        if usage is not None:
            usage.prompt_tokens = self.count_messages(messages)
            usage.completion_tokens = self.count_tokens(text)

    def reply_probs(
        self, messages: Sequence[BaseMessage], options: Mapping[str, Sequence[str]]
    ) -> dict[str, float]:
        self.checks.append(list(messages))
        probs = {name: 0.0 for name in options}
        if "yes" in probs:
            probs["yes"] = self.p_yes
            others = [n for n in probs if n != "yes"]
            for name in others:
                probs[name] = (1.0 - self.p_yes) / len(others)
        return probs
