"""Batch document-processing jobs: a file or directory of documents scored as one job.

A job is submitted (`submit.py`) as requests of a stream with a job field (`docs`), each
request id `<job id>/<document id>` and header `job`; the job tracker (`tracker.py`, an engine
in the stream's worker) counts the stream's results and dead letters per job, idempotently, in
the job store (pipeline/redis/jobs.py), and moves the job through its states (`states.py`).
Specs also go to the compacted `<ns>jobs` topic (`journal.py`), so that a lost Redis is
rebuilt from the topics (`rebuild.py`).

The modules here import no Kafka or Redis client: they go through pipeline/kafka and
pipeline/redis.
"""
