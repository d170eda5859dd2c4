"""Parsing object-storage notifications: S3's record shape (as SQS, SNS-in-SQS and MinIO's Kafka target deliver
it), EventBridge's, and everything that is not one of them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from latechunk.sources.events import (
    CREATED,
    MISSING_FIELDS,
    NOT_JSON,
    OUTSIDE_PREFIX,
    REMOVED,
    UNKNOWN_TYPE,
    ObjectEvent,
    in_scope,
    keys_to_check,
    parse_message,
    parse_payloads,
)


def s3_record(name: str, key: str, *, bucket: str = "docs", time: str = "2026-12-04T10:00:00.123Z",
              etag: str | None = "0123456789abcdef0123456789abcdef", source: str = "aws:s3") -> dict:
    """One record of an S3 event notification, in the documented structure (event version 2.1)."""
    obj = {"key": key, "size": 1024, "sequencer": "0055AED6DCD90281E5"}
    if etag is not None:
        obj["eTag"] = etag
    return {
        "eventVersion": "2.1", "eventSource": source, "awsRegion": "us-east-1", "eventTime": time,
        "eventName": name, "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "latechunk-events",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                          "arn": f"arn:aws:s3:::{bucket}"},
               "object": obj},
    }  # fmt: skip


def notification(*records: dict) -> str:
    return json.dumps({"Records": list(records)})


def test_an_s3_notification_gives_one_event_per_record_with_decoded_keys():
    parsed = parse_message(notification(
        s3_record("ObjectCreated:Put", "incoming/annual+report+2026.txt"),
        s3_record("ObjectRemoved:Delete", "incoming%2Fold%2Fr%C3%A9sum%C3%A9+%2B+notes.md", etag=None),
    ))  # fmt: skip
    assert parsed.rejected == []
    created, removed = parsed.events
    assert created == ObjectEvent("docs", "incoming/annual report 2026.txt", CREATED,
                                  datetime(2026, 12, 4, 10, 0, 0, 123000, tzinfo=UTC),
                                  "0123456789abcdef0123456789abcdef", "0055AED6DCD90281E5")  # fmt: skip
    assert (removed.key, removed.kind, removed.etag) == ("incoming/old/résumé + notes.md", REMOVED, None)


def test_minio_kafka_records_with_prefixed_names_are_read():
    """MinIO's Kafka target sends the same records with ``s3:`` event names, plus EventName and Key."""
    record = s3_record("s3:ObjectCreated:CompleteMultipartUpload", "incoming%2Fa+b%2F%C3%A9t%C3%A9.txt",
                       source="minio:s3")  # fmt: skip
    message = json.dumps({"EventName": "s3:ObjectCreated:CompleteMultipartUpload",
                          "Key": "docs/incoming/a b/été.txt", "Records": [record]}).encode()  # fmt: skip
    (event,) = parse_message(message).events
    assert (event.key, event.kind) == ("incoming/a b/été.txt", CREATED)


def test_sqs_and_sns_in_sqs_wrappers_are_unwrapped():
    body = notification(s3_record("ObjectCreated:Copy", "incoming/x.txt"))
    sqs_message = {"MessageId": "7b0a", "ReceiptHandle": "AQEB", "MD5OfBody": "d41d", "Body": body}
    removed = notification(s3_record("ObjectRemoved:Delete", "incoming/y.txt"))
    sns = {"Type": "Notification", "MessageId": "95df", "TopicArn": "arn:aws:sns:us-east-1:123456789012:docs",
           "Subject": "Amazon S3 Notification", "Message": removed,
           "Timestamp": "2026-12-04T10:00:01.000Z", "SignatureVersion": "1"}  # fmt: skip
    sns_in_sqs = {"MessageId": "8c1b", "Body": json.dumps(sns)}
    # Airflow's SQS trigger yields a batch of messages as they come from receive_message.
    parsed = parse_message({"message_batch": [sqs_message, sns_in_sqs]})
    assert [(e.key, e.kind) for e in parsed.events] == [("incoming/x.txt", CREATED), ("incoming/y.txt", REMOVED)]
    assert parsed.rejected == []


def test_eventbridge_object_created_and_deleted():
    def eventbridge(detail_type: str, key: str, reason: str) -> dict:
        obj = {"key": key, "sequencer": "00617F08299329D189"}
        if detail_type == "Object Created":
            obj |= {"size": 5, "etag": "b1946ac92492d2347c6235b4d2611184"}
        return {"version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103", "detail-type": detail_type,
                "source": "aws.s3", "account": "123456789012", "time": "2026-12-04T09:59:00Z",
                "region": "us-east-1", "resources": ["arn:aws:s3:::docs"],
                "detail": {"version": "0", "bucket": {"name": "docs"}, "object": obj, "reason": reason,
                           "request-id": "N4N7GDK58NMKJ12R", "requester": "123456789012"}}  # fmt: skip

    created = parse_message(eventbridge("Object Created", "incoming/q+1.txt", "PutObject")).events
    deleted = parse_message(json.dumps(eventbridge("Object Deleted", "incoming/q+1.txt", "DeleteObject"))).events
    assert [(e.key, e.kind, e.etag) for e in created + deleted] == [
        ("incoming/q 1.txt", CREATED, "b1946ac92492d2347c6235b4d2611184"), ("incoming/q 1.txt", REMOVED, None)]
    assert created[0].time == datetime(2026, 12, 4, 9, 59, tzinfo=UTC)
    restored = parse_message(eventbridge("Object Restore Completed", "incoming/q.txt", "RestoreObject"))
    assert restored.events == [] and restored.rejected[0].reason == UNKNOWN_TYPE


