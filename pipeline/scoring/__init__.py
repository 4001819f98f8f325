"""Transport-independent scoring: request bytes in; result, provenance, dead-letter bytes out.

`messages.py` defines what crosses the transport boundary, `scorer.py` decodes, validates,
batches features and scores, `provenance.py` and `dead_letters.py` build the outputs.
"""

from pipeline.core.messages import InboundMessage, OutboundMessage
from pipeline.scoring.scorer import BatchScorer, PreparedBatch

__all__ = ["BatchScorer", "InboundMessage", "OutboundMessage", "PreparedBatch"]
