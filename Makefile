# Every target installs what it needs first, so each one works on a fresh clone.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY := .venv/bin/python
INFRA := deploy/local/infra.sh
SERVICES := deploy/local/services.sh
FILE ?= data/sample_tweets.json
FORMAT ?=
GATEWAY_URL ?= http://127.0.0.1:8000
# The stack `make up` starts sends traces to the local Jaeger; set it empty to turn tracing off.
OTLP ?= http://127.0.0.1:4318
# make bench: tweets replayed through the whole pipeline (cores shared by demand, as make up runs it),
# through the stack without any thread budget, and through issue 8's static split for comparison.
BENCH_TWEETS ?= 300
BENCH_UNBUDGETED_TWEETS ?= 300
# make evaluate: the gold CSV and where predictions come from (models in-process, or the running index).
GOLD ?= data/labelled/test.csv
SOURCE ?= models
# make evaluate BENCH=...: a public benchmark (tweeteval-stance, tweeteval-emotion, tweeteval-sentiment,
# goemotions, annotated-stance, or all) on its dev/val split, or SPLIT=test where you have the file.
BENCH ?=
SPLIT ?= dev

.PHONY: help install up-infra up down replay demo test test-faults test-unit lint models status bench evaluate report clean browser dlq \
	fit-stance-head train-emotion-head

help: ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: ## create .venv from the pinned requirements (cached; cheap when unchanged)
	@bash deploy/local/python-env.sh

up-infra: ## download (cached) and start Kafka, Elasticsearch and Jaeger; wait until ready
	@bash $(INFRA) up

# Replicas per worker under supervisord (make exports command-line variables to the script):
#   make up EMOTION_REPLICAS=3 STANCE_REPLICAS=2 INDEXER_REPLICAS=2 [KAFKA_PARTITIONS=6]
up: install up-infra ## start infrastructure and every service (supervised replicas) in the background
	@OTEL_EXPORTER_OTLP_ENDPOINT=$(OTLP) bash $(SERVICES) up

down: ## stop the services and the infrastructure
	@bash $(SERVICES) down
	@bash $(INFRA) down

replay: install ## replay a dataset into the running stack: make replay FILE=path [FORMAT=csv] [ARGS="--follow --skip-existing"]
	@OTEL_EXPORTER_OTLP_ENDPOINT=$(OTLP) $(PY) -m ingestor replay "$(FILE)" $(if $(FORMAT),--format $(FORMAT),) $(ARGS)

demo: up ## everything above, then replay the sample dataset and show labelled tweets
	@# Every demo tweet is traced (the ingestor's default samples 1 tweet in 10 for speed).
	@OTEL_EXPORTER_OTLP_ENDPOINT=$(OTLP) OTEL_TRACES_SAMPLER_RATIO=$${OTEL_TRACES_SAMPLER_RATIO:-1.0} $(PY) -m ingestor replay data/sample_tweets.json
	@$(PY) deploy/demo_show.py --url $(GATEWAY_URL)

models: install ## download the production models (needs internet)
	@$(PY) deploy/fetch_models.py

status: install ## supervised processes, per-stage counts, consumer lag and group members
	@bash $(SERVICES) status || true
	@$(PY) deploy/pipeline_status.py

dlq: install ## dead letters: make dlq [CMD="list|show|redrive"] [ARGS="--reason R --service S --dry-run"]
	@$(PY) -m gateway.dlq $(or $(CMD),list) $(ARGS)

browser: ## Debian chromium + chromedriver for the review page browser test (apt; skipped when present)
	@bash deploy/local/browser.sh

test: install up-infra browser ## everything the tests need, then all tests but the fault suite, and static checks
	@bash deploy/local/run-tests.sh

test-faults: install up-infra ## the fault suite: SIGKILLs of workers, Kafka and Elasticsearch mid-stream (private servers)
	@bash deploy/local/run-tests.sh --faults

test-unit: install ## unit tests only (no servers)
	@$(PY) -m pytest -q tests/unit

lint: install ## ruff + mypy
	@.venv/bin/ruff check libs services tests bench deploy evaluation training
	@.venv/bin/mypy libs/common services evaluation training

bench: install up-infra ## benchmarks: JSON and plots in bench/results/ (BENCH_TWEETS=300 for the pipeline)
	@PYTHONPATH=. $(PY) bench/stance_bench.py
	@PYTHONPATH=. $(PY) bench/stance_ceiling_bench.py --rounds 2
	@PYTHONPATH=. $(PY) bench/emotion_bench.py
	@PYTHONPATH=. $(PY) bench/onnx_parity.py
	@PYTHONPATH=. $(PY) bench/transactions_bench.py
	@PYTHONPATH=. $(PY) bench/ingest_bench.py --tweets 10000
	@PYTHONPATH=. $(PY) bench/es_bulk_bench.py
	@PYTHONPATH=. $(PY) bench/pipeline_bench.py --tweets $(BENCH_TWEETS) --unbudgeted-tweets $(BENCH_UNBUDGETED_TWEETS)
	@PYTHONPATH=. $(PY) bench/pipeline_bench.py --sharing --tweets $(BENCH_TWEETS)
	@mkdir -p docs/bench && cp bench/results/pipeline_rates.png bench/results/pipeline_sharing_rates.png bench/results/emotion_batch.png docs/bench/

evaluate: install ## score a gold CSV, or a public benchmark: make evaluate [BENCH=tweeteval-stance|...|all] [SPLIT=dev|test]
	@if [ -n "$(BENCH)" ]; then $(PY) -m evaluation --bench $(BENCH) --split $(SPLIT) $(ARGS); \
	else $(PY) -m evaluation --gold $(GOLD) --source $(SOURCE) $(ARGS); fi

fit-stance-head: install ## fit the stance head for the configured GGUF (STANCE_GGUF_PATH) from human-labelled tweets
	@$(PY) -m training.stance_head $(ARGS)

train-emotion-head: install ## rebuild the MiniLM emotion head and its sentiment block from the labelled data [ARGS="--configs ..."]
	@$(PY) -m training.emotion_head $(ARGS)

report: install ## REPORT.md and docs/report/*.png: test-set metrics, sample-data labels, benchmark figures
	@$(PY) -m evaluation.report $(ARGS)

clean: down ## stop everything and delete local data: broker, index, traces, logs, ingestor checkpoints (downloads stay)
	@home="$${TWEETPIPE_HOME:-$$HOME/.cache/tweet-pipeline}"; run="$${TWEETPIPE_RUN_DIR:-$$home/run}"; \
	  test -n "$$home" && rm -rf "$$run" "$$home/state" && echo "removed $$run and $$home/state (downloads in $$home kept)"
