"""Chunking that follows a document's structure, on real files of every structured format (tests/data/structured,
SOURCES.md there) and the project's sample corpus, with the MiniLM WordPiece tokenizer: a heading starts a chunk and
never ends one, "sections" keeps a section whole when it fits, chunks are exact slices with the section path of
their first character, and PDF chunks carry the page their text was printed on."""

from __future__ import annotations

from pathlib import Path

import pytest
from latechunk.chunking.config import ChunkingConfig
from latechunk.chunking.sections import chunk_locations
from latechunk.chunking.spans import annotate_documents
from latechunk.sources.documents import Document, Limits, SourceObject, load_documents
from latechunk.sources.structure import DocumentStructure
from test_office_structure import build_docx, build_pptx
from transformers import AutoTokenizer

ROOT = Path(__file__).parents[2]
DATA = ROOT / "tests" / "data" / "structured"
# Every real file but the table of contents, which is all navigation (test_html_structure.py).
EXCLUDED = ("SOURCES", "devils-dictionary-toc")
FILES = [
    *(path for path in sorted(DATA.iterdir()) if path.suffix in (".md", ".html", ".pdf") and path.stem not in EXCLUDED),
    ROOT / "include" / "sample_corpus" / "espresso-machine.html",
    ROOT / "include" / "sample_corpus" / "river-city.md",
]
CONFIGS = {
    "sentences": ChunkingConfig("sentences"),
    "sentences_x3": ChunkingConfig("sentences", sentences_per_chunk=3),
    "sections": ChunkingConfig("sections"),
    "sections_capped": ChunkingConfig("sections", max_chunk_tokens=48),
}


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
    return AutoTokenizer.from_pretrained(minilm_dir)


def load(name: str, data: bytes) -> Document:
    documents, quarantine = load_documents(SourceObject("b", name, "e", len(data)), data, limits=Limits())
    assert quarantine == [], quarantine
    (document,) = documents
    return document


def structured_documents() -> dict[str, Document]:
    documents = {path.name: load(path.name, path.read_bytes()) for path in FILES}
    documents["manual.docx"] = load("manual.docx", build_docx())
    documents["review.pptx"] = load("review.pptx", build_pptx())
    return documents


DOCUMENTS = structured_documents()


def chunks_of(document: Document, tokenizer, config: ChunkingConfig):
    (annotated,) = annotate_documents([document.text], tokenizer, config, [document.structure])
    return annotated.spans


@pytest.mark.parametrize("config_name", CONFIGS)
@pytest.mark.parametrize("name", DOCUMENTS)
def test_headings_start_chunks_and_chunks_are_exact_slices(tokenizer, name, config_name):
    document = DOCUMENTS[name]
    text, structure = document.text, document.structure
    chunks = chunks_of(document, tokenizer, CONFIGS[config_name])
    assert chunks
    for chunk in chunks:
        assert chunk.text == text[chunk.char_start : chunk.char_end] and chunk.text.strip() == chunk.text
    chunk_starts = {chunk.char_start for chunk in chunks}
    heading_starts = sorted({heading.start for heading in structure.headings if heading.start < len(text)})
    for start in heading_starts:
        assert start in chunk_starts, f"no chunk starts at the heading at {start}"
        assert not any(chunk.char_start < start < chunk.char_end for chunk in chunks), "a chunk crosses a heading"
    # A heading ends a chunk only when its section has nothing else (the next heading follows, or the text ends).
    following = {heading.end: heading for heading in structure.headings}
    for chunk in chunks:
        heading = following.get(chunk.char_end)
        if heading is not None and heading.end > heading.start and heading.start != chunk.char_start:
            pytest.fail(f"a chunk ends with the heading {heading.title!r}")
        if heading is not None and heading.end > heading.start:
            rest = text[heading.end :].lstrip()
            assert not rest or len(text) - len(rest) in heading_starts, f"{heading.title!r} is alone in a chunk"
    paths = [path for path, _, _ in chunk_locations(structure, [(c.char_start, c.char_end) for c in chunks])]
    for chunk, path in zip(chunks, paths, strict=True):
        assert path == structure.section_path(chunk.char_start)
        opening = [h for h in structure.headings if h.start == chunk.char_start]
        if opening:
            assert path[-1] == opening[-1].title


