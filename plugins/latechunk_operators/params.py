"""The pipeline DAGs' params, with defaults from ``LATECHUNK_*`` environment variables.

One definition serves the ingest and the reindex DAG, the README's configuration reference, and the UI form.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from airflow.sdk import Asset, Param
from latechunk.chunking.config import DEFAULT_MAX_DOCUMENT_TOKENS, ChunkingConfig
from latechunk.chunking.levels import DEFAULT_LEVELS
from latechunk.embedding.config import DEFAULT_TOKEN_BUDGET, WINDOW_LAYOUTS, LateChunkingConfig
from latechunk.index.settings import IndexSettings
from latechunk.sources.limits import Limits
from latechunk.sources.settings import SourceSettings
from latechunk.validation.settings import ValidationSettings

DEFAULT_MODEL = "jinaai/jina-embeddings-v2-base-en"


def _env(name: str, default: str) -> str:
    return os.environ.get(f"LATECHUNK_{name}", default)


def param_value(name: str) -> str:
    """Jinja expression of a param's value in a run: what the run was given, else the DAG's default. A user who
    clears a field of the trigger form sends null; the run then gets the default, never None."""
    return f"(params.{name} if params.{name} is not none else dag.params.{name})"


def param_ref(name: str) -> str:
    """Template of a param's value (see `param_value`), for an operator argument."""
    return "{{ " + param_value(name) + " }}"


INDEX_ASSET = Asset(name="latechunk_index", uri=f"elasticsearch://latechunk/{_env('INDEX', 'latechunk-chunks')}")

# Operator arguments shared by every task of both DAGs.
STAGING: dict[str, Any] = {
    "staging_bucket": param_ref("staging_bucket"),
    "staging_prefix": param_ref("staging_prefix"),
    "aws_conn_id": _env("AWS_CONN_ID", "latechunk_s3"),
}

# The Airflow pool of the embed task: one slot per GPU, so that no more encoders load at once than there are GPUs,
# whatever the executor (created by scripts/airflow.sh and the compose file's init service).
GPU_POOL = _env("GPU_POOL", "gpu")

# The Airflow pool of the tasks that write or check the served index (index and validate of the ingest and events
# DAGs, the reindex's swap_alias), with one slot: runs that overlap (a scheduled, a manual and a backfill run, an
# events run, a reindex) never write at once, so each write checks the bucket's current version of what it writes
# without another run writing meanwhile (see latechunk.pipeline.overlap). Created with the gpu pool by
# scripts/airflow.sh and the compose file's init service.
INDEX_POOL = _env("INDEX_POOL", "latechunk_index_writes")

# Runs of latechunk_events in flight at once: a burst of notifications starts a run while earlier ones still embed,
# index or validate (their index and validate tasks take turns in the index-writes pool), so an upload does not
# wait for the previous run's validation to end.
EVENT_RUNS = int(_env("EVENT_RUNS", "3"))

# Retries of every task but validate: after a worker died, a node restarted or a request timed out. The first
# retry waits LATECHUNK_RETRY_DELAY_S seconds (doubling after each failure).
TASK_RETRIES = {
    "retries": int(_env("RETRIES", "2")),
    "retry_delay": timedelta(seconds=int(_env("RETRY_DELAY_S", "60"))),
    "retry_exponential_backoff": True,
}

# Airflow's execution_timeout of each task, in minutes. It is an operator argument fixed when the DAG file is parsed,
# not a template, so it cannot be a run param: set LATECHUNK_<TASK>_TIMEOUT_MIN in the environment of the
# dag-processor (and workers). Each try of a task gets this long; past it the task fails (and is retried, but for
# validate). It is a SIGALRM in the task process, so it cannot cut one long C call short: the per-object limits
# (max_extract_seconds, the PDF parser process) are what keep one object from stalling extract.
TASK_TIMEOUT_MINUTES = {
    "plan_extract": 30,
    "extract_shard": 240,
    "extract": 240,
    "annotate": 120,
    "embed": 360,
    "index": 180,
    "validate": 60,
    "publish": 10,
    "swap_alias": 30,
    "requeue_late_events": 10,
}


