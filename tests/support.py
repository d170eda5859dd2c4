"""Small helpers shared by the test suites."""

from __future__ import annotations


def empty_bucket(s3_client, bucket: str) -> None:
    """Delete every object of a bucket, page by page."""
    paginator = s3_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
        if keys:
            s3_client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
