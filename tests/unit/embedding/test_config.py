"""The late-chunking settings an index records: checked, recorded only when they differ from plain late chunking,
and refused when a run's differ from the index's."""

from __future__ import annotations

from pathlib import Path

import pytest
from latechunk.embedding.config import PLAIN, LateChunkingConfig
from latechunk.index.spec import IndexSpec, index_body, mismatches
from latechunk.settings import from_rendered

MEASURED = {"window_layout": "centred", "frame_windows": True, "naive_weight": 0.6}


def spec(late_chunking: dict) -> IndexSpec:
    return IndexSpec(name="i", dims=4, model_id="m", window=512, window_overlap=128, late_chunking=late_chunking)


def test_the_default_is_the_measured_method_and_plain_records_nothing():
    assert LateChunkingConfig().as_dict() == {**MEASURED, "chunk_context": 32}
    assert LateChunkingConfig().recorded() == MEASURED
    assert PLAIN.recorded() == {}
    assert LateChunkingConfig.from_recorded({}) == PLAIN
    assert LateChunkingConfig.from_recorded(MEASURED) == LateChunkingConfig()
    assert LateChunkingConfig.from_recorded({"naive_weight": 0.3}) == LateChunkingConfig("stitched", False, 0.3)
    older = index_body(spec({}))["mappings"]
    del older["_meta"]["latechunk"]["late_chunking"]
    assert mismatches(spec(PLAIN.recorded()), older) == []


def test_an_index_of_the_former_defaults_is_refused_naming_each_setting():
    former = index_body(spec(PLAIN.recorded()))["mappings"]  # what an index built before this change records
    problems = mismatches(spec(LateChunkingConfig().recorded()), former)
    assert problems == [
        "late_chunking.frame_windows is False in the index, True configured",
        "late_chunking.naive_weight is 0.0 in the index, 0.6 configured",
        "late_chunking.window_layout is 'stitched' in the index, 'centred' configured",
    ]
    mixed = index_body(spec({"naive_weight": 0.6}))["mappings"]
    assert mismatches(spec({"naive_weight": 0.6}), mixed) == []
    assert mismatches(spec(MEASURED), mixed) == [
        "late_chunking.frame_windows is False in the index, True configured",
        "late_chunking.window_layout is 'stitched' in the index, 'centred' configured",
    ]


def test_chunk_centred_windows_record_their_context_and_other_layouts_do_not():
    chunk_centred = LateChunkingConfig(window_layout="chunk_centred", naive_weight=0.0, chunk_context=48)
    assert chunk_centred.recorded() == {"window_layout": "chunk_centred", "frame_windows": True, "chunk_context": 48}
    assert LateChunkingConfig.from_recorded(chunk_centred.recorded()) == chunk_centred
    assert LateChunkingConfig(chunk_context=48).recorded() == MEASURED
    assert chunk_centred.name == "chunk_centred+framed, context 48"
    problems = mismatches(spec(chunk_centred.recorded()), index_body(spec(MEASURED))["mappings"])
    assert "late_chunking.window_layout is 'centred' in the index, 'chunk_centred' configured" in problems
    with pytest.raises(ValueError, match="chunk_context must be >= 0"):
        LateChunkingConfig(chunk_context=-1).validate()


def test_the_method_is_named_for_reports():
    assert LateChunkingConfig().name == "centred+framed, naive 0.6"
    assert PLAIN.name == "stitched (plain)"
    assert LateChunkingConfig("stitched", True, 0.0).name == "stitched+framed"


def test_settings_are_checked_and_typed_from_the_form():
    with pytest.raises(ValueError, match="naive_weight must be within"):
        LateChunkingConfig(naive_weight=1.5).validate()
    with pytest.raises(ValueError, match="window_layout must be one of"):
        LateChunkingConfig(window_layout="diagonal").validate()
    rendered = {"window_layout": "centred", "frame_windows": "True", "naive_weight": "0.6"}
    assert from_rendered(LateChunkingConfig, rendered).as_dict() == {
        "window_layout": "centred", "frame_windows": True, "naive_weight": 0.6, "chunk_context": 32
    }


@pytest.mark.parametrize("recorded", [{}, MEASURED, {"naive_weight": 0.3}])
def test_the_exact_check_re_encodes_with_the_method_the_manifest_recorded(tiny_jina_model, recorded):
    """The validate task rebuilds the run's embedding path from its manifest: an index of the former defaults
    (nothing recorded) is re-encoded with plain late chunking, not with today's defaults."""
    from latechunk.embedding.checkpoints import checkpoint_revision
    from latechunk.pipeline.manifest import RunManifest
    from latechunk.pipeline.validate import run_reencoder

    manifest = RunManifest.from_dict({
        "bucket": "b", "prefix": "", "index": "i", "model": str(tiny_jina_model), "dims": 32,
        "model_revision": checkpoint_revision(Path(tiny_jina_model)),
        "chunking": {"strategy": "fixed", "chunk_size": 16}, "window": 64, "window_overlap": 16,
        "late_chunking": recorded,
    })
    reencoder = run_reencoder(manifest, encoder=None)
    assert reencoder.late_chunking == LateChunkingConfig.from_recorded(recorded)
    assert reencoder.late_chunking.recorded() == recorded
    assert (reencoder.window, reencoder.overlap) == (64, 16)
