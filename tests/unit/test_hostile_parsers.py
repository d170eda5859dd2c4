"""Hostile objects that made a parser's work grow faster than their size: quotes that pair up across HTML tags,
unterminated JSON strings of escaped quotes, PDFs whose pages draw one big stream or form many times. Each ends
extracted or quarantined with its reason, within its budget, and the work grows linearly (counted, not timed, where
the parser can count it)."""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import pytest
from hostile_inputs import (
    HOSTILE_TEXT,
    HTML_QUOTE_TAGS,
    content_stream,
    html_quotes_across_tags,
    json_escaped_quotes,
    json_escaped_quotes_then_backslash,
    json_nested,
    markdown_brackets,
    pdf_repeated_form,
    pdf_repeated_stream,
    pdf_text_pages,
    zip_bomb,
)
from latechunk.sources.documents import Limits, SourceObject, extract_text, load_documents
from latechunk.sources.extractors import Deadline, json_depth
from latechunk.sources.html_text import _Page
from latechunk.sources.pdf_process import PDF_PROCESS


def outcome(key: str, data: bytes, **limits) -> tuple[str, str]:
    """("extracted", text) or (reason, detail) of the object's one quarantine record."""
    documents, quarantine = load_documents(SourceObject("b", key, "e", len(data)), data, limits=Limits(**limits))
    if documents:
        return "extracted", "\n".join(document.text for document in documents)
    (entry,) = quarantine
    return entry.reason, entry.detail


def scanned(markup: str) -> int:
    page = _Page(markup)
    page.read(Deadline(60))
    return page.scanned


# --- HTML ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tag", HTML_QUOTE_TAGS.values(), ids=HTML_QUOTE_TAGS.keys())
def test_quotes_that_pair_across_tags_are_scanned_a_bounded_number_of_times(tag):
    small, large = (html_quotes_across_tags(tags, tag).decode() for tags in (2_000, 16_000))
    assert scanned(large) <= 3 * len(large), "each character looked at a few times at most"
    assert scanned(large) <= 8 * scanned(small) + 100, "8x the tags, 8x the work (quadratic would be 64x)"


def test_random_quotes_and_tags_are_scanned_a_bounded_number_of_times():
    rng = random.Random(22)
    for _ in range(20):
        markup = "".join(rng.choices(["<a ", "<p x=", "'", '"', ">", "=", " t ", "</a>"], k=20_000))
        assert scanned(markup) <= 4 * len(markup)


def test_the_reported_quote_pairing_page_is_extracted_well_within_its_budget():
    # 60 KB of "<a '>'" took 33 s against a budget of 0.5 s: every tag rescanned to the end of the markup.
    assert outcome("quotes.html", html_quotes_across_tags(10_000), time_budget_s=5) == ("extracted", "'" * 10_000)


def test_a_quote_opens_a_value_only_after_an_equals_sign_and_an_unpaired_one_stops_quote_pairing():
    (part,), _ = extract_text("a.html", b"<p it's>One</p><p title='a>b'>Two</p>")
    assert part.text == "One\nTwo"
    # The quote after "=" never closes: that tag, and every later one, ends at its first ">".
    (part,), _ = extract_text("b.html", b"<p title='x>One</p><p title=\"a>b\">Two</p>")
    assert part.text == "One\nb\">Two"


# --- JSON ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("build", [json_escaped_quotes, json_escaped_quotes_then_backslash])
def test_an_unterminated_string_of_escaped_quotes_is_scanned_in_linear_time(build):
    def seconds(size: int) -> float:
        text = build(size).decode()
        start = time.perf_counter()
        assert json_depth(text) == 1, "the brackets before the string count, the string does not"
        return time.perf_counter() - start

    small, large = seconds(20_000), seconds(160_000)
    assert large < 1 + 16 * small, (small, large)  # 8x the size; the quadratic scan took ~64x (32 KB: 2.9 s)


@pytest.mark.parametrize("build", [json_escaped_quotes, json_escaped_quotes_then_backslash])
def test_escaped_quote_json_is_quarantined_as_invalid_not_too_slow(build):
    reason, detail = outcome("quotes.json", build(200_000), time_budget_s=5)
    assert reason == "invalid_json" and "Unterminated string" in detail
    reason, _ = outcome("quotes.jsonl", b'{"text": "fine"}\n' + build(200_000), time_budget_s=5)
    assert reason == "extracted"


