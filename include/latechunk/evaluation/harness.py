"""Retrieval-quality evaluation of chunking strategies on a BEIR-format dataset (the late-chunking paper's protocol).

* A document's text is ``title + " " + text``, cut to the model window (``window - 2`` content tokens for BERT-style
  models) unless long late chunking is asked for; chunks are fixed runs of content tokens or sentences, annotated by
  `latechunk.chunking.spans.annotate_spans` (first chunk pools [CLS], last pools [SEP] in late chunking).
* ``naive``: every chunk is encoded alone as ``[CLS] chunk [SEP]`` and mean-pooled over all its tokens
  (`latechunk.embedding.late_chunking.naive_sequences`).
* ``late``: the document is encoded once (`latechunk.embedding.late_chunking.embed_tokens`, overlapping windows for long
  documents) and the same spans are pooled (`latechunk.embedding.pooling.pool_spans`); the chunks of a document longer
  than the window are mixed with their naive vectors: exactly what ``embed_documents`` does with its default config.
  Other window layouts, overlaps and naive weights are ``LateVariant``s, keyed ``late[<name>]``.
* ``mix``: a late variant's vectors mixed with the naive ones (`mix_chunks`), computed from the stored vectors.
* ``none``: one vector per document, the mean of all token embeddings of the (truncated) document.
* A document scores as its best chunk (`latechunk.evaluation.retrieval`).

One encoder pass over the documents per late variant serves it at every chunk size, and ``none``; ``naive`` needs
one pass per chunk size. With a cache directory every (strategy, chunk size) result is stored and reused by later
runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from latechunk.chunking.config import ChunkingConfig
from latechunk.chunking.spans import AnnotatedDocument, annotate_spans
from latechunk.embedding.encoders.base import Encoder
from latechunk.embedding.late_chunking import (
    WINDOW_LAYOUTS,
    LateChunkingConfig,
    default_overlap,
    embed_naive,
    encoded_tokens,
    mix_vectors,
    naive_sequences,
    special_affixes,
)
from latechunk.embedding.pooling import l2_normalize, pool_spans
from latechunk.evaluation.retrieval import ChunkVectors
from latechunk.evaluation.units import (
    DocumentUnits,
    document_units,
    is_unit,
    late_pass,
    naive_section_work,
    naive_sections,
    split_kind,
    unit_keys,
    unit_kind,
    unit_label,
)

STRATEGIES = ("naive", "late", "none")
DOCS_PER_PASS = 256


_DEFAULT = LateChunkingConfig()


@dataclass(frozen=True)
class LateVariant:
    """How long documents are late-chunked: ``layout`` and ``framed`` as in `latechunk.embedding.late_chunking`,
    ``overlap`` tokens shared by consecutive windows, ``window`` tokens per window (None: the defaults, i.e. the
    encoder window) and ``naive_weight``, the naive mix of the chunks of documents longer than the window. The
    default variant is the pipeline's default method (`LateChunkingConfig`), keyed plain ``late``."""

    layout: str = _DEFAULT.window_layout
    framed: bool = _DEFAULT.frame_windows
    overlap: int | None = None
    window: int | None = None
    naive_weight: float = _DEFAULT.naive_weight

    @classmethod
    def parse(cls, spec: str) -> LateVariant:
        """``LAYOUT[+framed][@OVERLAP][/WINDOW][~WEIGHT]``, e.g. ``stitched@128``, ``centred+framed@64/256`` or
        ``centred+framed@128~0.6``; without ``~WEIGHT`` pure late chunking (no naive mix)."""
        rest, _, weight = spec.partition("~")
        rest, _, window = rest.partition("/")
        name, _, overlap = rest.partition("@")
        layout, _, flag = name.partition("+")
        if layout not in WINDOW_LAYOUTS or flag not in ("", "framed"):
            raise ValueError(
                f"late variant {spec!r}: expected LAYOUT[+framed][@OVERLAP][/WINDOW][~WEIGHT], "
                f"LAYOUT in {WINDOW_LAYOUTS}"
            )
        naive_weight = float(weight) if weight else 0.0
        if not 0.0 <= naive_weight <= 1.0:
            raise ValueError(f"late variant {spec!r}: the naive weight must lie within [0, 1]")
        return cls(
            layout, flag == "framed", int(overlap) if overlap else None, int(window) if window else None, naive_weight
        )

    @property
    def name(self) -> str:
        return self.windowing + (f"~{self.naive_weight:g}" if self.naive_weight else "")

    @property
    def windowing(self) -> str:
        """The name of the windows alone (what the late vectors before any naive mix depend on)."""
        return (
            self.layout
            + ("+framed" if self.framed else "")
            + ("" if self.overlap is None else f"@{self.overlap}")
            + ("" if self.window is None else f"/{self.window}")
        )

    def resolve(self, encoder: Encoder) -> tuple[int, int]:
        """(window, overlap) in tokens for this encoder."""
        window = self.window or encoder.max_length
        return window, default_overlap(window) if self.overlap is None else self.overlap


