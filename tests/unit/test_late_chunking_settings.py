"""The late-chunking settings an index records: checked, recorded only when they differ from plain late chunking,
and refused when a run's differ from the index's."""

from __future__ import annotations

import pytest
from latechunk.index_mapping import IndexSpec, index_body, mismatches
from latechunk.late_chunking_config import LateChunkingConfig
from latechunk_operators.embed import late_chunking_settings


def spec(late_chunking: dict) -> IndexSpec:
    return IndexSpec(name="i", dims=4, model_id="m", window=512, window_overlap=128, late_chunking=late_chunking)


def test_plain_late_chunking_records_nothing_and_matches_older_indices():
    assert LateChunkingConfig().recorded() == {}
    chosen = LateChunkingConfig("centred", True, 0.6)
    assert chosen.recorded() == {"window_layout": "centred", "frame_windows": True, "naive_weight": 0.6}
    older = index_body(spec({}))["mappings"]
    del older["_meta"]["latechunk"]["late_chunking"]
    assert mismatches(spec({}), older) == []


def test_an_index_of_other_late_chunking_settings_is_refused():
    plain = index_body(spec({}))["mappings"]
    problems = mismatches(spec(LateChunkingConfig("centred", True, 0.6).recorded()), plain)
    assert len(problems) == 1 and problems[0].startswith("late_chunking is {} in the index")
    mixed = index_body(spec({"naive_weight": 0.6}))["mappings"]
    assert mismatches(spec({"naive_weight": 0.6}), mixed) == []


def test_settings_are_checked_and_typed_from_the_form():
    with pytest.raises(ValueError, match="naive_weight must be within"):
        LateChunkingConfig(naive_weight=1.5).validate()
    with pytest.raises(ValueError, match="window_layout must be one of"):
        LateChunkingConfig(window_layout="diagonal").validate()
    rendered = {"window_layout": "centred", "frame_windows": "True", "naive_weight": "0.6"}
    assert late_chunking_settings(rendered) == {"window_layout": "centred", "frame_windows": True, "naive_weight": 0.6}
