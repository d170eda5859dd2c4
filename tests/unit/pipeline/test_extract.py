"""Which objects a run reads: the day folders of its data interval and its LastModified window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from latechunk.pipeline.extract import ExtractSettings, day_prefixes
from latechunk.pipeline.scan import select
from latechunk.sources.documents import SourceObject

DAY = datetime(2026, 3, 4, tzinfo=UTC)


def test_day_prefixes_of_a_daily_interval_with_look_back():
    assert day_prefixes("in/", DAY, DAY + timedelta(days=1)) == ("in/2026-03-04/",)
    assert day_prefixes("in/", DAY, DAY + timedelta(days=1), lookback_days=2) == (
        "in/2026-03-02/", "in/2026-03-03/", "in/2026-03-04/",
    )
    assert day_prefixes("in/", DAY, DAY + timedelta(days=2)) == ("in/2026-03-04/", "in/2026-03-05/")
    assert day_prefixes("in/", DAY, DAY) == ("in/2026-03-04/",), "a zero-length interval still names its day"


def obj(key: str, modified: datetime) -> SourceObject:
    return SourceObject("b", key, "etag", 1, modified)


def test_select_by_folder_and_by_last_modified_half_open():
    listed = [
        obj("in/2026-03-04/a.txt", DAY), obj("in/2026-03-04/b.txt", DAY + timedelta(days=1)),
        obj("in/2026-03-05/c.txt", DAY + timedelta(hours=1)), obj("in/2026-03-040/d.txt", DAY),
    ]
    settings = ExtractSettings(bucket="b", prefix="in/", index="i", model="m", chunking={},
                               select_prefixes=("in/2026-03-04/",))
    assert [o.key for o in select(listed, settings)] == ["in/2026-03-04/a.txt", "in/2026-03-04/b.txt"]
    by_time = ExtractSettings(bucket="b", prefix="in/", index="i", model="m", chunking={},
                              modified_between=(DAY, DAY + timedelta(days=1)))
    assert [o.key for o in select(listed, by_time)] == ["in/2026-03-04/a.txt", "in/2026-03-05/c.txt",
                                                        "in/2026-03-040/d.txt"]
    assert select(listed, ExtractSettings(bucket="b", prefix="in/", index="i", model="m", chunking={})) == listed


def test_an_object_rewritten_in_an_old_folder_is_selected_by_the_run_of_the_day_it_was_written():
    listed = [
        obj("in/2026-01-01/rewritten.txt", DAY + timedelta(hours=5)),
        obj("in/2026-01-01/old.txt", DAY - timedelta(days=60)),
        obj("in/2026-03-04/a.txt", DAY - timedelta(days=60)),
        obj("in/2026-02-01/late.txt", DAY + timedelta(days=1)),
    ]
    settings = ExtractSettings(bucket="b", prefix="in/", index="i", model="m", chunking={},
                               select_prefixes=("in/2026-03-04/",), written_between=(DAY, DAY + timedelta(days=1)))
    assert [o.key for o in select(listed, settings)] == ["in/2026-01-01/rewritten.txt", "in/2026-03-04/a.txt"]


def test_section_and_document_levels_with_chunk_centred_windows_are_refused_before_anything_is_read(tiny_jina_model):
    """Chunk-centred windows encode each chunk with its context only: there is no pass over a whole section or
    document to pool, so the run is refused with the reason (nothing is listed, staged or written)."""
    import pytest
    from latechunk.pipeline.extract import extract

    settings = ExtractSettings(bucket="b", prefix="in/", index="i", model=tiny_jina_model, chunking={},
                               late_chunking={"window_layout": "chunk_centred", "naive_weight": 0.0},
                               levels="chunk,section")  # fmt: skip
    with pytest.raises(ValueError, match="chunk_centred windows encode each chunk with its context only"):
        extract(s3=None, es=None, area=None, settings=settings)
