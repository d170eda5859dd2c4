"""Index throughput: the project's index path against the client's plain ``helpers.bulk``, in the same run, on the
same node, with the same data and the same index settings (a fresh index for every measurement).

Project path: ``ElasticsearchBackend.upsert_documents`` (what the index task calls for every staged batch): bulk
upsert with per-item error reporting and 429 retries, then the search for stale chunks of the written documents,
then a refresh. Baseline: ``elasticsearch.helpers.bulk`` over plain dict actions (vector as a list of floats,
the client's own JSON serializer, its default chunking), then a refresh, so both end with the data searchable.

The data: N synthetic chunks (default 20,000) of 768-dim float32 unit vectors, 10 chunks per document, ~400
characters of text each. Each repeat indexes both paths (alternating which goes first) after one warm-up round;
the reported docs/s are medians over the repeats and ``ratio`` = project / baseline.

    python bench/index_throughput.py                   # 20,000 chunks, prints docs/s of both and the ratio
    python bench/index_throughput.py --n 5000 --repeats 3 --out index-bench.json

Uses ES_URL, else var/servers.env, else starts the local node itself with scripts/servers.sh.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DIMS = 768
CHUNKS_PER_DOC = 10
WORDS = "the reef ocean coral diving research temperature biologist island water warm bleach team city".split()


def es_url() -> str:
    """ES_URL, else the local servers' env file; starts the local node when nothing answers there."""
    if "ES_URL" in os.environ:
        if not _healthy(os.environ["ES_URL"]):
            sys.exit(f"no Elasticsearch answers at ES_URL={os.environ['ES_URL']}")
        return os.environ["ES_URL"]
    url = _env_file_url() or "http://127.0.0.1:9200"
    if not _healthy(url):
        print(f"no Elasticsearch at {url}: starting the local node (scripts/servers.sh start es)", file=sys.stderr)
        subprocess.run([str(REPO / "scripts" / "servers.sh"), "start", "es"], check=True)
        url = _env_file_url() or url
    return url


def _env_file_url() -> str | None:
    env_file = REPO / "var" / "servers.env"
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            if line.startswith("export ES_URL="):
                return line.split("=", 1)[1].strip()
    return None


def _healthy(url: str) -> bool:
    from elasticsearch import Elasticsearch

    client = Elasticsearch(url, request_timeout=3, max_retries=0)
    try:
        client.cluster.health(wait_for_status="yellow", timeout="2s")
        return True
    except Exception:
        return False
    finally:
        client.close()


def synthetic_chunks(n: int, seed: int = 0) -> list:
    from latechunk.sources.documents import EmbeddedChunk, document_id

    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIMS)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    words = rng.integers(0, len(WORDS), size=(n, 64))
    chunks = []
    for i in range(n):
        doc, chunk_id = divmod(i, CHUNKS_PER_DOC)
        key = f"bench/doc-{doc:06d}.txt"
        text = " ".join(WORDS[w] for w in words[i]) + "."
        chunks.append(
            EmbeddedChunk(
                doc_id=document_id("bench", key),
                bucket="bench",
                key=key,
                part="",
                etag=f"etag-{doc}",
                chunk_id=chunk_id,
                n_chunks=min(CHUNKS_PER_DOC, n - doc * CHUNKS_PER_DOC),
                text=text,
                char_start=0,
                char_end=len(text),
                token_start=chunk_id * 64,
                token_end=chunk_id * 64 + 64,
                vector=vectors[i],
                model_id="bench-model",
                metadata={"source": "bench"},
            )
        )
    return chunks


def baseline_actions(index: str, chunks: list):
    """What a plain client user writes: dict sources, the vector as a list, the client serialises."""
    indexed_at = datetime.now(UTC).isoformat()
    for chunk in chunks:
        yield {
            "_index": index,
            "_id": chunk.es_id,
            "_source": {
                "doc_id": chunk.doc_id,
                "bucket": chunk.bucket,
                "key": chunk.key,
                "part": chunk.part,
                "etag": chunk.etag,
                "chunk_id": chunk.chunk_id,
                "n_chunks": chunk.n_chunks,
                "text": chunk.text,
                "char_start": chunk.char_start,
                "char_end": chunk.char_end,
                "token_start": chunk.token_start,
                "token_end": chunk.token_end,
                "vector": chunk.vector.tolist(),
                "model_id": chunk.model_id,
                "metadata": chunk.metadata,
                "indexed_at": indexed_at,
            },
        }


