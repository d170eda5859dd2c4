"""Annotate: tokenize whole documents and annotate their chunk spans."""

from __future__ import annotations

from typing import Any

from latechunk_operators.base import LateChunkBaseOperator

# The default of latechunk.pipeline.embed, repeated so that parsing a DAG does not import the pipeline's modules.
DEFAULT_MAX_DOCUMENT_TOKENS = 1_000_000


class LateChunkAnnotateOperator(LateChunkBaseOperator):
    """Tokenize each staged document whole and stage its chunk spans (token spans and character offsets).

    :param batch_path: a staged document batch from the extract task (its XCom ``batches``). (templated)
    :param model: model whose tokenizer defines the token spans. (templated)
    :param chunking: ``strategy`` (``sentences`` or ``fixed``), ``chunk_size``, ``overlap``,
        ``sentences_per_chunk``. (templated)
    :param max_document_tokens: a document of more tokens is quarantined (``too_many_tokens``) and its object is
        not indexed. (templated)
    """

    template_fields = (*LateChunkBaseOperator.template_fields, "batch_path", "model", "chunking", "max_document_tokens")
    ui_color = "#fdf6e3"

    def __init__(
        self,
        *,
        batch_path: str,
        model: str,
        chunking: dict[str, Any],
        max_document_tokens: int | str = DEFAULT_MAX_DOCUMENT_TOKENS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.batch_path = batch_path
        self.model = model
        self.chunking = chunking
        self.max_document_tokens = max_document_tokens

    def execute(self, context: Any) -> dict[str, Any]:
        from latechunk.pipeline.annotate import annotate

        summary = self.run_batch_stage("annotate", self.batch_path, lambda: annotate(
            s3=self.s3(), area=self.staging_area(context), batch_path=self.batch_path, model=self.model,
            chunking=dict(self.chunking), max_document_tokens=int(self.max_document_tokens),
        ))  # fmt: skip
        return self.summarised(summary)
