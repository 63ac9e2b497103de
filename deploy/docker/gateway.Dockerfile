# Gateway image: runs the API (python -m gateway.api), the indexer (python -m gateway.indexer)
# and the dead-letter tool (python -m gateway.dlq).
# Build context is the repo root: docker build -f deploy/docker/gateway.Dockerfile .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app/libs:/app/services
WORKDIR /app

COPY requirements.txt /tmp/requirements.txt
# Only the runtime pins above the "# ML" section: no torch / llama.cpp in this image.
RUN awk '/^# ML/{exit} {print}' /tmp/requirements.txt >/tmp/runtime.txt \
    && pip install -r /tmp/runtime.txt \
    && rm /tmp/requirements.txt /tmp/runtime.txt

COPY libs/common /app/libs/common
COPY services/gateway /app/services/gateway

RUN useradd --system --uid 10001 --no-create-home app
USER app
ENV GATEWAY_HOST=0.0.0.0 GATEWAY_PORT=8000
EXPOSE 8000
CMD ["python", "-m", "gateway.api"]