def test_brackets_after_an_unterminated_string_are_not_counted_but_those_before_are():
    assert json_depth('[[["abc' + "[" * 1_000) == 3
    assert json_depth('[[["a\\"b\\\\"' + "[" * 10) == 13, "an escaped backslash ends the escape: the string closes"
    assert outcome("deep.json", b"[" * 600 + json_escaped_quotes(1_000)) == (
        "too_deep",
        "JSON nested 601 levels deep > max_nesting_depth=500",
    )


def test_json_nested_a_million_deep_is_quarantined_without_parsing():
    assert outcome("deep.json", json_nested(1_000_000), time_budget_s=5) == (
        "too_deep",
        "JSON nested 1000001 levels deep > max_nesting_depth=500",  # the record is one level more
    )


# --- PDF -------------------------------------------------------------------------------------------------------

STREAM = len(content_stream(50_000))


def test_a_stream_drawn_many_times_counts_each_time_and_stops_at_the_page_limit():
    data = pdf_repeated_stream(50_000, repeats=4)
    assert len(data) < 5_000
    reason, detail = outcome("repeated.pdf", data, max_pdf_page_bytes=4 * STREAM - 1)
    assert (reason, detail) == (
        "too_large",
        f"page 1 draws more than {4 * STREAM - 1} bytes of decoded content > max_pdf_page_bytes (streams and forms "
        "counted each time they are drawn)",
    )
    reason, text = outcome("repeated.pdf", data, max_pdf_page_bytes=4 * STREAM)
    assert reason == "extracted" and text.count(HOSTILE_TEXT) == 4 * STREAM // len(content_stream(1))


def test_pages_over_the_object_limit_stop_at_the_page_that_crosses_it():
    data = pdf_repeated_stream(50_000, repeats=1, pages=10)
    assert outcome("pages.pdf", data, max_pdf_bytes=3 * STREAM + 1) == (
        "too_large",
        f"pages 1-4 draw more than {3 * STREAM + 1} bytes of decoded content > max_pdf_bytes",
    )
    assert outcome("pages.pdf", data, max_pdf_bytes=10 * STREAM)[0] == "extracted"


def test_a_form_drawn_many_times_counts_each_time():
    form = len(content_stream(20_000))
    data = pdf_repeated_form(20_000, calls=50)
    reason, detail = outcome("forms.pdf", data, max_pdf_page_bytes=10 * form)
    assert reason == "too_large" and detail.startswith(f"page 1 draws more than {10 * form} bytes")
    reason, text = outcome("forms.pdf", pdf_repeated_form(20_000, calls=3), max_pdf_page_bytes=10 * form)
    assert reason == "extracted" and text.count(HOSTILE_TEXT) == 3 * form // len(content_stream(1))


def test_a_pdf_over_its_time_budget_is_quarantined_and_the_next_one_is_read():
    # 200 forms of 200 KB: far more than 0.3 s of parsing, in steps the parser's own checks see.
    reason, detail = outcome("slow.pdf", pdf_repeated_form(200_000, calls=200), time_budget_s=0.3)
    assert (reason, detail) == ("too_slow", "extraction took more than 0.3 s (PDF page 1)")
    assert outcome("fine.pdf", pdf_text_pages(2)) == ("extracted", "\n\n".join(["A page of ordinary text."] * 2))


def test_a_parser_stuck_past_its_deadline_is_killed_and_the_next_pdf_gets_a_new_one():
    # One stream of 24 MB parsed in one go, with no check inside: seconds of pypdf, killed at 0.1 s + grace.
    outcome("warm.pdf", pdf_text_pages(1))
    child = PDF_PROCESS._child
    data = pdf_repeated_stream(24_000_000, repeats=1)
    assert outcome("stuck.pdf", data, time_budget_s=0.1, max_pdf_page_bytes=10**9) == (
        "too_slow",
        "extraction took more than 0.1 s (the PDF parser was stopped)",
    )
    assert child.poll() is not None, "the stuck child was killed"
    assert outcome("fine.pdf", pdf_text_pages(1)) == ("extracted", "A page of ordinary text.")
    assert PDF_PROCESS._child is not child


