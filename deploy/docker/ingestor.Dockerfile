# Ingestor image (one-shot replay of a dataset into tweets.raw).
# Build context is the repo root: docker build -f deploy/docker/ingestor.Dockerfile .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app/libs:/app/services
WORKDIR /app

COPY requirements.txt /tmp/requirements.txt
# Only the runtime pins above the "# ML" section.
RUN awk '/^# ML/{exit} {print}' /tmp/requirements.txt >/tmp/runtime.txt \
    && pip install -r /tmp/runtime.txt \
    && rm /tmp/requirements.txt /tmp/runtime.txt

COPY libs/common /app/libs/common
COPY services/ingestor /app/services/ingestor

RUN useradd --system --uid 10001 --no-create-home app
USER app
ENTRYPOINT ["python", "-m", "ingestor"]
CMD ["replay", "/data/sample_tweets.json"]
