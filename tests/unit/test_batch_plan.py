from __future__ import annotations

import random

import pytest
from latechunk.staging.batch_plan import Batch, BatchPlanner, estimate_tokens


def plan(objects: list[tuple[int, list[int]]], **settings) -> tuple[list[Batch], BatchPlanner]:
    """Run the planner over objects given as (listed bytes, tokens of each document); items are (object, document)
    positions. Checks after each object that at most one unfinished batch is held back."""
    planner = BatchPlanner(unread_bytes=sum(size for size, _ in objects), **settings)
    batches: list[Batch] = []
    for number, (size, costs) in enumerate(objects):
        batches += planner.add(size, (((number, i), cost) for i, cost in enumerate(costs)))
        held = planner.read_docs - sum(len(batch.items) for batch in batches)
        budget, docs_limit = planner.limits()
        held_tokens = planner.read_tokens - sum(batch.tokens for batch in batches)
        assert held <= (docs_limit or held) and (held <= 1 or held_tokens <= budget), "streams: holds one batch"
    batches += planner.finish()
    return batches, planner


def random_objects(seed: int, n_objects: int, docs: tuple[int, int], tokens: tuple[int, int]) -> list:
    rng = random.Random(seed)
    objects = []
    for _ in range(n_objects):
        costs = [rng.randint(*tokens) for _ in range(rng.randint(*docs))]
        objects.append((sum(costs) * 4, costs))  # 4 bytes per token, as the estimate assumes
    return objects


def test_every_document_once_in_order():
    objects = random_objects(1, 30, (0, 50), (1, 400))
    batches, _ = plan(objects, token_budget=2_000, max_batches=1024, docs_per_batch=25)
    items = [item for batch in batches for item in batch.items]
    assert items == [(n, i) for n, (_, costs) in enumerate(objects) for i in range(len(costs))]
    assert all(batch.items for batch in batches)


def test_batches_respect_the_budget_and_are_filled():
    objects = random_objects(2, 40, (1, 60), (1, 300))
    batches, _ = plan(objects, token_budget=3_000, max_batches=1024)
    for batch in batches:
        assert batch.token_limit == 3_000, "far from max_batches the configured budget holds"
        assert batch.tokens <= 3_000
    total = sum(batch.tokens for batch in batches)
    assert len(batches) <= 2 * -(-total // 3_000), "greedy packing fills batches at least half on average"
    assert all(a.tokens + b.tokens > 3_000 for a, b in zip(batches, batches[1:], strict=False)), (
        "a batch is cut only when the next document would not fit"
    )


def test_docs_per_batch_caps_the_documents_of_a_batch():
    objects = [(400, [1] * 100) for _ in range(7)]
    batches, _ = plan(objects, token_budget=1_000_000, max_batches=1024, docs_per_batch=64)
    assert [len(batch.items) for batch in batches] == [64] * 10 + [60]


def test_a_document_over_the_budget_is_alone_in_its_batch():
    batches, _ = plan([(4_000, [10, 20, 5_000, 30]), (100, [40])], token_budget=100, max_batches=1024)
    assert [batch.tokens for batch in batches] == [30, 5_000, 70]
    assert [len(batch.items) for batch in batches] == [2, 1, 2]


@pytest.mark.parametrize("docs_per_batch", [None, 64])
def test_batches_grow_rather_than_exceed_max_batches(docs_per_batch):
    # 200 objects of 5,000 short documents: 1,000,000 documents, 64 per batch would be 15,625 batches.
    objects = [(5_000 * 40, [10] * 5_000) for _ in range(200)]
    batches, _ = plan(objects, token_budget=1_000, max_batches=1024, docs_per_batch=docs_per_batch)
    assert 1000 <= len(batches) <= 1024, "the ceiling is used, not undershot by much"
    sizes = [batch.tokens for batch in batches]
    assert max(sizes) <= 1.1 * sum(sizes) / len(sizes), "the growth spreads over all batches"


def test_max_batches_holds_when_the_listed_sizes_underestimate_the_text():
    # Objects whose text is far longer than their listed size suggests (compressed PDFs, say): the estimate of the
    # work left is wrong from the start, and the last batch takes what remains.
    objects = [(10, [100] * 50) for _ in range(20)]
    batches, _ = plan(objects, token_budget=100, max_batches=8, docs_per_batch=10)
    assert len(batches) == 8
    assert sum(len(batch.items) for batch in batches) == 1_000


def test_random_runs_never_exceed_max_batches():
    for seed in range(30):
        rng = random.Random(seed)
        objects = random_objects(seed, rng.randint(1, 60), (0, 200), (1, 2_000))
        objects = [(rng.choice([0, size // 50, size, size * 20]), costs) for size, costs in objects]
        max_batches = rng.randint(1, 40)
        batches, planner = plan(
            objects, token_budget=rng.randint(1, 5_000), max_batches=max_batches,
            docs_per_batch=rng.choice([None, 1, 7, 100]),
        )  # fmt: skip
        assert len(batches) <= max_batches, f"seed {seed}"
        assert sum(len(batch.items) for batch in batches) == sum(len(costs) for _, costs in objects)
        assert planner.batches == len(batches)


def test_estimate_is_four_characters_per_token_rounded_up():
    assert [estimate_tokens(text) for text in ("", "abcd", "abcde", "x" * 4_000)] == [1, 1, 2, 1_000]


@pytest.mark.parametrize(
    "settings", [{"token_budget": 0}, {"max_batches": 0}, {"docs_per_batch": 0}], ids=["budget", "batches", "docs"]
)
def test_nonsense_limits_are_refused(settings):
    with pytest.raises(ValueError, match=">= 1"):
        BatchPlanner(**{"token_budget": 10, "max_batches": 10, "unread_bytes": 0, **settings})


def test_growth_is_logged_with_what_grew(caplog):
    caplog.set_level("INFO", logger="latechunk.staging.batch_plan")
    _, planner = plan([(400, [1] * 100)], token_budget=1_000, max_batches=2, docs_per_batch=10)
    planner.log_summary()
    (warning,) = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert "50 documents (docs_per_batch 10)" in warning and "tokens" not in warning
    assert [batch["documents"] for batch in planner.summary()["batches"]] == [50, 50]

    caplog.clear()
    _, planner = plan([(400, [1] * 100)], token_budget=1_000, max_batches=20, docs_per_batch=10)
    planner.log_summary()
    assert not [record for record in caplog.records if record.levelname == "WARNING"]
