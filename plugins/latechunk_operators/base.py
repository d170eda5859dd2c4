"""What every pipeline operator shares: the S3 connection and the run-scoped staging area."""

from __future__ import annotations

import logging
import resource
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from latechunk.pipeline.manifest import RunManifest
    from latechunk.staging.tables import StagingArea

# One INFO line per HTTP request would bury the pipeline's own progress lines in the task log.
QUIET_LOGGERS = ("elastic_transport", "botocore", "urllib3", "httpx", "s3transfer")


class LateChunkBaseOperator(BaseOperator):
    """Base of the pipeline's operators.

    Batches move between tasks through object storage under
    ``s3://{staging_bucket}/{staging_prefix}/{dag_id}/{run_id}/``; XCom carries only their paths and counts.

    :param aws_conn_id: Airflow connection (type ``aws``) for the document bucket and the staging bucket.
    :param staging_bucket: bucket for the run's intermediate files and reports. (templated)
    :param staging_prefix: key prefix under which each run gets its own folder. (templated)
    """

    template_fields: tuple[str, ...] = ("staging_bucket", "staging_prefix")

    def __init__(
        self,
        *,
        staging_bucket: str,
        staging_prefix: str = "runs",
        aws_conn_id: str = "latechunk_s3",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.staging_bucket = staging_bucket
        self.staging_prefix = staging_prefix
        self.aws_conn_id = aws_conn_id

    def pre_execute(self, context: Any) -> None:
        """Keep the task log readable: third-party request logs at WARNING, no progress bars or warnings on stderr
        (which the task log shows as errors; see ``latechunk.quiet_logs``)."""
        from latechunk.quiet_logs import quiet_libraries

        super().pre_execute(context)
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        quiet_libraries()

    def summarised(self, summary: dict[str, Any]) -> dict[str, Any]:
        """End the task log with one human sentence about the task's structured summary (which goes to XCom),
        add the task process's peak resident memory to it, and send its figures as metrics (``run_metrics``)."""
        from latechunk.pipeline.progress import summary_line
        from latechunk.reporting.metrics import stage_metrics

        from latechunk_operators.metrics import emit

        summary = {**summary, "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
        self.log.info("%s (peak memory %.0f MB)", summary_line(self.task_id, summary), summary["peak_rss_mb"])
        emit(stage_metrics(self.dag_id, self.task_id, summary))
        return summary

    def run_manifest(self, context: Any, manifest_path: str | None) -> RunManifest:
        """The run's manifest, its settings only (what a batch's annotate and embed need, not its per-object lists):
        at ``manifest_path``, else where the extract task of this run staged it. A model
        revision it records that is no longer at hand fails the task without retries (a retry cannot find it); in
        `run_batch_stage`, the batch's failure record says why."""
        from airflow.sdk.exceptions import AirflowFailException
        from latechunk.embedding.checkpoints import RevisionUnavailable
        from latechunk.pipeline.manifest import manifest_uri, read_manifest
        from latechunk.pipeline.models import describe_model

        manifest = read_manifest(
            self.s3(), manifest_path or manifest_uri(self.staging_area(context)), object_lists=False
        )
        try:
            describe_model(manifest.model, manifest.model_revision)
        except RevisionUnavailable as error:
            raise AirflowFailException(str(error)) from error
        return manifest

    def run_batch_stage(self, stage: str, batch_path: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Run one batch's stage; a failed try stages its error, which the index task reports if no later try of
        the batch succeeds (`latechunk.pipeline.batch_failures`), and fails as usual."""
        from latechunk.pipeline.batch_failures import record_failure

        try:
            return work()
        except Exception as error:
            try:
                record_failure(self.s3(), batch_path, stage, error)
            except Exception:  # the store may be the fault: the task's own error is the one to raise
                self.log.exception("could not record the failure of %s", batch_path)
            raise

    def staging_area(self, context: Any) -> StagingArea:
        from latechunk.staging.tables import StagingArea

        return StagingArea(
            bucket=self.staging_bucket, prefix=self.staging_prefix, dag_id=self.dag_id, run_id=context["run_id"]
        )

    def s3(self) -> Any:
        from latechunk_operators.hooks import s3_client

        return s3_client(self.aws_conn_id)


def warn_superseded(operator: str, **arguments: Any) -> None:
    """Arguments an operator still accepts (DAG files written for earlier versions keep parsing) but no longer
    uses: the run manifest carries those settings."""
    given = sorted(name for name, value in arguments.items() if value is not None)
    if given:
        warnings.warn(
            f"{operator}: {', '.join(given)} ignored: the settings the run manifest recorded are used",
            DeprecationWarning,
            stacklevel=3,
        )
