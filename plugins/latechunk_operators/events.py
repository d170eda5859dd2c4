"""The object-events asset: its watcher listens to the bucket's notifications (Kafka, or SQS on AWS) in the
triggerer, and every burst of messages becomes an asset event that schedules the ``latechunk_events`` DAG.

On Kafka the watcher is our `KafkaMessageBatchTrigger` (one asset event per burst of messages, see
`event_triggers`); on SQS it is the common.messaging provider's `MessageQueueTrigger` (one event per batch of up to
10 messages). The watcher only carries each message on, unparsed: parsing (and rejecting what is not an object
event) happens in the run (`latechunk.sources.events`), so that a malformed message is counted and reported there
and can never stop the watcher. Settings come from the environment of the dag-processor and the triggerer:

- ``LATECHUNK_EVENTS_SCHEME``: ``kafka`` (default) or ``sqs``;
- ``LATECHUNK_KAFKA_TOPIC`` (default ``latechunk-s3-events``) and ``LATECHUNK_KAFKA_CONN_ID`` (default
  ``latechunk_kafka``: a ``kafka`` connection whose extra is the consumer's config, with ``bootstrap.servers``
  and ``group.id``);
- ``LATECHUNK_SQS_QUEUE`` (the queue URL) and ``LATECHUNK_AWS_CONN_ID`` for SQS.
"""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import Asset, AssetWatcher, BaseOperator

# Most characters of one message carried in an asset event: a notification is a few kB; anything larger is cut
# (and then rejected as not JSON by the run, with its excerpt) rather than bloating the metadata database.
MAX_MESSAGE_CHARS = 64_000


def kafka_message_payload(message: Any) -> dict[str, Any]:
    """The Kafka trigger's ``apply_function``: the message's text and where it came from. It never raises and
    never returns an empty result, so every message (even a null or undecodable one) reaches the run."""
    value = message.value()
    _, timestamp_ms = message.timestamp()
    return {
        "message": None if value is None else value[:MAX_MESSAGE_CHARS].decode("utf-8", "replace"),
        "source": f"kafka:{message.topic()}/{message.partition()}@{message.offset()}",
        "received_ms": timestamp_ms,
    }


def _watcher_trigger() -> Any:
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

    scheme = os.environ.get("LATECHUNK_EVENTS_SCHEME", "kafka")
    if scheme == "sqs":
        return MessageQueueTrigger(
            scheme="sqs",
            sqs_queue=os.environ.get("LATECHUNK_SQS_QUEUE", ""),
            aws_conn_id=os.environ.get("LATECHUNK_AWS_CONN_ID", "latechunk_s3"),
            max_messages=10,
            waiter_delay=int(os.environ.get("LATECHUNK_SQS_WAIT_S", "5")),
        )
    if scheme != "kafka":
        raise ValueError(f"LATECHUNK_EVENTS_SCHEME must be kafka or sqs, got {scheme!r}")
    from latechunk_operators.event_triggers import KafkaMessageBatchTrigger

    return KafkaMessageBatchTrigger(
        topics=[os.environ.get("LATECHUNK_KAFKA_TOPIC", "latechunk-s3-events")],
        kafka_config_id=os.environ.get("LATECHUNK_KAFKA_CONN_ID", "latechunk_kafka"),
    )


def object_events_asset() -> Asset:
    """The asset whose events are the bucket's notifications, watched by the configured trigger."""
    scheme = os.environ.get("LATECHUNK_EVENTS_SCHEME", "kafka")
    where = os.environ.get("LATECHUNK_KAFKA_TOPIC", "latechunk-s3-events") if scheme == "kafka" else "sqs"
    return Asset(
        name="latechunk_object_events",
        uri=f"latechunk://object-events/{where}",
        watchers=[AssetWatcher(name=f"latechunk_{scheme}_watcher", trigger=_watcher_trigger())],
    )


class RequeueLateEventsOperator(BaseOperator):
    """Make sure the events this run's window left out get a run of their own.

    Airflow gives an asset-scheduled run the asset events up to the moment the first of them queued the DAG
    (``run_after``). Events that arrive after that, while the run waits to be created (``max_active_runs=1``: the
    previous run is busy), queue nothing (the DAG is already queued) and fall outside this run's window: they
    belong to the next run, but no next run comes until another event arrives. This task, in parallel with the
    run's work, looks for watcher events later than ``run_after`` and, when there are some, succeeds, emitting an
    event of the asset (its outlet, without a payload): that queues the next run, whose window starts where this
    one ended. When there are none it skips, emitting nothing, so runs do not requeue themselves for ever.
    """

    ui_color = "#f0f0ff"

    def __init__(self, *, asset: Asset, **kwargs: Any) -> None:
        super().__init__(inlets=[asset], outlets=[asset], **kwargs)
        self.asset = asset

    def execute(self, context: Any) -> int:
        from airflow.sdk.exceptions import AirflowSkipException

        run_after = context["dag_run"].run_after
        later = [event for event in context["inlet_events"][self.asset].after(run_after.isoformat())
                 if event.timestamp > run_after and (event.extra or {}).get("from_trigger")]  # fmt: skip
        if not later:
            raise AirflowSkipException(f"no notification arrived after this run's window ({run_after})")
        self.log.info("%d notifications arrived after this run's window (%s, first at %s): queuing the next run",
                      len(later), run_after, later[0].timestamp)  # fmt: skip
        context["outlet_events"][self.asset].extra = {"requeued_after": run_after.isoformat()}
        return len(later)
