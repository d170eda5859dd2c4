"""Validate: check the indexed run with kNN queries and fail loudly when results are wrong."""

from __future__ import annotations

from typing import Any

from latechunk_operators.base import LateChunkBaseOperator
from latechunk_operators.links import RunReportLink


class LateChunkValidateOperator(LateChunkBaseOperator):
    """Run the index checks of the run and fail the task when a blocking one is below its threshold.

    Checks (``latechunk.validation.run``): chunk counts per document equal the staged chunks; the mapping and the
    recorded model, chunking and window are the run's; a sample of the run's documents re-encoded by the run's model
    gives exactly the chunks the index serves (the exact check); sampled chunks find themselves at rank 1; approximate
    kNN agrees with exact search (recall@10); sampled chunks' texts and documents' titles, encoded by the run's
    model, find their documents; the vectors are spread and no vector is shared by different texts; optional probe
    queries find their expected documents. The query, spread and shared-vector checks depend on the corpus and
    warn by default (``semantic_checks``). The report goes to the run's staging folder; a summary goes to the log
    and XCom.

    :param manifest_path: the run manifest written by the extract task. (templated)
    :param index_name: index or alias to check. (templated)
    :param model: the run's model: it encodes the validation queries. (templated)
    :param sample_size: chunks sampled for the self-retrieval and recall checks. (templated)
    :param self_retrieval_threshold: minimum share of sampled chunks found at rank 1. (templated)
    :param recall_threshold: minimum recall@10 of kNN against exact search. (templated)
    :param query_retrieval_threshold: minimum share of sampled chunks whose text, encoded by the model, finds
        their document in the top ``query_k``. (templated)
    :param document_query_threshold: likewise for documents' titles or first sentences. (templated)
    :param max_mean_cosine: mean cosine between vectors of different documents that fails as collapse. (templated)
    :param query_k: hits the model-grounded queries look at. (templated)
    :param probes: probe queries, one per line as ``question => expected key[, key]`` (or a list of
        ``{"query": ..., "expected_keys": [...]}``); each must find one of its keys in the top 10. (templated)
    :param semantic_checks: ``warning`` (default) or ``error``: whether the corpus-dependent checks (query and
        title retrieval, spread, shared vectors) fail the run or only warn. (templated)
    :param exact_sample_tokens: tokens of the run's documents re-encoded for the exact check. (templated)
    :param elasticsearch_conn_id: Airflow connection (type ``elasticsearch``).
    """

    template_fields = (
        *LateChunkBaseOperator.template_fields,
        "manifest_path",
        "index_name",
        "model",
        "sample_size",
        "self_retrieval_threshold",
        "recall_threshold",
        "query_retrieval_threshold",
        "document_query_threshold",
        "max_mean_cosine",
        "query_k",
        "probes",
        "semantic_checks",
        "exact_sample_tokens",
    )
    ui_color = "#fde8e8"
    operator_extra_links = (RunReportLink(),)

    def __init__(
        self,
        *,
        manifest_path: str,
        index_name: str,
        model: str,
        sample_size: int = 50,
        self_retrieval_threshold: float = 0.95,
        recall_threshold: float = 0.9,
        query_retrieval_threshold: float = 0.8,
        document_query_threshold: float = 0.6,
        max_mean_cosine: float = 0.95,
        query_k: int = 3,
        probes: str | list[Any] | None = None,
        semantic_checks: str = "warning",
        exact_sample_tokens: int = 16384,
        elasticsearch_conn_id: str = "latechunk_es",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.manifest_path = manifest_path
        self.index_name = index_name
        self.model = model
        self.sample_size = sample_size
        self.self_retrieval_threshold = self_retrieval_threshold
        self.recall_threshold = recall_threshold
        self.query_retrieval_threshold = query_retrieval_threshold
        self.document_query_threshold = document_query_threshold
        self.max_mean_cosine = max_mean_cosine
        self.query_k = query_k
        self.probes = probes
        self.semantic_checks = semantic_checks
        self.exact_sample_tokens = exact_sample_tokens
        self.elasticsearch_conn_id = elasticsearch_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        from latechunk.reporting.metrics import validation_metrics
        from latechunk.validation.report import ValidationError

        from latechunk_operators.metrics import emit

        try:
            return self.run_checks()
        except ValidationError as failure:  # a failed run's values are what a dashboard most needs to show
            checks = {check.name: check.value for check in failure.report.checks if not check.skipped}
            emit(validation_metrics(self.dag_id, checks, passed=False))
            raise

    def run_checks(self) -> dict[str, Any]:
        from latechunk.pipeline.validate import ValidationSettings, validate
        from latechunk.validation.probes import parse_probes

        from latechunk_operators.hooks import elasticsearch_client

        summary = validate(
            s3=self.s3(),
            es=elasticsearch_client(self.elasticsearch_conn_id),
            manifest_path=self.manifest_path,
            index_name=self.index_name,
            settings=ValidationSettings(
                model=self.model,
                sample_size=int(self.sample_size),
                self_retrieval_threshold=float(self.self_retrieval_threshold),
                recall_threshold=float(self.recall_threshold),
                query_retrieval_threshold=float(self.query_retrieval_threshold),
                document_query_threshold=float(self.document_query_threshold),
                max_mean_cosine=float(self.max_mean_cosine),
                query_k=int(self.query_k),
                probes=parse_probes(self.probes),
                semantic_checks=str(self.semantic_checks),
                exact_sample_tokens=int(self.exact_sample_tokens),
            ),
        )
        return self.summarised(summary)
