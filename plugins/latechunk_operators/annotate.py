"""Annotate: tokenize whole documents and annotate their chunk spans."""

from __future__ import annotations

from typing import Any

from latechunk_operators.base import LateChunkBaseOperator, warn_superseded


class LateChunkAnnotateOperator(LateChunkBaseOperator):
    """Tokenize each staged document whole and stage its chunk spans (token spans and character offsets).

    The model, its revision and the chunking are the ones the extract task checked against the index and recorded
    in the run manifest, not the run's params again.

    :param batch_path: a staged document batch from the extract task (its XCom ``batches``). (templated)
    :param manifest_path: the run manifest written by the extract task (its XCom ``manifest``); empty for the
        manifest of this run's staging folder, where extract writes it. (templated)
    :param max_document_tokens: a document of more tokens is quarantined (``too_many_tokens``) and its object is
        not indexed; empty for ``latechunk.chunking.config.DEFAULT_MAX_DOCUMENT_TOKENS``. (templated)
    :param model: ignored (deprecated): the manifest's model is used.
    :param chunking: ignored (deprecated): the manifest's chunking is used.
    """

    template_fields = (*LateChunkBaseOperator.template_fields, "batch_path", "manifest_path", "max_document_tokens")
    ui_color = "#fdf6e3"

    def __init__(
        self,
        *,
        batch_path: str,
        manifest_path: str | None = None,
        max_document_tokens: int | str | None = None,
        model: str | None = None,
        chunking: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        warn_superseded(type(self).__name__, model=model, chunking=chunking)
        self.batch_path = batch_path
        self.manifest_path = manifest_path
        self.max_document_tokens = max_document_tokens

    def execute(self, context: Any) -> dict[str, Any]:
        from latechunk.chunking.config import DEFAULT_MAX_DOCUMENT_TOKENS
        from latechunk.pipeline.annotate import annotate

        def work() -> dict[str, Any]:
            manifest = self.run_manifest(context, self.manifest_path)
            return annotate(
                s3=self.s3(), area=self.staging_area(context), batch_path=self.batch_path, model=manifest.model,
                revision=manifest.model_revision, chunking=manifest.chunking.as_dict(),
                max_document_tokens=int(self.max_document_tokens or DEFAULT_MAX_DOCUMENT_TOKENS),
            )  # fmt: skip

        summary = self.run_batch_stage("annotate", self.batch_path, work)
        return self.summarised(summary)
