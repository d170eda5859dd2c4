"""Validate: check the indexed run with kNN queries and fail loudly when results are wrong."""

from __future__ import annotations

from typing import Any

from latechunk_operators.base import LateChunkBaseOperator, warn_superseded
from latechunk_operators.links import RunReportLink

# The settings validate took as separate arguments before `validation`: the fields of ValidationSettings.
VALIDATION_ARGUMENTS = (
    "sample_size", "self_retrieval_threshold", "recall_threshold", "query_retrieval_threshold",
    "document_query_threshold", "max_mean_cosine", "query_k", "probes", "semantic_checks", "exact_sample_tokens",
)


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

    :param manifest_path: the run manifest written by the extract task; the model at the revision it records
        encodes the validation queries and re-encodes the exact check's sample. (templated)
    :param index_name: index or alias to check. (templated)
    :param validation: the checks' settings, the fields of ``latechunk.validation.settings.ValidationSettings`` (their
        defaults for what it leaves out or what renders empty): ``sample_size`` (chunks sampled for the
        self-retrieval and recall checks), the thresholds ``self_retrieval_threshold``, ``recall_threshold``,
        ``query_retrieval_threshold``, ``document_query_threshold`` and ``max_mean_cosine``, ``query_k`` (hits
        the model-grounded queries look at), ``probes`` (one per line as ``question => expected key[, key]``, or
        a list of ``{"query": ..., "expected_keys": [...]}``; each must find one of its keys in the top 10),
        ``semantic_checks`` (``warning`` or ``error``: whether the corpus-dependent checks fail the run or only
        warn) and ``exact_sample_tokens`` (tokens re-encoded for the exact check). (templated)
    :param elasticsearch_conn_id: Airflow connection (type ``elasticsearch``).

    The settings are also accepted as separate arguments (``sample_size=...``, as DAG files of earlier versions
    pass them); ``model`` is ignored (deprecated): the manifest's is used.
    """

    template_fields = (*LateChunkBaseOperator.template_fields, "manifest_path", "index_name", "validation")
    ui_color = "#fde8e8"
    operator_extra_links = (RunReportLink(),)

    def __init__(
        self,
        *,
        manifest_path: str,
        index_name: str,
        validation: dict[str, Any] | None = None,
        model: str | None = None,
        elasticsearch_conn_id: str = "latechunk_es",
        **kwargs: Any,
    ) -> None:
        separate = {name: kwargs.pop(name) for name in VALIDATION_ARGUMENTS if name in kwargs}
        super().__init__(**kwargs)
        warn_superseded(type(self).__name__, model=model)
        self.manifest_path = manifest_path
        self.index_name = index_name
        self.validation = {**separate, **(validation or {})}
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
        from latechunk.pipeline.validate import validate

        from latechunk_operators.hooks import elasticsearch_client

        summary = validate(
            s3=self.s3(),
            es=elasticsearch_client(self.elasticsearch_conn_id),
            manifest_path=self.manifest_path,
            index_name=self.index_name,
            settings=validation_settings(self.validation),
        )
        return self.summarised(summary)


def validation_settings(rendered: dict[str, Any]) -> Any:
    """`ValidationSettings` from the rendered ``validation`` dict, its probes parsed."""
    from dataclasses import replace

    from latechunk.settings import from_rendered
    from latechunk.validation.probes import parse_probes
    from latechunk.validation.settings import ValidationSettings

    values = dict(rendered)
    probes = parse_probes(values.pop("probes", None))
    return replace(from_rendered(ValidationSettings, values), probes=probes)
