# One-shot model fetcher: fills the `models` volume the ML services read (needs internet).
# Build context is the repo root: docker build -f deploy/docker/models.Dockerfile .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MODEL_CACHE_DIR=/models
WORKDIR /app
# The version transformers==4.46.3 resolves to in the project's environment.
RUN pip install huggingface_hub==0.36.2
COPY deploy/fetch_models.py /app/deploy/fetch_models.py
CMD ["python", "deploy/fetch_models.py", "--cache-dir", "/models"]
