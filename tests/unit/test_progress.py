"""Progress lines: time-based while work is in progress, with an ETA from the token rate; the end-of-task sentence."""

from __future__ import annotations

import logging
import time

from latechunk.pipeline.progress import Progress, summary_line


def progress_lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "latechunk.progress"]


def test_lines_keep_coming_while_one_long_step_runs(caplog):
    caplog.set_level(logging.INFO, logger="latechunk.progress")
    with Progress("embed", total_docs=2, every_s=0.05):
        deadline = time.monotonic() + 10  # one long document: no advance() call at all (a loaded machine is slow)
        while time.monotonic() < deadline and len(progress_lines(caplog)) < 3:
            time.sleep(0.05)
    lines = progress_lines(caplog)
    assert len(lines) >= 3, lines
    assert all(line.startswith("embed: 0/2 docs") for line in lines)
    assert "ETA after the first document" in lines[0]


def test_no_line_after_the_task_left_the_block(caplog):
    caplog.set_level(logging.INFO, logger="latechunk.progress")
    with Progress("annotate", every_s=0.05):
        pass
    time.sleep(0.2)
    assert not [record for record in caplog.records if record.name == "latechunk.progress"]


def test_eta_follows_tokens_not_documents():
    # Three short documents done in 10 s, the long one (750 of 1,000 tokens) still to come.
    progress = Progress("embed", total_docs=4, total_tokens=1000, started=time.monotonic() - 10)
    progress.advance(docs=3, tokens=250)
    assert 29 < progress.eta_seconds() < 31
    assert "ETA 30s" in progress.line() and "250/1,000 tokens" in progress.line()


def test_eta_from_documents_without_a_token_total():
    progress = Progress("extract", total_docs=10, started=time.monotonic() - 20)
    progress.advance(docs=5)
    assert 19 < progress.eta_seconds() < 21
    assert Progress("index").eta_seconds() is None


def test_summary_line_reads_the_counts_in_order():
    line = summary_line(
        "index",
        {"index": "docs", "chunks_indexed": 1234, "documents_written": 12, "failed_documents": 0, "seconds": 3.14159},
    )
    assert line == "index done: 12 documents written, 1,234 chunks indexed, 0 documents failed in 3.1s"
    assert summary_line("validate", {"passed": False, "quarantined": 2}).startswith(
        "validate done: validation FAILED, 2 quarantined"
    )
    assert summary_line("publish", {}) == "publish done: nothing to report"
    embedded = {"documents": 10, "tokens": 5000, "long_documents": 2, "extra_tokens": 4100, "encoder_cost": 1.82}
    assert summary_line("embed", embedded) == (
        "embed done: 10 documents, 5,000 tokens, 2 documents longer than the window, "
        "4,100 extra tokens encoded for them"
    )


def test_embed_progress_moves_inside_one_long_document(caplog):
    """The embed stage advances its progress by the tokens of every forward pass (`embed_documents`'s
    ``on_tokens``): during one long document the line shows its tokens going up while 0 documents are done."""
    from latechunk.chunking.spans import AnnotatedDocument, ChunkSpan
    from latechunk.embedding.config import PLAIN
    from latechunk.embedding.late_chunking import embed_documents
    from tiny_models import stand_in_encoder

    encoder = stand_in_encoder(dim=4, window=64)
    n_tokens = 1000
    doc = AnnotatedDocument(list(range(n_tokens)), [ChunkSpan(0, 0, n_tokens, 0, 0, "")])
    progress = Progress("embed", total_docs=1, total_tokens=n_tokens, every_s=0.0)
    caplog.set_level(logging.INFO, logger="latechunk.progress")
    embed_documents(
        encoder, [doc], overlap=16, token_budget=128, config=PLAIN, on_tokens=lambda n: progress.advance(tokens=n)
    )
    lines = progress_lines(caplog)
    assert len(lines) > 5 and all(line.startswith("embed: 0/1 docs") for line in lines)
    tokens = [int(line.split(", ")[1].split("/")[0].replace(",", "")) for line in lines]
    assert tokens == sorted(tokens) and tokens[0] < n_tokens and tokens[-1] == n_tokens
    assert "ETA" in lines[0] and "ETA after the first document" not in lines[0]
