"""Prometheus metrics of one `kb serve` process (GET /metrics).

Each app gets its own registry, so several servers in one process (tests) never share counts.
Routes are labelled by their template (`/v1/documents/{document_id}`), never by the raw path,
so ids and probing requests cannot blow up the number of series.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 21, 34, 60, 120)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "kb_requests", "HTTP requests by route, method and status.",
            ["route", "method", "status"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "kb_request_seconds", "Time to the complete response, by route.",
            ["route"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.first_token = Histogram(
            "kb_time_to_first_token_seconds",
            "From the request to the answer's first token (queue wait included).",
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.tokens = Counter(
            "kb_tokens", "Model tokens, by kind (prompt or completion).", ["kind"], registry=r
        )
        self.answers = Counter(
            "kb_answers",
            "Questions by outcome: answered, refused, cancelled (client left), failed.",
            ["outcome"], registry=r,
        )  # fmt: skip
        self.rejected = Counter(
            "kb_rejected", "Questions turned away: queue_full (429), queue_timeout (503).",
            ["reason"], registry=r,
        )  # fmt: skip
        self.queue_length = Gauge("kb_queue_length", "Questions waiting for the model.", registry=r)
        self.generating = Gauge(
            "kb_generating", "Questions being answered now (0 or 1).", registry=r
        )
        self.ingested_files = Counter(
            "kb_ingested_files", "Uploaded files by result status.", ["status"], registry=r
        )
        self.ingested_chunks = Counter(
            "kb_ingested_chunks", "Chunks written by uploads.", registry=r
        )
        self.embedded_texts = Counter(
            "kb_embedded_texts", "Texts embedded through /v1/embeddings.", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
