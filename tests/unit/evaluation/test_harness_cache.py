"""The harness's cache keys: two settings that cut documents differently never share stored vectors."""

from latechunk.evaluation.harness import LateVariant, _label, chunking_configs, late_key
from latechunk.evaluation.units import unit_keys


def test_cache_labels_differ_per_chunker_and_cap():
    labels = set()
    for chunker, sizes in (("fixed", [128, 256]), ("sentences", [128]), ("sections", [128, 256, 510])):
        configs = chunking_configs(chunker, sizes)
        for size in configs:
            for long_late in (False, True):
                labels.add(_label(("late", size), configs, long_late, {}))
    # fixed x2, sentences x1, sections x3, each with and without long late chunking
    assert len(labels) == 12


def test_cache_labels_differ_per_unit_section_size_and_windows():
    """Section and document units: one label per strategy, unit, section size and late windows, none shared with
    chunks; late variants that differ only in their naive mix (which mixes chunks only) share their units."""
    configs = chunking_configs("fixed", [256])
    default, stitched, light_mix = LateVariant(), LateVariant("stitched", False, 128, 0), LateVariant(naive_weight=0.3)
    named = {late_key(v): v for v in (default, stitched, light_mix)}
    kinds = ["naive", *named]
    owners: dict[str, set] = {}
    for long_late in (False, True):
        for key in [(kind, 256) for kind in kinds] + unit_keys(kinds, ["section", "document"], [256, 512, 1024]):
            owners.setdefault(_label(key, configs, long_late, named), set()).add((key, long_late))
    # cut to the window: naive and late chunks, 3 naive section sizes, 3 late section sizes and the document; long:
    # 4 chunk kinds, 3 naive section sizes, and per window layout (2) 3 section sizes and the document
    assert len(owners) == (2 + 3 + 4) + (4 + 3 + 2 * 4)
    for keys in owners.values():
        assert len({":" in kind for (kind, _), _ in keys}) == 1  # never a unit and a chunk result
        assert len({long_late for _, long_late in keys}) == 1
        assert len({size for (_, size), _ in keys}) == 1
        if any(long_late for _, long_late in keys) and len(keys) > 1:
            assert {kind.partition(":")[0] for (kind, _), _ in keys} == {late_key(default), late_key(light_mix)}