def late_key(variant: LateVariant | None) -> str:
    """The strategy name of a late variant: plain ``late`` for the default one (the pipeline's default method)."""
    return "late" if variant is None or variant == LateVariant() else f"late[{variant.name}]"


def truncate_text(text: str, tokenizer, max_content_tokens: int) -> str:
    """The longest prefix of ``text`` that holds at most ``max_content_tokens`` content tokens."""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False)[
        "offset_mapping"
    ]
    return text if len(offsets) <= max_content_tokens else text[: offsets[max_content_tokens - 1][1]]


def chunking_configs(chunker: str, chunk_sizes: Sequence[int]) -> dict[int, ChunkingConfig]:
    """Chunk size -> config; the sentence chunker has one setting (one sentence per chunk), keyed 0; the section
    chunker takes the sizes as its cap (``max_chunk_tokens``: a section, here the whole text of a BEIR document,
    which has no headings, is one chunk when it fits, else cut by sentences)."""
    if chunker == "sentences":
        return {0: ChunkingConfig(strategy="sentences", sentences_per_chunk=1)}
    if chunker == "sections":
        return {size: ChunkingConfig(strategy="sections", max_chunk_tokens=size) for size in chunk_sizes}
    if chunker != "fixed":
        raise ValueError(f"chunker must be 'sentences', 'sections' or 'fixed', got {chunker!r}")
    return {size: ChunkingConfig(strategy="fixed", chunk_size=size) for size in chunk_sizes}


def fit_text(encoder: Encoder, text: str, long_late: bool) -> str:
    """The text of a document as embedded: cut to the model window unless ``long_late``."""
    if long_late:
        return text
    budget = encoder.max_length - encoder.tokenizer.num_special_tokens_to_add()
    while True:  # re-tokenising a cut text can, rarely, add a token at the cut: cut one more then
        cut = truncate_text(text, encoder.tokenizer, budget)
        if len(encoder.tokenizer(cut, truncation=False, verbose=False)["input_ids"]) <= encoder.max_length:
            return cut
        budget -= 1


def annotate(encoder: Encoder, text: str, config: ChunkingConfig, long_late: bool) -> AnnotatedDocument:
    """Spans of a document, cut to the model window unless ``long_late``."""
    return annotate_spans(fit_text(encoder, text, long_late), encoder.tokenizer, config)


