#!/usr/bin/env bash
# Creates/refreshes the project's virtualenv (.venv) from the pinned requirements.txt.
# Re-running is cheap: it reinstalls only when requirements.txt changed. pip's download and
# wheel caches live outside the clone (~/.cache/pip), so a second clone installs offline-fast.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/.venv"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null || python=python3
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$root/requirements.txt" | cut -d' ' -f1)"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
echo "==> installing Python dependencies into .venv (first run downloads ~3 GB: torch, transformers, llama-cpp-python)"
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip==24.3.1
# llama-cpp-python builds from source; CMAKE_BUILD_PARALLEL_LEVEL uses every core.
CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$venv/bin/python" -m pip install --quiet -r "$root/requirements.txt"
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
printf '%s\n%s\n' "$root/libs" "$root/services" > "$site/tweet_pipeline.pth"
echo "$want" > "$stamp"
echo "==> .venv ready"
