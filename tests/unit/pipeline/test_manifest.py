"""The run manifest and the settings passed whole: a manifest written before `RunManifest` existed is still read,
rendered template values become typed settings once, the params show the settings' own defaults, and a model is
loaded at the revision a run recorded or not at all."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from latechunk.chunking.config import ChunkingConfig
from latechunk.embedding.checkpoints import RevisionUnavailable, checkpoint_revision, resolve_checkpoint
from latechunk.embedding.config import PLAIN, LateChunkingConfig
from latechunk.pipeline.extract import ExtractSettings
from latechunk.pipeline.manifest import RunManifest
from latechunk.pipeline.models import describe_model
from latechunk.settings import from_rendered
from latechunk.sources.limits import Limits
from latechunk.validation.settings import ValidationSettings

# A manifest as the extract stage wrote it before late-chunking settings and retries were recorded.
OLD_MANIFEST = {
    "bucket": "docs",
    "prefix": "incoming/",
    "index": "chunks",
    "model": "jinaai/jina-embeddings-v2-base-en",
    "model_revision": "a" * 40,
    "dims": 768,
    "chunking": {"strategy": "sentences", "chunk_size": 256, "overlap": 0, "sentences_per_chunk": 3},
    "window": 8192,
    "window_overlap": 256,
    "objects_quarantined": 1,
    "batches": ["s3://staging/runs/d/r/documents/batch-00000.parquet"],
    "changed": {"incoming/a.txt": "e1"},
    "deleted_keys": ["incoming/gone.txt"],
    "quarantine": [{"key": "incoming/b.txt", "etag": "e2", "reason": "empty", "detail": ""}],
    "settings": {"max_bad_fraction": 0.3},
}


def test_a_manifest_written_before_the_class_is_read_with_the_settings_that_run_used():
    manifest = RunManifest.from_dict(OLD_MANIFEST)
    assert manifest.late_chunking == PLAIN, "no late-chunking record: the run used plain late chunking"
    assert manifest.chunking == ChunkingConfig(sentences_per_chunk=3)
    assert manifest.chunking.max_chunk_tokens == ChunkingConfig().max_chunk_tokens
    assert (manifest.retried, manifest.pending_uri, manifest.objects_selected) == ({}, None, None)
    assert manifest.max_bad_fraction == 0.3
    assert (manifest.window, manifest.window_overlap, manifest.model_revision) == (8192, 256, "a" * 40)


def test_the_file_keeps_its_keys_and_reads_back_equal():
    manifest = RunManifest.from_dict(
        {**OLD_MANIFEST, "late_chunking": LateChunkingConfig().recorded(), "retried": {"incoming/c.txt": 1}}
    )
    written = manifest.to_dict()
    assert set(OLD_MANIFEST) <= set(written)
    assert written["late_chunking"] == LateChunkingConfig().recorded()
    assert written["chunking"] == ChunkingConfig(sentences_per_chunk=3).as_dict()
    assert RunManifest.from_dict(written) == manifest


def test_rendered_values_become_typed_settings_and_empty_ones_their_defaults():
    rendered = {"strategy": "fixed", "chunk_size": "64", "overlap": None, "sentences_per_chunk": ""}
    assert from_rendered(ChunkingConfig, rendered) == ChunkingConfig(strategy="fixed", chunk_size=64)
    assert from_rendered(LateChunkingConfig, {"frame_windows": "False", "naive_weight": "0"}) == LateChunkingConfig(
        frame_windows=False, naive_weight=0.0
    )
    settings = from_rendered(ExtractSettings, {"bucket": "b", "prefix": "p/", "index": "i", "model": "m",
                                               "chunking": {}, "window": "512", "max_nesting_depth": "50"})  # fmt: skip
    assert (settings.window, settings.window_overlap, settings.max_nesting_depth) == (512, None, 50)
    with pytest.raises(ValueError, match="no setting max_depth"):
        from_rendered(ExtractSettings, {"bucket": "b", "prefix": "p/", "index": "i", "model": "m", "chunking": {},
                                        "max_depth": 3})  # fmt: skip


def test_the_params_show_the_defaults_of_the_settings_that_own_them():
    from latechunk_operators.params import ingest_params

    params = ingest_params()
    owned = {
        "chunk_size": ChunkingConfig().chunk_size,
        "max_chunk_tokens": ChunkingConfig().max_chunk_tokens,
        "window_layout": LateChunkingConfig().window_layout,
        "frame_windows": LateChunkingConfig().frame_windows,
        "naive_weight": LateChunkingConfig().naive_weight,
        "max_nesting_depth": Limits().max_depth,
        "max_extract_seconds": Limits().time_budget_s,
        "max_pdf_bytes": Limits().max_pdf_bytes,
        "validation_sample_size": ValidationSettings().sample_size,
        "self_retrieval_threshold": ValidationSettings().self_retrieval_threshold,
        "semantic_checks": ValidationSettings().semantic_checks,
        "exact_sample_tokens": ValidationSettings().exact_sample_tokens,
    }
    assert {name: params[name].value for name in owned} == owned
    extract = ExtractSettings(bucket="b", prefix="p/", index="i", model="m", chunking={})
    assert (extract.max_nesting_depth, extract.max_pdf_page_bytes) == (Limits().max_depth, Limits().max_pdf_page_bytes)


def test_a_model_is_resolved_at_the_recorded_revision_or_not_at_all(tiny_jina_model, tmp_path):
    model_dir = Path(tiny_jina_model)
    recorded = checkpoint_revision(model_dir)
    assert resolve_checkpoint(model_dir, recorded) == model_dir
    changed = tmp_path / "model"
    shutil.copytree(model_dir, changed)
    config = changed / "config.json"
    config.write_text(config.read_text().replace("{", '{"note": "retrained", ', 1))
    with pytest.raises(RevisionUnavailable, match="not .* that the run recorded"):
        resolve_checkpoint(changed, recorded)
    with pytest.raises(RevisionUnavailable):
        describe_model(str(changed), recorded)
    assert describe_model(str(changed)).revision != recorded


def test_operators_accept_the_separate_arguments_of_dag_files_written_before():
    from latechunk_operators import LateChunkExtractOperator, LateChunkValidateOperator
    from latechunk_operators.validate import validation_settings

    extract = LateChunkExtractOperator(
        task_id="extract", bucket="b", prefix="p/", index_name="i", model="m", chunking={}, staging_bucket="s",
        max_nesting_depth=50, limits={"max_pdf_bytes": 1024},
    )  # fmt: skip
    assert extract.limits == {"max_nesting_depth": 50, "max_pdf_bytes": 1024}
    validate = LateChunkValidateOperator(
        task_id="validate", manifest_path="s3://s/m.json", index_name="i", staging_bucket="s", sample_size="20",
        self_retrieval_threshold=0.5, validation={"query_k": "5", "probes": "tides => a.txt"},
    )  # fmt: skip
    settings = validation_settings(validate.validation)
    assert (settings.sample_size, settings.self_retrieval_threshold, settings.query_k) == (20, 0.5, 5)
    assert settings.recall_threshold == ValidationSettings().recall_threshold
    assert settings.probes == [{"query": "tides", "expected_keys": ["a.txt"]}]


def test_the_levels_travel_in_the_manifest_only_when_not_chunks_only():
    old = RunManifest.from_dict(OLD_MANIFEST)
    assert old.levels == ("chunk",)
    assert "levels" not in old.to_dict(), "a run of chunks only writes the manifest it always wrote"
    leveled = RunManifest.from_dict({**OLD_MANIFEST, "levels": ["document", "chunk"]})
    assert leveled.levels == ("chunk", "document")
    assert RunManifest.from_dict(leveled.to_dict()).levels == ("chunk", "document")
    settings = from_rendered(ExtractSettings, {"bucket": "b", "prefix": "p", "index": "i", "model": "m",
                                               "chunking": {}, "levels": "chunk,section"})  # fmt: skip
    assert settings.levels == "chunk,section"
    assert from_rendered(ExtractSettings, {"bucket": "b", "prefix": "p", "index": "i", "model": "m", "chunking": {},
                                           "levels": "None"}).levels == "chunk"  # fmt: skip
