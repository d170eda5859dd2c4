"""Time each hostile document class takes to be extracted or quarantined, against its time budget.

    PYTHONPATH=include .venv/bin/python bench/hostile_documents.py [--budget 0.5] [--cap 60] [--large]

Each case is one object from `tests/hostile_inputs.py` through `latechunk.sources.documents.load_documents` with
``Limits(time_budget_s=budget)`` (the other limits at their defaults), in a fresh Python process that is stopped
after ``--cap`` seconds (a case that outlives it is reported as such). One ordinary PDF is read first in that process,
so a PDF case's time does not include starting the PDF parser's process. The figure is the wall time of
`load_documents` on the shared machine: compare a case with its budget and with the same case at twice the size.

To measure the code before a change, point PYTHONPATH at that version's ``include/``, e.g.
``git archive <commit> include | tar -x -C /tmp/before`` then ``PYTHONPATH=/tmp/before/include``. ``--large`` adds
cases too big to run against a quadratic parser.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests")]

import hostile_inputs as hostile  # noqa: E402

CASES = {
    "html quotes across tags, 15 KB": ("q.html", lambda: hostile.html_quotes_across_tags(2_500)),
    "html quotes across tags, 30 KB": ("q.html", lambda: hostile.html_quotes_across_tags(5_000)),
    "html quoted values, 40 KB": ("v.html", lambda: hostile.html_quotes_across_tags(5_000, "<a x='>'")),
    "json escaped quotes, 16 KB": ("q.json", lambda: hostile.json_escaped_quotes(16_000)),
    "json escaped quotes, 32 KB": ("q.json", lambda: hostile.json_escaped_quotes(32_000)),
    "json nested 100,000 deep": ("d.json", lambda: hostile.json_nested(100_000)),
    "pdf 1 MB stream drawn 4 times": ("s.pdf", lambda: hostile.pdf_repeated_stream(1_000_000, 4)),
    "pdf 100 KB form drawn 100 times": ("f.pdf", lambda: hostile.pdf_repeated_form(100_000, 100)),
    "markdown brackets, 100 x 1 KB": ("b.md", lambda: hostile.markdown_brackets(100, 1_000)),
    "markdown brackets, 200 x 1 KB": ("b.md", lambda: hostile.markdown_brackets(200, 1_000)),
    "markdown brackets, one 1 MB paragraph": ("b.md", lambda: hostile.markdown_brackets(1, 1_000_000)),
    "docx inflating to 300 MB": ("z.docx", lambda: hostile.zip_bomb("word/document.xml", 300 << 20)),
}
LARGE = {
    "html quotes across tags, 6 MB": ("q.html", lambda: hostile.html_quotes_across_tags(1_000_000)),
    "json escaped quotes, 32 MB": ("q.json", lambda: hostile.json_escaped_quotes(32_000_000)),
    "pdf 2 MB stream drawn 16 times": ("s.pdf", lambda: hostile.pdf_repeated_stream(2_000_000, 16)),
}


def run_case(name: str, budget: float) -> dict:
    from latechunk.sources.documents import Limits, SourceObject, load_documents

    key, build = {**CASES, **LARGE}[name]
    load_documents(SourceObject("b", "warm.pdf", "e", 0), hostile.pdf_text_pages(1))
    data = build()
    start = time.perf_counter()
    documents, quarantine = load_documents(
        SourceObject("b", key, "e", len(data)), data, limits=Limits(time_budget_s=budget)
    )
    seconds = time.perf_counter() - start
    outcome = "extracted" if documents else quarantine[0].reason
    detail = "" if documents else quarantine[0].detail
    chars = sum(len(document.text) for document in documents)
    return {"bytes": len(data), "seconds": seconds, "outcome": outcome, "detail": detail, "chars": chars}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=0.5, help="max_extract_seconds of every case")
    parser.add_argument("--cap", type=float, default=60, help="seconds after which a case is stopped")
    parser.add_argument("--large", action="store_true", help="also the large cases")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.budget)))
        return
    print(f"budget {args.budget:g} s per object; cases stopped after {args.cap:g} s")
    print(f"{'case':<36} {'bytes':>10} {'seconds':>8} {'x budget':>8}  outcome")
    for name in [*CASES, *(LARGE if args.large else ())]:
        command = [sys.executable, __file__, "--case", name, "--budget", str(args.budget)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=args.cap, check=True)
        except subprocess.TimeoutExpired:
            print(f"{name:<36} {'':>10} {'>' + format(args.cap, 'g'):>8} {'':>8}  still running, stopped")
            continue
        result = json.loads(done.stdout.splitlines()[-1])
        outcome = result["outcome"] + (f" ({result['chars']:,} characters)" if result["chars"] else "")
        outcome += f": {result['detail'][:70]}" if result["detail"] else ""
        print(f"{name:<36} {result['bytes']:>10,} {result['seconds']:>8.2f} {result['seconds'] / args.budget:>8.1f}"
              f"  {outcome}")  # fmt: skip


if __name__ == "__main__":
    main()
