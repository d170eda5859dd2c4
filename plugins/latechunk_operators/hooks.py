"""Clients for the pipeline's services, built from Airflow connections through the providers' hooks."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch
    from mypy_boto3_s3 import S3Client


def s3_client(aws_conn_id: str) -> S3Client:
    """A boto3 S3 client from an `aws` connection (endpoint_url in its extras for MinIO and friends).

    The connection must exist: the Amazon provider would otherwise fall back to the default AWS credential chain
    and endpoint, and talk to real AWS (or fail with an unrelated connection error) instead of saying what is wrong.
    """
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.sdk import BaseHook

    BaseHook.get_connection(aws_conn_id)
    return S3Hook(aws_conn_id=aws_conn_id).get_conn()


def elasticsearch_client(elasticsearch_conn_id: str) -> Elasticsearch:
    """An elasticsearch-py client from an `elasticsearch` connection.

    The provider's SQL hook is the one that turns a connection (host, port, schema, login/password, extras such as
    api_key or verify_certs) into a full client; we use its client, not its SQL cursor.
    """
    from airflow.providers.elasticsearch.hooks.elasticsearch import ElasticsearchSQLHook

    return ElasticsearchSQLHook(elasticsearch_conn_id=elasticsearch_conn_id).get_conn().es
