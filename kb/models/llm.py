"""The chat model behind answers: a local GGUF (llama-cpp-python) or an OpenAI-compatible server.

`ChatModel` is what the answering chain needs beyond LangChain's interface: a token counter for
prompt budgets, the context window, first-step probabilities of chosen replies, and a lock —
llama.cpp is not thread-safe, so generations are serialised and a caller can tell when it is
queued. `LangChainChatModel` implements it over LangChain chat models (`ChatLlamaCpp` for a
local GGUF, `ChatOpenAI` for any OpenAI-compatible server); kb.models.fake holds a scripted
fake for tests of the chain's logic.

Every answer prompt starts with a fixed system prefix (one per language), and llama.cpp keeps
the evaluated state of the previous prompt: the next question in the same language evaluates
only its new tokens. (llama-cpp-python's LlamaRAMCache would also keep the other language's
prefix, but each saved state copies a 300 MB logits buffer that its size limit does not count:
a 160-question run grew to 8 GB here.)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage

from kb.config import Settings
from kb.errors import ModelError
from kb.models.bundled import BUNDLED_GGUF, resolve_gguf
from kb.text import count_wide

log = logging.getLogger(__name__)


def approximate_tokens(text: str) -> int:
    """A conservative token estimate for servers whose tokenizer we cannot call."""
    wide = count_wide(text)
    return wide + (len(text) - wide + 2) // 3


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Probability the model gave, at its first step, to the first token of a watched reply
    # (e.g. the not-found marker); None where the backend exposes no logits.
    first_token_prob: float | None = None


class ChatModel:
    """What the answering chain asks of a chat model; subclasses implement the generation.

    The base class holds the generation lock: one generation at a time, and callers can see
    whether they would wait (`busy`) and how many are waiting (`queue_length`).
    """

    name: str = ""
    context_window: int = 4096

    def __init__(self, name: str, context_window: int) -> None:
        self.name = name
        self.context_window = context_window
        self._lock = threading.Lock()
        self._waiting = 0
        self._waiting_lock = threading.Lock()

    # --- what every backend provides --------------------------------------------------------

    @property
    def is_local(self) -> bool:
        """Whether the model runs in this process (and so exposes its logits)."""
        return False

    def count_tokens(self, text: str) -> int:
        return approximate_tokens(text)

    def grammar(self, gbnf: str) -> Any | None:
        """A compiled grammar where the backend supports one; None means plain prompting."""
        return None

    def reply_probs(
        self, messages: Sequence[BaseMessage], options: Mapping[str, Sequence[str]]
    ) -> dict[str, float]:  # pragma: no cover - interface
        """How likely the model's reply starts with each option (e.g. {"yes": [...], "no":
        [...]}, each listing spellings), normalised over the options. Call inside `turn()`."""
        raise NotImplementedError

    def stream(
        self,
        messages: Sequence[BaseMessage],
        max_tokens: int,
        stop: Sequence[str] | None = None,
        grammar: Any | None = None,
        usage: Usage | None = None,
        watch_reply: str | None = None,
        suppress_reply_below: float | None = None,
    ) -> Iterator[str]:  # pragma: no cover - interface
        """Yield the reply piece by piece. Call inside `turn()`.

        `watch_reply`: record the first step's probability of that reply in
        `usage.first_token_prob`; below `suppress_reply_below` it cannot start the reply."""
        raise NotImplementedError

    def close(self) -> None:
        """Free the model's memory; the object is unusable afterwards."""

    def reachable(self) -> tuple[bool, str | None]:
        """Whether the model can answer now (a server: it responds), and why not."""
        return True, None

    # --- shared -----------------------------------------------------------------------------

    def count_messages(self, messages: Sequence[BaseMessage]) -> int:
        # Chat templates add a handful of tokens per message.
        return sum(self.count_tokens(str(m.content)) + 6 for m in messages)

    @property
    def busy(self) -> bool:
        """Whether a generation is running now (a new caller would wait)."""
        return self._lock.locked()

    @property
    def queue_length(self) -> int:
        """Callers waiting for the model (not counting the one generating)."""
        return self._waiting

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the model for one generation; other callers wait their turn."""
        with self._waiting_lock:
            self._waiting += 1
        try:
            self._lock.acquire()
        finally:
            with self._waiting_lock:
                self._waiting -= 1
        try:
            yield
        finally:
            self._lock.release()


class LangChainChatModel(ChatModel):
    """A LangChain chat model: a local GGUF through `ChatLlamaCpp` (with its `llama_cpp.Llama`
    for exact token counts and logits) or a server through `ChatOpenAI`."""

    def __init__(
        self,
        chat: BaseChatModel,
        name: str,
        context_window: int,
        llama: Any | None = None,
        server_url: str = "",
        api_key: str = "",
    ) -> None:
        super().__init__(name, context_window)
        self.chat = chat
        self._llama = llama
        self.server_url = server_url
        self._api_key = api_key

    @property
    def is_local(self) -> bool:
        return self._llama is not None

    @property
    def llama(self) -> Any | None:
        """The `llama_cpp.Llama` behind a local model (benchmarks compare against it)."""
        return self._llama

    def count_tokens(self, text: str) -> int:
        if self._llama is None:
            return approximate_tokens(text)
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def grammar(self, gbnf: str) -> Any | None:
        if self._llama is None:
            return None
        from llama_cpp import LlamaGrammar

        return LlamaGrammar.from_string(gbnf, verbose=False)

    def close(self) -> None:
        # llama-cpp-python frees its model in __del__, which at interpreter exit runs after the
        # library's own helpers are gone and prints a TypeError; closing first avoids that.
        if self._llama is not None:
            self._llama.close()
            self._llama = None

    def reachable(self) -> tuple[bool, str | None]:
        if self._llama is not None or not self.server_url:
            return True, None
        import httpx

        try:
            response = httpx.get(
                self.server_url.rstrip("/") + "/models",
                headers={"Authorization": f"Bearer {self._api_key}"},
                timeout=3,
            )
        except httpx.HTTPError as exc:
            return False, f"model server {self.server_url} unreachable ({type(exc).__name__})"
        if response.status_code >= 400:
            return False, f"model server {self.server_url} answered HTTP {response.status_code}"
        return True, None

    def _first_step_watch(
        self,
        options: Mapping[str, Sequence[str]],
        into: dict,
        suppress_below: float | None = None,
    ) -> Any:
        """A logits processor that stores in `into`, once, the first step's probability of each
        option (summed over its spellings' first tokens): a graded "how sure is the model that
        this is its reply", which a threshold can calibrate, where sampled text says yes or no.

        With `suppress_below`, an option less likely than that cannot start the reply: the
        threshold decides, not greedy decoding's pick of the single likeliest token. (A
        not-found reply at 0.31, against answers whose first tokens share the other 0.69, won
        or lost by a hair depending on what llama.cpp had cached.)"""
        import numpy as np
        from llama_cpp import LogitsProcessorList

        ids = {
            name: {
                self._llama.tokenize(w.encode("utf-8"), add_bos=False, special=False)[0]
                for w in words
            }
            for name, words in options.items()
        }

        def watch(input_ids, scores):
            if not into:
                logits = np.asarray(scores, dtype=np.float64)
                probs = np.exp(logits - logits.max())
                probs /= probs.sum()
                into.update({k: float(sum(probs[t] for t in tokens)) for k, tokens in ids.items()})
                if suppress_below is not None:
                    for name, tokens in ids.items():
                        if into[name] < suppress_below:
                            for t in tokens:
                                scores[t] = -np.inf
            return scores

        return LogitsProcessorList([watch])

    def reply_probs(
        self, messages: Sequence[BaseMessage], options: Mapping[str, Sequence[str]]
    ) -> dict[str, float]:
        """A local model gives graded probabilities from its first step's logits; a server's one
        sampled word counts as certainty."""
        if self._llama is None:
            reply = "".join(str(c.content) for c in self._chat_stream(messages, max_tokens=4))
            reply = reply.strip().lower()
            chosen = next(
                (
                    k
                    for k, words in options.items()
                    if any(reply.startswith(w.lower()) for w in words)
                ),
                None,
            )
            return {k: float(k == chosen) for k in options}
        seen: dict[str, float] = {}
        processors = self._first_step_watch(options, seen)
        for _ in self._chat_stream(messages, max_tokens=1, logits_processor=processors):
            pass
        total = sum(seen.values())
        if not total:
            return {name: 1.0 / len(options) for name in options}
        return {name: value / total for name, value in seen.items()}

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
        kwargs: dict[str, Any] = {"max_tokens": max_tokens}
        if grammar is not None:
            kwargs["grammar"] = grammar
        watched: dict[str, float] = {}
        if watch_reply and usage is not None and self._llama is not None:
            kwargs["logits_processor"] = self._first_step_watch(
                {"reply": [watch_reply]}, watched, suppress_reply_below
            )
        text = ""
        for chunk in self._chat_stream(messages, stop=list(stop or []), **kwargs):
            piece = chunk.content if isinstance(chunk.content, str) else ""
            if usage is not None and usage.first_token_prob is None and watched:
                usage.first_token_prob = watched["reply"]
            if piece:
                text += piece
                yield piece
        if usage is not None:
            usage.prompt_tokens = self.count_messages(messages)
            usage.completion_tokens = self.count_tokens(text)

    def _chat_stream(self, messages: Sequence[BaseMessage], **kwargs: Any) -> Iterator[Any]:
        """LangChain's stream, with a server's connection and HTTP failures as ModelError."""
        if self._llama is not None:
            yield from self.chat.stream(list(messages), **kwargs)
            return
        import openai

        try:
            yield from self.chat.stream(list(messages), **kwargs)
        except openai.APIConnectionError as exc:
            raise ModelError(
                f"cannot connect to the model server at {self.server_url} ({exc}); check "
                "KB_LLM_URL and that the server is running"
            ) from exc
        except openai.APIStatusError as exc:
            raise ModelError(
                f"the model server at {self.server_url} answered HTTP {exc.status_code} "
                f"({str(exc)[:200]}); check KB_LLM_REMOTE_MODEL and KB_LLM_API_KEY"
            ) from exc


def _local_chat(settings: Settings) -> LangChainChatModel:
    from langchain_community.chat_models import ChatLlamaCpp

    path = resolve_gguf(settings.llm_model, settings.models_dir)
    try:
        chat = ChatLlamaCpp(
            model_path=str(path),
            n_ctx=settings.llm_ctx,
            n_threads=settings.threads(settings.llm_threads),
            n_batch=512,
            # ChatLlamaCpp defaults RoPE to base 10000; Qwen2.5 is trained with 1,000,000. Zero
            # tells llama.cpp to take both values from the GGUF file, as any model needs.
            rope_freq_base=0.0,
            rope_freq_scale=0.0,
            seed=settings.seed,
            temperature=settings.temperature,
            max_tokens=settings.max_answer_tokens,
            top_p=1.0,
            top_k=40,
            repeat_penalty=1.0,
            verbose=False,
            streaming=True,
        )
    except ValueError as exc:
        raise ModelError(
            f"cannot load the model file {path}: it is corrupt or not a model llama.cpp supports "
            f"({str(exc).splitlines()[-1][:200]}); check KB_LLM_MODEL"
        ) from exc
    llama = chat.client
    name = settings.llm_model if settings.llm_model in BUNDLED_GGUF else path.name
    return LangChainChatModel(chat, name, settings.llm_ctx, llama=llama)


def _remote_chat(settings: Settings) -> LangChainChatModel:
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(
        base_url=settings.llm_url,
        api_key=settings.llm_api_key,
        model=settings.llm_remote_model,
        temperature=settings.temperature,
        seed=settings.seed,
        max_tokens=settings.max_answer_tokens,
        streaming=True,
        timeout=120,
        max_retries=1,
    )
    return LangChainChatModel(
        chat,
        f"{settings.llm_remote_model} @ {settings.llm_url}",
        settings.llm_ctx,
        server_url=settings.llm_url,
        api_key=settings.llm_api_key,
    )


def load_chat_model(settings: Settings) -> ChatModel:
    """The model named by KB_LLM_URL (a server) or KB_LLM_MODEL (a local GGUF)."""
    if settings.llm_url:
        return _remote_chat(settings)
    return _local_chat(settings)
