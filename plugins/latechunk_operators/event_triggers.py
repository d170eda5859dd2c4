"""A watcher trigger that forwards the topic's messages in batches: one asset event per burst, not per message.

The Kafka provider's ``AwaitMessageTrigger`` yields one message and ends; the triggerer then starts it again on
its next loop (every second or two, more under load), and the consumer rejoins its group each time. A hundred
uploads made that way trickle into Airflow at one message every 2-3 seconds, so the watcher, not the pipeline,
set the delay. This trigger keeps one consumer for as long as the watcher runs and yields, for every poll that
finds messages, one event carrying all of them (up to ``max_messages``), after waiting ``linger_s`` for the rest
of a burst. Offsets are committed once the event is handed to the triggerer (at least once: a redelivered
message names an object the run then reads by its current state, so it changes nothing).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from latechunk_operators.events import kafka_message_payload


class KafkaMessageBatchTrigger(BaseEventTrigger):
    """Yield ``{"messages": [payload, ...]}`` per burst of messages on ``topics`` (payloads as
    ``kafka_message_payload`` makes them)."""

    def __init__(
        self,
        topics: Sequence[str],
        kafka_config_id: str,
        max_messages: int = 500,
        poll_timeout: float = 1.0,
        linger_s: float = 0.5,
    ) -> None:
        super().__init__()
        self.topics = list(topics)
        self.kafka_config_id = kafka_config_id
        self.max_messages = max_messages
        self.poll_timeout = poll_timeout
        self.linger_s = linger_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "topics": self.topics,
                "kafka_config_id": self.kafka_config_id,
                "max_messages": self.max_messages,
                "poll_timeout": self.poll_timeout,
                "linger_s": self.linger_s,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow.providers.apache.kafka.hooks.consume import KafkaConsumerHook
        from asgiref.sync import sync_to_async

        hook = KafkaConsumerHook(topics=self.topics, kafka_config_id=self.kafka_config_id)
        consumer = await sync_to_async(hook.get_consumer)()
        try:
            while True:
                batch = await sync_to_async(self.drain)(consumer)
                if batch:
                    yield TriggerEvent({"messages": batch})
                    await sync_to_async(consumer.commit)(asynchronous=False)
        finally:
            await sync_to_async(consumer.close)()

    def drain(self, consumer: Any) -> list[dict[str, Any]]:
        """One burst: the messages of one poll, then of further short polls until the topic is quiet or the batch
        is full. Broker-side errors (a partition's end, a rebalance) are logged and skipped, never raised: the
        watcher must outlive them."""
        messages = consumer.consume(self.max_messages, timeout=self.poll_timeout)
        while messages and len(messages) < self.max_messages:
            more = consumer.consume(self.max_messages - len(messages), timeout=self.linger_s)
            if not more:
                break
            messages += more
        payloads = []
        for message in messages:
            if message.error():
                self.log.warning("Kafka reported %s; going on", message.error())
            else:
                payloads.append(kafka_message_payload(message))
        return payloads