def test_a_parser_process_that_dies_quarantines_its_object_and_the_next_pdf_gets_a_new_one():
    # As if the kernel's OOM killer took the child in the middle of a long parse.
    data = pdf_repeated_stream(24_000_000, repeats=1)
    outcome("warm.pdf", pdf_text_pages(1))
    child = PDF_PROCESS._child
    killer = threading.Timer(0.5, os.kill, (child.pid, signal.SIGKILL))
    killer.start()
    try:
        assert outcome("killed.pdf", data, time_budget_s=60, max_pdf_page_bytes=10**9) == (
            "extraction_error",
            f"the PDF parser process died (exit code {-signal.SIGKILL})",
        )
    finally:
        killer.cancel()
    assert outcome("fine.pdf", pdf_text_pages(1)) == ("extracted", "A page of ordinary text.")


def test_the_tasks_execution_timeout_goes_through_and_kills_the_pdf_parser():
    """Airflow 3.3's execution_timeout raises AirflowTaskTimeout (a BaseException, not an Exception: checked in
    tests/test_dag_integrity.py) from a SIGALRM handler in the task process: it must fail the task, not be
    quarantined, and leave no answer behind for the next object. (Importing Airflow here would cost seconds.)"""

    class AirflowTaskTimeout(BaseException):
        pass

    def timeout(signum, frame):
        raise AirflowTaskTimeout("Timeout")

    data = pdf_repeated_stream(24_000_000, repeats=1)
    outcome("warm.pdf", pdf_text_pages(1))
    child = PDF_PROCESS._child
    previous = signal.signal(signal.SIGALRM, timeout)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        with pytest.raises(AirflowTaskTimeout):
            outcome("slow.pdf", data, time_budget_s=60, max_pdf_page_bytes=10**9)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert child.poll() is not None, "the child was killed with the task's try"
    assert outcome("fine.pdf", pdf_text_pages(1)) == ("extracted", "A page of ordinary text.")


def test_a_json_lines_file_checks_each_line_for_its_own_depth():
    # An unterminated string, or closing brackets, on one line must not hide a deep line after it.
    deep = b'{"text": "deep", "m": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    for before in (b'{"text": "open ' + b'\\"' * 1_000, b"]" * 20_000):
        data = b'{"text": "first"}\n' + before + b"\n" + deep + b'\n{"text": "last"}\n'
        parts, skipped = extract_text("feed.jsonl", data)
        assert [part.text for part in parts] == ["first", "last"]
        assert [(part, skip.reason) for part, skip in skipped] == [("2", "invalid_json"), ("3", "too_deep")]
    assert json_depth('[[\n"a\n[[[', per_line=True) == 3, "a string ends with its line"
    assert json_depth("[[[\n]]]\n[[", per_line=True) == 3
    assert json_depth("[[[\n]]]\n[[") == 3 and json_depth("[[[\n[[") == 5


def test_markdown_inline_parsing_is_checked_paragraph_by_paragraph():
    # Each paragraph of unmatched brackets costs markdown-it-py's inline pass ~40 ms: the deadline stops the object
    # between paragraphs, after a few of them.
    reason, detail = outcome("brackets.md", markdown_brackets(5_000, 1_000), time_budget_s=0.3)
    assert reason == "too_slow" and "(Markdown token" in detail
    # A paragraph longer than any real one is kept as it is, unparsed, instead of costing ~40 s.
    reason, text = outcome("one.md", markdown_brackets(1, 1_000_000), time_budget_s=5)
    assert reason == "extracted" and text == "[" * 1_000_000 + "a"


def test_a_zip_that_inflates_past_the_limit_is_refused_from_its_directory():
    data = zip_bomb("word/document.xml", 64 << 20)
    assert len(data) < 100_000
    reason, detail = outcome("bomb.docx", data, max_unzipped_bytes=32 << 20)
    assert (reason, detail) == ("too_large", f"{64 << 20} bytes once unzipped > max_unzipped_bytes={32 << 20}")
