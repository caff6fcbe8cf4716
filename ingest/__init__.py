"""Ingest: MQTT subscriber, validation against the registry, dedup, batched durable writes."""
