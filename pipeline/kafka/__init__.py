"""Kafka transport (confluent-kafka): admin, request producer, topic reader."""