@pytest.mark.parametrize(("message", "reason"), [
    (b"\xff\xfenot utf-8", NOT_JSON),
    ("{not json", NOT_JSON),
    ("[1, 2]", MISSING_FIELDS),
    ("{}", MISSING_FIELDS),
    ('{"Records": "nope"}', MISSING_FIELDS),
    (notification({"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "docs"}}}), MISSING_FIELDS),
    (notification(s3_record("ObjectCreated:Put", "k", time="yesterday")), MISSING_FIELDS),
    (notification(s3_record("ObjectCreated:Put", "k", time="2026-12-04T10:00:00")), MISSING_FIELDS),
    (notification(s3_record("ObjectTagging:Put", "incoming/k.txt")), UNKNOWN_TYPE),
    ('{"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "docs"}', UNKNOWN_TYPE),
    (None, MISSING_FIELDS),
])  # fmt: skip
def test_what_is_not_an_object_event_is_rejected_with_its_reason_and_never_raises(message, reason):
    parsed = parse_message(message)
    assert parsed.events == []
    (rejected,) = parsed.rejected
    assert rejected.reason == reason
    assert len(rejected.message) <= 500


def test_a_bad_record_does_not_lose_the_good_ones_beside_it():
    parsed = parse_message(notification(s3_record("ObjectCreated:Put", "incoming/a.txt"), {"eventName": 3},
                                        s3_record("ObjectCreated:Put", "incoming/b.txt")))  # fmt: skip
    assert [e.key for e in parsed.events] == ["incoming/a.txt", "incoming/b.txt"]
    assert [r.reason for r in parsed.rejected] == [MISSING_FIELDS]


def test_a_long_rejected_message_is_cut_to_an_excerpt():
    parsed = parse_message("x" * 10_000)
    assert parsed.rejected[0].message == "x" * 500


def test_events_outside_the_bucket_or_prefix_are_rejected():
    events = parse_message(notification(
        s3_record("ObjectCreated:Put", "incoming/a.txt"), s3_record("ObjectCreated:Put", "other/a.txt"),
        s3_record("ObjectCreated:Put", "incoming/a.txt", bucket="elsewhere"),
    )).events  # fmt: skip
    inside, outside = in_scope(events, "docs", "incoming/")
    assert [(e.bucket, e.key) for e in inside] == [("docs", "incoming/a.txt")]
    assert [r.reason for r in outside] == [OUTSIDE_PREFIX, OUTSIDE_PREFIX]
    assert "s3://docs/other/a.txt" in outside[0].detail


def test_duplicate_and_reordered_events_name_each_key_once():
    def event(key: str, kind: str, minute: int) -> ObjectEvent:
        return ObjectEvent("docs", key, kind, datetime(2026, 12, 4, 10, minute, tzinfo=UTC))

    events = [event("b", CREATED, 5), event("a", REMOVED, 7), event("b", CREATED, 5), event("a", CREATED, 1),
              event("c", CREATED, 6)]  # fmt: skip
    assert keys_to_check(events) == ["b", "c", "a"]


def test_events_survive_a_round_trip_through_json():
    (event,) = parse_message(notification(s3_record("ObjectCreated:Put", "incoming/%E2%9C%93.txt"))).events
    assert ObjectEvent.from_dict(json.loads(json.dumps(event.to_dict()))) == event


def test_a_burst_of_kafka_messages_gives_the_events_of_every_message_in_it():
    """The batching watcher carries a burst as ``{"messages": [...]}``; single-message payloads (the provider's
    trigger) and SQS batches still parse the same way."""
    burst = {"messages": [{"message": notification(s3_record("s3:ObjectCreated:Put", "in/a.txt"))},
                          {"message": "not json {"},
                          {"message": notification(s3_record("s3:ObjectRemoved:Delete", "in/b.txt"))}]}
    single = {"message": notification(s3_record("s3:ObjectCreated:Put", "in/c.txt"))}
    parsed = parse_payloads([burst, single])
    assert [(event.kind, event.key) for event in parsed.events] == [
        (CREATED, "in/a.txt"), (REMOVED, "in/b.txt"), (CREATED, "in/c.txt")]
    assert [entry.reason for entry in parsed.rejected] == [NOT_JSON]
