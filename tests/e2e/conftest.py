"""Running the pipeline DAGs for real: dag.test() against the metadata DB, the local servers and a tiny encoder."""

from __future__ import annotations

import pytest
from support import TINY_ENCODER_VALIDATION, Pipeline


@pytest.fixture
def ingest(airflow_home, connections, s3_bucket, staging_bucket, es_index, tiny_jina_model) -> Pipeline:
    return Pipeline(
        {
            "bucket": s3_bucket,
            "prefix": "incoming/",
            "lookback_days": 0,
            "index": es_index,
            "model": tiny_jina_model,
            "staging_bucket": staging_bucket,
            "chunking_strategy": "sentences",
            "sentences_per_chunk": 1,
            "window": 64,
            "window_overlap": 16,
            "docs_per_batch": 3,
            "validation_sample_size": 20,
            **TINY_ENCODER_VALIDATION,
        },
    )
