"""Embed: late-chunk embedding of a staged batch, on a GPU worker."""

from __future__ import annotations

from typing import Any

from latechunk_operators.base import LateChunkBaseOperator


class LateChunkEmbedOperator(LateChunkBaseOperator):
    """Encode each document of a batch whole and mean-pool every chunk span: late chunking.

    Documents longer than the model window are encoded in overlapping windows (``window``/``window_overlap``
    tokens) that are stitched back before pooling. Runs on the ``gpu`` queue by default, so only the workers
    started with ``airflow celery worker -q gpu`` take it; it runs (slowly) on CPU too.

    :param batch_path: a staged document batch from the extract task; its spans come from the annotate task. (templated)
    :param model: hub id or local path of the encoder. (templated)
    :param window: tokens per window; defaults to the model's maximum. (templated)
    :param window_overlap: tokens each window repeats from the previous one, for context; None for
        min(256, window // 4). (templated)
    :param token_budget: padded tokens per forward pass; bounds memory. (templated)
    :param device: ``cuda``, ``cpu`` or None for automatic. (templated)
    :param dtype: ``auto``, ``float32``, ``bfloat16`` or ``float16`` (see
    ``latechunk.embedding.encoders.base.resolve_dtype``).
        (templated)
    :param attention: ``auto``, ``plain`` or ``packed`` (jina-bert models only). (templated)
    :param late_chunking: how vectors are computed beyond one window: ``window_layout``, ``frame_windows``,
        ``naive_weight`` (see ``latechunk.embedding.config``). (templated)
    """

    template_fields = (
        *LateChunkBaseOperator.template_fields,
        "batch_path",
        "model",
        "window",
        "window_overlap",
        "token_budget",
        "device",
        "dtype",
        "attention",
        "late_chunking",
    )
    ui_color = "#e6f5e6"

    def __init__(
        self,
        *,
        batch_path: str,
        model: str,
        window: int | None = None,
        window_overlap: int | None = None,
        token_budget: int = 16384,
        device: str | None = None,
        dtype: str = "auto",
        attention: str = "auto",
        late_chunking: dict[str, Any] | None = None,
        queue: str = "gpu",
        **kwargs: Any,
    ) -> None:
        super().__init__(queue=queue, **kwargs)
        self.batch_path = batch_path
        self.model = model
        self.window = window
        self.window_overlap = window_overlap
        self.token_budget = token_budget
        self.device = device
        self.dtype = dtype
        self.attention = attention
        self.late_chunking = late_chunking

    def execute(self, context: Any) -> dict[str, Any]:
        from latechunk.pipeline.embed import embed

        summary = self.run_batch_stage("embed", self.batch_path, lambda: embed(
            s3=self.s3(), area=self.staging_area(context),
            batch_path=self.batch_path,
            model=self.model,
            window=int(self.window) if self.window else None,
            window_overlap=int(self.window_overlap) if self.window_overlap is not None else None,
            token_budget=int(self.token_budget),
            device=self.device or None,
            dtype=self.dtype or "auto",
            attention=self.attention or "auto",
            late_chunking=late_chunking_settings(self.late_chunking),
        ))  # fmt: skip
        return self.summarised(summary)


def late_chunking_settings(settings: dict[str, Any] | None) -> dict[str, Any]:
    """Rendered param values in their types (templates may render booleans and numbers as text)."""
    settings = dict(settings or {})
    if "frame_windows" in settings:
        settings["frame_windows"] = str(settings["frame_windows"]).lower() in ("true", "1")
    if "naive_weight" in settings:
        settings["naive_weight"] = float(settings["naive_weight"])
    return settings
