#!/usr/bin/env bash
# Runs the tests against the real servers started by `make up-infra`, then the static checks.
#   run-tests.sh           every test but the fault suite (`make test`), ruff and mypy
#   run-tests.sh --faults  only the fault suite (`make test-faults`): kills and restarts its own
#                          private Kafka and Elasticsearch; kept apart so `make test` stays short
set -uo pipefail
cd "$(dirname "$0")/../.."
status=0
if [[ "${1:-}" == "--faults" ]]; then
  .venv/bin/python -m pytest -q -rsxX -s --durations=15 --timeout=1200 -m faults tests/e2e/test_faults.py || status=$?
  exit $status
fi
.venv/bin/python -m pytest -q -rs --durations=15 -m "not faults" tests || status=$?
.venv/bin/ruff check libs services tests bench deploy evaluation training || status=$?
.venv/bin/mypy libs/common services evaluation training || status=$?
exit $status
