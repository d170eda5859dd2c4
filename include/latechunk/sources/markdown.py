"""Text and structure of a Markdown document, through markdown-it-py's CommonMark parser (with tables).

What the text keeps: the text of headings, paragraphs, list items, quotes and table rows (cells separated by a
tab), the visible text of links (their targets dropped, autolinks dropped whole), and code blocks as they are
(marked as blocks of kind "code"). What it drops: YAML front matter (parsed into the metadata), emphasis marks,
images, inline HTML tags, the tags of HTML blocks (their visible text is kept, read by the linear tokenizer of
`html_text`), heading attributes such as ``{ #anchor }``, and the marker lines of admonitions (MkDocs'
``!!! note "Title"`` with its indented body dedented, PyMdown's ``/// tip | Title`` ... ``///``, Docusaurus'
``:::note`` ... ``:::``), whose bodies are kept as ordinary Markdown, and MkDocs snippet includes (a line
``{* path *}`` or ``{!path!}`` outside code). Inside code blocks, the inline tags that
documentation sites use to colour console output (``<span style=...>``) are dropped too (and the block's
character references decoded), as are snippet-include lines.

Front matter: a YAML mapping between a first line ``---`` and a closing ``---`` or ``...`` line, within the first
64 KB. YAML aliases are refused (an alias can make a small document expand exponentially when serialised): front
matter that uses them, or is not a mapping, or is not valid YAML, stays in the text as Markdown.

Cost: markdown-it-py bounds nesting (``maxNesting``) and its block and inline passes are linear, but its inline
pass is slow on hostile text (about 40 us a byte on a paragraph of unmatched brackets, against 1 us for the block
pass). So the inline pass runs paragraph by paragraph (the parser's own inline rule is disabled), with the deadline
checked before each; a paragraph over ``_MAX_INLINE_CHARS`` (no real one is) is kept as it is, its inline markup
unparsed, which bounds the time between two checks to a few seconds.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

import yaml
from markdown_it import MarkdownIt

from latechunk.sources.extractors import Deadline
from latechunk.sources.html_text import html_text
from latechunk.sources.structure import CODE, LIST_ITEM, PARAGRAPH, QUOTE, TABLE_ROW, DocumentStructure, TextBuilder

_MAX_FRONT_MATTER = 64 * 1024
_FRONT_MATTER_END = re.compile(r"^(?:---|\.\.\.)[ \t]*$", re.MULTILINE)
_HEADING_ATTRIBUTES = re.compile(r"\s*\{\s*[#.:][^{}]*\}\s*$")
_MKDOCS_ADMONITION = re.compile(r"^(?:!!!|\?\?\?\+?)[ \t]+[\w-]+.*$")
_FENCED_ADMONITION = re.compile(r"^(?:///|:::)(?:[ \t]*[\w-]+.*)?[ \t]*$")
# MkDocs snippet includes, `{* path hl[1] *}` and `{!path!}`: a file name, not text.
_SNIPPET_INCLUDE = re.compile(r"^[ \t]*\{([*!]).*\1\}[ \t]*$")
_CODE_COLOUR_TAGS = re.compile(
    r"</?(?:span|abbr|a|b|i|em|strong|code|font|mark|u|s|small|sub|sup)(?:[\t\n\f\r ][^<>]*)?>", re.IGNORECASE
)
_INLINE_DROPPED = frozenset({"html_inline", "image"})
_TOKENS_PER_CHECK = 1024
_MAX_INLINE_CHARS = 100_000


def markdown_text(source: str, deadline: Deadline) -> tuple[str, dict[str, Any], DocumentStructure]:
    """The text of a Markdown document, its metadata (front matter; ``title`` from it or the first level-1
    heading) and its structure."""
    metadata, body = front_matter(source)
    parser = _parser()
    env: dict[str, Any] = {}  # link reference definitions, found by the block pass, used by the inline pass
    tokens = parser.parse(_without_admonition_markers(body), env)
    builder = TextBuilder()
    kinds: list[str] = []  # what the enclosing containers make a paragraph: list item, quote
    row: list[str] | None = None
    heading_level = 0
    for index, token in enumerate(tokens):
        if index % _TOKENS_PER_CHECK == _TOKENS_PER_CHECK - 1:
            deadline.check(f"Markdown token {index}")
        kind = token.type
        if kind == "heading_open":
            heading_level = int(token.tag[1:])
        elif kind == "heading_close":
            heading_level = 0
        elif kind in ("list_item_open", "blockquote_open"):
            kinds.append(LIST_ITEM if kind == "list_item_open" else QUOTE)
        elif kind in ("list_item_close", "blockquote_close"):
            kinds.pop()
        elif kind == "tr_open":
            row = []
        elif kind == "tr_close":
            builder.add(TABLE_ROW, "\t".join(cell for cell in row or [] if cell))
            row = None
        elif kind == "inline":
            deadline.check(f"Markdown token {index}")
            text = _inline_text(parser, token.content, env)
            if row is not None:
                row.append(" ".join(text.split()))
            elif heading_level:
                builder.add(PARAGRAPH, _HEADING_ATTRIBUTES.sub("", text), level=heading_level)
            else:
                builder.add(kinds[-1] if kinds else PARAGRAPH, text)
        elif kind in ("fence", "code_block"):
            builder.add(CODE, _code_text(token.content))
        elif kind == "html_block":
            builder.add(PARAGRAPH, html_text(token.content, deadline)[0])
    text, structure = builder.finish()
    if "title" not in metadata:
        first = next((heading for heading in structure.headings if heading.level == 1), None)
        if first is not None:
            metadata["title"] = first.title
    return text, metadata, structure


def front_matter(source: str) -> tuple[dict[str, Any], str]:
    """(metadata, the rest of the source) when the source starts with YAML front matter, else ({}, source)."""
    first_line_end = source.find("\n")
    if first_line_end < 0 or source[:first_line_end].rstrip() != "---":
        return {}, source
    end = _FRONT_MATTER_END.search(source, first_line_end + 1, min(len(source), _MAX_FRONT_MATTER))
    if end is None:
        return {}, source
    try:
        data = yaml.load(source[first_line_end + 1 : end.start()], Loader=_NoAliasLoader)  # noqa: S506
    except yaml.YAMLError:
        return {}, source
    if not isinstance(data, dict):
        return {}, source
    # Dates and other YAML types become text, keys too: the metadata is stored as JSON.
    metadata = json.loads(json.dumps({str(key): value for key, value in data.items()}, default=str))
    return metadata, source[end.end() :].lstrip("\n")


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing aliases (``*name``)."""

    def compose_node(self, parent, index):  # noqa: ANN001, ANN201
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("aliases are not allowed in front matter")
        return super().compose_node(parent, index)


