"""Listing a prefix against HEADing some of its keys: how many HEADs one page of listing is worth, in time.

The index task checks the bucket's current version of every object it is about to write (`latechunk.pipeline.overlap`
``current_etags``): by a HEAD per key (`latechunk.pipeline.scan.head_objects`, concurrent) when the keys are few
next to the prefix, else by listing the prefix (`list_objects`, a page per 1,000 keys). This measures both on the
same prefix in the same run and prints ``heads_per_page`` (the listing's seconds per page over the seconds per HEAD),
the figure behind ``HEADS_PER_PAGE``.

    scripts/servers.sh start s3
    .venv/bin/python bench/list_or_head.py --bucket latechunk-scale --prefix scale-100000/ --heads 1100

The prefix must exist (e.g. the one `bench/scale.py` leaves). Uses S3_ENDPOINT_URL and the AWS_* credentials, else
var/servers.env.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "include"))


def load_servers_env() -> None:
    env_file = REPO / "var" / "servers.env"
    if "S3_ENDPOINT_URL" in os.environ or not env_file.exists():
        return
    for line in env_file.read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            os.environ.setdefault(name, value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--heads", type=int, default=1100, help="keys to HEAD (a sample of the prefix)")
    parser.add_argument("--out", help="write the JSON here too")
    args = parser.parse_args()
    load_servers_env()

    import boto3
    from latechunk.pipeline.scan import HEAD_THREADS, head_objects, list_objects

    s3 = boto3.client("s3", endpoint_url=os.environ.get("S3_ENDPOINT_URL"), region_name="us-east-1")
    started = time.perf_counter()
    listed = [obj.key for obj in list_objects(s3, args.bucket, args.prefix)]
    list_s = time.perf_counter() - started
    if len(listed) < args.heads:
        parser.error(f"s3://{args.bucket}/{args.prefix} holds {len(listed)} objects, fewer than --heads")
    sample = random.Random(0).sample(listed, args.heads)
    started = time.perf_counter()
    present, gone = head_objects(s3, args.bucket, sample)
    head_s = time.perf_counter() - started
    if gone:
        raise SystemExit(f"{len(gone)} sampled keys vanished during the bench: rerun on a quiet prefix")
    pages = max(1, -(-len(listed) // 1000))
    result = {
        "objects": len(listed),
        "pages": pages,
        "list_s": round(list_s, 2),
        "heads": len(present),
        "head_threads": HEAD_THREADS,
        "head_s": round(head_s, 2),
        "heads_per_s": round(len(present) / head_s),
        "heads_per_page": round((list_s / pages) / (head_s / len(present)), 1),
    }
    print(f"listing {len(listed):,} keys ({pages} pages): {list_s:.2f} s; {len(present):,} HEADs "
          f"({HEAD_THREADS} threads): {head_s:.2f} s; one page costs the time of {result['heads_per_page']} HEADs")
    print(json.dumps(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
