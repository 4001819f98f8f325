# inferstream worker image, built from this repository (used by docker-compose.yml).
#   docker build -t inferstream .
#   docker run --rm -e INFERSTREAM_KAFKA_BOOTSTRAP=... inferstream inferstream worker --streams fraud
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Only what the package needs at run time; the models are built into the repo, not downloaded.
# A plain (wheel) install: setup.py copies schemas/, models/ and ops/kafka into the package.
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY pipeline ./pipeline
COPY agents ./agents
COPY schemas ./schemas
COPY models ./models
COPY ops ./ops

RUN pip install '.[cpu]' \
 && useradd --create-home --uid 10001 inferstream \
 && mkdir -p /var/lib/inferstream /var/cache/inferstream \
 && chown inferstream /var/lib/inferstream /var/cache/inferstream

USER inferstream

ENV INFERSTREAM_STATE_DIR=/var/lib/inferstream \
    INFERSTREAM_CACHE_DIR=/var/cache/inferstream \
    INFERSTREAM_KAFKA_BOOTSTRAP=kafka:19092 \
    INFERSTREAM_REDIS_URL=redis://redis:6379/0

CMD ["inferstream", "worker", "--streams", "fraud"]