def _parser() -> MarkdownIt:
    parser = MarkdownIt("commonmark").enable("table")
    parser.core.ruler.disable("inline")
    return parser


def _inline_text(parser: MarkdownIt, content: str, env: dict[str, Any]) -> str:
    """The text of one paragraph's (or heading's, or cell's) inline Markdown."""
    if len(content) > _MAX_INLINE_CHARS:
        return content
    children = parser.inline.parse(content, parser, env, [])
    parts: list[str] = []
    in_autolink = False
    for child in children:
        kind = child.type
        if kind == "link_open":
            in_autolink = child.markup == "autolink"
        elif kind == "link_close":
            in_autolink = False
        elif in_autolink or kind in _INLINE_DROPPED:
            continue
        elif kind in ("text", "code_inline"):
            parts.append(child.content)
        elif kind == "softbreak":
            parts.append(" ")
        elif kind == "hardbreak":
            parts.append("\n")
    return "".join(parts)


def _code_text(code: str) -> str:
    """A code block without snippet-include lines and, when it holds colouring tags, without them and with its
    character references decoded (the block was written as HTML)."""
    lines = [line for line in code.split("\n") if not _SNIPPET_INCLUDE.match(line)]
    code = "\n".join(lines)
    uncoloured = _CODE_COLOUR_TAGS.sub("", code)
    return html.unescape(uncoloured) if uncoloured != code else code


def _without_admonition_markers(source: str) -> str:
    """The source with admonition marker lines blanked and MkDocs admonition bodies dedented (see the module
    docstring). Fenced code is left alone: a marker line inside a code fence is code."""
    lines = source.split("\n")
    fence = ""
    dedenting = False
    for number, line in enumerate(lines):
        stripped = line.lstrip()
        if fence:
            if stripped.startswith(fence):
                fence = ""
            continue
        if stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
            continue
        if dedenting:
            if line.startswith("    ") or line.startswith("\t"):
                lines[number] = line[4:] if line.startswith("    ") else line[1:]
                continue
            if line.strip():
                dedenting = False
        if _MKDOCS_ADMONITION.match(line):
            lines[number] = ""
            dedenting = True
        elif _FENCED_ADMONITION.match(line) or _SNIPPET_INCLUDE.match(line):
            lines[number] = ""
    return "\n".join(lines)
