"""The harness's cache keys: two settings that cut documents differently never share stored vectors."""

from latechunk.evaluation.harness import _label, chunking_configs


def test_cache_labels_differ_per_chunker_and_cap():
    labels = set()
    for chunker, sizes in (("fixed", [128, 256]), ("sentences", [128]), ("sections", [128, 256, 510])):
        configs = chunking_configs(chunker, sizes)
        for size in configs:
            for long_late in (False, True):
                labels.add(_label(("late", size), configs, long_late, {}))
    # fixed x2, sentences x1, sections x3, each with and without long late chunking
    assert len(labels) == 12
