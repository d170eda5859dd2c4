"""*Ask the index* on the run report, within bounds the api-server can afford.

The api-server serves the whole UI; a question must not be able to take it down. So:

- a question is capped in characters (checked before anything is loaded) and in the model's tokens;
- encoding runs on a small thread pool of its own, never on the server's event loop or request threads, and at
  most ``workers + queue`` questions are admitted at once: the next one is refused at once with 429 and a message
  (a refusal is cheap; a queue without end is how a server falls over);
- each model is loaded once per api-server process, keyed by model and revision (the run's manifest records
  both), so a checkpoint that changed under the same path is loaded afresh;
- one Elasticsearch client (one connection pool) serves every question.

Settings (environment of the api-server): ``LATECHUNK_ASK_MAX_CHARS`` (default 500),
``LATECHUNK_ASK_MAX_TOKENS`` (128), ``LATECHUNK_ASK_WORKERS`` (2), ``LATECHUNK_ASK_QUEUE`` (4).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any


class QuestionRefused(Exception):
    """A question the server will not answer now; ``status`` is the HTTP status, the message says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class AskLimits:
    max_chars: int = 500
    max_tokens: int = 128
    workers: int = 2
    queue: int = 4

    @classmethod
    def from_environment(cls) -> AskLimits:
        return cls(
            max_chars=int(os.environ.get("LATECHUNK_ASK_MAX_CHARS", cls.max_chars)),
            max_tokens=int(os.environ.get("LATECHUNK_ASK_MAX_TOKENS", cls.max_tokens)),
            workers=int(os.environ.get("LATECHUNK_ASK_WORKERS", cls.workers)),
            queue=int(os.environ.get("LATECHUNK_ASK_QUEUE", cls.queue)),
        )


def load_query_encoder(model: str, revision: str | None) -> Any:
    """The run's model at the revision its manifest recorded: a hub model at that commit, a local checkpoint only
    while its files still hash to it (else the question is answered with that error, not with another model)."""
    from latechunk.embedding.encoders import load_encoder

    return load_encoder(model, revision=revision or None)


class AskService:
    """Answers questions with kNN over a run's index, bounded as the module says."""

    def __init__(
        self,
        limits: AskLimits,
        *,
        es_client: Callable[[], Any],
        encoder_loader: Callable[[str, str | None], Any] = load_query_encoder,
    ):
        self.limits = limits
        self._es_client = es_client
        self._es: Any = None
        self._load = encoder_loader
        self._encoders: dict[tuple[str, str | None], Any] = {}
        self._lock = threading.Lock()  # one load per model, however many questions arrive while it loads
        self._admitted = threading.BoundedSemaphore(limits.workers + limits.queue)
        self._pool = ThreadPoolExecutor(max_workers=limits.workers, thread_name_prefix="latechunk-ask")

    def check_length(self, question: str) -> str:
        question = question.strip()
        if len(question) > self.limits.max_chars:
            raise QuestionRefused(413, f"The question has {len(question):,} characters; at most "
                                       f"{self.limits.max_chars:,} are accepted. Ask a shorter question.")
        return question

    async def ask(self, *, index: str, model: str, revision: str | None, question: str, k: int = 5) -> list[dict]:
        question = self.check_length(question)
        if not self._admitted.acquire(blocking=False):
            raise QuestionRefused(429, "Too many questions are being answered right now "
                                       f"(at most {self.limits.workers + self.limits.queue} at once). "
                                       "Try again in a few seconds.")
        future = self._pool.submit(self._search, index, model, revision, question, k)
        # Released when the work ends, not when the request does: a client that hangs up frees no worker.
        future.add_done_callback(lambda _: self._admitted.release())
        return await asyncio.wrap_future(future)

    def encoder(self, model: str, revision: str | None) -> Any:
        key = (model, revision)
        with self._lock:
            if key not in self._encoders:
                self._encoders[key] = self._load(model, revision)
            return self._encoders[key]

    def elasticsearch(self) -> Any:
        with self._lock:
            if self._es is None:
                self._es = self._es_client()
            return self._es

    def _search(self, index: str, model: str, revision: str | None, question: str, k: int) -> list[dict]:
        encoder = self.encoder(model, revision)
        tokens = len(encoder.tokenizer(question, add_special_tokens=True)["input_ids"])
        if tokens > self.limits.max_tokens:
            raise QuestionRefused(413, f"The question has {tokens:,} tokens for this model; at most "
                                       f"{self.limits.max_tokens:,} are accepted. Ask a shorter question.")
        from latechunk.index.spec import chunk_level_filter

        vector = encoder.encode_queries([question])[0]
        response = self.elasticsearch().search(
            index=index,
            knn={"field": "vector", "query_vector": vector.tolist(), "k": k, "num_candidates": max(50, 10 * k),
                 "filter": chunk_level_filter()},  # an index of several levels also holds sections and documents
            source=["key", "part", "chunk_id", "text", "char_start", "char_end", "section", "page_start", "page_end"],
        )
        return [{**hit["_source"], "score": hit["_score"]} for hit in response["hits"]["hits"]]
