"""murmur2 as Kafka computes it (the vectors of Kafka's own UtilsTest.testMurmur2)."""

from __future__ import annotations

import pytest

from pipeline.kafka.partitioner import murmur2, partition_for

KAFKA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("key", "signed"), KAFKA_VECTORS.items())
def test_murmur2_matches_kafka(key: bytes, signed: int) -> None:
    assert murmur2(key) == signed & 0xFFFFFFFF


def test_partition_is_the_positive_hash_modulo_the_count() -> None:
    assert partition_for(b"21", 4) == (-973932308 & 0x7FFFFFFF) % 4
    assert {partition_for(str(i).encode(), 3) for i in range(100)} == {0, 1, 2}
