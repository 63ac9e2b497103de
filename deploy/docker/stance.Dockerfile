# Stance classifier image: llama-cpp-python (local GGUF) or an OpenAI-compatible API.
# llama-cpp-python builds from source, so it is compiled in a throw-away stage.
# Build context is the repo root: docker build -f deploy/docker/stance.Dockerfile .
FROM python:3.11-slim AS wheels
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.txt /tmp/requirements.txt
RUN grep -E '^llama-cpp-python==' /tmp/requirements.txt >/tmp/ml.txt \
    && pip wheel --no-cache-dir --wheel-dir /wheels -r /tmp/ml.txt

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app/libs:/app/services \
    MODEL_CACHE_DIR=/models
WORKDIR /app
# llama.cpp's CPU backend links against OpenMP at run time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

COPY requirements.txt /tmp/requirements.txt
COPY --from=wheels /wheels /wheels
RUN awk '/^# ML/{exit} {print}' /tmp/requirements.txt >/tmp/runtime.txt \
    && pip install -r /tmp/runtime.txt /wheels/*.whl \
    && rm -rf /wheels /tmp/requirements.txt /tmp/runtime.txt

COPY libs/common /app/libs/common
COPY services/stance /app/services/stance

RUN useradd --system --uid 10001 --no-create-home app
USER app
CMD ["python", "-m", "stance"]