def measure(client, spec_for, chunks: list, path: str, concurrency: int) -> tuple[float, float]:
    """Seconds to index `chunks` into a fresh index through `path`, as (total, before the final refresh);
    checks the count and removes the index."""
    from elasticsearch import helpers
    from latechunk.index.elasticsearch import ElasticsearchBackend
    from latechunk.index.spec import index_body

    name = f"bench-index-{path}-{uuid.uuid4().hex[:8]}"
    client.indices.create(index=name, **index_body(spec_for(name)))
    try:
        client.cluster.health(index=name, wait_for_status="yellow", timeout="30s")
        start = time.perf_counter()
        if path == "project":
            report = ElasticsearchBackend(client, bulk_concurrency=concurrency).upsert_documents(name, chunks)
            if not report.ok:
                raise RuntimeError(f"project path failed items: {report.errors[:3]}")
            bulk_seconds = time.perf_counter() - start
        else:
            helpers.bulk(client, baseline_actions(name, chunks), raise_on_error=True)
            bulk_seconds = time.perf_counter() - start
            client.indices.refresh(index=name)
        seconds = time.perf_counter() - start
        count = client.count(index=name)["count"]
        if count != len(chunks):
            raise RuntimeError(f"{path}: {count} documents in the index, {len(chunks)} expected")
        return seconds, bulk_seconds
    finally:
        client.indices.delete(index=name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="synthetic chunks per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measured rounds (each indexes both paths)")
    parser.add_argument("--warmup", type=int, default=None, help="chunks per warm-up round (default min(n, 2000))")
    parser.add_argument(
        "--concurrency", type=int, default=None, help="project path: bulk requests in flight (default the project's)"
    )
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()

    from elasticsearch import Elasticsearch
    from latechunk.index.bulk import BULK_CONCURRENCY
    from latechunk.index.spec import IndexSpec
    from latechunk.pipeline.index import DEFAULT_INDEX_OPTIONS

    concurrency = args.concurrency or BULK_CONCURRENCY
    url = es_url()
    client = Elasticsearch(url, request_timeout=300)
    nodes = client.nodes.info(filter_path="nodes.*.version")["nodes"]
    version = next(iter(nodes.values()))["version"]

    def spec_for(name: str) -> IndexSpec:  # exactly what the index task creates
        return IndexSpec(name=name, dims=DIMS, model_id="bench-model", index_options=DEFAULT_INDEX_OPTIONS)

    chunks = synthetic_chunks(args.n)
    warm = chunks[: args.warmup or min(args.n, 2000)]
    for path in ("baseline", "project"):
        measure(client, spec_for, warm, path, concurrency)
    seconds: dict[str, list[float]] = {"project": [], "baseline": [], "baseline_bulk_only": []}
    for repeat in range(args.repeats):
        order = ("project", "baseline") if repeat % 2 == 0 else ("baseline", "project")
        for path in order:
            total, bulk_only = measure(client, spec_for, chunks, path, concurrency)
            seconds[path].append(total)
            if path == "baseline":
                seconds["baseline_bulk_only"].append(bulk_only)
            print(f"repeat {repeat + 1}/{args.repeats} {path:>8}: {total:7.2f} s  {args.n / total:9,.0f} docs/s")
    rates = {path: args.n / statistics.median(values) for path, values in seconds.items()}
    ratio = rates["project"] / rates["baseline"]
    result = {
        "n": args.n,
        "dims": DIMS,
        "repeats": args.repeats,
        "project_docs_per_s": round(rates["project"], 1),
        "baseline_docs_per_s": round(rates["baseline"], 1),
        "ratio": round(ratio, 4),
        # helpers.bulk's time alone, before the refresh that makes its writes searchable (the project path's
        # time always includes its refresh and stale-chunk search): the strictest comparison.
        "baseline_bulk_only_docs_per_s": round(rates["baseline_bulk_only"], 1),
        "ratio_vs_bulk_only": round(rates["project"] / rates["baseline_bulk_only"], 4),
        "seconds": {path: [round(s, 3) for s in values] for path, values in seconds.items()},
        "elasticsearch": version,
        "es_url": url,
        "index_options": DEFAULT_INDEX_OPTIONS,
        "project_bulk_concurrency": concurrency,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    print(f"project  (ElasticsearchBackend.upsert_documents): {rates['project']:9,.0f} docs/s")
    print(f"baseline (helpers.bulk, then refresh):            {rates['baseline']:9,.0f} docs/s")
    print(f"baseline (helpers.bulk alone, no refresh):        {rates['baseline_bulk_only']:9,.0f} docs/s")
    print(f"ratio project/baseline: {ratio:.3f} (vs helpers.bulk alone: {result['ratio_vs_bulk_only']:.3f})")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    client.close()


if __name__ == "__main__":
    main()