def embed_corpus(
    encoder: Encoder,
    texts: Sequence[str],
    strategies: Sequence[str],
    configs: dict[int, ChunkingConfig],
    *,
    long_late: bool = False,
    late_variants: Sequence[LateVariant] = (LateVariant(),),
    units: Sequence[str] = ("chunk",),
    section_tokens: Sequence[int] = (),
    cache_dir: str | Path | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> dict[tuple[str, int], ChunkVectors]:
    """Chunk vectors per (strategy, chunk size); ``none`` is keyed (``"none"``, 0), late variants by `late_key`.
    ``units``: the retrieval units scored (`latechunk.evaluation.units`); the section and document units are keyed
    by `units.unit_kind` and pooled in the late pass that serves the chunks."""
    unknown = set(strategies) - set(STRATEGIES)
    if unknown:
        raise ValueError(f"unknown strategies {sorted(unknown)}; expected some of {STRATEGIES}")
    variants = {late_key(v): v for v in late_variants} if "late" in strategies else {}
    kinds = [s for s in ("naive",) if s in strategies] + list(variants) + [s for s in ("none",) if s in strategies]
    chunk_kinds = kinds if "chunk" in units else [kind for kind in kinds if kind == "none"]
    keys = [(kind, size) for kind in chunk_kinds for size in ([0] if kind == "none" else configs)]
    keys += unit_keys([kind for kind in kinds if kind != "none"], units, section_tokens)
    labels = {key: _label(key, configs, long_late, variants) for key in keys}
    fingerprint = _fingerprint(encoder, texts)
    results = {key: _load(cache_dir, fingerprint, labels[key]) for key in keys}
    todo = [key for key in keys if results[key] is None]
    parts: dict[tuple[str, int], list[tuple[np.ndarray, np.ndarray]]] = {key: [] for key in todo}
    special_ids = set(encoder.tokenizer.all_special_ids)
    for start in range(0, len(texts) if todo else 0, DOCS_PER_PASS):
        batch = range(start, min(start + DOCS_PER_PASS, len(texts)))
        docs = {
            size: [annotate(encoder, texts[i], config, long_late) for i in batch] for size, config in configs.items()
        }
        whole = next(iter(docs.values()))  # the token ids do not depend on the chunking
        units_now = [  # the spans of the section and document units, pooled in the late pass
            document_units(encoder, fit_text(encoder, texts[i], long_late), section_tokens)
            if any(is_unit(kind) for kind, _ in todo)
            else DocumentUnits(len(doc.input_ids), {})
            for i, doc in zip(batch, whole, strict=True)
        ]
        single: list[np.ndarray | None] = [None] * len(whole)  # a pass of the whole encoder window, for "none"
        longest = max(len(doc.input_ids) for doc in whole)
        # (token matrices, unit vectors) per window plan: variants that window no document of the batch share a pass
        passes: dict[tuple, tuple[list[np.ndarray], list[np.ndarray]]] = {}
        naive_now: dict[int, list[np.ndarray]] = {}  # this batch's naive vectors per chunk size, where computed
        for kind in dict.fromkeys(split_kind(kind)[0] for kind, _ in todo):
            if kind in variants:
                variant = variants[kind]
                window, overlap = variant.resolve(encoder)
                plan = ("one window",) if longest <= window else (window, overlap, variant.layout, variant.framed)
                if plan not in passes:
                    passes[plan] = late_pass(
                        encoder,
                        [doc.input_ids for doc in whole],
                        [doc.spans for doc in units_now],
                        window=window,
                        overlap=overlap,
                        layout=variant.layout,
                        frame_windows=variant.framed,
                    )
                matrices, pooled = passes[plan]
                if window == encoder.max_length:
                    single = matrices
                for size in (s for k, s in todo if k == kind):
                    vectors = [pool_spans(m, doc.spans) for m, doc in zip(matrices, docs[size], strict=True)]
                    if variant.naive_weight:
                        weight = variant.naive_weight
                        vectors = _mixed(encoder, vectors, docs[size], window, weight, naive_now.get(size))
                    parts[(kind, size)].append((_owners(batch, vectors), np.concatenate(vectors)))
                for key in (k for k in todo if is_unit(k[0]) and split_kind(k[0])[0] == kind):
                    vectors = [v[doc.rows(*key)] for v, doc in zip(pooled, units_now, strict=True)]
                    parts[key].append((_owners(batch, vectors), np.concatenate(vectors)))
            elif kind == "none":
                cut = _none_matrices(encoder, batch, texts, whole, single)
                parts[("none", 0)].append((np.asarray(batch, dtype=np.int64), _mean_pool(cut)))
            else:
                for size in (s for k, s in todo if k == "naive"):
                    sequences = [naive_sequences(doc, special_ids) for doc in docs[size]]
                    vectors = _mean_pool(encoder.encode_token_batches([s for seqs in sequences for s in seqs]))
                    parts[("naive", size)].append((_owners(batch, sequences), vectors))
                    naive_now[size] = np.split(vectors, np.cumsum([len(seqs) for seqs in sequences])[:-1])
                naive_section = unit_kind("naive", "section")
                for size in (s for k, s in todo if k == naive_section):
                    counts, vectors = naive_sections(encoder, [doc.input_ids for doc in whole], units_now, size)
                    parts[(naive_section, size)].append((np.repeat(np.asarray(batch, dtype=np.int64), counts), vectors))
        log(f"embedded {batch.stop}/{len(texts)} documents")
    for key in todo:
        owners = [o for o, _ in parts[key]]
        vectors = [v for _, v in parts[key]]
        results[key] = ChunkVectors(
            np.concatenate(owners) if owners else np.zeros(0, np.int64),
            np.concatenate(vectors) if vectors else np.zeros((0, encoder.dim), np.float32),
        )
        _save(cache_dir, fingerprint, labels[key], results[key])
    return results


def token_ids(encoder: Encoder, texts: Sequence[str], long_late: bool) -> list[list[int]]:
    """Every document's token ids as `embed_corpus` encodes them (cut to the window unless ``long_late``)."""
    return [annotate(encoder, text, ChunkingConfig(strategy="fixed"), long_late).input_ids for text in texts]


def encoder_work(
    encoder: Encoder,
    ids: Sequence[Sequence[int]],
    chunks: dict[tuple[str, int], ChunkVectors],
    late_variants: Sequence[LateVariant] = (LateVariant(),),
    units: Sequence[DocumentUnits] = (),
) -> dict[tuple[str, int], np.ndarray]:
    """Tokens the encoder processes per document (an (n_docs,) array) for each result of `embed_corpus`, from
    the window plans and chunk counts (`latechunk.embedding.late_chunking.encoded_tokens`; a test checks it against
    the tokens an encoder really receives). Divided by the documents' own tokens it is the encoder cost. A late
    unit costs its pass's windows (no naive mix); naive sections need the documents' ``units``."""
    special_ids = set(encoder.tokenizer.all_special_ids)
    affixes = [special_affixes(doc, special_ids) for doc in ids]
    variants = {late_key(v): v for v in late_variants}
    work = {}
    for kind, size in chunks:
        strategy = split_kind(kind)[0]
        if kind == "none":
            counts = [min(len(doc), encoder.max_length) for doc in ids]
        elif kind == "naive":
            per_doc = np.bincount(chunks[(kind, size)].doc_index, minlength=len(ids))  # [CLS] chunk [SEP] each
            counts = [
                len(doc) + (len(p) + len(s)) * (int(n) - 1)
                for doc, (p, s), n in zip(ids, affixes, per_doc, strict=True)
            ]
        elif strategy == "naive":
            counts = naive_section_work(encoder, ids, units, size)
        else:
            variant = variants[strategy]
            window, overlap = variant.resolve(encoder)
            frame = [(len(p), len(s)) if variant.framed else (0, 0) for p, s in affixes]
            counts = [
                encoded_tokens(len(doc), window, overlap, variant.layout, f) for doc, f in zip(ids, frame, strict=True)
            ]
            if variant.naive_weight and not is_unit(kind):  # the naive pass over the long documents' chunks
                per_doc = np.bincount(chunks[(kind, size)].doc_index, minlength=len(ids))
                counts = [
                    count + (len(doc) + (len(p) + len(s)) * (int(n) - 1) if len(doc) > window else 0)
                    for count, doc, (p, s), n in zip(counts, ids, affixes, per_doc, strict=True)
                ]
        work[(kind, size)] = np.asarray(counts, dtype=np.int64)
    return work


def mix_name(weight: float, late: str) -> str:
    """``mix0.5`` for the plain late strategy, ``mix0.5[centred+framed@128]`` for a variant."""
    return f"mix{weight:g}" + late.removeprefix("late")


def mix_chunks(
    late: ChunkVectors, naive: ChunkVectors | None, naive_weight: float, long_docs: np.ndarray
) -> ChunkVectors:
    """The chunks of the documents flagged in ``long_docs`` (longer than the late window) mixed with the same
    chunks' naive vectors (`late_chunking.mix_vectors`); the others keep their late vectors."""
    rows = np.asarray(long_docs, dtype=bool)[late.doc_index]
    if not rows.any():
        return late
    if naive is None or not np.array_equal(late.doc_index, naive.doc_index):
        raise ValueError("mixing needs the naive vectors of the same chunking")
    vectors = late.vectors.copy()
    vectors[rows] = mix_vectors(late.vectors[rows], naive.vectors[rows], naive_weight)
    return ChunkVectors(late.doc_index, vectors)


def _mixed(
    encoder: Encoder,
    late: list[np.ndarray],
    docs: Sequence[AnnotatedDocument],
    window: int,
    naive_weight: float,
    naive: list[np.ndarray] | None,
) -> list[np.ndarray]:
    """Late vectors with the chunks of documents longer than ``window`` mixed with their naive vectors, as
    `latechunk.embedding.late_chunking.embed_documents` mixes them (``naive``: the batch's naive vectors where
    computed)."""
    long = [k for k, doc in enumerate(docs) if len(doc.input_ids) > window]
    if not long:
        return late
    naive = [naive[k] for k in long] if naive is not None else embed_naive(encoder, [docs[k] for k in long])
    mixed = list(late)
    for k, vectors in zip(long, naive, strict=True):
        mixed[k] = mix_vectors(late[k], vectors, naive_weight)
    return mixed


def _owners(batch: range, per_document: Sequence[Sequence]) -> np.ndarray:
    return np.repeat(np.asarray(batch, dtype=np.int64), [len(items) for items in per_document])


def _none_matrices(
    encoder: Encoder,
    batch: range,
    texts: Sequence[str],
    docs: Sequence[AnnotatedDocument],
    matrices: Sequence[np.ndarray | None],
) -> list[np.ndarray]:
    """Token embeddings of each document in one pass of the window: a late pass itself where the document fit
    in it, else a pass over the document cut to the window."""
    long = [k for k, doc in enumerate(docs) if len(doc.input_ids) > encoder.max_length or matrices[k] is None]
    cut = [annotate(encoder, texts[batch[k]], ChunkingConfig(), False).input_ids for k in long]
    replaced = dict(zip(long, encoder.encode_token_batches(cut), strict=True))
    return [replaced.get(k, m) for k, m in enumerate(matrices)]


def _mean_pool(matrices: Sequence[np.ndarray]) -> np.ndarray:
    """Mean of each token matrix, L2-normalised: (n, dim)."""
    return l2_normalize(np.stack([m.mean(axis=0, dtype=np.float32) for m in matrices]))


def _label(
    key: tuple[str, int], configs: dict[int, ChunkingConfig], long_late: bool, variants: dict[str, LateVariant]
) -> str:
    kind, size = key
    if kind == "none":
        return "none"
    if is_unit(kind):
        strategy = split_kind(kind)[0]
        return unit_label(key, long_late, variants[strategy].windowing if strategy in variants else None)
    config = configs[size]
    if config.strategy == "fixed":
        setting = f"fixed{config.chunk_size}-{config.overlap}"
    elif config.strategy == "sentences":
        setting = f"sentences{config.sentences_per_chunk}"
    else:
        setting = f"{config.strategy}{config.sentences_per_chunk}-{config.max_chunk_tokens}"
    window = f"-long-{variants[kind].name}" if kind in variants and long_late else "-long" * long_late
    return f"{kind.partition('[')[0]}-{setting}{window}"


def _fingerprint(encoder: Encoder, texts: Sequence[str]) -> str:
    # The revision (hub commit or content hash of the weights), not the path: the same checkpoint moved elsewhere
    # keeps its cache.
    digest = hashlib.sha256(json.dumps([encoder.revision, encoder.max_length, str(encoder.dtype)]).encode())
    for text in texts:
        digest.update(text.encode() + b"\0")
    return digest.hexdigest()[:16]


def _load(cache_dir: str | Path | None, fingerprint: str, label: str) -> ChunkVectors | None:
    path = Path(cache_dir) / f"{fingerprint}-{label}.npz" if cache_dir else None
    if path is None or not path.is_file():
        return None
    with np.load(path) as data:
        return ChunkVectors(data["doc_index"], data["vectors"])


def _save(cache_dir: str | Path | None, fingerprint: str, label: str, chunks: ChunkVectors) -> None:
    if cache_dir:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        np.savez(Path(cache_dir) / f"{fingerprint}-{label}.npz", doc_index=chunks.doc_index, vectors=chunks.vectors)