def execution_timeout(task: str) -> timedelta:
    """The execution_timeout of a task: ``LATECHUNK_<TASK>_TIMEOUT_MIN`` minutes, else TASK_TIMEOUT_MINUTES."""
    return timedelta(minutes=float(_env(f"{task.upper()}_TIMEOUT_MIN", str(TASK_TIMEOUT_MINUTES[task]))))


# How vectors are computed beyond one window (latechunk.embedding.config.LateChunkingConfig).
LATE_CHUNKING: dict[str, Any] = {
    "window_layout": param_ref("window_layout"),
    "frame_windows": param_ref("frame_windows"),
    "naive_weight": param_ref("naive_weight"),
    "chunk_context": param_ref("chunk_context"),
}

CHUNKING: dict[str, Any] = {
    "strategy": param_ref("chunking_strategy"),
    "chunk_size": param_ref("chunk_size"),
    "overlap": param_ref("chunk_overlap"),
    "sentences_per_chunk": param_ref("sentences_per_chunk"),
    "max_chunk_tokens": param_ref("max_chunk_tokens"),
}

# The per-object extraction limits (latechunk.sources.limits.Limits), by their param (and ExtractSettings) names.
LIMITS: dict[str, Any] = {
    name: param_ref(name)
    for name in ("max_nesting_depth", "max_parts_per_object", "max_extract_seconds", "max_pdf_page_bytes",
                 "max_pdf_bytes", "max_unzipped_bytes")
}  # fmt: skip

# The validate task's settings (latechunk.validation.settings.ValidationSettings fields), from their params.
VALIDATION: dict[str, Any] = {
    "sample_size": param_ref("validation_sample_size"),
    **{name: param_ref(name) for name in (
        "self_retrieval_threshold", "recall_threshold", "query_retrieval_threshold", "document_query_threshold",
        "max_mean_cosine", "query_k", "probes", "semantic_checks", "exact_sample_tokens",
    )},
}  # fmt: skip


# The index task's settings (latechunk.index.settings.IndexSettings fields), from their params.
INDEX_SETTINGS: dict[str, Any] = {
    "shards": param_ref("index_shards"),
    "replicas": param_ref("index_replicas"),
    "bulk_refresh_interval": param_ref("bulk_refresh_interval"),
}

# The trigger form's sections, in the order the form shows them; every param belongs to one.
SECTIONS = {
    "Source": ("bucket", "prefix", "partition_by_date", "lookback_days", "select_by_last_modified", "delete_missing",
               "max_object_bytes", "json_text_field", "max_bad_fraction", "max_nesting_depth", "max_parts_per_object",
               "max_extract_seconds", "max_pdf_page_bytes", "max_pdf_bytes", "max_unzipped_bytes", "extract_shards",
               "objects_per_shard"),
    "Chunking": ("chunking_strategy", "chunk_size", "chunk_overlap", "sentences_per_chunk", "max_chunk_tokens",
                 "max_document_tokens"),
    "Model and embedding": ("model", "window", "window_overlap", "window_layout", "chunk_context", "frame_windows",
                            "naive_weight", "token_budget", "device", "dtype", "attention", "docs_per_batch",
                            "batch_token_budget"),
    "Index": ("index", "levels", "index_shards", "index_replicas", "bulk_refresh_interval", "delete_old_index"),
    "Validation": ("validation_sample_size", "exact_sample_tokens", "self_retrieval_threshold", "recall_threshold",
                   "semantic_checks", "query_retrieval_threshold", "document_query_threshold", "max_mean_cosine",
                   "query_k", "probes"),
    "Staging": ("staging_bucket", "staging_prefix"),
}


def in_sections(params: dict[str, Param]) -> dict[str, Param]:
    """The params in form order, each with its section (see SECTIONS); a param without one is a bug."""
    ordered = {}
    for section, names in SECTIONS.items():
        for name in names:
            if name in params:
                params[name].schema["section"] = section
                ordered[name] = _optional_when_defaulted(params[name])
    missing = sorted(set(params) - set(ordered))
    if missing:
        raise ValueError(f"params without a section: {missing}; add them to SECTIONS")
    return ordered


def _optional_when_defaulted(param: Param) -> Param:
    """The form marks a field required when its type excludes null: only a param without a default should be.
    A cleared field then sends null, which `param_ref` turns into the default."""
    kind = param.schema.get("type")
    if param.value is not None and isinstance(kind, str):
        param.schema["type"] = [kind, "null"]
    return param


