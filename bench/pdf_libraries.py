"""Text quality and speed of pypdf, pypdfium2 and pdfminer.six on PDFs: each library's plain text, median of 3 runs.

    uv venv /tmp/pdfbench && uv pip install --python /tmp/pdfbench/bin/python pypdf==6.4.1 pypdfium2 pdfminer.six
    /tmp/pdfbench/bin/python bench/pdf_libraries.py tests/data/structured/*.pdf

The two other libraries are not dependencies of the project, hence the separate environment. "Run together" counts
words over 25 characters: spaces a library lost between words.
"""

from __future__ import annotations

import io
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path

LIBRARIES = ("pypdf", "pypdfium2", "pdfminer.six")


def pypdf_pages(data: bytes) -> list[str]:
    import pypdf

    return [page.extract_text() or "" for page in pypdf.PdfReader(io.BytesIO(data)).pages]


def pdfium_pages(data: bytes) -> list[str]:
    import pypdfium2

    document = pypdfium2.PdfDocument(data)
    return [document[index].get_textpage().get_text_range() for index in range(len(document))]


def pdfminer_pages(data: bytes) -> list[str]:
    from pdfminer.high_level import extract_text

    return extract_text(io.BytesIO(data)).split("\f")


def main(paths: list[str]) -> None:
    print("versions:", {name: version(name) for name in LIBRARIES})
    print(f"{'pdf':<40} {'library':<13} {'seconds':>8} {'chars':>7} {'words':>6} {'run together':>12}")
    for path in paths:
        data = Path(path).read_bytes()
        for name, pages_of in zip(LIBRARIES, (pypdf_pages, pdfium_pages, pdfminer_pages), strict=True):
            times = []
            for _ in range(3):
                start = time.perf_counter()
                pages = pages_of(data)
                times.append(time.perf_counter() - start)
            words = "\n".join(pages).split()
            print(f"{Path(path).name:<40} {name:<13} {statistics.median(times):>8.3f} {len(chr(10).join(pages)):>7} "
                  f"{len(words):>6} {sum(len(word) > 25 for word in words):>12}")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
