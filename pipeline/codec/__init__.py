"""Avro in the Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro body."""

from pipeline.codec.avro import AvroDeserializer, AvroSerializer
from pipeline.codec.errors import DecodeError
from pipeline.codec.registry import SchemaRegistry, registry_from_settings
from pipeline.codec.schemas import SchemaCatalog, SchemaVersion

__all__ = [
    "AvroDeserializer",
    "AvroSerializer",
    "DecodeError",
    "SchemaCatalog",
    "SchemaRegistry",
    "SchemaVersion",
    "registry_from_settings",
]
