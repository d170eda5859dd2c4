"""Text of a PDF, with pypdf, within limits on the page content it parses and on its time.

pypdf parses page content in pure Python at a few MB/s, and a page can make it parse far more than the file holds:
its /Contents may name one Flate stream many times, and its operators may draw one form XObject (`/Fm1 Do`) again
and again, each time parsed anew. A 3.5 KB file whose page names a 1 MB stream four times took 4.3 s and gave
120,000 characters. So every page's content is metered, repeats included: the decoded bytes of its /Contents are
counted before it is parsed, and each `Do` of a form is counted (by the form's decoded size) before pypdf parses
that form; a page over ``Limits.max_pdf_page_bytes``, or an object over ``Limits.max_pdf_bytes`` in all, is
quarantined as `too_large` with the page number. Quarantined, not truncated: a document cut at a limit would be
indexed as if it were whole. The time budget is checked between pages and every `_OPERATIONS_PER_CHECK` operators.

What pypdf does between two of these checks (decompressing one stream, parsing one stream of at most the page
limit, reading fonts) is bounded by the process that runs it (`latechunk.sources.pdf_process`), killed at the deadline.
"""

from __future__ import annotations

import io
import logging
from typing import Any

from latechunk.sources.extractors import Deadline, Limits, SkipDocument, SkipReason, require_text
from latechunk.sources.structure import PARAGRAPH, DocumentStructure, TextBuilder

_OPERATIONS_PER_CHECK = 1024
# Form XObjects inside forms inside forms...: deeper ones are not metered beforehand (pypdf still parses them, and
# each parse is counted by its `Do`, at its name's size if a shallower form has that name, else by the deadline).
_MAX_FORM_NESTING = 16


def pdf_text(data: bytes, limits: Limits, deadline: Deadline) -> tuple[str, dict[str, Any], DocumentStructure]:
    """Text of the pages (separated by a blank line), metadata (``pages``, ``title``) and a structure whose page
    starts give each character's page (one block per page with text)."""
    from pypdf import PdfReader

    if not data.lstrip()[:5] == b"%PDF-":
        raise SkipDocument(SkipReason.CORRUPT_PDF, "no %PDF- header")
    # pypdf signals a damaged file with many exception types (and logs warnings for recoverable damage).
    pdf_logger = logging.getLogger("pypdf")
    previous_level = pdf_logger.level
    pdf_logger.setLevel(logging.ERROR)
    meter = _ContentMeter(limits, deadline)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise SkipDocument(SkipReason.CORRUPT_PDF, "encrypted with a password")
        pages = []
        for number, page in enumerate(reader.pages, start=1):
            deadline.check(f"PDF page {number}")
            meter.start_page(number, page)
            text = page.extract_text(visitor_operand_before=meter.visit) or ""
            meter.raise_stopped()  # pypdf swallows what a form's parse raises
            pages.append(text)
        title = (reader.metadata or {}).get("/Title")
    except SkipDocument:
        raise
    except Exception as error:
        raise SkipDocument(SkipReason.CORRUPT_PDF, f"{type(error).__name__}: {error}") from None
    finally:
        pdf_logger.setLevel(previous_level)
    builder = TextBuilder()
    for page in pages:
        builder.start_page()
        builder.add(PARAGRAPH, page)
    text, structure = builder.finish()
    metadata: dict[str, Any] = {"pages": len(pages)}
    if isinstance(title, str) and title.strip():
        metadata["title"] = str(title).strip()
    return require_text(text), metadata, structure


class _ContentMeter:
    """Decoded content bytes a page makes pypdf parse, and the time, checked from pypdf's operator callback.

    A stop raised inside a form's parse is caught by pypdf, which goes on with the page: so the stop is kept and
    raised again at the next operator, and once more after the page (`raise_stopped`)."""

    def __init__(self, limits: Limits, deadline: Deadline):
        self.limits = limits
        self.deadline = deadline
        self.object_bytes = 0
        self.page_bytes = 0
        self.page = 0
        self.operations = 0
        self.forms: dict[str, int] = {}
        self.stopped: SkipDocument | None = None

    def start_page(self, number: int, page: Any) -> None:
        self.page, self.page_bytes = number, 0
        self.forms = _form_sizes(_resources(page))
        self.charge(_contents_size(page.get("/Contents")))

    def visit(self, operator: bytes, operands: Any, cm: Any, tm: Any) -> None:
        self.raise_stopped()
        self.operations += 1
        if operator == b"Do" and operands:  # pypdf parses the form next
            self.charge(self.forms.get(str(operands[0]), 0))
            self.deadline.check(f"PDF page {self.page}")
        elif self.operations % _OPERATIONS_PER_CHECK == 0:
            self.deadline.check(f"PDF page {self.page}")

    def charge(self, size: int) -> None:
        self.page_bytes += size
        self.object_bytes += size
        if self.page_bytes > self.limits.max_pdf_page_bytes:
            self._stop(f"page {self.page} draws more than {self.limits.max_pdf_page_bytes} bytes of decoded content "
                       f"> max_pdf_page_bytes (streams and forms counted each time they are drawn)")  # fmt: skip
        if self.object_bytes > self.limits.max_pdf_bytes:
            self._stop(f"pages 1-{self.page} draw more than {self.limits.max_pdf_bytes} bytes of decoded content "
                       f"> max_pdf_bytes")  # fmt: skip

    def raise_stopped(self) -> None:
        if self.stopped is not None:
            raise self.stopped

    def _stop(self, detail: str) -> None:
        self.stopped = SkipDocument(SkipReason.TOO_LARGE, detail)
        raise self.stopped


def _contents_size(contents: Any) -> int:
    """Decoded bytes of a page's /Contents: one stream, or an array of them (a stream named twice counts twice;
    pypdf decodes it once and parses it twice)."""
    if contents is None:
        return 0
    contents = contents.get_object()
    streams = contents if isinstance(contents, list) else [contents]
    return sum(_decoded_size(stream) for stream in streams)


def _decoded_size(stream: Any) -> int:
    stream = stream.get_object()
    get_data = getattr(stream, "get_data", None)
    return len(get_data() or b"") if get_data else 0


def _resources(page: Any) -> Any:
    """The page's /Resources, inherited from its ancestors in the page tree when it has none of its own."""
    node, hops = page, 0
    while node is not None and "/Resources" not in node and hops < 64:
        parent = node.get("/Parent")
        node, hops = (parent.get_object() if parent is not None else None), hops + 1
    return node.get("/Resources") if node is not None else None


def _form_sizes(resources: Any) -> dict[str, int]:
    """Decoded size of every form XObject the page can draw, by name, forms in forms included (the largest when
    one name means several forms). Images are not decoded."""
    sizes: dict[str, int] = {}
    seen: set[int] = set()
    pending = [(resources, 0)]
    while pending:
        current, depth = pending.pop()
        current = current.get_object() if current is not None else None
        xobjects = current.get("/XObject") if isinstance(current, dict) else None
        xobjects = xobjects.get_object() if xobjects is not None else None
        if not isinstance(xobjects, dict) or depth > _MAX_FORM_NESTING:
            continue
        for name, reference in xobjects.items():
            form = reference.get_object()
            if not isinstance(form, dict) or id(form) in seen or form.get("/Subtype") != "/Form":
                continue
            seen.add(id(form))
            sizes[str(name)] = max(sizes.get(str(name), 0), _decoded_size(form))
            pending.append((form.get("/Resources"), depth + 1))
    return sizes
