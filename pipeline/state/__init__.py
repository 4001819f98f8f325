"""Durable worker state (detector checkpoints, status snapshots) kept in Redis."""

from pipeline.state.redis_store import RedisStateStore

__all__ = ["RedisStateStore"]
