"""The pure helpers of bench/scale.py: the documents and their ETags, the delta's bookkeeping and the per-task
aggregation of the operators' summaries."""

from __future__ import annotations

import hashlib
import importlib.util

import pytest
from support import REPO


@pytest.fixture(scope="module")
def scale():
    spec = importlib.util.spec_from_file_location("scale_bench", REPO / "bench" / "scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_documents_are_distinct_one_sentence_each_and_a_revision_changes_them(scale):
    texts = [scale.document_text(n) for n in range(2000)]
    assert len(set(texts)) == len(texts)
    assert all(text.count(".") == 1 and text.endswith(".") for text in texts)
    assert scale.document_text(5) == scale.document_text(5)
    assert scale.document_text(5, revision=1) != scale.document_text(5)


def test_the_etag_is_the_md5_of_the_body_as_s3_gives_a_single_part_upload(scale):
    assert scale.etag_of("Héllo.") == hashlib.md5("Héllo.".encode()).hexdigest()


def test_keys_spread_over_the_folders_and_end_with_the_number(scale):
    keys = [scale.object_key("scale-10/", n, 4) for n in range(10)]
    assert len(set(keys)) == 10
    assert {key.split("/")[1] for key in keys} == {"f00", "f01", "f02", "f03"}
    assert all(int(key[-11:-4]) == n for n, key in enumerate(keys))


def test_the_delta_changes_and_deletes_disjoint_keys_spread_over_all_of_them(scale):
    keys = [f"k{n:05d}" for n in range(10_000)]
    changed, deleted = scale.plan_delta(list(reversed(keys)), 1000, 100)
    assert len(set(changed)) == 1000 and len(set(deleted)) == 100
    assert not set(changed) & set(deleted) and set(changed) | set(deleted) <= set(keys)
    touched = sorted(changed + deleted)
    assert touched[0] == keys[0] and touched[-1] >= keys[-20], "not spread over the whole range"


def test_a_delta_larger_than_the_objects_is_refused(scale):
    with pytest.raises(ValueError, match="cannot change 8 and delete 3 of 10"):
        scale.plan_delta([str(n) for n in range(10)], 8, 3)
    changed, deleted = scale.plan_delta([str(n) for n in range(10)], 8, 2)
    assert sorted(changed + deleted) == sorted(str(n) for n in range(10))


def test_task_figures_aggregate_map_indexes_by_whatever_task_ids_the_run_had(scale):
    instances = [
        {"task_id": "extract_shard", "duration_s": 4.0, "summary": {"peak_rss_mb": 210.0}},
        {"task_id": "extract_shard", "duration_s": 6.0, "summary": {"peak_rss_mb": 190.5}},
        {"task_id": "embed", "duration_s": 10.0, "summary": {"peak_rss_mb": 400.0}},
        {"task_id": "embed", "duration_s": 2.5, "summary": {"peak_rss_mb": 455.2}},
        {"task_id": "embed", "duration_s": 1.0, "summary": {"peak_rss_mb": 300.0}},
        {"task_id": "publish", "duration_s": 1.5, "summary": None},
    ]
    figures = scale.task_figures(instances)
    assert figures == {
        "extract_shard": {"tasks": 2, "max_s": 6.0, "task_s": 10.0, "peak_rss_mb": 210.0},
        "embed": {"tasks": 3, "max_s": 10.0, "task_s": 13.5, "peak_rss_mb": 455.2},
        "publish": {"tasks": 1, "max_s": 1.5, "task_s": 1.5, "peak_rss_mb": None},
    }
    other_run = scale.task_figures([{"task_id": "index", "duration_s": 3.0, "summary": {"peak_rss_mb": 500.0}}])
    assert scale.max_peak(figures, other_run) == 500.0
    assert scale.max_peak(scale.task_figures([{"task_id": "publish", "duration_s": 1.0, "summary": None}])) is None


def test_seconds_between_reads_the_api_timestamps_and_an_unfinished_instance_counts_zero(scale):
    assert scale.seconds_between("2026-12-05T00:00:00Z", "2026-12-05T00:01:30.500000Z") == 90.5
    assert scale.seconds_between("2026-12-05T00:00:00Z", None) == 0.0


def test_embed_waits_measure_from_each_batchs_annotate_end_to_its_own_embed_start(scale):
    def ti(task_id, map_index, start, end):
        stamp = "2026-12-05T10:00:{:02d}+00:00".format
        return {"task_id": task_id, "map_index": map_index, "start_date": stamp(start), "end_date": end and stamp(end)}

    instances = [
        ti("annotate", 0, 0, 5), ti("embed", 0, 6, 9),  # waited 1 s
        ti("annotate", 1, 1, 10), ti("embed", 1, 40, 44),  # waited 30 s
        ti("annotate", 2, 2, 12), ti("embed", 2, 15, None),  # waited 3 s, still running
        ti("annotate", 3, 3, None),  # no embed yet: not counted
        ti("index", -1, 50, 55),
    ]  # fmt: skip
    assert scale.embed_waits(instances) == {"batches": 3, "median_s": 3.0, "max_s": 30.0}
    assert scale.embed_waits([ti("index", -1, 0, 1)]) is None
