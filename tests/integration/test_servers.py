"""The foundation's real servers: Elasticsearch kNN over a 768-dim dense_vector, and S3 semantics on MinIO."""

from __future__ import annotations

import hashlib

import numpy as np
from elasticsearch import helpers

DIMS = 768


def _unit_vectors(n: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, DIMS)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_elasticsearch_knn_finds_the_nearest_neighbour(es_client, es_index):
    es_client.indices.create(
        index=es_index,
        mappings={
            "properties": {
                "title": {"type": "keyword"},
                "vector": {
                    "type": "dense_vector",
                    "dims": DIMS,
                    "index": True,
                    "similarity": "cosine",
                    "index_options": {"type": "hnsw", "m": 16, "ef_construction": 100},
                },
            }
        },
    )
    vectors = _unit_vectors(300, seed=7)
    actions = (
        {"_index": es_index, "_id": f"doc-{i}", "title": f"doc-{i}", "vector": vector.tolist()}
        for i, vector in enumerate(vectors)
    )
    indexed, errors = helpers.bulk(es_client, actions, refresh="wait_for")
    assert (indexed, errors) == (300, [])
    mapping = es_client.indices.get_mapping(index=es_index)[es_index]["mappings"]
    assert mapping["properties"]["vector"]["dims"] == DIMS

    rng = np.random.default_rng(11)
    for target in (3, 150, 299):
        query = vectors[target] + 0.05 * rng.standard_normal(DIMS).astype(np.float32)
        expected = int(np.argmax(vectors @ (query / np.linalg.norm(query))))
        response = es_client.search(
            index=es_index,
            knn={"field": "vector", "query_vector": query.tolist(), "k": 5, "num_candidates": 100},
            source=["title"],
        )
        hits = response["hits"]["hits"]
        assert len(hits) == 5
        assert hits[0]["_id"] == f"doc-{expected}" == f"doc-{target}"
        assert hits[0]["_score"] >= hits[1]["_score"]


def test_s3_put_paginated_list_get_and_etag(s3_client, s3_bucket):
    keys = [f"incoming/{i:05d}.txt" for i in range(1205)]
    for key in keys:
        s3_client.put_object(Bucket=s3_bucket, Key=key, Body=f"body of {key}".encode())

    pages = list(s3_client.get_paginator("list_objects_v2").paginate(Bucket=s3_bucket, Prefix="incoming/"))
    assert len(pages) >= 2, "more than 1000 keys must come back over several pages"
    listed = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
    assert listed == sorted(keys)

    body = b"late chunking keeps context"
    put = s3_client.put_object(Bucket=s3_bucket, Key="incoming/ctx.txt", Body=body)
    got = s3_client.get_object(Bucket=s3_bucket, Key="incoming/ctx.txt")
    assert got["Body"].read() == body
    assert got["ETag"] == put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'

    s3_client.put_object(Bucket=s3_bucket, Key="incoming/ctx.txt", Body=body + b"!")
    head = s3_client.head_object(Bucket=s3_bucket, Key="incoming/ctx.txt")
    assert head["ETag"] != put["ETag"], "a changed object must get a new ETag"
