#!/usr/bin/env bash
# Runs every test against the real servers started by `make up-infra`, then the static checks.
set -uo pipefail
cd "$(dirname "$0")/../.."
status=0
.venv/bin/python -m pytest -q -rs --durations=15 tests || status=$?
.venv/bin/ruff check libs services tests bench deploy evaluation training || status=$?
.venv/bin/mypy libs/common services evaluation training || status=$?
exit $status
