"""Celery settings for the workers: torch, the tokenizers and the encoder code imported once per worker.

Airflow runs every task instance in a process forked from its Celery worker, so whatever the worker imported
before it forked is already loaded in each task. A worker started with these settings imports the modules of the
annotate, embed and validate stages and the S3 hook, torch among them, when it starts; each of those tasks then
skips that import: torch 2-3 s, a tokenizer's transformers modules about 1 s, and ``transformers.modeling_utils``
(which the first ``AutoModel.from_pretrained`` of a process imports) 6-7 s of every embed and validate task on 2
cores, against 0.6 s for loading MiniLM's weights. Paid once per worker instead of once per task. Importing torch
does not initialise CUDA or torch's thread pools, so the forked tasks use both as if they had imported torch
themselves.

Point a worker at them with
``AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=latechunk_operators.worker_preload.PRELOADING_CELERY_CONFIG``.
"""

from __future__ import annotations

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from latechunk.quiet_logs import quiet_libraries

# Before the preloaded modules are imported: transformers reads whether to draw progress bars at its import.
quiet_libraries()

# Celery imports these in the worker's main process, before it starts (forks) its pool.
PRELOADED_MODULES = (
    "latechunk.embedding.encoders",
    "latechunk.embedding.late_chunking",
    "latechunk.pipeline.annotate",
    "latechunk.pipeline.embed",
    "latechunk.pipeline.validate",
    "airflow.providers.amazon.aws.hooks.s3",
    "transformers.models.auto.tokenization_auto",
    "transformers.models.auto.modeling_auto",
    "transformers.modeling_utils",
)

PRELOADING_CELERY_CONFIG = {**DEFAULT_CELERY_CONFIG, "imports": PRELOADED_MODULES}
