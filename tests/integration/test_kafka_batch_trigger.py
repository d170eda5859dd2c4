"""The event watcher's trigger on a real Kafka broker: a burst of notifications reaches Airflow as one asset event
with every message in order, and what it forwarded is committed, so a restarted watcher does not forward it again."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from latechunk_operators.event_triggers import KafkaMessageBatchTrigger
from support import REPO


@pytest.fixture
def kafka_topic(servers, monkeypatch) -> tuple[str, str]:
    """A fresh topic and a connection ``test_kafka`` whose consumer group is fresh too."""
    from confluent_kafka.admin import AdminClient, NewTopic

    servers_env = (REPO / "var" / "servers.env").read_text().splitlines()
    bootstrap = next(line.split("=", 1)[1].strip("'\"") for line in servers_env
                     if line.removeprefix("export ").startswith("KAFKA_BOOTSTRAP_SERVERS="))  # fmt: skip
    topic = f"latechunk-test-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1)])[topic].result(30)
    extra = {"bootstrap.servers": bootstrap, "group.id": f"test-{topic}", "auto.offset.reset": "earliest",
             "enable.auto.commit": False}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_TEST_KAFKA", json.dumps({"conn_type": "kafka", "extra": extra}))
    return bootstrap, topic


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap})
    for value in values:
        producer.produce(topic, value)
    assert producer.flush(30) == 0


def forwarded(topic: str, expected: int) -> list[list[dict]]:
    """The events one watcher yields until it has forwarded ``expected`` messages (or 60 s pass); then it runs
    3 s more, as the triggerer keeps it running, and must forward nothing else."""

    async def watch() -> list[list[dict]]:
        events: list[list[dict]] = []
        run = KafkaMessageBatchTrigger([topic], "test_kafka", linger_s=1.0).run()
        try:
            while sum(map(len, events)) < expected:
                event = await asyncio.wait_for(anext(run), timeout=60)
                events.append(event.payload["messages"])
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(anext(run), timeout=3)
        finally:
            await run.aclose()
        return events

    return asyncio.run(watch())


def test_a_burst_becomes_one_event_and_forwarded_messages_are_committed(kafka_topic):
    bootstrap, topic = kafka_topic
    produce(bootstrap, topic, [json.dumps({"n": n}).encode() for n in range(40)])
    first = forwarded(topic, 40)
    # One poll takes what the broker holds; a split into two events can only come from the group's first assignment.
    assert len(first) <= 2
    messages = [message for event in first for message in event]
    assert [json.loads(message["message"])["n"] for message in messages] == list(range(40))
    assert [message["source"] for message in messages] == [f"kafka:{topic}/0@{offset}" for offset in range(40)]

    produce(bootstrap, topic, [b"late-1", None, b"late-3"])
    second = forwarded(topic, 3)
    assert [message["message"] for event in second for message in event] == ["late-1", None, "late-3"]
