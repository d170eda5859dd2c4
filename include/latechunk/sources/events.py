"""Object-storage notifications: what changed, read from the messages S3 and MinIO send.

Shapes read (one message may be any of them):
- an S3 event notification, ``{"Records": [{"eventName": "ObjectCreated:Put", "s3": {...}}, ...]}``, as S3 sends it
  to SQS, SNS and Lambda and as MinIO sends it to Kafka (with ``EventName`` and ``Key`` beside ``Records``, and
  ``s3:``-prefixed event names);
- an SQS message carrying one of these in its ``Body`` (a dict with ``Body``, as boto3 returns it), a batch of SQS
  messages (``{"message_batch": [...]}``, as Airflow's SQS trigger yields it), an SNS notification in SQS
  (``{"Type": "Notification", "Message": "<S3 notification>"}``);
- an EventBridge event from S3 (``"source": "aws.s3"``, ``"detail-type": "Object Created"`` or ``"Object Deleted"``).

Keys are URL-encoded in notifications (a space is ``+``, ``/`` may be ``%2F``) and are decoded as S3 encodes them.
A message that cannot be read never raises: it becomes a `Rejected` record with the reason and the start of the
message, so that a watcher or a run counts and logs it and goes on. Notifications are delivered at least once and
in no guaranteed order; what an event says is therefore only a hint of which keys to look at: the run reads each
key's current state (see `latechunk.pipeline.extract`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

CREATED = "created"
REMOVED = "removed"
# Why a message or a record is not an object event.
NOT_JSON = "not_json"
MISSING_FIELDS = "missing_fields"
UNKNOWN_TYPE = "unknown_type"
OUTSIDE_PREFIX = "outside_prefix"
# Start of a rejected message kept for the log and the run report.
MESSAGE_EXCERPT_CHARS = 500

_EVENTBRIDGE_TYPES = {"Object Created": CREATED, "Object Deleted": REMOVED}


@dataclass(frozen=True)
class ObjectEvent:
    """One object created or removed: bucket, decoded key, when (UTC) and, for a creation, the ETag it had."""

    bucket: str
    key: str
    kind: str
    time: datetime
    etag: str | None = None
    sequencer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "time": self.time.isoformat()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObjectEvent:
        return cls(**{**data, "time": datetime.fromisoformat(data["time"])})


@dataclass(frozen=True)
class Rejected:
    """A message or record that is not an object event this pipeline takes, with the reason and an excerpt."""

    reason: str
    detail: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Parsed:
    events: list[ObjectEvent]
    rejected: list[Rejected]

    def to_dict(self) -> dict[str, Any]:
        return {"events": [e.to_dict() for e in self.events], "rejected": [r.to_dict() for r in self.rejected]}


def parse_message(message: str | bytes | dict[str, Any] | None) -> Parsed:
    """The object events of one message in any of the shapes above; whatever is not one is `Rejected`."""
    events: list[ObjectEvent] = []
    rejected: list[Rejected] = []
    _parse(message, events, rejected, depth=0)
    return Parsed(events, rejected)


def _parse(message: Any, events: list[ObjectEvent], rejected: list[Rejected], depth: int) -> None:
    if isinstance(message, bytes | bytearray):
        try:
            message = message.decode("utf-8")
        except UnicodeDecodeError as error:
            rejected.append(_rejected(NOT_JSON, str(error), message))
            return
    if isinstance(message, str):
        try:
            message = json.loads(message)
        except ValueError as error:
            rejected.append(_rejected(NOT_JSON, str(error), message))
            return
    if not isinstance(message, dict) or depth > 3:
        rejected.append(_rejected(MISSING_FIELDS, "not an object notification", message))
        return
    if "Records" in message:
        records = message["Records"]
        if not isinstance(records, list):
            rejected.append(_rejected(MISSING_FIELDS, "Records is not a list", message))
            return
        for record in records:
            _parse_record(record, events, rejected)
    elif isinstance(message.get("message_batch"), list):
        for item in message["message_batch"]:
            _parse(item, events, rejected, depth + 1)
    elif "Body" in message:
        _parse(message["Body"], events, rejected, depth + 1)
    elif message.get("Type") == "Notification" and "Message" in message:
        _parse(message["Message"], events, rejected, depth + 1)
    elif message.get("source") == "aws.s3" and "detail-type" in message:
        _parse_eventbridge(message, events, rejected)
    elif message.get("Event") == "s3:TestEvent":
        rejected.append(_rejected(UNKNOWN_TYPE, "s3:TestEvent (sent when notifications are configured)", message))
    else:
        rejected.append(_rejected(MISSING_FIELDS, "no Records, Body, Message or EventBridge detail", message))


def _parse_record(record: Any, events: list[ObjectEvent], rejected: list[Rejected]) -> None:
    try:
        name = record["eventName"]
        bucket = record["s3"]["bucket"]["name"]
        obj = record["s3"]["object"]
        key = unquote_plus(obj["key"])
        time = parse_time(record["eventTime"])
    except (KeyError, TypeError, ValueError) as error:
        rejected.append(_rejected(MISSING_FIELDS, f"record without {error}", record))
        return
    kind = event_kind(name)
    if kind is None:
        rejected.append(_rejected(UNKNOWN_TYPE, f"event {name!r}", record))
        return
    etag = (obj.get("eTag") or obj.get("etag")) if kind == CREATED else None
    events.append(ObjectEvent(bucket, key, kind, time, etag or None, obj.get("sequencer")))


def _parse_eventbridge(message: dict[str, Any], events: list[ObjectEvent], rejected: list[Rejected]) -> None:
    kind = _EVENTBRIDGE_TYPES.get(message["detail-type"])
    if kind is None:
        rejected.append(_rejected(UNKNOWN_TYPE, f"EventBridge detail-type {message['detail-type']!r}", message))
        return
    try:
        detail = message["detail"]
        bucket = detail["bucket"]["name"]
        obj = detail["object"]
        key = unquote_plus(obj["key"])
        time = parse_time(message["time"])
    except (KeyError, TypeError, ValueError) as error:
        rejected.append(_rejected(MISSING_FIELDS, f"EventBridge event without {error}", message))
        return
    etag = obj.get("etag") if kind == CREATED else None
    events.append(ObjectEvent(bucket, key, kind, time, etag, obj.get("sequencer")))


def event_kind(name: str) -> str | None:
    """``created``/``removed`` for S3's event names (``ObjectCreated:Put``, MinIO's ``s3:ObjectRemoved:Delete``,
    ``ObjectRemoved:DeleteMarkerCreated``, ...); None for any other (restores, tagging, replication, ...)."""
    name = name.removeprefix("s3:")
    if name.startswith("ObjectCreated:"):
        return CREATED
    if name.startswith("ObjectRemoved:") or name.startswith("LifecycleExpiration:"):
        return REMOVED
    return None


def parse_time(text: str) -> datetime:
    """An event time (ISO 8601, ``Z`` or an offset) as an aware UTC datetime."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"event time without a time zone: {text!r}")
    return moment.astimezone(UTC)


