"""The batch-native engine: librdkafka batches -> a staged handler -> delivered -> committed.

`Engine` owns one confluent-kafka consumer on its own thread (`consumer_loop.py`), cuts
micro-batches by the rule in `batcher.py`, runs the handler's stages on a thread each
(`stages.py`) and commits a partition only up to its delivered prefix (`tracker.py`). Nothing
here names a stream or a model: scoring and drift are two handlers of the same engine.
"""

from pipeline.core.batch import Batch, CutReason
from pipeline.core.handler import BatchHandler, Stage
from pipeline.engine.batcher import AdaptiveBatcher, CostModel
from pipeline.engine.config import EngineConfig
from pipeline.engine.consumer_loop import Engine
from pipeline.engine.tracker import OffsetTracker

__all__ = [
    "AdaptiveBatcher",
    "Batch",
    "BatchHandler",
    "CostModel",
    "CutReason",
    "Engine",
    "EngineConfig",
    "OffsetTracker",
    "Stage",
]
