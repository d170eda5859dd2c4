"""Embed: late-chunk embedding of a staged batch, on a GPU worker."""

from __future__ import annotations

from typing import Any

from latechunk_operators.base import LateChunkBaseOperator, warn_superseded


class LateChunkEmbedOperator(LateChunkBaseOperator):
    """Encode each document of a batch whole and mean-pool every chunk span: late chunking.

    Documents longer than the model window are encoded in overlapping windows that are stitched back before
    pooling. The model, its revision, the window, its overlap and the late-chunking method are the ones the
    extract task checked against the index and recorded in the run manifest, not the run's params again. Runs on
    the ``gpu`` queue by default, so only the workers started with ``airflow celery worker -q gpu`` take it; it runs
    (slowly) on CPU too.

    :param batch_path: a staged document batch from the extract task; its spans come from the annotate task. (templated)
    :param manifest_path: the run manifest written by the extract task (its XCom ``manifest``); empty for the
        manifest of this run's staging folder, where extract writes it. (templated)
    :param token_budget: padded tokens per forward pass; bounds memory. Empty for
        ``latechunk.embedding.config.DEFAULT_TOKEN_BUDGET``. (templated)
    :param device: ``cuda``, ``cpu`` or None for automatic. (templated)
    :param dtype: ``auto``, ``float32``, ``bfloat16`` or ``float16`` (see
        ``latechunk.embedding.encoders.base.resolve_dtype``). (templated)
    :param attention: ``auto``, ``plain`` or ``packed`` (jina-bert models only). (templated)
    :param model: ignored (deprecated), likewise ``window``, ``window_overlap`` and ``late_chunking``: the
        manifest's are used.
    """

    template_fields = (
        *LateChunkBaseOperator.template_fields,
        "batch_path",
        "manifest_path",
        "token_budget",
        "device",
        "dtype",
        "attention",
    )
    ui_color = "#e6f5e6"

    def __init__(
        self,
        *,
        batch_path: str,
        manifest_path: str | None = None,
        token_budget: int | None = None,
        device: str | None = None,
        dtype: str = "auto",
        attention: str = "auto",
        queue: str = "gpu",
        model: str | None = None,
        window: int | None = None,
        window_overlap: int | None = None,
        late_chunking: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(queue=queue, **kwargs)
        warn_superseded(
            type(self).__name__, model=model, window=window, window_overlap=window_overlap, late_chunking=late_chunking
        )
        self.batch_path = batch_path
        self.manifest_path = manifest_path
        self.token_budget = token_budget
        self.device = device
        self.dtype = dtype
        self.attention = attention

    def execute(self, context: Any) -> dict[str, Any]:
        from latechunk.embedding.config import DEFAULT_TOKEN_BUDGET
        from latechunk.pipeline.embed import embed

        def work() -> dict[str, Any]:
            manifest = self.run_manifest(context, self.manifest_path)
            return embed(
                s3=self.s3(), area=self.staging_area(context),
                batch_path=self.batch_path,
                model=manifest.model,
                revision=manifest.model_revision,
                window=manifest.window,
                window_overlap=manifest.window_overlap,
                token_budget=int(self.token_budget or DEFAULT_TOKEN_BUDGET),
                device=self.device or None,
                dtype=self.dtype or "auto",
                attention=self.attention or "auto",
                late_chunking=manifest.late_chunking.as_dict(),
                levels=manifest.levels,
            )  # fmt: skip

        summary = self.run_batch_stage("embed", self.batch_path, work)
        return self.summarised(summary)
