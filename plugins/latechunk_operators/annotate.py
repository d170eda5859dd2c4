"""Annotate: tokenize whole documents and annotate their chunk spans."""

from __future__ import annotations

from typing import Any

from latechunk_operators.base import LateChunkBaseOperator


class LateChunkAnnotateOperator(LateChunkBaseOperator):
    """Tokenize each staged document whole and stage its chunk spans (token spans and character offsets).

    :param batch_path: a staged document batch from the extract task (its XCom ``batches``). (templated)
    :param model: model whose tokenizer defines the token spans. (templated)
    :param chunking: ``strategy`` (``sentences`` or ``fixed``), ``chunk_size``, ``overlap``,
        ``sentences_per_chunk``. (templated)
    """

    template_fields = (*LateChunkBaseOperator.template_fields, "batch_path", "model", "chunking")
    ui_color = "#fdf6e3"

    def __init__(self, *, batch_path: str, model: str, chunking: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch_path = batch_path
        self.model = model
        self.chunking = chunking

    def execute(self, context: Any) -> dict[str, Any]:
        from latechunk.pipeline.embed import annotate

        summary = self.run_batch_stage("annotate", self.batch_path, lambda: annotate(
            s3=self.s3(), area=self.staging_area(context), batch_path=self.batch_path, model=self.model,
            chunking=dict(self.chunking),
        ))  # fmt: skip
        return self.summarised(summary)