def ingest_params() -> dict[str, Param]:
    """Every setting of a run; the reindex DAG uses the same ones (plus its own, then `in_sections` again)."""
    return in_sections(_params())


# Defaults of the params come from the settings that own them; the form shows the same values.
_CHUNKING = ChunkingConfig()
_LATE_CHUNKING = LateChunkingConfig()
_LIMITS = Limits()
_SOURCE = SourceSettings()
_VALIDATION = ValidationSettings()
_INDEX = IndexSettings()


def _params() -> dict[str, Param]:
    return {
        "bucket": Param(_env("BUCKET", "latechunk-docs"), type="string", description="Bucket holding the documents."),
        "prefix": Param(_env("PREFIX", "incoming/"), type="string", description="Key prefix to ingest."),
        "partition_by_date": Param(
            _env("PARTITION_BY_DATE", "true") == "true",
            type="boolean",
            description="Read the day folders <prefix>YYYY-MM-DD/ of the run's data interval: the scheduled run "
            "after midnight reads the day that just ended.",
        ),
        "lookback_days": Param(
            int(_env("LOOKBACK_DAYS", "2")),
            type="integer",
            minimum=0,
            maximum=366,
            description="Also re-list this many earlier day folders, for files that arrive late (unchanged ones "
            "are skipped).",
        ),
        "select_by_last_modified": Param(
            False, type="boolean", description="Only objects whose LastModified lies in the run's data interval."
        ),
        "delete_missing": Param(
            _SOURCE.delete_missing, type="boolean",
            description="Remove from the index the keys under the prefix that are gone."
        ),
        "index": Param(_env("INDEX", "latechunk-chunks"), type="string", description="Index or alias to write."),
        "levels": Param(
            _env("LEVELS", ",".join(DEFAULT_LEVELS)),
            enum=["chunk", "chunk,section", "chunk,document", "chunk,section,document"],
            description="Rows indexed per document: its chunks, and also one row per section and one for the whole "
            "document (field level), pooled from the same token embeddings (no extra encoder pass), for parent "
            "retrieval. Recorded with the index: another value needs the reindex DAG.",
        ),
        "index_shards": Param(
            int(_env("INDEX_SHARDS", str(_INDEX.shards))), type="integer", minimum=1,
            description="Primary shards of a new index (an existing one keeps its own): 1 suits a node and a "
            "small cluster; more spread the writes of a large index over more nodes.",
        ),
        "index_replicas": Param(
            _env("INDEX_REPLICAS", _INDEX.replicas), type="string", pattern=r"^\s*(\d+|\d+-(\d+|all))\s*$",
            description="Replicas of a new index: a number, or a range that follows the data nodes ('0-1': none "
            "on a single node, one on a cluster).",
        ),
        "bulk_refresh_interval": Param(
            _env("BULK_REFRESH_INTERVAL", _INDEX.bulk_refresh_interval), type="string",
            description="The index's refresh_interval while the index task writes ('-1': paused, each batch "
            "still refreshed once; '1s' keeps the default), reset to the default after.",
        ),
        "model": Param(_env("MODEL", DEFAULT_MODEL), type="string", description="Encoder: hub id or local path."),
        "chunking_strategy": Param(
            _env("CHUNKING_STRATEGY", _CHUNKING.strategy), enum=["sentences", "sections", "fixed"],
            description="How chunks are cut: sentences, whole sections (heading to heading, up to max_chunk_tokens) "
            "or fixed token runs.",
        ),
        "chunk_size": Param(
            int(_env("CHUNK_SIZE", str(_CHUNKING.chunk_size))), type="integer", minimum=1,
            description="Tokens per fixed chunk.",
        ),
        "chunk_overlap": Param(_CHUNKING.overlap, type="integer", minimum=0, description="Tokens fixed chunks share."),
        "sentences_per_chunk": Param(
            int(_env("SENTENCES_PER_CHUNK", "3")), type="integer", minimum=1, description="Sentences per chunk."
        ),
        "max_chunk_tokens": Param(
            _CHUNKING.max_chunk_tokens, type="integer", minimum=1,
            description="Most tokens per sentence or section chunk (never more than the window).",
        ),
        "max_document_tokens": Param(
            int(_env("MAX_DOCUMENT_TOKENS", str(DEFAULT_MAX_DOCUMENT_TOKENS))), type="integer", minimum=1,
            description="A document of more tokens is quarantined (too_many_tokens) with its whole object.",
        ),
        "window": Param(
            None, type=["null", "integer"], description="Tokens per encoder window; empty for the model's maximum."
        ),
        "window_overlap": Param(
            None, type=["null", "integer"], minimum=0,
            description="Context tokens each window repeats (long documents); empty for min(256, window / 4): 128 "
            "for a 512-token window, as measured.",
        ),
        "window_layout": Param(
            _LATE_CHUNKING.window_layout, enum=list(WINDOW_LAYOUTS),
            description="Long documents (longer than the window): centred keeps each window's middle, so kept tokens "
            "see context on both sides (measured best); stitched keeps each window's end (the reference's); "
            "chunk_centred encodes every chunk in its own window with chunk_context tokens on each side (late "
            "only, no naive pass: at or above naive chunking at 64 and 256 tokens on long meetings, at about 2.0 "
            "and 1.26 encoder tokens per document token; set naive_weight to 0 with it).",
        ),
        "chunk_context": Param(
            _LATE_CHUNKING.chunk_context, type="integer", minimum=0,
            description="chunk_centred only: context tokens on each side of a chunk in its window (measured: 32).",
        ),
        "frame_windows": Param(
            _LATE_CHUNKING.frame_windows, type="boolean",
            description="Long documents: give every window the document's [CLS] and [SEP] (2 tokens per window).",
        ),
        "naive_weight": Param(
            _LATE_CHUNKING.naive_weight, type="number", minimum=0, maximum=1,
            description="Long documents: mix each chunk's late vector with its naive (chunk alone) vector by this "
            "weight. The default 0.6 with centred, framed windows beat naive chunking on long meetings (held-out "
            "too), at about 2.4 encoder tokens per document token on long documents instead of 1.35 (0: pure "
            "late chunking, no naive pass). The run report shows the share of long documents and the extra tokens.",
        ),
        "token_budget": Param(
            int(_env("TOKEN_BUDGET", str(DEFAULT_TOKEN_BUDGET))), type="integer", minimum=1,
            description="Padded tokens per forward pass.",
        ),
        "device": Param(None, type=["null", "string"], description="cuda, cpu, or empty for automatic."),
        "dtype": Param(
            _env("DTYPE", "auto"), enum=["auto", "float32", "bfloat16", "float16"],
            description="Encoder weights and activations: auto is float32 on CPU, bfloat16 on GPUs that support "
            "it, else float16; bfloat16 on a GPU without it fails the task.",
        ),
        "attention": Param(
            _env("ATTENTION", "auto"), enum=["auto", "plain", "packed"],
            description="jina-bert models: plain (padded batches, the reference) or packed (sequences packed into "
            "rows, no padding); auto is plain. Other models run plain only.",
        ),
        "docs_per_batch": Param(
            _SOURCE.docs_per_batch, type="integer", minimum=1,
            description="Most documents per staged batch, whatever their tokens (raised when a run would need more "
            "than [core] max_map_length batches).",
        ),
        "batch_token_budget": Param(
            int(_env("BATCH_TOKEN_BUDGET", str(_SOURCE.batch_token_budget))), type="integer", minimum=1,
            description="Estimated tokens (text length / 4) per staged batch, i.e. per mapped annotate and embed "
            "task; raise it on GPU workers (tens of millions).",
        ),
        "max_object_bytes": Param(
            _SOURCE.max_object_bytes, type="integer", description="Larger objects are quarantined."
        ),
        "extract_shards": Param(
            int(_env("EXTRACT_SHARDS", str(_SOURCE.extract_shards))), type="integer", minimum=1,
            description="Most key ranges the prefix is split into, each listed, reconciled with the index and read "
            "by its own mapped extract_shard task on the default workers (1: one task reads everything).",
        ),
        "objects_per_shard": Param(
            int(_env("OBJECTS_PER_SHARD", str(_SOURCE.objects_per_shard))), type="integer", minimum=1,
            description="One key range per this many objects the index holds under the prefix, up to "
            "extract_shards (a first load, with no index yet, splits at the prefix's folders).",
        ),
        "json_text_field": Param(
            _SOURCE.json_text_field, type="string", description="Text field of .json/.jsonl documents."
        ),
        "max_bad_fraction": Param(
            _SOURCE.max_bad_fraction, type="number", minimum=0, maximum=1,
            description="Fail when a larger share of objects is bad."
        ),
        "max_nesting_depth": Param(
            _LIMITS.max_depth, type="integer", minimum=1, maximum=500,
            description="A .json/.jsonl object (or line) nested deeper is quarantined (at most 500: deeper data "
            "risks Python's recursion limit when it is read and written).",
        ),
        "max_parts_per_object": Param(
            _LIMITS.max_parts, type="integer", minimum=1,
            description="A .json list or .jsonl file with more records is quarantined whole.",
        ),
        "max_extract_seconds": Param(
            _LIMITS.time_budget_s, type="number", exclusiveMinimum=0,
            description="An object whose text extraction takes longer is quarantined (a PDF's parser process is "
            "stopped then).",
        ),
        "max_pdf_page_bytes": Param(
            _LIMITS.max_pdf_page_bytes, type="integer", minimum=1,
            description="A PDF with a page that draws more decoded content (streams and forms counted each time "
            "they are drawn) is quarantined.",
        ),
        "max_pdf_bytes": Param(
            _LIMITS.max_pdf_bytes, type="integer", minimum=1,
            description="A PDF whose pages draw more decoded content in all is quarantined.",
        ),
        "max_unzipped_bytes": Param(
            _LIMITS.max_unzipped_bytes, type="integer", minimum=1,
            description="A DOCX or PPTX (zip) file whose members would unzip to more bytes is quarantined.",
        ),
        "validation_sample_size": Param(
            _VALIDATION.sample_size, type="integer", minimum=1, description="Chunks sampled by validate."
        ),
        "exact_sample_tokens": Param(
            _VALIDATION.exact_sample_tokens, type="integer", minimum=1, maximum=1_000_000,
            description="Tokens of the run's documents that validate re-encodes and compares with the index (the "
            "exact check); at least one document is always re-encoded.",
        ),
        "semantic_checks": Param(
            _VALIDATION.semantic_checks, type="string", enum=["warning", "error"],
            description="What the corpus-dependent checks (query and title retrieval, spread, shared vectors) do "
            "below their thresholds: warn in the report, or fail the run.",
        ),
        "self_retrieval_threshold": Param(
            _VALIDATION.self_retrieval_threshold, type="number", minimum=0, maximum=1,
            description="Share of sampled chunks found at rank 1.",
        ),
        "recall_threshold": Param(
            _VALIDATION.recall_threshold, type="number", minimum=0, maximum=1,
            description="Recall@10 of kNN against exact search.",
        ),
        "query_retrieval_threshold": Param(
            _VALIDATION.query_retrieval_threshold, type="number", minimum=0, maximum=1,
            description="Share of sampled chunks whose own text, encoded by the model, finds their document.",
        ),
        "document_query_threshold": Param(
            _VALIDATION.document_query_threshold, type="number", minimum=0, maximum=1,
            description="Share of sampled documents whose title (or first sentence) finds the document.",
        ),
        "max_mean_cosine": Param(
            _VALIDATION.max_mean_cosine, type="number", minimum=-1, maximum=1,
            description="Mean cosine between vectors of different documents above which the vectors collapsed.",
        ),
        "query_k": Param(
            _VALIDATION.query_k, type="integer", minimum=1,
            description="Hits the model-grounded validation queries see.",
        ),
        "probes": Param(
            None,
            type=["null", "string"],
            format="multiline",
            description="Questions with known answers, one per line: question => expected/key.txt (several keys "
            "separated by commas). Validation fails when one is not in the top 10.",
        ),
        "staging_bucket": Param(
            _env("STAGING_BUCKET", "latechunk-staging"), type="string", description="Bucket for staged batches."
        ),
        "staging_prefix": Param("runs", type="string", description="Prefix of the per-run staging folders."),
    }
