"""Secrets: a whole DAG run with distinctive credentials (short-lived STS credentials minted by the real MinIO, and
a unique Elasticsearch login/password) from Airflow connections in the environment; then every task log line, every
file under the test AIRFLOW_HOME (metadata DB with XComs and rendered fields included) and every object the run
staged (manifest, reports, Parquet batches) is searched for them."""

from __future__ import annotations

import base64
import logging
import uuid
from datetime import UTC, datetime

import boto3
from conftest import assert_exact, put, run_state, task_states
from fault_proxy import FORWARD

DAY = datetime(2026, 3, 2, tzinfo=UTC)


def test_credentials_never_reach_logs_metadata_or_reports(
    pipeline,
    connections,
    proxies,
    servers,
    airflow_home,
    s3_client,
    s3_bucket,
    staging_bucket,
    es_client,
    es_index,
    capfd,
):
    sts = boto3.client(
        "sts",
        endpoint_url=servers["s3_endpoint_url"],
        aws_access_key_id=servers["aws_access_key_id"],
        aws_secret_access_key=servers["aws_secret_access_key"],
        region_name="us-east-1",
    )
    temporary = sts.assume_role(
        RoleArn="arn:aws:iam::000000000000:role/latechunk-reliability",
        RoleSessionName=f"secrets-{uuid.uuid4().hex[:8]}",
        DurationSeconds=900,
    )["Credentials"]
    es_login, es_password = f"lc-user-{uuid.uuid4().hex}", f"Lc-Pass-{uuid.uuid4().hex}-!x"
    secrets = {
        "s3 access key id": temporary["AccessKeyId"],
        "s3 secret key": temporary["SecretAccessKey"],
        "s3 session token": temporary["SessionToken"],
        "es password": es_password,
        "es basic auth header": base64.b64encode(f"{es_login}:{es_password}".encode()).decode(),
    }

    seen = {"s3": set(), "es": set()}

    def recorder(which):
        def rule(request):
            seen[which].add(request.headers.get("authorization", ""))
            return FORWARD

        return rule

    s3_proxy, es_proxy = proxies("s3", recorder("s3")), proxies("es", recorder("es"))
    connections(
        s3_url=s3_proxy.url,
        s3_login=temporary["AccessKeyId"],
        s3_password=temporary["SecretAccessKey"],
        s3_extra={"aws_session_token": temporary["SessionToken"]},
        es={"host": "127.0.0.1", "port": es_proxy.port, "login": es_login, "password": es_password},
    )
    put(s3_client, s3_bucket, {"a.txt": "Credentials stay secret. Logs stay clean.", "b.md": "# Title\n\nA note."})

    log_dir = airflow_home / "logs" / "reliability-secrets"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"{uuid.uuid4().hex}.log"
    handler = logging.FileHandler(log_file)
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        run = pipeline.run(DAY)
    finally:
        root.removeHandler(handler)
        handler.close()
        with log_file.open("a") as log:  # the task output as the task runner printed it
            log.write("".join(capfd.readouterr()))
    assert run_state(run) == "success", task_states(run)
    assert_exact(es_client, es_index, s3_client, s3_bucket)

    # The credentials were really used: every request carried them.
    assert any(f"Credential={temporary['AccessKeyId']}/" in header for header in seen["s3"])
    assert seen["es"] == {f"Basic {secrets['es basic auth header']}"}
    assert "Task instance state updated" in log_file.read_text() or "index summary" in log_file.read_text()

    leaks = []
    for path in sorted(p for p in airflow_home.rglob("*") if p.is_file()):
        data = path.read_bytes()
        leaks += [(str(path), name) for name, value in secrets.items() if value.encode() in data]
    listing = s3_client.list_objects_v2(Bucket=staging_bucket).get("Contents", [])
    assert any(item["Key"].endswith("validation-report.json") for item in listing)
    for item in listing:
        data = s3_client.get_object(Bucket=staging_bucket, Key=item["Key"])["Body"].read()
        leaks += [
            (f"s3://{staging_bucket}/{item['Key']}", name) for name, value in secrets.items() if value.encode() in data
        ]
    assert leaks == [], f"credentials found in: {leaks}"