def in_scope(events: list[ObjectEvent], bucket: str, prefix: str) -> tuple[list[ObjectEvent], list[Rejected]]:
    """The events of ``bucket`` under ``prefix``, and the others as `Rejected` (``outside_prefix``)."""
    inside = [event for event in events if event.bucket == bucket and event.key.startswith(prefix)]
    outside = [
        Rejected(OUTSIDE_PREFIX, f"s3://{event.bucket}/{event.key} is outside s3://{bucket}/{prefix}",
                 json.dumps(event.to_dict(), ensure_ascii=False)[:MESSAGE_EXCERPT_CHARS])
        for event in events if not (event.bucket == bucket and event.key.startswith(prefix))
    ]  # fmt: skip
    return inside, outside


def keys_to_check(events: list[ObjectEvent]) -> list[str]:
    """The distinct keys the events name, in order of their last event. Duplicates collapse, and the kind of
    event does not matter: the run reads each key's current state."""
    last: dict[str, datetime] = {}
    for event in events:
        last[event.key] = max(event.time, last.get(event.key, event.time))
    return sorted(last, key=lambda key: (last[key], key))


def parse_payloads(payloads: list[Any]) -> Parsed:
    """The object events of a run's asset events: each payload is what a watcher carried, a burst of Kafka
    messages (``{"messages": [{"message": text, "source": ...}, ...]}``), one Kafka message (``{"message": text,
    ...}``, as the provider's trigger carries it) or an SQS batch (``{"message_batch": [...]}``)."""
    events: list[ObjectEvent] = []
    rejected: list[Rejected] = []
    flat = [item for payload in payloads for item in _kafka_burst(payload)]
    for payload in flat:
        parsed = parse_message(payload["message"] if isinstance(payload, dict) and "message" in payload else payload)
        events += parsed.events
        rejected += parsed.rejected
    return Parsed(events, rejected)


def _kafka_burst(payload: Any) -> list[Any]:
    if isinstance(payload, dict) and isinstance(payload.get("messages"), list):
        return payload["messages"]
    return [payload]


def event_figures(events: list[ObjectEvent], rejected: list[Rejected], keys: list[str]) -> dict[str, Any]:
    """What a run took from the notifications, for its summary and report: events in scope, the distinct keys
    they name, the rejected ones by reason, and the oldest and newest event time."""
    reasons: dict[str, int] = {}
    for entry in rejected:
        reasons[entry.reason] = reasons.get(entry.reason, 0) + 1
    times = [event.time for event in events]
    return {
        "events": len(events),
        "keys": len(keys),
        "rejected": reasons,
        "oldest": min(times).isoformat() if times else None,
        "newest": max(times).isoformat() if times else None,
    }


def delays(figures: dict[str, Any], indexed_at: datetime) -> dict[str, float | None]:
    """End-to-end delay of a run's events: from the oldest and the newest event time to ``indexed_at``."""
    return {
        f"delay_{end}_s": round((indexed_at - datetime.fromisoformat(figures[end])).total_seconds(), 1)
        if figures.get(end) else None
        for end in ("oldest", "newest")
    }  # fmt: skip


def _rejected(reason: str, detail: str, message: Any) -> Rejected:
    if isinstance(message, bytes | bytearray):
        text = message[:MESSAGE_EXCERPT_CHARS].decode("utf-8", "replace")
    elif isinstance(message, str):
        text = message
    else:
        try:
            text = json.dumps(message, ensure_ascii=False, default=str)
        except ValueError:
            text = repr(message)
    return Rejected(reason, detail, text[:MESSAGE_EXCERPT_CHARS])
