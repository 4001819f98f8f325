"""The HTTP gateway: authenticated, rate- and cost-limited submit and poll-by-id over Kafka.

`inferstream gateway` (pipeline/cli/gateway_cmd.py) serves `app.py`'s aiohttp application:
requests are validated with the stream plug-in's own schema and preprocessing (`intake.py`),
answered at once from the result cache when the served model already scored the same input
(the fast path), otherwise admitted by one atomic Lua call in Redis (API key, stream grant,
per-tenant GCRA rate and cost limits, idempotency, pending status: `limits.py`) and produced
with the project's one request producer (`producer.py`) behind a circuit breaker
(`pipeline/core/breaker.py`). A consumer of `<stream>.results` and `.dlq` (`index.py`) keeps
each request's status in Redis with a TTL, so any gateway replica, or a restarted one,
answers a poll.
"""