def test_sections_keep_the_sample_manuals_sections_whole(tokenizer):
    document = DOCUMENTS["espresso-machine.html"]
    chunks = chunks_of(document, tokenizer, CONFIGS["sections"])
    assert [chunk.text.split("\n")[0] for chunk in chunks] == ["Barista Pro 9: getting started", "Descaling",
                                                                "Troubleshooting"]  # fmt: skip
    assert chunks[1].text.endswith("or the solution stays in the boiler.")
    locations = chunk_locations(document.structure, [(c.char_start, c.char_end) for c in chunks])
    assert [path for path, _, _ in locations] == [
        ["Barista Pro 9: getting started"],
        ["Barista Pro 9: getting started", "Descaling"],
        ["Barista Pro 9: getting started", "Troubleshooting"],
    ]


def test_sentences_keep_a_heading_with_its_first_sentence(tokenizer):
    chunks = chunks_of(DOCUMENTS["espresso-machine.html"], tokenizer, CONFIGS["sentences"])
    texts = [chunk.text for chunk in chunks]
    assert "Descaling\nIt needs descaling every two months if your water is hard." in texts
    assert not any(text.endswith("Troubleshooting") for text in texts)


def test_sections_over_the_cap_are_cut_by_sentences(tokenizer):
    document = DOCUMENTS["fastapi-first-steps-en.md"]
    whole = chunks_of(document, tokenizer, CONFIGS["sections"])
    capped = chunks_of(document, tokenizer, CONFIGS["sections_capped"])
    assert len(capped) > len(whole) >= len(document.structure.headings)
    for chunk in capped:
        assert chunk.token_end - chunk.token_start <= 48 + 2 or " " not in chunk.text


def test_pdf_chunks_carry_the_page_their_text_is_on(tokenizer):
    from pypdf import PdfReader

    pages = [page.extract_text().strip() for page in PdfReader(DATA / "siege-of-vicksburg.pdf").pages]
    document = DOCUMENTS["siege-of-vicksburg.pdf"]
    assert len(document.structure.page_starts) == len(pages) == 6
    chunks = chunks_of(document, tokenizer, CONFIGS["sentences_x3"])
    locations = chunk_locations(document.structure, [(c.char_start, c.char_end) for c in chunks])
    seen = set()
    for chunk, (path, first, last) in zip(chunks, locations, strict=True):
        assert path == [] and first == last  # a page break is a paragraph break: no sentence chunk spans it
        assert chunk.text in pages[first - 1]
        seen.add(first)
    assert seen == set(range(1, 7))
    fixed = chunks_of(document, tokenizer, ChunkingConfig("fixed", chunk_size=256))  # fixed chunks span pages
    spans = [(c.char_start, c.char_end) for c in fixed]
    spanning = [(chunk, first, last) for chunk, (_, first, last) in
                zip(fixed, chunk_locations(document.structure, spans), strict=True) if first < last]  # fmt: skip
    assert spanning
    for chunk, first, last in spanning:
        assert last == first + 1
        assert chunk.text[:40] in pages[first - 1] and chunk.text[-40:] in pages[last - 1]


def test_slide_numbers_are_pages_of_pptx_chunks(tokenizer):
    document = DOCUMENTS["review.pptx"]
    chunks = chunks_of(document, tokenizer, CONFIGS["sections"])
    locations = chunk_locations(document.structure, [(c.char_start, c.char_end) for c in chunks])
    assert [(chunk.text.split("\n")[0], path, first) for chunk, (path, first, _) in zip(chunks, locations,
                                                                                          strict=True)] == [
        ("Results", ["Results"], 1),
        ("数字", ["数字"], 2),
        ("Questions welcome.", ["Slide 3"], 3),
    ]  # fmt: skip


def test_documents_without_structure_chunk_as_before(tokenizer):
    text = "One sentence here. Another one follows!\n\nA new paragraph."
    plain = Document("d", "b", "k.txt", "e", text, "text/plain")
    for config in (ChunkingConfig("sentences"), ChunkingConfig("sentences", sentences_per_chunk=2)):
        (annotated,) = annotate_documents([text], tokenizer, config)
        assert chunks_of(plain, tokenizer, config) == annotated.spans
    (whole,) = chunks_of(plain, tokenizer, ChunkingConfig("sections"))
    assert whole.text == text and plain.structure == DocumentStructure()
